"""Group concurrent calls into one: one model call and one queue transaction for many requests.

While a call is running, requests that arrive wait and then go out together in the next call.
At low load nothing waits, because each request finds the path idle and goes at once. Under
load the model service receives fewer, larger batches and the queue file takes fewer write
locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


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
        self._waiting: list[tuple[list[ItemT], asyncio.Future[list[ResultT]]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[ItemT]) -> list[ResultT]:
        """Queue ``items`` for the next call and return their results, in order."""
        if not items:
            return []
        future: asyncio.Future[list[ResultT]] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(items), future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    def _take_group(self) -> list[tuple[list[ItemT], asyncio.Future[list[ResultT]]]]:
        group = [self._waiting.pop(0)]
        size = len(group[0][0])
        while self._waiting and size + len(self._waiting[0][0]) <= self._max_items:
            size += len(self._waiting[0][0])
            group.append(self._waiting.pop(0))
        return group

    async def _drain(self) -> None:
        while self._waiting:
            group = [entry for entry in self._take_group() if not entry[1].done()]
            if not group:
                continue
            combined = [item for items, _ in group for item in items]
            try:
                results = list(await self._call(combined))
            except Exception as exc:  # handed to every caller of the group
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if len(results) != len(combined):
                error = RuntimeError(
                    f"batched call returned {len(results)} results for {len(combined)} items"
                )
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for items, future in group:
                if not future.done():
                    future.set_result(results[start : start + len(items)])
                start += len(items)
