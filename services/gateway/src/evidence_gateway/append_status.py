"""Outcome of the latest queue appends, so readiness reflects appends that really failed.

The readiness write probe changes one row and commits, which dirties a single page. A queue
file that can still take that page but not a batch of records (a file size limit, a nearly
full disk) passes the probe while every real append fails. The scoring pipeline therefore
records each append transaction here, and readiness reports the queue as not writable while
the most recent append failed and no append has succeeded since.

With several uvicorn workers each one also writes its outcome to a status file that the
workers share (``append_status_file``), and readiness counts the failures of every worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from evidence_gateway.append_status_file import AppendStatusFile, SlotRecord

__all__ = ["APPEND_FAILURE_WINDOW_SECONDS", "AppendFailure", "QueueAppendStatus"]

# How long a failed append keeps readiness at not_ready when no append follows. An instance
# that is not ready gets no traffic, so no append can clear the failure and only this window
# ends it. After that the write probe alone decides, and the next failed append takes the
# instance out of rotation again. The window must outlast the probes a platform needs before it
# marks an instance not ready: Kubernetes' core/v1 Probe defaults (periodSeconds 10,
# failureThreshold 3) need 30 s, and deploy/spcs/inference_service.yaml sets neither field.
# NOTE: SPCS documents no defaults for these fields, so it may probe more rarely than that.
APPEND_FAILURE_WINDOW_SECONDS = 60.0

_log = structlog.get_logger("evidence_gateway.append_status")


@dataclass(frozen=True, slots=True)
class AppendFailure:
    """The append failure that readiness reports, with ids and counts but never record data.

    Over several workers: the error and age of the latest failure, the failed appends of all
    the workers added up, and the pids of the workers with a failure.
    """

    error: str
    failed_appends: int
    age_seconds: float
    pids: tuple[int, ...]


class QueueAppendStatus:
    """Failures of queue append transactions since the last successful one.

    Calls come from one event loop, so no lock is needed. With ``shared_file``, each change is
    also written to this worker's slot, and ``failure`` adds the failures that the other
    workers wrote to theirs.

    Args:
        window_seconds: How long after the last failed append it still counts.
        clock: Monotonic clock in seconds. Tests pass their own. With ``shared_file`` it must
            be the same clock in every worker, as ``time.monotonic`` is on Linux.
        shared_file: This worker's slot in the status file of its gateway, or None for a
            gateway with one worker.
    """

    def __init__(
        self,
        *,
        window_seconds: float = APPEND_FAILURE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        shared_file: AppendStatusFile | None = None,
    ) -> None:
        if window_seconds <= 0:
            msg = f"window_seconds={window_seconds!r} must be greater than 0"
            raise ValueError(msg)
        self.window_seconds = window_seconds
        self._clock = clock
        self._error: str | None = None
        self._failed_appends = 0
        self._failed_at = 0.0
        # The worker that recorded the failure: this one, or the exited worker whose slot and
        # failure this one took over.
        self._failed_pid = os.getpid()
        self._shared_file = shared_file
        self._shared_file_failing = False
        self._shared_read_failing = False
        self._reattach_failing = False
        inherited = shared_file.inherited if shared_file is not None else None
        if inherited is not None:
            self._adopt(inherited)

    def record_success(self) -> None:
        """Clear the failure, because an append transaction committed."""
        was_failed = self._error is not None
        self._error = None
        self._failed_appends = 0
        # After a failed write the file may still hold the failure, so the clear is written too.
        if was_failed or self._shared_file_failing:
            self._write_shared_file()

    def record_failure(self, error: BaseException) -> None:
        """Record an append transaction that failed with ``error``."""
        self._error = type(error).__name__
        self._failed_appends += 1
        self._failed_at = self._clock()
        self._failed_pid = os.getpid()
        # Checked here too, so that a failure reaches the file that the other workers read even
        # when no probe reaches this worker.
        self._follow_moved_file()
        self._write_shared_file()

    def failure(self) -> AppendFailure | None:
        """Return the failure of the most recent appends, or None when none counts.

        A failure older than the window is forgotten, so the write probe alone decides again.
        With a shared file, the failures of the other workers that are inside the window count
        as well.
        """
        now = self._clock()
        self._follow_moved_file()
        records = [*self._own_records(now), *self._other_records(now)]
        if not records:
            return None
        latest = max(records, key=lambda record: record.failed_at)
        return AppendFailure(
            error=latest.error,
            failed_appends=sum(record.failed_appends for record in records),
            age_seconds=round(now - latest.failed_at, 3),
            pids=tuple(sorted({record.failed_pid for record in records})),
        )

    def close(self) -> None:
        """Give up this worker's slot in the shared file, if it has one."""
        if self._shared_file is not None:
            self._shared_file.close()
            self._shared_file = None

    def _adopt(self, record: SlotRecord) -> None:
        self._error = record.error
        self._failed_appends = record.failed_appends
        self._failed_at = record.failed_at
        self._failed_pid = record.failed_pid

    def _follow_moved_file(self) -> None:
        """Attach again when the shared file's path no longer names the file this worker has.

        Workers that start later attach to the file at the path, so a worker left on a deleted
        or replaced file would not see their failures, nor they its own. This worker's failure
        record moves to the new file. The failure of a slot it inherits there is adopted only
        when this worker has none of its own.
        """
        shared = self._shared_file
        if shared is None:
            return
        try:
            if shared.is_at_path():
                self._reattach_failing = False
                return
            replacement = AppendStatusFile.attach(shared.path, workers=shared.workers)
        except OSError as exc:
            # Logged once until an attach succeeds, because every probe would repeat it.
            if not self._reattach_failing:
                _log.error(
                    "append status file was deleted or replaced and attaching to the file at "
                    "its path failed; readiness keeps using the old file",
                    path=str(shared.path),
                    exception_type=type(exc).__name__,
                    error=str(exc),
                )
            self._reattach_failing = True
            return
        self._reattach_failing = False
        shared.abandon()
        self._shared_file = replacement
        _log.warning(
            "append status file was deleted or replaced; this worker attached to the file now "
            "at its path",
            path=str(shared.path),
        )
        if replacement.inherited is not None and self._error is None:
            self._adopt(replacement.inherited)
        self._write_shared_file()

    def _own_records(self, now: float) -> list[SlotRecord]:
        if self._error is None:
            return []
        if now - self._failed_at >= self.window_seconds:
            self.record_success()
            return []
        record = SlotRecord(
            pid=os.getpid(),
            start_ticks=0,
            failed_appends=self._failed_appends,
            failed_at=self._failed_at,
            failed_pid=self._failed_pid,
            error=self._error,
        )
        return [record]

    def _other_records(self, now: float) -> list[SlotRecord]:
        if self._shared_file is None:
            return []
        try:
            records = self._shared_file.read_others()
        except OSError as exc:
            # Readiness then reports this worker's own appends only. Logged once until a read
            # succeeds again, because every probe would repeat it.
            if not self._shared_read_failing:
                _log.error(
                    "append status file read failed; readiness reports this worker's appends only",
                    exception_type=type(exc).__name__,
                    error=str(exc),
                )
            self._shared_read_failing = True
            return []
        self._shared_read_failing = False
        # A failure time ahead of the clock was not recorded with this clock, so it is ignored
        # rather than counted until the clock has passed it by a whole window.
        return [record for record in records if 0 <= now - record.failed_at < self.window_seconds]

    def _write_shared_file(self) -> None:
        if self._shared_file is None:
            return
        try:
            self._shared_file.write_own(
                error=self._error or "",
                failed_appends=self._failed_appends,
                failed_at=self._failed_at,
                failed_pid=self._failed_pid,
            )
        except OSError as exc:
            # Logged once until a write succeeds again, because every append would repeat it.
            if not self._shared_file_failing:
                _log.error(
                    "append status file write failed; other workers do not see this "
                    "worker's appends",
                    exception_type=type(exc).__name__,
                    error=str(exc),
                )
            self._shared_file_failing = True
            return
        if self._shared_file_failing:
            _log.info("append status file write succeeded again")
        self._shared_file_failing = False
