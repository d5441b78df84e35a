"""Feature extraction off the event loop, in a thread or a process pool.

Parsing XML and building the vector is CPU-bound. Run on the event loop it would stall every
other request, health probes included, so each request hands its rows to a pool in chunks
and awaits the result.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import numpy.typing as npt
from evidence_features import (
    FEATURE_NAMES,
    DocumentError,
    DocumentTooLargeError,
    EvidenceFeaturesError,
    HostileDocumentError,
    ParseLimits,
    extract_features,
)

__all__ = [
    "ExtractionRequest",
    "ExtractionResult",
    "FeatureExtractor",
    "extract_chunk",
]


@dataclass(frozen=True, slots=True)
class ExtractionRequest:
    """The documents of one row; picklable so a process pool can take it."""

    mib_xml: str | bytes | None
    rx_xml: str | bytes | None
    as_of: date | None


@dataclass(frozen=True, slots=True)
class ExtractionResult:
    """Feature values of one row, or the reason there are none.

    ``values`` is None exactly when ``error_kind`` is set.
    """

    values: npt.NDArray[np.float64] | None
    warnings: tuple[tuple[str, str, int], ...] = ()
    as_of: date | None = None
    error_kind: str | None = None
    error_message: str | None = None
    error_document: Literal["MIB", "RX"] | None = None


def _error_kind(exc: EvidenceFeaturesError) -> str:
    if isinstance(exc, HostileDocumentError):
        return "hostile_document"
    if isinstance(exc, DocumentTooLargeError):
        return "document_too_large"
    if isinstance(exc, DocumentError):
        return "malformed_document"
    return "invalid_document"


def _extract_one(request: ExtractionRequest, limits: ParseLimits) -> ExtractionResult:
    try:
        vector = extract_features(
            request.mib_xml, request.rx_xml, as_of=request.as_of, limits=limits
        )
    except EvidenceFeaturesError as exc:
        document = getattr(exc, "document", None)
        return ExtractionResult(
            values=None,
            error_kind=_error_kind(exc),
            error_message=str(exc),
            error_document=document if document in ("MIB", "RX") else None,
        )
    values = np.asarray(vector.values, dtype=np.float64)
    if values.shape != (len(FEATURE_NAMES),):
        msg = f"extract_features returned shape {values.shape}, expected ({len(FEATURE_NAMES)},)"
        raise RuntimeError(msg)
    not_finite = np.flatnonzero(~np.isfinite(values))
    if not_finite.size:
        # NOTE: the feature library promises finite values; a NaN or inf reaching here is a
        # library bug. The row fails on its own instead of sending invalid JSON to the model.
        column = FEATURE_NAMES[int(not_finite[0])]
        return ExtractionResult(
            values=None,
            error_kind="non_finite_feature",
            error_message=f"feature {column!r} is not a finite number; report this input",
        )
    warnings = tuple((w.kind, w.document, int(w.count)) for w in vector.warnings)
    return ExtractionResult(values=values, warnings=warnings, as_of=vector.as_of)


def extract_chunk(
    requests: Sequence[ExtractionRequest], limits: ParseLimits
) -> list[ExtractionResult]:
    """Extract features for consecutive rows; module-level so a process pool can pickle it."""
    return [_extract_one(request, limits) for request in requests]


class FeatureExtractor:
    """Runs ``extract_chunk`` on a pool owned by the app's lifespan.

    Args:
        kind: ``"thread"`` or ``"process"``.
        workers: Pool size; a request is split into at most this many chunks.
        limits: Parser limits passed to every extraction.
    """

    def __init__(
        self, kind: Literal["thread", "process"], workers: int, limits: ParseLimits
    ) -> None:
        self.kind = kind
        self.workers = workers
        self.limits = limits
        self._executor: Executor
        if kind == "process":
            # forkserver: forking the serving process itself, which already runs threads, can
            # copy a held lock into the child and hang it.
            self._executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
            )
        else:
            self._executor = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="evidence-extract"
            )

    async def extract(self, requests: Sequence[ExtractionRequest]) -> list[ExtractionResult]:
        """Extract every row, in order, without blocking the event loop."""
        if not requests:
            return []
        loop = asyncio.get_running_loop()
        chunk_size = max(1, math.ceil(len(requests) / self.workers))
        futures = [
            loop.run_in_executor(
                self._executor, extract_chunk, requests[start : start + chunk_size], self.limits
            )
            for start in range(0, len(requests), chunk_size)
        ]
        chunks = await asyncio.gather(*futures)
        return [result for chunk in chunks for result in chunk]

    def warm_up(self) -> None:
        """Start the pool's workers now so the first request does not pay for it."""
        futures = [
            self._executor.submit(extract_chunk, [], self.limits) for _ in range(self.workers)
        ]
        for future in futures:
            future.result()

    def shutdown(self) -> None:
        """Stop the pool; running chunks finish first."""
        self._executor.shutdown(wait=True, cancel_futures=True)
