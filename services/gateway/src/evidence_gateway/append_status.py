"""Outcome of the latest queue appends, so readiness reflects appends that really failed.

The readiness write probe changes one row and commits, which dirties a single page. A queue
file that can still take that page but not a batch of records (a file size limit, a nearly
full disk) passes the probe while every real append fails. The scoring pipeline therefore
records each append transaction here, and readiness reports the queue as not writable while
the most recent append failed and no append has succeeded since.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["APPEND_FAILURE_WINDOW_SECONDS", "AppendFailure", "QueueAppendStatus"]

# How long a failed append keeps readiness at not_ready when no append follows. An instance
# that is not ready gets no traffic, so no append can clear the failure and only this window
# ends it. After that the write probe alone decides, and the next failed append takes the
# instance out of rotation again. The window must outlast the probes a platform needs before it
# marks an instance not ready: Kubernetes' core/v1 Probe defaults (periodSeconds 10,
# failureThreshold 3) need 30 s, and deploy/spcs/inference_service.yaml sets neither field.
# NOTE: SPCS documents no defaults for these fields, so it may probe more rarely than that.
APPEND_FAILURE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class AppendFailure:
    """The append failure that readiness reports, with ids and counts but never record data."""

    error: str
    failed_appends: int
    age_seconds: float


class QueueAppendStatus:
    """Failures of queue append transactions since the last successful one.

    Calls come from one event loop, so no lock is needed.

    Args:
        window_seconds: How long after the last failed append it still counts.
        clock: Monotonic clock in seconds. Tests pass their own.
    """

    def __init__(
        self,
        *,
        window_seconds: float = APPEND_FAILURE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_seconds <= 0:
            msg = f"window_seconds={window_seconds!r} must be greater than 0"
            raise ValueError(msg)
        self.window_seconds = window_seconds
        self._clock = clock
        self._error: str | None = None
        self._failed_appends = 0
        self._failed_at = 0.0

    def record_success(self) -> None:
        """Clear the failure, because an append transaction committed."""
        self._error = None
        self._failed_appends = 0

    def record_failure(self, error: BaseException) -> None:
        """Record an append transaction that failed with ``error``."""
        self._error = type(error).__name__
        self._failed_appends += 1
        self._failed_at = self._clock()

    def failure(self) -> AppendFailure | None:
        """Return the failure of the most recent appends, or None when none counts.

        A failure older than the window is forgotten, so the write probe alone decides again.
        """
        if self._error is None:
            return None
        age = self._clock() - self._failed_at
        if age >= self.window_seconds:
            self.record_success()
            return None
        return AppendFailure(
            error=self._error, failed_appends=self._failed_appends, age_seconds=round(age, 3)
        )
