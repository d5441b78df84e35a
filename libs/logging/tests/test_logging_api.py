"""The package's public names."""

from __future__ import annotations

import evidence_logging


def _isort_key(name: str) -> tuple[int, str]:
    if name.isupper():
        return (0, name)
    return (1 if name[0].isupper() else 2, name)


def test_all_sorted_and_complete() -> None:
    """`__all__` is sorted as ruff's RUF022 keeps it and lists every public name."""
    exported = evidence_logging.__all__
    public = {name for name in vars(evidence_logging) if not name.startswith("_")}

    assert sorted(exported, key=_isort_key) == exported
    assert set(exported) == public - {"annotations"}
