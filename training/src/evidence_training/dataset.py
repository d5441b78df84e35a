"""Training sets: labelled evidence pairs turned into the 105-column feature matrix.

Features come only from ``evidence_features.extract_batch`` in lenient mode, so one malformed
document in a bulk set is recorded in ``META_MIB_PARSE_ERROR`` / ``META_RX_PARSE_ERROR`` instead of
stopping the run, exactly as the library defines those columns.
"""

from __future__ import annotations

import csv
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from evidence_features import FEATURE_NAMES, extract_batch
from evidence_synthetic import EvidencePair, iter_pairs
from tqdm.auto import tqdm

from evidence_training.errors import DatasetError

__all__ = [
    "LABELS_FILE",
    "MIB_FILE",
    "RX_FILE",
    "TrainingSet",
    "extract_matrix",
    "load_directory_set",
    "make_synthetic_set",
]

LABELS_FILE = "labels.csv"
MIB_FILE = "mib.xml"
RX_FILE = "rx.xml"
_LABEL_COLUMNS = ("policy_number", "label", "as_of")
_CHUNK_ROWS = 500

Document = bytes | None


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Feature matrix and labels of one training run, row-aligned with the policy numbers."""

    matrix: np.ndarray
    labels: np.ndarray
    policy_numbers: tuple[str, ...]
    source: str

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


def extract_matrix(
    chunks: Iterator[tuple[list[tuple[Document, Document]], list[date]]],
    *,
    total: int,
    jobs: int = 1,
    progress: bool = True,
) -> np.ndarray:
    """Build the feature matrix chunk by chunk with ``extract_batch(lenient=True)``.

    With ``jobs`` > 1 the chunks are extracted in that many worker processes while this process
    keeps producing the next chunks (reading files or generating pairs), so both kinds of work
    overlap. At most ``2 * jobs`` chunks are in flight, which bounds the XML held in memory.
    Rows keep the order of ``chunks`` either way.

    Args:
        chunks: pairs ``(mib_xml, rx_xml)`` with their as-of dates, a few hundred rows at a time.
        total: the number of rows, for the progress bar.
        jobs: worker processes for extraction. With 1, this process extracts.
        progress: show a progress bar on stderr.

    Returns:
        A float64 array of shape ``(total, 105)`` in ``FEATURE_NAMES`` order.
    """
    blocks: list[np.ndarray] = []
    with tqdm(total=total, desc="features", unit="pair", disable=not progress) as bar:
        if jobs <= 1:
            for pairs, as_of in chunks:
                blocks.append(_extract_chunk(pairs, as_of))
                bar.update(len(pairs))
        else:
            # NOTE: fork, because a spawned worker re-imports the entry point and with it
            # scikit-learn and matplotlib, about 5 s of CPU per worker (measured). Forking is
            # safe here because no OpenMP pool has started before extraction. Python 3.12+
            # warns when a process with threads forks (tqdm's monitor thread is one).
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                pending: deque[Future[np.ndarray]] = deque()
                for pairs, as_of in chunks:
                    pending.append(pool.submit(_extract_chunk, pairs, as_of))
                    while len(pending) > 2 * jobs:
                        blocks.append(_collect(pending.popleft(), bar))
                while pending:
                    blocks.append(_collect(pending.popleft(), bar))
    if not blocks:
        return np.empty((0, len(FEATURE_NAMES)), dtype=np.float64)
    return np.vstack(blocks)


def _extract_chunk(pairs: list[tuple[Document, Document]], as_of: list[date]) -> np.ndarray:
    return np.asarray(extract_batch(pairs, as_of=as_of, lenient=True), dtype=np.float64)


def _collect(future: Future[np.ndarray], bar: Any) -> np.ndarray:
    block = future.result()
    bar.update(block.shape[0])
    return block


def make_synthetic_set(
    n_rows: int, *, seed: int, jobs: int = 1, progress: bool = True
) -> TrainingSet:
    """Generate ``n_rows`` labelled pairs with ``evidence_synthetic`` and extract their features.

    Pairs are streamed from ``iter_pairs`` (the generator behind ``generate_pairs``), so the
    same ``n_rows`` and ``seed`` give the same matrix and labels whatever ``jobs`` is.

    Raises:
        ValueError: ``n_rows`` is smaller than 1.
    """
    if n_rows < 1:
        msg = f"the synthetic row count must be at least 1, got {n_rows}"
        raise ValueError(msg)
    labels: list[int] = []
    policy_numbers: list[str] = []

    def chunks() -> Iterator[tuple[list[tuple[Document, Document]], list[date]]]:
        part: list[EvidencePair] = []
        for pair in iter_pairs(n_rows, seed=seed):
            labels.append(pair.label)
            policy_numbers.append(pair.policy_number)
            part.append(pair)
            if len(part) == _CHUNK_ROWS:
                yield [(p.mib_xml, p.rx_xml) for p in part], [p.as_of for p in part]
                part = []
        if part:
            yield [(p.mib_xml, p.rx_xml) for p in part], [p.as_of for p in part]

    matrix = extract_matrix(chunks(), total=n_rows, jobs=jobs, progress=progress)
    return TrainingSet(
        matrix=matrix,
        labels=np.array(labels, dtype=np.int64),
        policy_numbers=tuple(policy_numbers),
        source=f"synthetic(n={n_rows}, seed={seed})",
    )


@dataclass(frozen=True, slots=True)
class _LabelRow:
    policy_number: str
    label: int
    as_of: date


def load_directory_set(
    directory: str | Path, *, jobs: int = 1, progress: bool = True
) -> TrainingSet:
    """Load ``DIR/labels.csv`` and ``DIR/<policy_number>/{mib.xml,rx.xml}`` into a training set.

    ``labels.csv`` has the header ``policy_number,label,as_of`` (label 0 or 1, as_of an ISO date),
    the layout ``evidence-synth --out DIR`` writes. A missing ``mib.xml`` or ``rx.xml`` means the
    applicant has no such report. A policy folder with neither file is an error.

    Raises:
        DatasetError: the directory, the labels file, a row or a policy folder is missing or
            invalid. The message names the file and line.
    """
    root = Path(directory)
    if not root.is_dir():
        msg = f"training data directory {str(root)!r} does not exist; write one with evidence-synth"
        raise DatasetError(msg)
    rows = _read_labels(root / LABELS_FILE)
    for row in rows:
        folder = root / row.policy_number
        if not (folder / MIB_FILE).is_file() and not (folder / RX_FILE).is_file():
            msg = (
                f"policy {row.policy_number!r} in {LABELS_FILE} has neither {MIB_FILE} nor "
                f"{RX_FILE} under {str(folder)!r}; add the evidence or drop the row"
            )
            raise DatasetError(msg)

    def chunks() -> Iterator[tuple[list[tuple[Document, Document]], list[date]]]:
        for start in range(0, len(rows), _CHUNK_ROWS):
            part = rows[start : start + _CHUNK_ROWS]
            pairs = [_read_pair(root / row.policy_number) for row in part]
            yield pairs, [row.as_of for row in part]

    matrix = extract_matrix(chunks(), total=len(rows), jobs=jobs, progress=progress)
    return TrainingSet(
        matrix=matrix,
        labels=np.array([row.label for row in rows], dtype=np.int64),
        policy_numbers=tuple(row.policy_number for row in rows),
        source=f"directory({root})",
    )


def _read_pair(folder: Path) -> tuple[Document, Document]:
    return _read_optional(folder / MIB_FILE), _read_optional(folder / RX_FILE)


def _read_optional(path: Path) -> Document:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        msg = f"cannot read {str(path)!r}: {exc.strerror}"
        raise DatasetError(msg) from exc


def _read_labels(path: Path) -> list[_LabelRow]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        msg = f"labels file {str(path)!r} is missing; expected columns {','.join(_LABEL_COLUMNS)}"
        raise DatasetError(msg) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read labels file {str(path)!r} as UTF-8 text: {exc}"
        raise DatasetError(msg) from exc
    reader = csv.DictReader(text.splitlines())
    header = tuple(reader.fieldnames or ())
    missing = [column for column in _LABEL_COLUMNS if column not in header]
    if missing:
        msg = f"{str(path)!r} lacks columns {missing}; the header must contain {_LABEL_COLUMNS}"
        raise DatasetError(msg)
    rows: list[_LabelRow] = []
    seen: set[str] = set()
    for line_number, record in enumerate(reader, start=2):
        row = _parse_label_row(record, f"{path.name} line {line_number}")
        if row.policy_number in seen:
            msg = f"{path.name} line {line_number}: policy {row.policy_number!r} appears twice"
            raise DatasetError(msg)
        seen.add(row.policy_number)
        rows.append(row)
    if not rows:
        msg = f"{str(path)!r} has a header but no rows; a training set needs labelled policies"
        raise DatasetError(msg)
    return rows


def _parse_label_row(record: dict[str, str | None], where: str) -> _LabelRow:
    policy = (record.get("policy_number") or "").strip()
    if not policy or policy in {".", ".."} or "/" in policy or "\\" in policy:
        msg = f"{where}: policy_number {policy!r} is empty or not a plain folder name"
        raise DatasetError(msg)
    label_text = (record.get("label") or "").strip()
    if label_text not in {"0", "1"}:
        msg = f"{where}: label {label_text!r} for policy {policy!r} must be 0 or 1"
        raise DatasetError(msg)
    as_of_text = (record.get("as_of") or "").strip()
    try:
        as_of = date.fromisoformat(as_of_text)
    except ValueError as exc:
        msg = f"{where}: as_of {as_of_text!r} for policy {policy!r} is not an ISO date (YYYY-MM-DD)"
        raise DatasetError(msg) from exc
    return _LabelRow(policy_number=policy, label=int(label_text), as_of=as_of)
