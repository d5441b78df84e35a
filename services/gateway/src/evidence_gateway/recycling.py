"""An executor that replaces its pool after a set amount of input, or when the pool breaks.

lxml interns every element name, attribute name, prefix and namespace URI it parses in a string
dictionary that belongs to the parsing thread (lxml 6.2, `_ParserDictionaryContext` in
`parser.pxi`). Nothing removes entries from it, and it is freed only when the thread ends. Real
reports reuse a few hundred names, so it stays small. Documents that carry new names on every
request grow it without bound: 100 documents of 1.6 MB with distinct tag names grew one thread
by about 480 MB in a measurement. The gateway therefore never parses on the event loop's own
thread, and retires each extraction pool, and with it the pool's threads or processes, once it
has been given ``recycle_bytes`` of documents. A retired pool finishes the work it already has,
then its workers exit and their dictionaries are freed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import ParamSpec, TypeVar

import structlog

from evidence_gateway import metrics

__all__ = ["RecyclingExecutor"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_log = structlog.get_logger("evidence_gateway.recycling")


class RecyclingExecutor:
    """Submits work to a pool from ``factory`` and swaps in a new pool every ``recycle_bytes``.

    Args:
        name: Pool name for logs and the ``evidence_gateway_extraction_recycles`` metric.
        factory: Builds a fresh pool.
        recycle_bytes: Input size after which the current pool is retired. The size of a
            submission is counted before it runs, and the pool that crosses the limit still
            runs that submission.

    Only one thread may call ``submit``; the gateway calls it from its event loop.
    """

    def __init__(self, name: str, factory: Callable[[], Executor], recycle_bytes: int) -> None:
        if recycle_bytes < 1:
            msg = f"recycle_bytes must be at least 1, got {recycle_bytes!r}"
            raise ValueError(msg)
        self.name = name
        self.recycle_bytes = recycle_bytes
        self.recycles = 0
        self._factory = factory
        self._executor = factory()
        self._size = 0

    @property
    def current(self) -> Executor:
        """The pool that takes the next submission."""
        return self._executor

    def submit(
        self, size: int, function: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Future[_T]:
        """Run ``function`` on the current pool, counting ``size`` bytes of input against it."""
        future = self._executor.submit(function, *args, **kwargs)
        self._size += size
        if self._size >= self.recycle_bytes:
            self._recycle("input_bytes")
        return future

    def replace_broken(self, broken: Executor) -> None:
        """Replace ``broken``, a pool that raised ``BrokenExecutor``, unless already replaced.

        Several requests can fail on the same broken pool, and only the first one replaces it.
        """
        if broken is self._executor:
            self._recycle("broken")

    def _recycle(self, reason: str) -> None:
        retired, parsed = self._executor, self._size
        self._executor = self._factory()
        self._size = 0
        self.recycles += 1
        # wait=False: the retired pool still runs what it was given, so no accepted request is
        # dropped, and the event loop does not wait for it.
        retired.shutdown(wait=False)
        metrics.EXTRACTION_RECYCLES.labels(pool=self.name, reason=reason).inc()
        if reason == "broken":
            _log.warning("extraction pool broken and replaced", pool=self.name)
        else:
            _log.info("extraction pool recycled", pool=self.name, parsed_bytes=parsed)

    def shutdown(self) -> None:
        """Stop the current pool after its running work, cancelling work that has not started."""
        self._executor.shutdown(wait=True, cancel_futures=True)
