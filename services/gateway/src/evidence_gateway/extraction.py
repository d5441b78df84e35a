"""Feature extraction in a thread or a process pool, or in one thread while the loop waits.

Parsing XML and building the vector is CPU-bound. Run on the event loop it would stall every
other request, health probes included, so a request hands its rows to a pool in chunks and
awaits the result. A request whose documents add up to at most ``inline_max_bytes`` is
extracted inline instead: the event loop blocks until a dedicated thread has extracted it. That
blocks the loop briefly (about 1 ms for the 50 KB sample pair), but a pool thread would hold the
GIL for most of that time and keep the loop waiting too. Inline extraction spares the asyncio
hand-offs, which under load cost nearly as much CPU as the extraction itself.

The inline thread exists because lxml's name dictionary belongs to the parsing thread and only
grows until the thread ends. The event loop's thread lives as long as the process, so it never
parses (``evidence_gateway.recycling``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
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

from evidence_gateway.errors import ExtractionUnavailableError
from evidence_gateway.recycling import RecyclingExecutor

__all__ = [
    "ROW_OVERHEAD_BYTES",
    "ExtractionRequest",
    "ExtractionResult",
    "FeatureExtractor",
    "extract_chunk",
    "extract_wire_chunk",
    "start_forkserver",
    "start_pool_process",
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
    # (kind, document, count, message); the message is empty for most kinds.
    warnings: tuple[tuple[str, str, int, str], ...] = ()
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
    # The library builds a warning's message from its own words and numeric codes only, never
    # from document text, so the message can reach callers.
    warnings = tuple((w.kind, w.document, int(w.count), w.message) for w in vector.warnings)
    return ExtractionResult(values=values, warnings=warnings, as_of=vector.as_of)


def extract_chunk(
    requests: Sequence[ExtractionRequest], limits: ParseLimits
) -> list[ExtractionResult]:
    """Extract features for consecutive rows; module-level so a process pool can pickle it."""
    return [_extract_one(request, limits) for request in requests]


# A document as it crosses to a pool process: UTF-8 bytes plus whether it was a str. pickle
# writes a str about six times slower than the same text as bytes (measured in
# docs/benchmarks.md, section Gateway), and the pool's feeder thread holds the GIL while it
# pickles. The process decodes the text back, so extract_features receives the same str.
_WireDocument = tuple[bytes, bool] | None
_WireRequest = tuple[_WireDocument, _WireDocument, date | None]


def _to_wire_document(document: str | bytes | None) -> _WireDocument:
    if document is None:
        return None
    if isinstance(document, str):
        # surrogatepass keeps lone surrogates, so decoding restores the exact str.
        return document.encode("utf-8", "surrogatepass"), True
    return document, False


def _from_wire_document(document: _WireDocument) -> str | bytes | None:
    if document is None:
        return None
    data, is_text = document
    return data.decode("utf-8", "surrogatepass") if is_text else data


def extract_wire_chunk(
    requests: Sequence[_WireRequest], limits: ParseLimits
) -> list[ExtractionResult]:
    """Decode rows sent to a pool process and extract them (module-level, so pickle finds it)."""
    decoded = [
        ExtractionRequest(_from_wire_document(mib), _from_wire_document(rx), as_of)
        for mib, rx, as_of in requests
    ]
    return extract_chunk(decoded, limits)


# Signals a supervisor sends to the whole process group when it stops the gateway.
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def start_forkserver() -> None:
    """Start multiprocessing's fork server, unless it runs, with SIGTERM and SIGINT blocked.

    A supervisor that stops the gateway signals the whole process group, the fork server
    included. A killed fork server breaks every pool started after it, such as the one that
    replaces a recycled pool while the last requests finish. A blocked signal stays blocked
    across fork and exec, so the fork server and every pool process it forks ignore the stop
    signals from their first instruction. The gateway stops them itself. A stop signal that
    reaches this thread meanwhile stays pending until the mask is restored.
    """
    # The resource tracker must run first: starting it unblocks both signals again
    # (multiprocessing/resource_tracker.py in Python 3.11), which would undo the mask below.
    multiprocessing.resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_pool_process() -> None:
    """Prepare a process of the extraction pool as it starts (module-level, so pickle finds it).

    The process ignores SIGTERM and SIGINT, which its fork server already blocks (see
    ``start_forkserver``). A supervisor stopping the gateway signals its whole process
    group, and a pool process that died then would turn the requests the gateway is still
    finishing into errors. The gateway stops its pool itself once they are done. If the
    gateway dies without doing so (SIGKILL, the out-of-memory killer), the pool processes,
    children of multiprocessing's fork server, would wait for work for ever and are not in
    the gateway's process group. So a thread ends this process once the gateway is gone.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gateway = multiprocessing.parent_process()
    if gateway is not None:
        threading.Thread(
            target=_exit_with_gateway, args=(gateway.sentinel,), name="gateway-watch", daemon=True
        ).start()


def _exit_with_gateway(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


# The fixed cost of one row, counted as document bytes of the same extraction time. A row
# without documents takes about 20 us, and a typical report about 21 us per KB. Without this,
# 1,000 empty rows of a batch would count as 0 bytes and hold the loop for 20 ms.
ROW_OVERHEAD_BYTES = 1024


def _document_size(document: str | bytes | None) -> int:
    # Characters, not UTF-8 bytes: exact for ASCII reports and close enough for a threshold.
    return 0 if document is None else len(document)


class FeatureExtractor:
    """Runs ``extract_chunk`` on a pool owned by the app's lifespan, or inline when small.

    Args:
        kind: ``"thread"`` or ``"process"``.
        workers: Pool size; a request is split into at most this many chunks.
        limits: Parser limits passed to every extraction.
        inline_max_bytes: Largest total size of a request's documents (characters of str,
            bytes of bytes), plus ``ROW_OVERHEAD_BYTES`` per row, extracted inline while the
            event loop waits. With 0, every request goes to the pool.
        recycle_bytes: Size of documents, counted as for ``inline_max_bytes``, after which the
            pool and the inline thread are each replaced by fresh ones, so that the XML name
            dictionaries of their threads are freed.
    """

    def __init__(
        self,
        kind: Literal["thread", "process"],
        workers: int,
        limits: ParseLimits,
        *,
        inline_max_bytes: int = 0,
        recycle_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.kind = kind
        self.workers = workers
        self.limits = limits
        self.inline_max_bytes = inline_max_bytes
        self._pool = RecyclingExecutor("pool", self._new_pool, recycle_bytes)
        self._inline = RecyclingExecutor(
            "inline",
            lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence-inline"),
            recycle_bytes,
        )

    def _new_pool(self) -> Executor:
        if self.kind == "process":
            # forkserver: forking the serving process itself, which already runs threads, can
            # copy a held lock into the child and hang it.
            start_forkserver()
            return ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=start_pool_process,
            )
        return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="evidence-extract")

    @property
    def recycles(self) -> int:
        """How many times the pool and the inline thread have been replaced, together."""
        return self._pool.recycles + self._inline.recycles

    async def extract(self, requests: Sequence[ExtractionRequest]) -> list[ExtractionResult]:
        """Extract every row, in order, blocking the loop only up to ``inline_max_bytes``."""
        if not requests:
            return []
        size = _request_size(requests)
        if self._fits_inline(size):
            # Blocking on purpose: see the module docstring.
            return self._inline.submit(size, extract_chunk, requests, self.limits).result()
        loop = asyncio.get_running_loop()
        chunk_size = max(1, math.ceil(len(requests) / self.workers))
        chunks = [
            requests[start : start + chunk_size] for start in range(0, len(requests), chunk_size)
        ]
        results = await asyncio.gather(
            *(
                self._extract_pooled(loop, chunk, size * len(chunk) // len(requests))
                for chunk in chunks
            )
        )
        return [result for chunk in results for result in chunk]

    async def _extract_pooled(
        self, loop: asyncio.AbstractEventLoop, chunk: Sequence[ExtractionRequest], size: int
    ) -> list[ExtractionResult]:
        # Extraction has no side effects, so a chunk whose pool broke (a worker process died)
        # runs again once on a fresh pool.
        with contextlib.suppress(BrokenExecutor):
            return await self._run_chunk(loop, chunk, size)
        try:
            return await self._run_chunk(loop, chunk, size)
        except BrokenExecutor as exc:
            msg = (
                "feature extraction failed twice because a worker of the extraction pool "
                "died; nothing was scored or recorded, so retry the request"
            )
            raise ExtractionUnavailableError(msg) from exc

    async def _run_chunk(
        self, loop: asyncio.AbstractEventLoop, chunk: Sequence[ExtractionRequest], size: int
    ) -> list[ExtractionResult]:
        pool = self._pool.current
        try:
            return await asyncio.wrap_future(self._submit(chunk, size), loop=loop)
        except BrokenExecutor:
            self._pool.replace_broken(pool)
            raise

    def _submit(
        self, chunk: Sequence[ExtractionRequest], size: int
    ) -> concurrent.futures.Future[list[ExtractionResult]]:
        if self.kind == "thread":
            return self._pool.submit(size, extract_chunk, chunk, self.limits)
        wire = [
            (_to_wire_document(row.mib_xml), _to_wire_document(row.rx_xml), row.as_of)
            for row in chunk
        ]
        return self._pool.submit(size, extract_wire_chunk, wire, self.limits)

    def is_inline(self, requests: Sequence[ExtractionRequest]) -> bool:
        """Return whether ``extract`` runs ``requests`` inline instead of on the pool."""
        return self._fits_inline(_request_size(requests))

    def _fits_inline(self, size: int) -> bool:
        return self.inline_max_bytes > 0 and size <= self.inline_max_bytes

    def warm_up(self) -> None:
        """Start the pool's workers and the inline thread now, so the first request waits less."""
        futures = [self._inline.submit(0, extract_chunk, [], self.limits)]
        for _ in range(self.workers):
            futures.append(self._pool.submit(0, extract_chunk, [], self.limits))
        for future in futures:
            future.result()

    def shutdown(self) -> None:
        """Stop the pool and the inline thread once their running chunks finish."""
        self._pool.shutdown()
        self._inline.shutdown()


def _request_size(requests: Sequence[ExtractionRequest]) -> int:
    total = 0
    for request in requests:
        total += ROW_OVERHEAD_BYTES
        total += _document_size(request.mib_xml) + _document_size(request.rx_xml)
    return total
