"""Write evidence pairs to a directory tree: `<policy>/mib.xml`, `<policy>/rx.xml`, `labels.csv`."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from evidence_synthetic._output import make_folder, open_new_text_file, write_new_file
from evidence_synthetic._pairs import EvidencePair

__all__ = ["LABELS_HEADER", "write_pairs"]

LABELS_HEADER = ("policy_number", "label", "as_of")


def write_pairs(pairs: Iterable[EvidencePair], directory: str | Path) -> int:
    """Write each pair's documents and one `labels.csv` row per pair, and return the pair count.

    The CSV columns are `policy_number,label,as_of` with the as-of date in ISO form. Pairs are
    consumed lazily, so a generator of any length needs memory for one pair at a time. Files
    already at those paths are replaced by new files. `directory` itself may be a symbolic link.

    Raises:
        SymlinkInOutputError: an OSError, when labels.csv, a policy folder or a pair file is a
            symbolic link. The pairs before it stay written.
        ValueError: when a policy number is not a single folder name.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    count = 0
    with open_new_text_file(root / "labels.csv") as handle:
        writer = csv.writer(handle)
        writer.writerow(LABELS_HEADER)
        for pair in pairs:
            _check_folder_name(pair.policy_number)
            folder = root / pair.policy_number
            make_folder(folder)
            write_new_file(folder / "mib.xml", pair.mib_xml)
            write_new_file(folder / "rx.xml", pair.rx_xml)
            writer.writerow((pair.policy_number, pair.label, pair.as_of.isoformat()))
            count += 1
    return count


def _check_folder_name(policy_number: str) -> None:
    """Raise ValueError unless ``policy_number`` names one folder directly below the output."""
    separators = [os.sep, os.altsep or os.sep]
    if policy_number in ("", ".", "..") or any(sep in policy_number for sep in separators):
        msg = (
            f"invalid policy number {policy_number!r}: it names the pair folder, so it must "
            "not be empty, '.' or '..' and must not contain a path separator"
        )
        raise ValueError(msg)
