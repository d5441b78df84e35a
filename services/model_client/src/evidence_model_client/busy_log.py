"""Logs of the 503 rejections for the in-flight body limit, counted per overload episode.

Under overload every client retries, so a warning per 503 would flood the log. The first
rejection of an episode is logged with its sizes. After that a count follows at most once per
interval, and the episode ends with one more line when an interval passes without a rejection.
An episode of D seconds so logs at most about D / interval + 2 lines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

__all__ = ["BUSY_STARTED_EVENT", "BusyLog"]

_log = structlog.get_logger("evidence_model_server")

BUSY_STARTED_EVENT = "prediction request rejected, in-flight body limit reached"
_BUSY_CONTINUED_EVENT = "prediction requests still rejected, in-flight body limit reached"
_BUSY_ENDED_EVENT = "prediction requests no longer rejected for the in-flight body limit"


class BusyLog:
    """The log lines of the 503 rejections of one server.

    Use it from one event loop only, because ``rejected`` schedules the next count on the
    running loop.
    """

    def __init__(
        self, interval_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if interval_seconds <= 0:
            msg = f"interval_seconds must be greater than 0, got {interval_seconds!r}"
            raise ValueError(msg)
        self.interval_seconds = interval_seconds
        self._clock = clock
        # Start of the current episode, or None between episodes.
        self._started_at: float | None = None
        # Rejections since the last line, and in the whole episode.
        self._unlogged = 0
        self._total = 0
        self._timer: asyncio.TimerHandle | None = None

    def rejected(self, **fields: Any) -> None:
        """Count one 503, logging it with ``fields`` when it starts an episode."""
        self._total += 1
        if self._started_at is not None:
            self._unlogged += 1
            return
        self._started_at = self._clock()
        _log.warning(BUSY_STARTED_EVENT, interval_seconds=self.interval_seconds, **fields)
        self._timer = asyncio.get_running_loop().call_later(self.interval_seconds, self._tick)

    def close(self) -> None:
        """Log the rejections not logged yet and end the episode, at server shutdown."""
        if self._timer is not None:
            self._timer.cancel()
        if self._started_at is not None:
            self._end()

    def _tick(self) -> None:
        self._timer = None
        if self._unlogged == 0:
            self._end()
            return
        _log.warning(
            _BUSY_CONTINUED_EVENT,
            rejected=self._unlogged,
            rejected_total=self._total,
            duration_seconds=self._duration(),
        )
        self._unlogged = 0
        self._timer = asyncio.get_running_loop().call_later(self.interval_seconds, self._tick)

    def _end(self) -> None:
        _log.info(
            _BUSY_ENDED_EVENT,
            rejected=self._unlogged,
            rejected_total=self._total,
            duration_seconds=self._duration(),
        )
        self._started_at = None
        self._unlogged = 0
        self._total = 0

    def _duration(self) -> float:
        started = self._started_at if self._started_at is not None else self._clock()
        return round(self._clock() - started, 3)
