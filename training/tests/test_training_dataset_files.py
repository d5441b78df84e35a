"""Tests of reading a labelled training directory (labels.csv and per-policy XML files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from evidence_training.dataset import load_directory_set
from evidence_training.errors import DatasetError


def _write_dir(root: Path, labels: str, policies: dict[str, dict[str, str]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text(labels, encoding="utf-8")
    for policy, files in policies.items():
        (root / policy).mkdir()
        for name, text in files.items():
            (root / policy / name).write_text(text, encoding="utf-8")
    return root


_MIB = "<MIBResponse/>"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("policy,label,as_of\nP1,1,2024-01-01\n", r"lacks columns \['policy_number'\]"),
        ("policy_number,label,as_of\n", "no rows"),
        (
            "policy_number,label,as_of\nP1,2,2024-01-01\n",
            "label '2' for policy 'P1' must be 0 or 1",
        ),
        ("policy_number,label,as_of\nP1,1,01/02/2024\n", "line 2: as_of '01/02/2024'"),
        ("policy_number,label,as_of\nP1,1,2024-01-01\nP1,0,2024-01-01\n", "line 3.*twice"),
        ("policy_number,label,as_of\n../x,1,2024-01-01\n", "not a plain folder name"),
        ("policy_number,label,as_of\n,1,2024-01-01\n", "not a plain folder name"),
    ],
)
def test_load_directory_set_bad_labels_raise(tmp_path: Path, labels: str, message: str) -> None:
    """Each kind of invalid labels.csv raises DatasetError naming the line or column."""
    root = _write_dir(tmp_path / "data", labels, {"P1": {"mib.xml": _MIB}})

    with pytest.raises(DatasetError, match=message):
        load_directory_set(root, progress=False)


def test_load_directory_set_missing_directory_raises(tmp_path: Path) -> None:
    """A directory that does not exist raises DatasetError naming it."""
    with pytest.raises(DatasetError, match="does not exist"):
        load_directory_set(tmp_path / "absent", progress=False)


def test_load_directory_set_missing_labels_raises(tmp_path: Path) -> None:
    """A directory without labels.csv raises DatasetError naming the expected columns."""
    (tmp_path / "data").mkdir()

    with pytest.raises(DatasetError, match=r"labels file .* is missing"):
        load_directory_set(tmp_path / "data", progress=False)


def test_load_directory_set_policy_without_files_raises(tmp_path: Path) -> None:
    """A labelled policy with neither mib.xml nor rx.xml raises DatasetError naming it."""
    labels = "policy_number,label,as_of\nP1,1,2024-01-01\nP2,0,2024-01-01\n"
    root = _write_dir(tmp_path / "data", labels, {"P1": {"mib.xml": _MIB}, "P2": {}})

    with pytest.raises(DatasetError, match=r"policy .P2. .* has neither mib.xml nor rx.xml"):
        load_directory_set(root, progress=False)
