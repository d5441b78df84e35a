"""Queue depth, oldest record age and dead letters, read from the gateway's queue file.

The queue is a SQLite file that the gateway writes and the persistence worker drains. Its tables
are ``queue_items``, ``queue_depth`` and ``dead_letters``, and ``enqueued_at`` and ``failed_at``
are Unix times in seconds. The dashboard opens it read-only and imports nothing from the
persistence package.

A dead letter's ``error`` text may quote the record's values (a policy number, a drug name), so
only the exception type at its start leaves this module, as in ``evidence-persistence
dead-letters list``.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evidence_dashboard.errors import StoreUnavailableError

__all__ = ["UNKNOWN_ERROR_TYPE", "QueueStatus", "error_type_of", "read_queue_status"]

_RECENT_DEAD_LETTERS = 20

# The worker stores a dead letter's error as "Type: message". This pattern and the placeholder
# below mirror error_type_of in evidence_persistence._logging, which this package does not import.
_ERROR_TYPE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*): ")
UNKNOWN_ERROR_TYPE = (
    "(error type unknown; see evidence-persistence dead-letters list --show-errors)"
)


def error_type_of(error: object) -> str:
    """Return the exception type that starts a stored error text ``"Type: message"``.

    Any other text, or a value that is not a string, gives ``UNKNOWN_ERROR_TYPE``, because the
    rest of the text may quote the record.
    """
    if not isinstance(error, str):
        return UNKNOWN_ERROR_TYPE
    match = _ERROR_TYPE.match(error)
    return match.group(1) if match else UNKNOWN_ERROR_TYPE


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """Backlog and failures of the durable queue at one moment."""

    depth: int
    oldest_age_seconds: float
    dead_letters: int
    recent_dead_letters: pd.DataFrame
    """Latest dead letters: ``prediction_id``, ``failed_at``, ``attempts`` and ``error_type``."""


def read_queue_status(path: Path, *, now: float | None = None) -> QueueStatus:
    """Read depth, oldest age and dead letters from the queue file at ``path``.

    Raises:
        StoreUnavailableError: the file does not exist or is not a queue file.
    """
    if not path.is_file():
        msg = (
            f"queue file {str(path)!r} not found; start the gateway or the worker once, "
            "or set DASHBOARD_QUEUE_PATH"
        )
        raise StoreUnavailableError(msg)
    current = time.time() if now is None else now
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            depth = int(
                connection.execute("SELECT depth FROM queue_depth WHERE id = 1").fetchone()[0]
            )
            oldest = connection.execute(
                "SELECT enqueued_at FROM queue_items ORDER BY seq LIMIT 1"
            ).fetchone()
            dead = int(connection.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
            recent = pd.read_sql_query(
                "SELECT prediction_id, failed_at, attempts, error FROM dead_letters "
                "ORDER BY failed_at DESC LIMIT ?",
                connection,
                params=(_RECENT_DEAD_LETTERS,),
            )
        finally:
            connection.close()
    except (sqlite3.Error, TypeError) as exc:
        msg = f"queue file {str(path)!r} cannot be read as a prediction queue: {exc}"
        raise StoreUnavailableError(msg) from exc
    recent["failed_at"] = pd.to_datetime(recent["failed_at"], unit="s", utc=True)
    recent["error_type"] = [error_type_of(error) for error in recent.pop("error")]
    oldest_age = 0.0 if oldest is None else max(0.0, current - float(oldest[0]))
    return QueueStatus(
        depth=depth, oldest_age_seconds=oldest_age, dead_letters=dead, recent_dead_letters=recent
    )
