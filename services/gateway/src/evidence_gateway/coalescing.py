"""Group concurrent calls into one: one model call and one queue transaction for many requests.

While a call is running, requests that arrive wait and then go out together in the next call.
At low load nothing waits, because each request finds the path idle and goes at once. Under
load the model service receives fewer, larger batches and the queue file takes fewer write
locks.

A call serves every request of its group, so what it logs (such as a model call that failed
and fell back) names the group's request ids rather than the id of one request: the first
``MAX_LOGGED_REQUEST_IDS`` as ``request_ids`` and the number of requests as ``request_count``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, NamedTuple, TypeVar

import structlog

__all__ = ["MAX_LOGGED_REQUEST_IDS", "Coalescer"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: Request ids named in the log context of one call. A larger group names only these and
#: counts the rest, so that a call of a thousand requests does not log a thousand ids.
MAX_LOGGED_REQUEST_IDS = 20


class _Submission(NamedTuple, Generic[ItemT, ResultT]):
    """The items of one ``submit`` call, its future and the request id bound when it was made."""

    items: list[ItemT]
    future: asyncio.Future[list[ResultT]]
    request_id: str | None


class Coalescer(Generic[ItemT, ResultT]):
    """Run ``call`` on the concatenated items of the requests waiting for it.

    ``call`` receives a list of items and must return one result per item, in order. If it
    raises, every request of that group gets the exception. Use from one event loop only.

    Args:
        call: The batched operation, such as scoring a feature matrix.
        max_items: Largest group; requests beyond it wait for the next call. A single request
            larger than this still goes out alone.
    """

    def __init__(
        self,
        call: Callable[[list[ItemT]], Awaitable[Sequence[ResultT]]],
        *,
        max_items: int = 1000,
    ) -> None:
        if max_items < 1:
            msg = f"max_items must be at least 1, got {max_items!r}"
            raise ValueError(msg)
        self._call = call
        self._max_items = max_items
        self._waiting: list[_Submission[ItemT, ResultT]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[ItemT]) -> list[ResultT]:
        """Queue ``items`` for the next call and return their results, in order."""
        if not items:
            return []
        future: asyncio.Future[list[ResultT]] = asyncio.get_running_loop().create_future()
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        self._waiting.append(_Submission(list(items), future, request_id))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    def _take_group(self) -> list[_Submission[ItemT, ResultT]]:
        group = [self._waiting.pop(0)]
        size = len(group[0].items)
        while self._waiting and size + len(self._waiting[0].items) <= self._max_items:
            size += len(self._waiting[0].items)
            group.append(self._waiting.pop(0))
        return group

    async def _drain(self) -> None:
        # This task started with a copy of the log context of the request that created it,
        # whose request_id would mislabel calls made for other requests.
        structlog.contextvars.clear_contextvars()
        while self._waiting:
            group = [entry for entry in self._take_group() if not entry.future.done()]
            if not group:
                continue
            _bind_group_log_context(group)
            combined = [item for entry in group for item in entry.items]
            try:
                results = list(await self._call(combined))
            except Exception as exc:  # handed to every caller of the group
                for entry in group:
                    if not entry.future.done():
                        entry.future.set_exception(exc)
                continue
            if len(results) != len(combined):
                error = RuntimeError(
                    f"batched call returned {len(results)} results for {len(combined)} items"
                )
                for entry in group:
                    if not entry.future.done():
                        entry.future.set_exception(error)
                continue
            start = 0
            for entry in group:
                if not entry.future.done():
                    entry.future.set_result(results[start : start + len(entry.items)])
                start += len(entry.items)


def _bind_group_log_context(group: Sequence[_Submission[ItemT, ResultT]]) -> None:
    """Bind the request ids and the request count of ``group`` for the lines its call logs."""
    request_ids = [entry.request_id for entry in group if entry.request_id is not None]
    structlog.contextvars.bind_contextvars(
        request_ids=request_ids[:MAX_LOGGED_REQUEST_IDS], request_count=len(group)
    )
