"""Edge cases appear at the configured rate and are recorded on each pair."""

from __future__ import annotations

import numpy as np
import pytest
from evidence_synthetic import MIB_QUIRKS, RX_QUIRKS, EvidencePair, generate_pairs


def _documents_with_quirks(pairs: list[EvidencePair]) -> tuple[float, float]:
    mib = np.mean([any(e.startswith("mib:") for e in p.edge_cases) for p in pairs])
    rx = np.mean([any(e.startswith("rx:") for e in p.edge_cases) for p in pairs])
    return float(mib), float(rx)


def test_edge_rate_zero_gives_clean_pairs() -> None:
    pairs = generate_pairs(300, seed=2, edge_rate=0.0)
    assert all(p.edge_cases == () for p in pairs)


def test_edge_rate_one_marks_every_document() -> None:
    pairs = generate_pairs(200, seed=2, edge_rate=1.0)
    assert _documents_with_quirks(pairs) == (1.0, 1.0)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_edge_rate_observed_near_configured(rate: float) -> None:
    pairs = generate_pairs(1500, seed=4, edge_rate=rate)
    mib, rx = _documents_with_quirks(pairs)
    # Binomial standard error at n=1500 is at most 0.013; allow four of them.
    assert abs(mib - rate) < 0.05
    assert abs(rx - rate) < 0.05


def test_edge_cases_named_from_known_quirks() -> None:
    pairs = generate_pairs(400, seed=6, edge_rate=0.5)
    names = {e for p in pairs for e in p.edge_cases}
    known = {f"mib:{q}" for q in MIB_QUIRKS} | {f"rx:{q}" for q in RX_QUIRKS}
    assert names <= known
    # At rate 0.5 over 400 pairs every quirk is expected about 13 times or more.
    assert len(names) >= len(known) - 3


def test_empty_report_quirk_stands_alone() -> None:
    pairs = generate_pairs(600, seed=8, edge_rate=1.0)
    for pair in pairs:
        for document in ("mib", "rx"):
            names = [e for e in pair.edge_cases if e.startswith(f"{document}:")]
            if f"{document}:empty_report" in names:
                assert names == [f"{document}:empty_report"]


def test_duplicate_quirk_visible_in_document() -> None:
    pairs = generate_pairs(800, seed=9, edge_rate=0.5)
    duplicated = [
        p for p in pairs if "rx:duplicate_fills" in p.edge_cases and b"<DrugFill>" in p.rx_xml
    ]
    assert duplicated
    for pair in duplicated:
        blocks = pair.rx_xml.split(b"<DrugFill>")[1:]
        assert len(blocks) > len({b.split(b"</DrugFill>")[0] for b in blocks})
