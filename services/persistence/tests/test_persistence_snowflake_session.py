"""Session lifecycle of the Snowflake sink when the set-up after login fails.

A real ``QueueDrainer`` drives a real ``SnowflakeSink`` whose session stand-in fails the
``CREATE HYBRID TABLE`` statements with the error Snowflake returns to a role without CREATE
TABLE on the schema (003001, SQLSTATE 42501), which it does even when the table exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from persistence_testkit import build_record

pytest.importorskip("snowflake.snowpark")

from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.sinks.snowflake import SnowflakeSink
from snowflake.connector.errors import OperationalError, ProgrammingError
from snowflake.snowpark import Session
from snowflake.snowpark.exceptions import SnowparkSQLException

RECORDS = 20
ROUNDS = 3


class FailingDdlSession:
    """Session stand-in whose every SQL statement fails with ``error``; counts open and close."""

    opened: list[FailingDdlSession]
    closed: list[FailingDdlSession]

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.opened.append(self)

    def sql(self, statement: str) -> Any:
        error = self.error

        class Query:
            def collect(self) -> None:
                raise error

        return Query()

    def close(self) -> None:
        self.closed.append(self)


def _privilege_error() -> SnowparkSQLException:
    message = (
        "SQL access control error: Insufficient privileges to operate on schema 'FEATURE_STORE'"
    )
    cause = ProgrammingError(msg=message, errno=3001, sqlstate="42501")
    return SnowparkSQLException(message, error_code="1304", conn_error=cause)


def _drain(
    tmp_path: Path, error: Exception
) -> tuple[QueueDrainer, PredictionQueue, type[FailingDdlSession]]:
    # A subclass per test, so each test counts only its own sessions.
    session_type: type[FailingDdlSession] = type(
        "Session", (FailingDdlSession,), {"opened": [], "closed": []}
    )
    sink = SnowflakeSink(
        lambda: cast(Session, session_type(error)), database="EVIDENCE_DB", create_tables=True
    )
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many([build_record(index) for index in range(RECORDS)])
    consumer = QueueConsumer(queue, owner="test", lease_seconds=30, max_attempts=5)
    drainer = QueueDrainer(
        consumer,
        sink,
        batch_size=500,
        poll_interval_seconds=0.001,
        retry_backoff_max_seconds=0.01,
    )
    for _ in range(ROUNDS):
        drainer.drain_once()
        # Make the released batch available again at once instead of after the back-off.
        queue.file.write(lambda c: c.execute("UPDATE queue_items SET available_at = 0"))
    return drainer, queue, session_type


def test_denied_ddl_closes_every_session(tmp_path: Path) -> None:
    """CREATE denied: the batch stays queued and every opened session is closed."""
    drainer, queue, session_type = _drain(tmp_path, _privilege_error())
    try:
        assert drainer.stats.records_persisted == 0
        assert queue.depth() == RECORDS
        # The worker retries parts of a rejected batch, so a round may open several sessions.
        assert len(session_type.opened) >= ROUNDS
        assert len(session_type.closed) == len(session_type.opened)
    finally:
        queue.close()


def test_ddl_connection_error_closes_session(tmp_path: Path) -> None:
    """A connection lost during the DDL is an outage, and the session is closed."""
    error = OperationalError(msg="could not connect to Snowflake backend")
    drainer, queue, session_type = _drain(tmp_path, error)
    try:
        assert drainer.stats.sink_outages == ROUNDS
        assert queue.depth() == RECORDS
        assert len(session_type.closed) == len(session_type.opened) == ROUNDS
    finally:
        queue.close()
