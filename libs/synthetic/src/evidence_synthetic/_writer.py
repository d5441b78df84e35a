"""Write evidence pairs to a directory tree: `<policy>/mib.xml`, `<policy>/rx.xml`, `labels.csv`."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from evidence_synthetic._pairs import EvidencePair

__all__ = ["LABELS_HEADER", "write_pairs"]

LABELS_HEADER = ("policy_number", "label", "as_of")


def write_pairs(pairs: Iterable[EvidencePair], directory: str | Path) -> int:
    """Write each pair's documents and one `labels.csv` row per pair, and return the pair count.

    The CSV columns are `policy_number,label,as_of` with the as-of date in ISO form. Pairs are
    consumed lazily, so a generator of any length needs memory for one pair at a time.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    count = 0
    with (root / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LABELS_HEADER)
        for pair in pairs:
            folder = root / pair.policy_number
            folder.mkdir(exist_ok=True)
            (folder / "mib.xml").write_bytes(pair.mib_xml)
            (folder / "rx.xml").write_bytes(pair.rx_xml)
            writer.writerow((pair.policy_number, pair.label, pair.as_of.isoformat()))
            count += 1
    return count
