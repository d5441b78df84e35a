"""The drain after a stop signal: keep writing until the queue stays empty or time runs out.

In SPCS each gateway instance has its own queue on its own block volume. Records still queued
when an instance is scaled in stay on that volume until a worker runs on it again, so the worker
keeps draining after SIGTERM or SIGINT for up to ``stop_grace_seconds``. The gateway of the
same instance gets the signal at the same time and stops accepting requests, but its requests
still in progress append records for a short while, which this drain writes too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog

from evidence_persistence._queue import PredictionQueue
from evidence_persistence.errors import QueueError

__all__ = ["STOP_DRAIN_QUIET_SECONDS", "StopDrain"]

_log = structlog.get_logger("evidence_persistence.worker")

STOP_DRAIN_QUIET_SECONDS = 1.0
"""How long the queue must stay empty before the drain ends, in seconds.

It covers appends of requests still in progress in the gateway after its own SIGTERM.
NOTE: a request that appends later than this after the queue was last seen empty leaves its
record in the queue file for the next worker started on that file."""


def _depth_or_none(queue: PredictionQueue, owner: str) -> int | None:
    """Return the queue depth, or ``None`` when the queue file cannot be read."""
    try:
        return queue.depth()
    except QueueError as exc:
        _log.warning("queue depth unavailable", owner=owner, error_type=type(exc).__name__)
        return None


@dataclass(slots=True)
class StopDrain:
    """State of the drain that runs between the first stop signal and the worker's exit.

    Create it with ``begin``, which logs ``stop drain started``, and end it with ``finish``,
    which logs ``stop drain finished``.
    """

    queue: PredictionQueue
    owner: str
    grace_seconds: float
    records_before: int
    started: float = field(default_factory=time.monotonic)
    empty_since: float | None = None

    @classmethod
    def begin(
        cls, queue: PredictionQueue, *, owner: str, grace_seconds: float, records_before: int
    ) -> StopDrain:
        """Start the drain now and log the queue depth it starts from."""
        drain = cls(queue, owner, grace_seconds, records_before)
        _log.info(
            "stop drain started",
            owner=owner,
            queue_depth=_depth_or_none(queue, owner),
            grace_seconds=grace_seconds,
        )
        return drain

    def seconds_left(self) -> float:
        """Return the time left until the grace time ends, at least 0."""
        return max(0.0, self.started + self.grace_seconds - time.monotonic())

    def expired(self) -> bool:
        """Tell whether the grace time has passed."""
        return self.seconds_left() == 0.0

    def record_claim(self, claimed: int) -> bool:
        """Record the result of one claim and tell whether the queue stayed empty long enough.

        A claim that took records restarts the quiet time. A claim that found none reads the
        depth, because records leased by another worker or waiting for a retry count as
        queued although no claim returns them. An unreadable depth counts as not empty.
        """
        if claimed:
            self.empty_since = None
            return False
        if _depth_or_none(self.queue, self.owner) != 0:
            self.empty_since = None
            return False
        now = time.monotonic()
        if self.empty_since is None:
            self.empty_since = now
        return now - self.empty_since >= STOP_DRAIN_QUIET_SECONDS

    def finish(self, *, records_after: int, interrupted: bool) -> None:
        """Log how the drain ended: records written, records left, duration and why it ended.

        ``timed_out`` is true when the grace time ran out with records left or with the depth
        unknown, ``interrupted`` when a second signal ended the drain.
        """
        remaining = _depth_or_none(self.queue, self.owner)
        timed_out = not interrupted and self.expired() and remaining != 0
        log = _log.info if remaining == 0 else _log.warning
        log(
            "stop drain finished",
            owner=self.owner,
            records=records_after - self.records_before,
            remaining=remaining,
            duration_ms=round((time.monotonic() - self.started) * 1000, 1),
            timed_out=timed_out,
            interrupted=interrupted,
        )
