"""Training sets: labelled evidence pairs turned into the 105-column feature matrix.

Features come only from ``evidence_features.extract_batch`` in lenient mode, so one malformed
document in a bulk set is recorded in ``META_MIB_PARSE_ERROR`` / ``META_RX_PARSE_ERROR`` instead of
stopping the run, exactly as the library defines those columns. ``TrainingSet.parse_errors``
counts those documents, and ``check_parse_errors`` rejects a set in which too many pairs have
one, because their rows carry only default features.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
from evidence_features import FEATURE_NAMES, ParseLimits, extract_batch
from evidence_synthetic import generate_pair

from evidence_training.errors import DatasetError
from evidence_training.workers import run_chunks

__all__ = [
    "LABELS_FILE",
    "MIB_FILE",
    "RX_FILE",
    "ParseErrorCounts",
    "TrainingSet",
    "check_parse_errors",
    "load_directory_set",
    "make_synthetic_set",
]

LABELS_FILE = "labels.csv"
MIB_FILE = "mib.xml"
RX_FILE = "rx.xml"
_LABEL_COLUMNS = ("policy_number", "label", "as_of")
_CHUNK_ROWS = 500
_MIB_PARSE_ERROR = FEATURE_NAMES.index("META_MIB_PARSE_ERROR")
_RX_PARSE_ERROR = FEATURE_NAMES.index("META_RX_PARSE_ERROR")
_EXAMPLE_POLICIES = 3
# The limits of every extraction here. A document is read up to one byte past max_bytes, which
# is enough for the extraction to reject it as too large without loading the rest.
_PARSE_LIMITS = ParseLimits()
# date.fromisoformat of Python 3.11 also accepts ISO week dates and dates without hyphens.
_DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Path errors that mean the document does not exist: a missing file, or a policy folder that
# is a file.
_MISSING_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})

Document = bytes | None


@dataclass(frozen=True, slots=True)
class ParseErrorCounts:
    """Documents of a training set that failed to parse, so their features are the defaults.

    A missing document (no ``mib.xml``) is not a parse error.
    """

    mib: int
    rx: int
    pairs: int
    """Pairs with at least one failed document."""
    total_pairs: int

    @property
    def pair_fraction(self) -> float:
        """Share of pairs with at least one failed document, 0.0 for an empty set."""
        return self.pairs / self.total_pairs if self.total_pairs else 0.0

    def to_json(self) -> dict[str, int]:
        """Return the counts under the keys that report.json's training_summary uses."""
        return {
            "mib_parse_errors": self.mib,
            "rx_parse_errors": self.rx,
            "pairs_with_parse_errors": self.pairs,
            "pairs": self.total_pairs,
        }


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Feature matrix and labels of one training run, row-aligned with the policy numbers."""

    matrix: np.ndarray
    labels: np.ndarray
    policy_numbers: tuple[str, ...]
    source: str
    """Data source as report.json records it: ``synthetic(n=N, seed=S)`` or ``directory(PATH)``."""
    description: str = ""
    """Data source as error messages name it, such as ``directory 'data/train'``.

    Empty means that messages use ``source``.
    """

    def __post_init__(self) -> None:
        rows = len(self.policy_numbers)
        if self.matrix.shape != (rows, len(FEATURE_NAMES)) or self.labels.shape != (rows,):
            msg = (
                f"matrix {self.matrix.shape}, labels {self.labels.shape} and {rows} policy "
                f"numbers do not line up; expected ({rows}, {len(FEATURE_NAMES)}) and ({rows},)"
            )
            raise ValueError(msg)

    @property
    def positive_rate(self) -> float:
        """Share of rows labelled 1."""
        return float(self.labels.mean()) if self.labels.size else 0.0

    @property
    def parse_errors(self) -> ParseErrorCounts:
        """Counts of documents whose ``META_*_PARSE_ERROR`` column is 1."""
        mib, rx = self._failed_rows()
        return ParseErrorCounts(
            mib=int(mib.sum()),
            rx=int(rx.sum()),
            pairs=int((mib | rx).sum()),
            total_pairs=len(self.policy_numbers),
        )

    def policies_with_parse_errors(self, limit: int) -> list[str]:
        """Return the first ``limit`` policy numbers, in row order, with a failed document."""
        mib, rx = self._failed_rows()
        rows = np.flatnonzero(mib | rx)[:limit]
        return [self.policy_numbers[int(row)] for row in rows]

    def _failed_rows(self) -> tuple[np.ndarray, np.ndarray]:
        return self.matrix[:, _MIB_PARSE_ERROR] == 1.0, self.matrix[:, _RX_PARSE_ERROR] == 1.0


def check_parse_errors(training_set: TrainingSet, max_fraction: float) -> ParseErrorCounts:
    """Return the parse-error counts, or raise when too many pairs have a failed document.

    Raises:
        ValueError: ``max_fraction`` is outside [0, 1].
        DatasetError: more than ``max_fraction`` of the pairs have a MIB or Rx document that
            failed to parse. The message gives counts and up to three policy numbers, never
            document contents.
    """
    if not 0.0 <= max_fraction <= 1.0:
        msg = f"the maximum parse-error fraction must be in [0, 1], got {max_fraction!r}"
        raise ValueError(msg)
    counts = training_set.parse_errors
    if counts.pair_fraction <= max_fraction:
        return counts
    where = training_set.description or training_set.source
    examples = ", ".join(
        repr(number) for number in training_set.policies_with_parse_errors(_EXAMPLE_POLICIES)
    )
    msg = (
        f"{counts.pairs} of {counts.total_pairs} pairs ({counts.pair_fraction:.1%}) in "
        f"{where} have a document that failed to parse (MIB: {counts.mib}, "
        f"Rx: {counts.rx}; first policies: {examples}), more than the allowed "
        f"{max_fraction:.1%}. Such a document is not well-formed XML or exceeds a ParseLimits "
        f"cap (such as {_PARSE_LIMITS.max_bytes:,} bytes), so its row would get only default "
        "features. Fix or remove those documents, or raise --max-parse-error-fraction to "
        "train anyway"
    )
    raise DatasetError(msg)


def _chunk_bounds(total: int, jobs: int) -> list[tuple[int, int]]:
    # At least four chunks per worker keep both workers busy to the end on small sets.
    size = max(1, min(_CHUNK_ROWS, -(-total // (4 * jobs))))
    return [(start, min(start + size, total)) for start in range(0, total, size)]


def _extract_chunk(pairs: list[tuple[Document, Document]], as_of: list[date]) -> np.ndarray:
    features = extract_batch(pairs, as_of=as_of, lenient=True, limits=_PARSE_LIMITS)
    return np.asarray(features, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _SyntheticChunk:
    matrix: np.ndarray
    labels: list[int]
    policy_numbers: list[str]


def _synthetic_chunk(seed: int, start: int, stop: int) -> _SyntheticChunk:
    """Generate and extract pairs ``start`` to ``stop - 1`` of ``iter_pairs(n, seed=seed)``.

    NOTE: this repeats how ``evidence_synthetic.iter_pairs`` derives pair ``i``: the generator
    seeded with child ``i`` of ``SeedSequence(seed)`` (NumPy defines child ``i`` as
    ``SeedSequence(seed, spawn_key=(i,))``) and the policy number ``SYN-<seed>-<i:08d>``.
    ``iter_pairs`` has no start index, and skipping pairs with it would generate them.
    test_make_synthetic_set_reproducible compares the result with ``generate_pairs``.
    """
    pairs = [
        generate_pair(
            np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,))),
            policy_number=f"SYN-{seed}-{index:08d}",
        )
        for index in range(start, stop)
    ]
    matrix = _extract_chunk([(p.mib_xml, p.rx_xml) for p in pairs], [p.as_of for p in pairs])
    return _SyntheticChunk(
        matrix=matrix,
        labels=[p.label for p in pairs],
        policy_numbers=[p.policy_number for p in pairs],
    )


def make_synthetic_set(
    n_rows: int,
    *,
    seed: int,
    jobs: int = 1,
    progress: bool = True,
    preload: Sequence[str] = (),
) -> TrainingSet:
    """Generate ``n_rows`` labelled pairs with ``evidence_synthetic`` and extract their features.

    Each worker generates and extracts whole chunks, so this process only collects matrices.
    Row ``i`` is pair ``i`` of ``generate_pairs(n_rows, seed=seed)``, whatever ``jobs`` is.

    Args:
        n_rows: pairs to generate.
        seed: seed of the generator.
        jobs: worker processes. With 1, this process does all the work.
        progress: show a progress bar on stderr when it is a terminal.
        preload: modules to import in this process while the workers run (see
            :func:`evidence_training.workers.run_chunks`).

    Raises:
        ValueError: ``n_rows`` is smaller than 1.
    """
    if n_rows < 1:
        msg = f"the synthetic row count must be at least 1, got {n_rows}"
        raise ValueError(msg)
    bounds = _chunk_bounds(n_rows, jobs)
    chunks = run_chunks(
        [partial(_synthetic_chunk, seed, start, stop) for start, stop in bounds],
        sizes=[stop - start for start, stop in bounds],
        jobs=jobs,
        progress=progress,
        preload=preload,
    )
    return TrainingSet(
        matrix=np.vstack([chunk.matrix for chunk in chunks]),
        labels=np.array([label for chunk in chunks for label in chunk.labels], dtype=np.int64),
        policy_numbers=tuple(number for chunk in chunks for number in chunk.policy_numbers),
        source=f"synthetic(n={n_rows}, seed={seed})",
        description=f"the synthetic set (seed {seed})",
    )


@dataclass(frozen=True, slots=True)
class _LabelRow:
    policy_number: str
    label: int
    as_of: date


def load_directory_set(
    directory: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    preload: Sequence[str] = (),
) -> TrainingSet:
    """Load ``DIR/labels.csv`` and ``DIR/<policy_number>/{mib.xml,rx.xml}`` into a training set.

    ``labels.csv`` has the header ``policy_number,label,as_of`` (label 0 or 1, as_of a
    YYYY-MM-DD date), the layout ``evidence-synth --out DIR`` writes. A missing ``mib.xml`` or
    ``rx.xml`` means the applicant has no such report. A policy folder with neither file is an
    error. A document larger than ``ParseLimits().max_bytes`` is read only up to that size plus
    one byte, and the extraction counts it as a parse error.

    Raises:
        DatasetError: the directory, the labels file, a row or a policy folder is missing or
            invalid, or the labels file or a document is not a regular file (a FIFO, device,
            socket or directory, also behind a symbolic link). The message names the file and,
            for labels.csv, the line.
    """
    root = Path(directory)
    if not root.is_dir():
        msg = f"training data directory {str(root)!r} does not exist; write one with evidence-synth"
        raise DatasetError(msg)
    rows = _read_labels(root / LABELS_FILE)
    for row in rows:
        folder = root / row.policy_number
        # Each present document is checked here, so a FIFO or device fails before any worker
        # starts. _read_optional checks the opened file again.
        has_mib = _document_present(folder / MIB_FILE)
        has_rx = _document_present(folder / RX_FILE)
        if not has_mib and not has_rx:
            msg = (
                f"policy {row.policy_number!r} in {LABELS_FILE} has neither {MIB_FILE} nor "
                f"{RX_FILE} under {str(folder)!r}; add the evidence or drop the row"
            )
            raise DatasetError(msg)

    bounds = _chunk_bounds(len(rows), jobs)
    blocks = run_chunks(
        [partial(_directory_chunk, root, rows[start:stop]) for start, stop in bounds],
        sizes=[stop - start for start, stop in bounds],
        jobs=jobs,
        progress=progress,
        preload=preload,
    )
    return TrainingSet(
        matrix=np.vstack(blocks),
        labels=np.array([row.label for row in rows], dtype=np.int64),
        policy_numbers=tuple(row.policy_number for row in rows),
        source=f"directory({root})",
        description=f"directory {str(root)!r}",
    )


def _directory_chunk(root: Path, rows: list[_LabelRow]) -> np.ndarray:
    pairs = [_read_pair(root / row.policy_number) for row in rows]
    return _extract_chunk(pairs, [row.as_of for row in rows])


def _read_pair(folder: Path) -> tuple[Document, Document]:
    return _read_optional(folder / MIB_FILE), _read_optional(folder / RX_FILE)


def _document_present(path: Path) -> bool:
    """Tell whether the document exists, and raise when it is not a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno in _MISSING_ERRNOS:
            return False
        raise _unreadable(path, exc) from exc
    _require_regular_file(path, mode)
    return True


def _read_optional(path: Path) -> Document:
    handle = _open_regular_file(path)
    if handle is None:
        return None
    with handle:
        try:
            return handle.read(_PARSE_LIMITS.max_bytes + 1)
        except OSError as exc:
            raise _unreadable(path, exc) from exc


def _open_regular_file(path: Path) -> BinaryIO | None:
    """Open ``path`` for reading, or return None when it does not exist.

    O_NONBLOCK makes the open of a FIFO return at once instead of waiting for a writer, and the
    type check then runs on the opened file, so a file swapped after an earlier check is caught.

    Raises:
        DatasetError: the file cannot be opened or is not a regular file.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        if exc.errno in _MISSING_ERRNOS:
            return None
        raise _unreadable(path, exc) from exc
    handle = os.fdopen(descriptor, "rb")
    try:
        _require_regular_file(path, os.fstat(descriptor).st_mode)
    except DatasetError:
        handle.close()
        raise
    return handle


def _require_regular_file(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    link = " (through a symbolic link)" if path.is_symlink() else ""
    msg = (
        f"{str(path)!r} is {_describe_file_type(mode)}{link}, not a regular file; replace it "
        "with a regular file or remove it"
    )
    raise DatasetError(msg)


def _describe_file_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _unreadable(path: Path, exc: OSError) -> DatasetError:
    reason = exc.strerror or str(exc)
    return DatasetError(f"cannot read {str(path)!r}: {reason}; make it a readable regular file")


def _read_labels(path: Path) -> list[_LabelRow]:
    handle = _open_regular_file(path)
    if handle is None:
        msg = f"labels file {str(path)!r} is missing; expected columns {','.join(_LABEL_COLUMNS)}"
        raise DatasetError(msg)
    # utf-8-sig drops the byte-order mark that spreadsheet programs write. Without that, the
    # first column would be named "\ufeffpolicy_number". newline="" hands line ends to the csv
    # module, which keeps a newline inside a quoted field and counts physical lines.
    with io.TextIOWrapper(handle, encoding="utf-8-sig", newline="") as text:
        try:
            return _parse_labels(path, text)
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"cannot read labels file {str(path)!r} as UTF-8 text: {exc}"
            raise DatasetError(msg) from exc


def _parse_labels(path: Path, text: io.TextIOWrapper) -> list[_LabelRow]:
    reader = csv.reader(text)
    try:
        header = tuple(next(reader, ()))
    except csv.Error as exc:
        msg = f"{path.name} line {reader.line_num}: invalid CSV ({exc}); fix the header line"
        raise DatasetError(msg) from exc
    missing = [column for column in _LABEL_COLUMNS if column not in header]
    if missing:
        msg = f"{str(path)!r} lacks columns {missing}; the header must contain {_LABEL_COLUMNS}"
        raise DatasetError(msg)
    rows: list[_LabelRow] = []
    seen: set[str] = set()
    last_line = reader.line_num
    while True:
        # A record starts on the line after the previous one ended. Its quoted fields may span
        # several lines, and csv.reader returns an empty list for a blank line.
        first_line = last_line + 1
        try:
            fields = next(reader, None)
        except csv.Error as exc:
            msg = f"{path.name} line {reader.line_num}: invalid CSV ({exc}); fix that line"
            raise DatasetError(msg) from exc
        if fields is None:
            break
        last_line = reader.line_num
        if not fields:
            continue
        where = f"{path.name} line {first_line}"
        if last_line > first_line:
            where = f"{path.name} lines {first_line}-{last_line}"
        row = _parse_label_row(dict(zip(header, fields, strict=False)), where)
        if row.policy_number in seen:
            msg = f"{where}: policy {row.policy_number!r} appears twice"
            raise DatasetError(msg)
        seen.add(row.policy_number)
        rows.append(row)
    if not rows:
        msg = f"{str(path)!r} has a header but no rows; a training set needs labelled policies"
        raise DatasetError(msg)
    return rows


def _parse_label_row(record: Mapping[str, str], where: str) -> _LabelRow:
    policy = (record.get("policy_number") or "").strip()
    if not policy or policy in {".", ".."} or "/" in policy or "\\" in policy:
        msg = f"{where}: policy_number {policy!r} is empty or not a plain folder name"
        raise DatasetError(msg)
    label_text = (record.get("label") or "").strip()
    if label_text not in {"0", "1"}:
        msg = f"{where}: label {label_text!r} for policy {policy!r} must be 0 or 1"
        raise DatasetError(msg)
    as_of_text = (record.get("as_of") or "").strip()
    as_of = _parse_date(as_of_text)
    if as_of is None:
        msg = (
            f"{where}: as_of {as_of_text!r} for policy {policy!r} is not a valid date in the "
            "form YYYY-MM-DD; write it like 2024-01-31"
        )
        raise DatasetError(msg)
    return _LabelRow(policy_number=policy, label=int(label_text), as_of=as_of)


def _parse_date(text: str) -> date | None:
    """Return the date of a YYYY-MM-DD text, or None for any other form or an impossible date."""
    if not _DATE_PATTERN.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
