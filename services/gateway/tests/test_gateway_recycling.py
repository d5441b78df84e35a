"""Extraction pools are replaced after a set input size, which frees lxml's name dictionaries."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import Executor, ThreadPoolExecutor

import pytest
import structlog
from evidence_gateway import recycling
from evidence_gateway.logs import configure_logging
from evidence_gateway.recycling import RecyclingExecutor
from prometheus_client import REGISTRY


def _thread_pools(created: list[ThreadPoolExecutor]) -> RecyclingExecutor:
    def factory() -> Executor:
        pool = ThreadPoolExecutor(max_workers=1)
        created.append(pool)
        return pool

    return RecyclingExecutor("test", factory, recycle_bytes=100)


def _recycles(pool: str, reason: str = "input_bytes") -> float:
    labels = {"pool": pool, "reason": reason}
    value = REGISTRY.get_sample_value("evidence_gateway_extraction_recycles_total", labels)
    return value or 0.0


def test_recycling_rejects_zero_limit() -> None:
    """A limit under one byte would replace the pool on every call, so it is rejected."""
    with pytest.raises(ValueError, match="recycle_bytes must be at least 1, got 0"):
        RecyclingExecutor("test", lambda: ThreadPoolExecutor(max_workers=1), recycle_bytes=0)


def test_recycling_keeps_pool_under_limit() -> None:
    """Submissions that add up to less than the limit all run on the first pool."""
    created: list[ThreadPoolExecutor] = []
    executor = _thread_pools(created)
    try:
        first = executor.current
        assert executor.submit(0, lambda: 1).result() == 1
        for _ in range(3):
            executor.submit(33, lambda: None).result()
        assert executor.current is first
        assert executor.recycles == 0
        assert len(created) == 1
    finally:
        executor.shutdown()


def test_recycling_replaces_pool_at_limit() -> None:
    """The submission that reaches the limit runs on the old pool; the next one on a new pool."""
    created: list[ThreadPoolExecutor] = []
    executor = _thread_pools(created)
    before = _recycles("test")
    try:
        # Thread objects, not idents, because a new thread may reuse an ended thread's ident.
        old_thread = executor.submit(60, threading.current_thread).result()
        crossing = executor.submit(40, threading.current_thread).result()
        new_thread = executor.submit(1, threading.current_thread).result()
    finally:
        executor.shutdown()

    assert crossing is old_thread
    assert new_thread is not old_thread
    assert executor.recycles == 1
    assert len(created) == 2
    assert _recycles("test") == before + 1


def test_recycling_many_times() -> None:
    """Every 100 bytes give a new pool, and the count restarts with each pool."""
    created: list[ThreadPoolExecutor] = []
    executor = _thread_pools(created)
    try:
        for _ in range(10):
            executor.submit(50, lambda: None).result()
    finally:
        executor.shutdown()

    assert executor.recycles == 5
    assert len(created) == 6


def test_recycling_finishes_retired_work() -> None:
    """Work queued on the retired pool still runs and returns its result."""
    created: list[ThreadPoolExecutor] = []
    executor = _thread_pools(created)
    release = threading.Event()
    try:
        blocked = executor.submit(10, release.wait, 10.0)
        queued = executor.submit(90, lambda: "queued")
        assert executor.recycles == 1
        release.set()
        assert blocked.result(timeout=10) is True
        assert queued.result(timeout=10) == "queued"
    finally:
        release.set()
        executor.shutdown()


def test_retired_thread_exits() -> None:
    """The retired pool's thread ends once its work is done, which frees its name dictionary."""
    created: list[ThreadPoolExecutor] = []
    executor = _thread_pools(created)
    try:
        executor.submit(100, lambda: None).result()
        executor.submit(1, lambda: None).result()
    finally:
        executor.shutdown()

    retired_threads = list(created[0]._threads)
    assert len(retired_threads) == 1
    retired_threads[0].join(timeout=10)
    assert not retired_threads[0].is_alive()


# Extracts documents whose element names are new on every call and prints the growth of the
# resident set in MiB. A process of its own keeps the measurement free of other tests' memory.
_GROWTH_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from evidence_features import ParseLimits
    from evidence_gateway.extraction import ExtractionRequest, FeatureExtractor

    def rss_mib():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096 / 2**20

    recycle_bytes, inline_max_bytes, names, documents = map(int, sys.argv[1:])
    extractor = FeatureExtractor(
        "thread", 2, ParseLimits(), inline_max_bytes=inline_max_bytes,
        recycle_bytes=recycle_bytes,
    )
    extractor.warm_up()
    baseline = rss_mib()

    async def send():
        for index in range(documents):
            body = "".join(f"<n{index:05d}x{name:06d}/>" for name in range(names))
            rx = (
                f"<IntelRXResponse>{body}<DrugFill><DrugGenericName>METFORMIN"
                "</DrugGenericName></DrugFill></IntelRXResponse>"
            )
            [result] = await extractor.extract([ExtractionRequest(None, rx, None)])
            assert result.values is not None, result.error_message

    asyncio.run(send())
    print(rss_mib() - baseline, extractor.recycles)
    extractor.shutdown()
    """
)


def _growth(recycle_bytes: int, inline_max_bytes: int, names: int, documents: int) -> float:
    completed = subprocess.run(
        [sys.executable, "-c", _GROWTH_SCRIPT]
        + [str(value) for value in (recycle_bytes, inline_max_bytes, names, documents)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    growth, recycles = completed.stdout.splitlines()[-1].split()
    assert (int(recycles) > 0) == (recycle_bytes < 10**12)
    return float(growth)


@pytest.mark.parametrize(
    ("path", "names", "documents"),
    [("inline", 3_500, 300), ("pool", 50_000, 60)],
)
def test_recycling_bounds_name_memory(path: str, names: int, documents: int) -> None:
    """Documents with new names grow memory only until the pool is replaced.

    Each call sends about 17 MB (inline) or 48 MB (pool) of new names in all. Without
    recycling they grew the process by 48 and 116 MiB in a measurement, with a 4 MiB limit by
    4 and 14 MiB.
    """
    never = 10**12
    growth_unbounded = _growth(never, 65_536, names, documents)
    growth_recycled = _growth(4 * 2**20, 65_536, names, documents)
    print(f"{path}: {growth_unbounded:.0f} MiB without recycling, {growth_recycled:.0f} MiB with")

    # The first figure shows that the input does grow memory, so the second can fail.
    assert growth_unbounded > 30
    assert growth_recycled < growth_unbounded / 2.5


def test_replace_broken_once() -> None:
    """Only the first report of a broken pool replaces it; a stale report changes nothing."""
    created: list[ThreadPoolExecutor] = []
    executor = _thread_pools(created)
    before = _recycles("test", "broken")
    try:
        broken = executor.current
        executor.replace_broken(broken)
        replacement = executor.current
        executor.replace_broken(broken)
        assert executor.submit(1, lambda: "ran").result() == "ran"
    finally:
        executor.shutdown()

    assert replacement is not broken
    assert executor.current is replacement
    assert executor.recycles == 1
    assert _recycles("test", "broken") == before + 1


def test_recycle_log_keeps_fields(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's log filter keeps the pool name and byte count of a recycle line."""
    configure_logging("json", "info")
    # Another package's configure_logging caches each logger on first use. Under pytest-xdist
    # such a test can run first in this process and cache the module's logger with its own
    # level, which then drops this info line. A new proxy takes the set-up above.
    monkeypatch.setattr(recycling, "_log", structlog.get_logger("evidence_gateway.recycling"))
    executor = RecyclingExecutor("test", lambda: ThreadPoolExecutor(max_workers=1), 10)
    try:
        executor.submit(25, lambda: None).result()
    finally:
        executor.shutdown()

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    [recycled] = [line for line in lines if line["event"] == "extraction pool recycled"]
    assert recycled["pool"] == "test"
    assert recycled["parsed_bytes"] == 25
    assert "dropped_keys" not in recycled
