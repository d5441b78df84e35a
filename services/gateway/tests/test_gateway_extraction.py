"""Feature extraction: the inline threshold, and equal results inline, in threads and processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from evidence_features import ParseLimits
from evidence_gateway.config import Settings
from evidence_gateway.errors import ExtractionUnavailableError
from evidence_gateway.extraction import (
    ROW_OVERHEAD_BYTES,
    ExtractionRequest,
    ExtractionResult,
    FeatureExtractor,
    extract_chunk,
)

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "samples" / "02-diabetic"
LIMITS = ParseLimits()
# An Rx report whose declaration names Latin-1 and whose text contains "é". As a str the library
# drops the declaration; as bytes it decodes Latin-1. Both must reach the pool unchanged.
LATIN1_DECLARED = (
    '<?xml version="1.0" encoding="ISO-8859-1"?><IntelRXResponse><DrugFill>'
    "<DrugGenericName>CAFÉ</DrugGenericName><FillDate>2024-01-02</FillDate></DrugFill>"
    "</IntelRXResponse>"
)


def _rows() -> list[ExtractionRequest]:
    mib = (SAMPLE / "mib.xml").read_text(encoding="utf-8")
    rx = (SAMPLE / "rx.xml").read_text(encoding="utf-8")
    as_of = date(2024, 6, 30)
    return [
        ExtractionRequest(mib, rx, as_of),
        ExtractionRequest(mib.encode(), rx.encode(), as_of),
        ExtractionRequest(None, None, as_of),
        ExtractionRequest(None, "<IntelRXResponse><DrugFill>", as_of),
        ExtractionRequest(None, LATIN1_DECLARED, as_of),
        ExtractionRequest(None, LATIN1_DECLARED.encode("latin-1"), as_of),
        ExtractionRequest(None, '<r a="\ud800"/>', as_of),
    ]


def _same(left: ExtractionResult, right: ExtractionResult) -> bool:
    if (left.values is None) != (right.values is None):
        return False
    if (
        left.values is not None
        and right.values is not None
        and not np.array_equal(left.values, right.values)
    ):
        return False
    return (
        left.warnings == right.warnings
        and left.error_kind == right.error_kind
        and left.error_message == right.error_message
        and left.error_document == right.error_document
    )


@pytest.fixture(scope="module")
def expected() -> list[ExtractionResult]:
    """Results of extracting each row directly in this thread."""
    return extract_chunk(_rows(), LIMITS)


@pytest.fixture(scope="module")
def process_extractor() -> Iterator[FeatureExtractor]:
    """A pool of two processes, started once for the module."""
    extractor = FeatureExtractor("process", 2, LIMITS)
    extractor.warm_up()
    yield extractor
    extractor.shutdown()


def test_rows_cover_success_and_errors(expected: list[ExtractionResult]) -> None:
    """The rows include scored pairs and failures, so the comparisons below mean something."""
    assert expected[0].values is not None
    assert expected[3].error_kind == "malformed_document"


def test_inline_threshold_zero_disables() -> None:
    """With inline_max_bytes=0 even an empty request goes to the pool."""
    extractor = FeatureExtractor("thread", 1, LIMITS, inline_max_bytes=0)
    try:
        assert not extractor.is_inline([ExtractionRequest(None, None, None)])
    finally:
        extractor.shutdown()


def test_inline_threshold_counts_both_documents() -> None:
    """Both documents of every row count, and a total equal to the limit is still inline."""
    extractor = FeatureExtractor("thread", 1, LIMITS, inline_max_bytes=ROW_OVERHEAD_BYTES + 10)
    try:
        assert extractor.is_inline([ExtractionRequest(None, None, None)])
        assert extractor.is_inline([ExtractionRequest("a" * 4, b"b" * 6, None)])
        assert not extractor.is_inline([ExtractionRequest("a" * 5, b"b" * 6, None)])
    finally:
        extractor.shutdown()


def test_inline_threshold_counts_each_row() -> None:
    """Each row adds ROW_OVERHEAD_BYTES, so many rows without documents still leave the loop."""
    bound = 3 * ROW_OVERHEAD_BYTES + 9
    extractor = FeatureExtractor("thread", 1, LIMITS, inline_max_bytes=bound)
    try:
        rows = [ExtractionRequest("a" * 3, None, None)] * 4
        assert not extractor.is_inline(rows)
        assert extractor.is_inline(rows[:3])
        assert not extractor.is_inline([ExtractionRequest(None, None, None)] * 4)
        assert not extractor.is_inline([ExtractionRequest(None, None, None)] * 1000)
    finally:
        extractor.shutdown()


def test_default_bound_sample_inline() -> None:
    """With the default bound the 52 KB sample pair runs inline and 100 empty rows do not."""
    pair = ExtractionRequest(
        (SAMPLE / "mib.xml").read_text(encoding="utf-8"),
        (SAMPLE / "rx.xml").read_text(encoding="utf-8"),
        None,
    )
    bound = Settings.model_fields["inline_extraction_max_bytes"].default
    extractor = FeatureExtractor("thread", 1, LIMITS, inline_max_bytes=bound)
    try:
        assert extractor.is_inline([pair])
        assert not extractor.is_inline([pair, pair])
        assert not extractor.is_inline([ExtractionRequest(None, None, None)] * 100)
    finally:
        extractor.shutdown()


def test_inline_matches_direct(expected: list[ExtractionResult]) -> None:
    """Rows extracted on the event loop give the direct results."""
    extractor = FeatureExtractor("thread", 1, LIMITS, inline_max_bytes=10_000_000)
    try:
        rows = _rows()
        assert extractor.is_inline(rows)
        results = asyncio.run(extractor.extract(rows))
    finally:
        extractor.shutdown()

    assert len(results) == len(expected)
    for index, (got, want) in enumerate(zip(results, expected, strict=True)):
        assert _same(got, want), index


def test_thread_pool_matches_direct(expected: list[ExtractionResult]) -> None:
    """Rows split over a thread pool come back in order with the direct results."""
    extractor = FeatureExtractor("thread", 3, LIMITS)
    try:
        results = asyncio.run(extractor.extract(_rows()))
    finally:
        extractor.shutdown()

    assert len(results) == len(expected)
    for index, (got, want) in enumerate(zip(results, expected, strict=True)):
        assert _same(got, want), index


def test_process_pool_matches_direct(
    process_extractor: FeatureExtractor, expected: list[ExtractionResult]
) -> None:
    """str, bytes, Latin-1 declarations and lone surrogates survive the trip to a process."""
    results = asyncio.run(process_extractor.extract(_rows()))

    assert len(results) == len(expected)
    for index, (got, want) in enumerate(zip(results, expected, strict=True)):
        assert _same(got, want), index


def test_process_pool_empty_request(process_extractor: FeatureExtractor) -> None:
    """No rows give no results without touching the pool."""
    assert asyncio.run(process_extractor.extract([])) == []


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_recycled_pool_matches_direct(
    kind: Literal["thread", "process"], expected: list[ExtractionResult]
) -> None:
    """Rows extracted across pool replacements, inline and pooled, give the direct results."""
    extractor = FeatureExtractor(
        kind,
        2,
        LIMITS,
        inline_max_bytes=8 * ROW_OVERHEAD_BYTES,
        recycle_bytes=16 * ROW_OVERHEAD_BYTES,
    )
    try:
        rounds = [asyncio.run(extractor.extract(_rows())) for _ in range(3)]
        single_rows = [asyncio.run(extractor.extract([row])) for row in _rows()]
        recycles = extractor.recycles
    finally:
        extractor.shutdown()

    assert recycles >= 4
    for results in [*rounds, [result for [result] in single_rows]]:
        assert len(results) == len(expected)
        for index, (got, want) in enumerate(zip(results, expected, strict=True)):
            assert _same(got, want), index


def _kill_pool_workers(extractor: FeatureExtractor) -> int:
    """Kill every worker process of the extractor's current process pool with SIGKILL."""
    pool = extractor._pool.current
    assert isinstance(pool, ProcessPoolExecutor)
    processes = list(pool._processes.values())
    for process in processes:
        assert process.pid is not None, "the pool lists a worker that never started"
        os.kill(process.pid, signal.SIGKILL)
    for process in processes:
        process.join(timeout=10)
    return len(processes)


def test_process_pool_replaced_after_crash(expected: list[ExtractionResult]) -> None:
    """Rows sent after the pool's processes were killed are extracted on a fresh pool."""
    extractor = FeatureExtractor("process", 2, LIMITS)
    try:
        extractor.warm_up()
        assert _kill_pool_workers(extractor) == 2
        results = asyncio.run(extractor.extract(_rows()))
        again = asyncio.run(extractor.extract(_rows()))
        recycles = extractor.recycles
    finally:
        extractor.shutdown()

    assert recycles == 1
    for index, (got, want) in enumerate(zip(results, expected, strict=True)):
        assert _same(got, want), index
    for index, (got, want) in enumerate(zip(again, expected, strict=True)):
        assert _same(got, want), index


class _CrashingExtractor(FeatureExtractor):
    """A process-pool extractor whose every worker process exits as soon as it starts."""

    def _new_pool(self) -> Executor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=os._exit,
            initargs=(3,),
        )


def test_process_pool_broken_twice_is_unavailable() -> None:
    """A pool that breaks again after its replacement gives ExtractionUnavailableError."""
    extractor = _CrashingExtractor("process", 2, LIMITS)
    try:
        with pytest.raises(ExtractionUnavailableError, match="failed twice"):
            asyncio.run(extractor.extract(_rows()))
        recycles = extractor.recycles
    finally:
        extractor.shutdown()

    assert recycles == 2
