"""A path whose -wal or -shm belongs to another database is not opened again.

``mv backup.sqlite3 store.sqlite3`` and ``rm store.sqlite3`` change only the database file, so
the -wal and -shm that the running process's connection created stay at the path, and SQLite
would read them as part of the new file. Deleting only the -wal and -shm leaves committed pages
in a -wal that only the open connection still reads. Each test does that to real files.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue, QueueUnavailableError
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence.errors import SinkUnavailableError
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import (
    PREDICTIONS_TABLE,
    build_record,
    child_environment,
    cli_argv,
    log_events,
    stored_values,
    wait_for,
)

SIDECARS = ("-wal", "-shm")


def _sidecar(path: Path, suffix: str) -> Path:
    return Path(f"{path}{suffix}")


def _delete_sidecars(path: Path) -> None:
    for suffix in SIDECARS:
        _sidecar(path, suffix).unlink(missing_ok=True)


def _consistent_backup(path: Path, indexes: range) -> None:
    """Write a store with these records and close it, so no -wal or -shm remains."""
    sink = SqliteSink(path)
    try:
        sink.write_batch([build_record(i) for i in indexes])
    finally:
        sink.close()
    assert not _sidecar(path, "-wal").exists()


def _integrity(path: Path) -> str:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


def _ids(indexes: range) -> set[str]:
    return {build_record(i).prediction_id for i in indexes}


def _count_events(log: Path, name: str) -> int:
    return sum(1 for event in log_events(log) if event["event"] == name)


def _queued_ids(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT prediction_id FROM queue_items ORDER BY seq")
        return [str(row[0]) for row in rows.fetchall()]
    finally:
        connection.close()


@pytest.mark.parametrize("count", [1, 3, 40])
def test_sink_refuses_store_replaced_by_mv(tmp_path: Path, count: int) -> None:
    """A backup renamed over the store: no write into it, its rows intact once the -wal goes."""
    store = tmp_path / "store.sqlite3"
    backup = tmp_path / "backup.sqlite3"
    _consistent_backup(backup, range(500, 503))
    sink = SqliteSink(store)
    try:
        sink.write_batch([build_record(1000)])
        stale_wal = _sidecar(store, "-wal").stat().st_ino
        backup.replace(store)

        records = [build_record(i) for i in range(count)]
        with pytest.raises(SinkUnavailableError, match="belong to the old database") as first:
            sink.write_batch(records)
        # Later batches raise without writing, until the stale files are gone.
        with pytest.raises(SinkUnavailableError, match="belong to the old database"):
            sink.write_batch(records)
        assert _sidecar(store, "-wal").stat().st_ino == stale_wal
    finally:
        sink.close()

    message = str(first.value)
    assert str(store) in message
    assert "the batch stays queued" in message
    assert "delete the stale" in message
    # The fix that the message names: with the process stopped, delete the stale -wal and -shm.
    _delete_sidecars(store)
    assert _integrity(store) == "ok"
    assert set(stored_values(store, PREDICTIONS_TABLE, "PREDICTION_ID")) == _ids(range(500, 503))


def test_sink_refuses_store_deleted_without_wal(tmp_path: Path) -> None:
    """rm of only the store file: the path stays missing and the stale -wal stays as it was."""
    store = tmp_path / "store.sqlite3"
    sink = SqliteSink(store)
    try:
        sink.write_batch([build_record(0)])
        store.unlink()

        with pytest.raises(SinkUnavailableError, match="belong to the old database"):
            sink.write_batch([build_record(1)])
        assert not store.exists()
    finally:
        sink.close()

    assert not store.exists()
    assert _sidecar(store, "-wal").exists()


def test_sink_writes_again_once_stale_files_removed(tmp_path: Path) -> None:
    """After the rejection, deleting the stale -wal and -shm lets the next batch reach the path."""
    store = tmp_path / "store.sqlite3"
    backup = tmp_path / "backup.sqlite3"
    _consistent_backup(backup, range(500, 502))
    sink = SqliteSink(store)
    try:
        sink.write_batch([build_record(0)])
        backup.replace(store)
        with pytest.raises(SinkUnavailableError):
            sink.write_batch([build_record(1)])

        _delete_sidecars(store)
        sink.write_batch([build_record(2)])
        assert sink.file.moved() is None
    finally:
        sink.close()

    assert _integrity(store) == "ok"
    stored = set(stored_values(store, PREDICTIONS_TABLE, "PREDICTION_ID"))
    assert stored == _ids(range(500, 502)) | _ids(range(2, 3))


def test_sink_reopens_after_clean_delete(tmp_path: Path) -> None:
    """rm store* removes the -wal and -shm too, so the next batch creates the store anew."""
    store = tmp_path / "store.sqlite3"
    sink = SqliteSink(store)
    try:
        sink.write_batch([build_record(0)])
        store.unlink()
        _delete_sidecars(store)
        sink.write_batch([build_record(1), build_record(2)])
    finally:
        sink.close()

    assert _integrity(store) == "ok"
    assert set(stored_values(store, PREDICTIONS_TABLE, "PREDICTION_ID")) == _ids(range(1, 3))


@pytest.mark.parametrize("deleted", [("-wal",), ("-shm",), ("-wal", "-shm")])
def test_queue_rejects_append_after_wal_deleted(tmp_path: Path, deleted: tuple[str, ...]) -> None:
    """Deleting the queue's -wal or -shm makes appends and the readiness probe raise."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    try:
        queue.append(build_record(0))
        for suffix in deleted:
            _sidecar(path, suffix).unlink()
        expected_reason = f"{deleted[0][1:]}_missing"

        with pytest.raises(QueueUnavailableError, match="the append is rejected") as first:
            queue.append(build_record(1))
        with pytest.raises(QueueUnavailableError, match="readiness probe is rejected"):
            queue.check_writable()
        with pytest.raises(QueueUnavailableError):
            queue.append_many(build_record(i) for i in range(2, 5))
        assert queue.file.moved() == expected_reason
    finally:
        queue.close()

    assert str(path) in str(first.value)
    assert "the last process to close the file copies the pages" in str(first.value)
    # Closing the last connection copied the deleted -wal into the file. Record 1 went into
    # that -wal before the check that rejected it, and the sinks store a retry of it once.
    # The appends after the first rejection wrote nothing.
    assert _queued_ids(path) == [build_record(0).prediction_id, build_record(1).prediction_id]


def test_queue_rejects_append_after_wal_replaced(tmp_path: Path) -> None:
    """A -wal that another file took the place of counts as moved too."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    try:
        queue.append(build_record(0))
        wal = _sidecar(path, "-wal")
        wal.unlink()
        wal.write_bytes(b"")

        with pytest.raises(QueueUnavailableError, match="had its -wal file replaced"):
            queue.append(build_record(1))
    finally:
        queue.close()


def test_consumer_claims_nothing_after_wal_deleted(tmp_path: Path) -> None:
    """The worker's claims raise and take no record once the queue's -wal is deleted."""
    path = tmp_path / "queue.sqlite3"
    producer = PredictionQueue(path)
    worker_queue = PredictionQueue(path)
    consumer = QueueConsumer(worker_queue, owner="test")
    try:
        producer.append_many(build_record(i) for i in range(3))
        assert consumer.claim(0) == []
        _delete_sidecars(path)

        for _ in range(2):
            with pytest.raises(QueueUnavailableError, match="no record is claimed"):
                consumer.claim(10)
        depth = producer.depth()
    finally:
        worker_queue.close()
        producer.close()

    assert depth == 3
    assert len(_queued_ids(path)) == 3


@pytest.mark.slow
def test_worker_keeps_batch_when_store_replaced(tmp_path: Path) -> None:
    """A running worker leaves records queued, with no attempt used, after mv backup store."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    store = tmp_path / "store.sqlite3"
    backup = tmp_path / "backup.sqlite3"
    log = tmp_path / "worker.log"
    _consistent_backup(backup, range(500, 503))
    queue.append_many(build_record(i) for i in range(2))
    with log.open("wb") as output:
        worker = subprocess.Popen(
            cli_argv("worker"),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_environment(tmp_path, batch_size="10", poll_interval_seconds="0.05"),
        )
    try:
        wait_for(lambda: queue.depth() == 0, 30, "the first 2 records to be stored")
        backup.replace(store)
        queue.append_many(build_record(i) for i in range(100, 105))
        wait_for(
            lambda: _count_events(log, "store file moved, path unsafe to open again") > 0,
            30,
            "the worker to refuse the replaced store",
        )
        wait_for(
            lambda: _count_events(log, "sink unavailable, batch released") >= 3,
            30,
            "the worker to release the batch 3 times",
        )
        depth = queue.depth()
        attempts = queue.file.read(
            lambda c: c.execute("SELECT MAX(attempts) FROM queue_items").fetchone()[0]
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        queue.close()

    assert depth == 5
    # A claim counts an attempt and the release gives it back, so a claimed batch shows 1.
    assert attempts <= 1
    refused = [
        event
        for event in log_events(log)
        if event["event"] == "store file moved, path unsafe to open again"
    ]
    assert len(refused) == 1
    assert refused[0]["store_path"] == str(store)
    assert refused[0]["reason"] == "replaced"
    assert "delete the stale" in str(refused[0]["fix"])
    _delete_sidecars(store)
    assert _integrity(store) == "ok"
    assert set(stored_values(store, PREDICTIONS_TABLE, "PREDICTION_ID")) == _ids(range(500, 503))
