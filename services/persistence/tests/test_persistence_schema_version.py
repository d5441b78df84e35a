"""Queue and store files whose schema version is newer than this release: rejected, unchanged."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue, SchemaVersionError
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._queue import QUEUE_SCHEMA_VERSION
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import (
    PREDICTIONS_TABLE,
    build_record,
    child_environment,
    cli_argv,
    stored_values,
)

NEWER_VERSION = 99


def _set_user_version(path: Path, version: int) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"PRAGMA user_version = {int(version)}")
        connection.commit()
    finally:
        connection.close()


def _user_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        connection.close()


def _queue_attempts(path: Path) -> list[tuple[str, int]]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT prediction_id, attempts FROM queue_items ORDER BY seq")
        return [(str(prediction_id), int(attempts)) for prediction_id, attempts in rows]
    finally:
        connection.close()


def _run_worker_once(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_argv("worker", "--once"),
        env=child_environment(directory),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def newer_store(tmp_path: Path) -> Path:
    """Return a store holding one prediction, marked as written by a newer release."""
    path = tmp_path / "store.sqlite3"
    sink = SqliteSink(path)
    sink.write_batch([build_record(0)])
    sink.close()
    _set_user_version(path, NEWER_VERSION)
    return path


def test_worker_cli_newer_store_exits_2(tmp_path: Path, newer_store: Path) -> None:
    """worker --once leaves a newer store as it is, keeps the record queued and exits 2."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append(build_record(1))
    queue.close()

    result = _run_worker_once(tmp_path)

    assert result.returncode == 2, result.stderr
    assert str(newer_store.resolve()) in result.stderr
    assert f"schema version {NEWER_VERSION}" in result.stderr
    assert "supports version 3 at most" in result.stderr
    assert "upgrade the worker" in result.stderr
    assert "PERSISTENCE_STORE_PATH" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert '"event": "schema version unsupported"' in result.stdout
    assert _user_version(newer_store) == NEWER_VERSION
    assert stored_values(newer_store, PREDICTIONS_TABLE, "PREDICTION_ID") == ["pred-000000"]
    assert _queue_attempts(tmp_path / "queue.sqlite3") == [("pred-000001", 0)]


def test_worker_cli_newer_store_empty_queue(tmp_path: Path, newer_store: Path) -> None:
    """The store's version is checked at start, so an empty queue still exits 2."""
    result = _run_worker_once(tmp_path)

    assert result.returncode == 2, result.stderr
    assert str(newer_store.resolve()) in result.stderr
    assert _user_version(newer_store) == NEWER_VERSION


def test_worker_cli_newer_queue_exits_2(tmp_path: Path) -> None:
    """worker --once neither claims from nor migrates a queue of a newer release."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    queue.append(build_record(1))
    queue.close()
    _set_user_version(path, NEWER_VERSION)

    result = _run_worker_once(tmp_path)

    assert result.returncode == 2, result.stderr
    assert str(path.resolve()) in result.stderr
    assert f"schema version {NEWER_VERSION}" in result.stderr
    assert f"supports version {QUEUE_SCHEMA_VERSION} at most" in result.stderr
    assert "PERSISTENCE_QUEUE_PATH" in result.stderr
    assert _user_version(path) == NEWER_VERSION
    assert _queue_attempts(path) == [("pred-000001", 0)]
    assert not (tmp_path / "store.sqlite3").exists()


def test_status_cli_newer_queue_exits_2(tmp_path: Path) -> None:
    """status names the queue file and both versions, and exits 2."""
    path = tmp_path / "queue.sqlite3"
    PredictionQueue(path).check_writable()
    _set_user_version(path, NEWER_VERSION)

    result = subprocess.run(
        cli_argv("status"),
        env=child_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert f"has schema version {NEWER_VERSION}" in result.stderr
    assert _user_version(path) == NEWER_VERSION


def test_queue_append_newer_version_rejected(tmp_path: Path) -> None:
    """A producer's append to a newer queue raises and adds no row."""
    path = tmp_path / "queue.sqlite3"
    PredictionQueue(path).check_writable()
    _set_user_version(path, NEWER_VERSION)

    queue = PredictionQueue(path)
    with pytest.raises(SchemaVersionError) as raised:
        queue.append(build_record(1))

    assert (raised.value.found, raised.value.supported) == (NEWER_VERSION, QUEUE_SCHEMA_VERSION)
    assert raised.value.path == str(path.resolve())
    assert _queue_attempts(path) == []
    assert _user_version(path) == NEWER_VERSION


def test_drainer_newer_store_releases_batch(queue: PredictionQueue, newer_store: Path) -> None:
    """A store that turns newer after the start check ends the run, and no attempt is used."""
    queue.append_many([build_record(1), build_record(2)])
    drainer = QueueDrainer(QueueConsumer(queue, owner="test"), SqliteSink(newer_store))

    with pytest.raises(SchemaVersionError, match="PERSISTENCE_STORE_PATH"):
        drainer.run(threading.Event(), exit_when_empty=True)

    assert _queue_attempts(queue.path) == [("pred-000001", 0), ("pred-000002", 0)]
    assert queue.dead_letter_count() == 0
    assert _user_version(newer_store) == NEWER_VERSION
    assert stored_values(newer_store, PREDICTIONS_TABLE, "PREDICTION_ID") == ["pred-000000"]


def test_sqlite_store_same_version_writes(tmp_path: Path) -> None:
    """A store at the current version is written and keeps its version."""
    path = tmp_path / "store.sqlite3"
    SqliteSink(path).write_batch([build_record(1)])
    SqliteSink(path).write_batch([build_record(2)])

    assert _user_version(path) == 3
    assert sorted(stored_values(path, PREDICTIONS_TABLE, "PREDICTION_ID")) == [
        "pred-000001",
        "pred-000002",
    ]
