"""Coalescer: concurrent submissions share calls, keep their order and get errors."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from evidence_gateway.coalescing import MAX_LOGGED_REQUEST_IDS, Coalescer


class Recorder:
    """A batched call that doubles items and records each call's input."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_on = fail_on

    async def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        await asyncio.sleep(0.01)
        if self.fail_on is not None and self.fail_on in items:
            msg = f"item {self.fail_on} failed"
            raise ValueError(msg)
        return [2 * item for item in items]


async def start_in_flight(
    coalescer: Coalescer[int, int], items: list[int]
) -> asyncio.Task[list[int]]:
    """Submit ``items`` and return once their call is running."""
    task = asyncio.create_task(coalescer.submit(items))
    await asyncio.sleep(0.001)
    return task


async def test_coalescer_single_submit_runs_alone() -> None:
    """One request at a time goes out at once, alone."""
    recorder = Recorder()
    coalescer = Coalescer(recorder)

    result = await coalescer.submit([1, 2])

    assert result == [2, 4]
    assert recorder.calls == [[1, 2]]


async def test_coalescer_concurrent_submits_grouped() -> None:
    """Requests arriving during a call go out together in the next call, results in order."""
    recorder = Recorder()
    coalescer = Coalescer(recorder)

    first = await start_in_flight(coalescer, [0, 100])
    rest = await asyncio.gather(*(coalescer.submit([i, i + 100]) for i in range(1, 5)))

    assert [await first, *rest] == [[2 * i, 2 * (i + 100)] for i in range(5)]
    assert recorder.calls == [[0, 100], [1, 101, 2, 102, 3, 103, 4, 104]]


async def test_coalescer_respects_max_items() -> None:
    """A group never exceeds max_items unless one request alone is larger."""
    recorder = Recorder()
    coalescer = Coalescer(recorder, max_items=3)

    first = await start_in_flight(coalescer, [0])
    await asyncio.gather(*(coalescer.submit([i, i]) for i in (1, 2, 3)))
    await first
    await coalescer.submit([7, 7, 7, 7])

    assert [len(call) for call in recorder.calls] == [1, 2, 2, 2, 4]


async def test_coalescer_error_reaches_whole_group() -> None:
    """When the batched call raises, every request of that group gets the error, others not."""
    recorder = Recorder(fail_on=3)
    coalescer = Coalescer(recorder)

    first = await start_in_flight(coalescer, [1])
    results = await asyncio.gather(
        coalescer.submit([2]), coalescer.submit([3]), return_exceptions=True
    )

    assert await first == [2]
    assert isinstance(results[0], ValueError)
    assert isinstance(results[1], ValueError)


async def test_coalescer_wrong_result_count_raises() -> None:
    """A call returning the wrong number of results fails its group with RuntimeError."""

    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        await Coalescer(short).submit([1, 2])


async def test_coalescer_cancelled_request_skipped() -> None:
    """A request cancelled while waiting does not break the others."""
    recorder = Recorder()
    coalescer = Coalescer(recorder)
    first = asyncio.create_task(coalescer.submit([1]))
    await asyncio.sleep(0)
    second = asyncio.create_task(coalescer.submit([2]))
    third = asyncio.create_task(coalescer.submit([3]))
    await asyncio.sleep(0)
    second.cancel()

    assert await first == [2]
    assert await third == [6]
    assert recorder.calls == [[1], [3]]


def test_coalescer_rejects_zero_max_items() -> None:
    """max_items below 1 is a usage error."""
    with pytest.raises(ValueError, match="max_items must be at least 1"):
        Coalescer(Recorder(), max_items=0)


async def _submit_as(coalescer: Coalescer[int, int], items: list[int], request_id: str) -> None:
    """Submit from a task whose log context contains ``request_id``, as a request's task does."""
    structlog.contextvars.bind_contextvars(request_id=request_id)
    await coalescer.submit(items)


async def test_coalescer_call_logs_group_request_ids() -> None:
    """A shared call logs the ids of its group, at most MAX_LOGGED_REQUEST_IDS, and the count."""

    async def logged(items: list[int]) -> list[int]:
        structlog.get_logger("test").warning("call failed", rows=len(items))
        await asyncio.sleep(0.01)
        return items

    coalescer = Coalescer(logged)
    ids = [f"{i:032x}" for i in range(25)]
    capture = structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])
    with capture as logs:
        first = asyncio.create_task(_submit_as(coalescer, [0], ids[0]))
        await asyncio.sleep(0.001)
        await asyncio.gather(*(_submit_as(coalescer, [i], ids[i]) for i in range(1, 25)))
        await first

    assert [line["request_count"] for line in logs] == [1, 24]
    assert logs[0]["request_ids"] == [ids[0]]
    assert logs[1]["request_ids"] == ids[1 : 1 + MAX_LOGGED_REQUEST_IDS]
    assert logs[1]["rows"] == 24
    assert "request_id" not in logs[0]
    assert "request_id" not in logs[1]


async def test_coalescer_call_without_request_id() -> None:
    """Outside a request, a call logs its request count and no ids."""

    async def logged(items: list[int]) -> list[int]:
        structlog.get_logger("test").warning("call failed")
        return items

    capture = structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])
    with capture as logs:
        await Coalescer(logged).submit([1, 2])

    assert [(line["request_ids"], line["request_count"]) for line in logs] == [([], 1)]
