"""A store whose tables differ from the declared schema: the stored error names the schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._sqlite_errors import is_schema_error
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.ddl import render_ddl
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import FEATURES_TABLE, build_record

STORE_SCHEMA_VERSION = 3


def _store_with(path: Path, *, defect: str) -> None:
    """Create a current-version store whose ONLINE_FEATURES lacks its primary key or is missing."""
    connection = sqlite3.connect(path)
    try:
        for statement in render_ddl("sqlite"):
            if defect == "no-primary-key" and FEATURES_TABLE in statement:
                lines = statement.splitlines()
                # The column before the key clause ends with a comma that must go too.
                body = [line for line in lines if "PRIMARY KEY" not in line]
                body[-2] = body[-2].rstrip(",")
                statement = "\n".join(body)
            if defect == "no-features-table" and FEATURES_TABLE in statement:
                continue
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION}")
        connection.commit()
    finally:
        connection.close()


def _last_errors(queue_path: Path) -> list[tuple[str, int]]:
    connection = sqlite3.connect(queue_path)
    try:
        rows = connection.execute("SELECT last_error, attempts FROM queue_items ORDER BY seq")
        return [(str(error), int(attempts)) for error, attempts in rows]
    finally:
        connection.close()


@pytest.mark.parametrize("defect", ["no-primary-key", "no-features-table"])
def test_drainer_schema_error_hint(queue: PredictionQueue, tmp_path: Path, defect: str) -> None:
    """The released record's last_error points at the schema, not at disk or permissions."""
    store = tmp_path / "store.sqlite3"
    _store_with(store, defect=defect)
    queue.append(build_record(1))
    drainer = QueueDrainer(QueueConsumer(queue, owner="test"), SqliteSink(store))

    drainer.drain_once()

    [(error, attempts)] = _last_errors(queue.path)
    assert "do not match the schema of this release" in error
    assert "move it aside with its -wal and -shm files" in error
    assert "writable" not in error
    assert "disk has space" not in error
    assert attempts == 0
    assert queue.dead_letter_count() == 0


def test_drainer_no_primary_key_names_cause(queue: PredictionQueue, tmp_path: Path) -> None:
    """The stored error keeps SQLite's own message about the missing key."""
    store = tmp_path / "store.sqlite3"
    _store_with(store, defect="no-primary-key")
    queue.append(build_record(1))

    QueueDrainer(QueueConsumer(queue, owner="test"), SqliteSink(store)).drain_once()

    [(error, _)] = _last_errors(queue.path)
    assert "ON CONFLICT clause does not match any PRIMARY KEY" in error
    assert str(store) in error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (sqlite3.OperationalError("ON CONFLICT clause does not match any PRIMARY KEY"), True),
        (sqlite3.OperationalError("no such table: FEATURE_STORE__ONLINE_FEATURES"), True),
        (sqlite3.OperationalError("no such column: FEATURES"), True),
        (sqlite3.OperationalError("table T has no column named FEATURES"), True),
        (sqlite3.IntegrityError("no such column: UPDATED_AT"), True),
        (sqlite3.OperationalError("disk I/O error"), False),
        (sqlite3.OperationalError("database is locked"), False),
        (sqlite3.IntegrityError("CHECK constraint failed: POLICY_NUMBER"), False),
        (ValueError("no such table"), False),
    ],
)
def test_is_schema_error_cases(error: BaseException, expected: bool) -> None:
    """Only SQLite errors about a missing table, column or key count as schema errors."""
    assert is_schema_error(error) is expected
