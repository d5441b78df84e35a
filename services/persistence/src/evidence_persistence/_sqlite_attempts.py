"""Reports of the failed attempts of one ``SqliteFile`` call, for logs and metrics."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from evidence_persistence._sqlite_errors import is_lock_error, is_outage_error
from evidence_persistence.errors import PersistenceError

__all__ = ["FailedAttempt", "ReportingAttempt"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """One attempt of a transaction that failed with a lock or I/O error (``is_outage_error``)."""

    attempt: int
    """Number of the attempt within one call, from 1."""
    max_attempts: int
    """Attempts the call makes at most for this error: ``lock_retries`` for a lock error, and
    this attempt's number for any other error, which is raised without another attempt."""
    waited_seconds: float
    """Time the attempt took, including its waits for the lock."""
    error_name: str
    """SQLite's error name, such as ``SQLITE_BUSY`` or ``SQLITE_IOERR_WRITE``, or the type of
    the ``OSError`` when the file's directory cannot be created."""


class ReportingAttempt(Generic[T]):
    """An attempt function of ``SqliteFile`` that reports each failed attempt of one call.

    Args:
        attempt: ``SqliteFile._attempt_until_timeout`` of the file.
        lock_retries: The file's attempts for a lock error.
        report: Called with each attempt that failed with a lock or I/O error.
    """

    def __init__(
        self,
        attempt: Callable[..., T],
        lock_retries: int,
        report: Callable[[FailedAttempt], None],
    ) -> None:
        self._attempt = attempt
        self._lock_retries = lock_retries
        self._report = report
        self._number = 0

    def __call__(self, work: Callable[[sqlite3.Connection], T], *, immediate: bool) -> T:
        self._number += 1
        started = time.monotonic()
        try:
            return self._attempt(work, immediate=immediate)
        except sqlite3.Error as exc:
            if is_outage_error(exc):
                name = getattr(exc, "sqlite_errorname", None)
                self._failed(started, name if isinstance(name, str) else type(exc).__name__, exc)
            raise
        except PersistenceError as exc:
            # _connect raises the file's error type itself when the directory cannot be created.
            if isinstance(exc.__cause__, OSError):
                self._failed(started, type(exc.__cause__).__name__, exc)
            raise

    def _failed(self, started: float, error_name: str, exc: BaseException) -> None:
        self._report(
            FailedAttempt(
                attempt=self._number,
                max_attempts=self._lock_retries if is_lock_error(exc) else self._number,
                waited_seconds=time.monotonic() - started,
                error_name=error_name,
            )
        )
