"""Log and count failed attempts to write the SQLite store, and the first write after them.

A write that finds the store locked by another process waits ``busy_timeout_ms`` per attempt
and makes up to ``lock_retries`` attempts, about 20 s with the defaults, inside one
``write_batch``. A warning per failed attempt shows such a wait while it lasts, where the
worker's ``batch processed`` line would only show a long ``duration_ms`` afterwards, or nothing
until the last attempt failed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from evidence_persistence._sqlite_attempts import FailedAttempt

if TYPE_CHECKING:
    from evidence_persistence.metrics import WorkerMetrics

__all__ = ["StoreAttemptReporter"]

_log = structlog.get_logger("evidence_persistence.store")


class StoreAttemptReporter:
    """Report failed store attempts, then the first successful write after them, of one sink.

    Args:
        metrics: Counters of the worker. With ``None`` it counts nothing and only logs.
    """

    def __init__(self, metrics: WorkerMetrics | None = None) -> None:
        self._metrics = metrics
        self.failed_attempts = 0
        """Failed attempts since the last successful write."""
        self._first_failure_started = 0.0

    def report_failure(self, attempt: FailedAttempt, *, batch_size: int) -> None:
        """Log one warning line for ``attempt`` and count it by its SQLite error name."""
        if self.failed_attempts == 0:
            self._first_failure_started = time.monotonic() - attempt.waited_seconds
        self.failed_attempts += 1
        _log.warning(
            "store write attempt failed",
            attempt=attempt.attempt,
            max_attempts=attempt.max_attempts,
            waited_ms=round(attempt.waited_seconds * 1000, 1),
            batch_size=batch_size,
            error_code=attempt.error_name,
        )
        if self._metrics is not None:
            self._metrics.store_attempt_failures.labels(attempt.error_name).inc()

    def report_success(self, *, batch_size: int) -> None:
        """Log ``store writable again`` when attempts failed since the last successful write."""
        if self.failed_attempts == 0:
            return
        outage = time.monotonic() - self._first_failure_started
        _log.info(
            "store writable again",
            failed_attempts=self.failed_attempts,
            outage_ms=round(outage * 1000, 1),
            batch_size=batch_size,
        )
        self.failed_attempts = 0
