"""Queue and store files deleted or replaced under running processes lose no queued record.

A SQLite connection keeps writing to a file that was unlinked under it, while every process
started later uses a new file at the path. Each test deletes or replaces a real file and
checks where the records end up.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue, QueueUnavailableError
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence.errors import SinkUnavailableError
from evidence_persistence.sinks.sqlite import SqliteSink, inspect_store
from persistence_testkit import (
    PREDICTIONS_TABLE,
    build_record,
    child_environment,
    cli_argv,
    log_events,
    queue_held_records,
    stored_values,
    wait_for,
)

FAST_WORKER = {"batch_size": "10", "poll_interval_seconds": "0.05"}


def _delete_with_sidecars(path: Path) -> None:
    """Delete the file with its -wal and -shm, as ``rm path*`` does."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _replace_with_copy_of(path: Path, other: Path) -> None:
    """Rename ``other`` and its sidecars over ``path``, as restoring a backup does."""
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{other}{suffix}")
        if source.exists():
            source.replace(f"{path}{suffix}")
        else:
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _stored_ids(store: Path) -> set[str]:
    """Return the stored prediction ids, or none while the worker has not created the table."""
    if not store.is_file():
        return set()
    try:
        return set(stored_values(store, PREDICTIONS_TABLE, "PREDICTION_ID"))
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return set()


def _queued_ids(path: Path) -> list[str]:
    queue = PredictionQueue(path)
    try:
        rows = queue.file.read(
            lambda c: c.execute("SELECT prediction_id FROM queue_items ORDER BY seq").fetchall()
        )
    finally:
        queue.close()
    return [str(row[0]) for row in rows]


def _start_worker(directory: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            cli_argv("worker"),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_environment(directory, **FAST_WORKER),
        )


def _event_names(log: Path) -> list[object]:
    return [event["event"] for event in log_events(log)]


def test_moved_reports_each_state(tmp_path: Path) -> None:
    """moved(): None while unopened and in place, then missing, then replaced."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    try:
        assert queue.file.moved() is None
        queue.append(build_record(0))
        assert queue.file.moved() is None

        _delete_with_sidecars(path)
        assert queue.file.moved() == "missing"

        other = PredictionQueue(tmp_path / "other.sqlite3")
        other.append(build_record(1))
        other.close()
        _replace_with_copy_of(path, tmp_path / "other.sqlite3")
        assert queue.file.moved() == "replaced"
    finally:
        queue.close()
    assert queue.file.moved() is None


def test_moved_follows_each_thread(tmp_path: Path) -> None:
    """moved() returns reopened to a thread after another thread reopened the file."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    try:
        queue.append(build_record(0))
        _delete_with_sidecars(path)
        # This thread's view of the file, as just after a write that went into the old file.
        queue.file.read(lambda c: c.execute("SELECT 1").fetchone())
        other = threading.Thread(target=queue.append, args=(build_record(1),))
        other.start()
        other.join()

        # The old file is closed now, so the new file may have taken its inode number.
        assert queue.file.moved() == "reopened"
        queue.append(build_record(2))
        assert queue.file.moved() is None
    finally:
        queue.close()

    expected = [build_record(1).prediction_id, build_record(2).prediction_id]
    assert _queued_ids(path) == expected


@pytest.mark.parametrize("count", [1, 7])
def test_concurrent_reopen_not_taken_for_move(
    tmp_path: Path, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another thread that reopens the file right after an append causes no second append.

    The first moved() check of the append starts a thread that closes and reopens the
    connection, as a thread does after a failed write, and waits up to 0.5 s for it. The
    check must hold the file's lock, so that thread waits until the append is done.
    """
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    queue.append(build_record(0))
    check_moved = queue.file.moved
    reopens: list[threading.Thread] = []
    reopened = threading.Event()

    def reopen() -> None:
        queue.file.close()
        queue.file.read(lambda c: c.execute("SELECT 1").fetchone())
        reopened.set()

    def moved_after_reopen() -> str | None:
        if not reopens:
            reopens.append(threading.Thread(target=reopen))
            reopens[0].start()
            reopened.wait(timeout=0.5)
        return check_moved()

    monkeypatch.setattr(queue.file, "moved", moved_after_reopen)
    try:
        queue.append_many(build_record(i) for i in range(1, count + 1))
        reopens[0].join(timeout=10)
    finally:
        queue.close()

    assert reopened.is_set()
    expected = [build_record(i).prediction_id for i in range(count + 1)]
    assert _queued_ids(path) == expected


@pytest.mark.parametrize("count", [1, 7])
def test_append_after_delete_lands_at_path(tmp_path: Path, count: int) -> None:
    """Appends after the file was deleted are in the new file at the path, none lost."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    try:
        queue.append(build_record(0))
        _delete_with_sidecars(path)
        if count == 1:
            queue.append(build_record(1))
        else:
            queue.append_many(build_record(i) for i in range(1, count + 1))
        expected = [build_record(i).prediction_id for i in range(1, count + 1)]

        assert queue.file.moved() is None
        assert _queued_ids(path) == expected
        assert queue.depth() == count
    finally:
        queue.close()


def test_append_after_replace_lands_in_new_file(tmp_path: Path) -> None:
    """A queue file renamed over the path receives the next append."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    try:
        queue.append(build_record(0))
        backup = PredictionQueue(tmp_path / "backup.sqlite3")
        backup.append(build_record(5))
        backup.close()
        _replace_with_copy_of(path, tmp_path / "backup.sqlite3")
        queue.append(build_record(1))
    finally:
        queue.close()

    assert _queued_ids(path) == [build_record(5).prediction_id, build_record(1).prediction_id]


def test_append_after_replace_by_non_sqlite_fails(tmp_path: Path) -> None:
    """A queue path that now names a text file: the append raises, no record is acknowledged."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    try:
        queue.append(build_record(0))
        _delete_with_sidecars(path)
        path.write_text("not a database\n" * 1000, encoding="utf-8")

        with pytest.raises(QueueUnavailableError, match="SQLITE_NOTADB"):
            queue.append(build_record(1))
        path.unlink()
        queue.append(build_record(2))
    finally:
        queue.close()

    assert _queued_ids(path) == [build_record(2).prediction_id]


def test_readiness_probe_reopens_deleted_queue(tmp_path: Path) -> None:
    """check_writable on a deleted queue creates the file at the path again."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    try:
        queue.check_writable()
        _delete_with_sidecars(path)
        queue.check_writable()

        assert path.is_file()
        assert queue.file.moved() is None
        assert queue.depth() == 0
    finally:
        queue.close()


@pytest.mark.parametrize("count", [1, 3, 25])
def test_sink_writes_again_after_store_delete(tmp_path: Path, count: int) -> None:
    """A batch written after the store was deleted is in the new store at the path."""
    path = tmp_path / "store.sqlite3"
    sink = SqliteSink(path)
    try:
        sink.write_batch([build_record(1000)])
        _delete_with_sidecars(path)
        records = [build_record(i) for i in range(count)]
        result = sink.write_batch(records)
    finally:
        sink.close()

    assert result.model_predictions == count
    assert _stored_ids(path) == {record.prediction_id for record in records}
    assert inspect_store(path)[0] == "ok"


def test_sink_writes_again_after_store_replace(tmp_path: Path) -> None:
    """A store renamed over the path keeps its rows and receives the next batch."""
    path = tmp_path / "store.sqlite3"
    sink = SqliteSink(path)
    other_sink = SqliteSink(tmp_path / "other.sqlite3")
    try:
        sink.write_batch([build_record(0)])
        other_sink.write_batch([build_record(1)])
        other_sink.close()
        _replace_with_copy_of(path, tmp_path / "other.sqlite3")
        sink.write_batch([build_record(2)])
    finally:
        sink.close()

    assert _stored_ids(path) == {build_record(1).prediction_id, build_record(2).prediction_id}


def test_sink_raises_when_path_keeps_moving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store path that names another file after both writes raises SinkUnavailableError."""
    path = tmp_path / "store.sqlite3"

    sink = SqliteSink(path)
    check_moved = sink.file.moved

    def delete_then_check() -> str | None:
        # A cleanup job racing the worker deletes the store right after each commit, before
        # the check that follows the commit.
        _delete_with_sidecars(path)
        return check_moved()

    monkeypatch.setattr(sink.file, "moved", delete_then_check)
    try:
        with pytest.raises(SinkUnavailableError, match="deleted while this process had it open"):
            sink.write_batch([build_record(0)])
    finally:
        sink.close()


def test_consumer_drains_deleted_queue_then_reopens(tmp_path: Path) -> None:
    """A deleted queue's records are claimed from the open file, then the path's file."""
    path = tmp_path / "queue.sqlite3"
    producer = PredictionQueue(path)
    worker_queue = PredictionQueue(path)
    consumer = QueueConsumer(worker_queue, owner="test")
    try:
        producer.append_many(build_record(i) for i in range(5))
        assert consumer.claim(0) == []
        _delete_with_sidecars(path)
        producer.append(build_record(10))

        first = consumer.claim(3)
        consumer.complete([item.seq for item in first])
        second = consumer.claim(10)
        consumer.complete([item.seq for item in second])
        assert consumer.claim(10) == []
        after_reopen = consumer.claim(10)
    finally:
        producer.close()
        worker_queue.close()

    # The append after the delete went into the old file before the producer found it moved,
    # and again into the new file, so record 10 is claimed from both.
    old_ids = [build_record(i).prediction_id for i in (0, 1, 2, 3, 4, 10)]
    assert [item.prediction_id for item in first + second] == old_ids
    assert [item.prediction_id for item in after_reopen] == [build_record(10).prediction_id]


def test_status_reports_store_state(tmp_path: Path) -> None:
    """status prints the store's state: missing, ok, then schema_mismatch with exit 1."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.check_writable()
    queue.close()
    environment = child_environment(tmp_path)

    def run_status() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli_argv("status"), env=environment, capture_output=True, text=True, check=False
        )

    missing = run_status()
    sink = SqliteSink(tmp_path / "store.sqlite3")
    sink.write_batch([build_record(0)])
    sink.close()
    present = run_status()
    store = tmp_path / "store.sqlite3"
    _delete_with_sidecars(store)
    connection = sqlite3.connect(store)
    connection.execute("CREATE TABLE unrelated (x)")
    connection.close()
    mismatch = run_status()

    assert missing.returncode == 0
    assert json.loads(missing.stdout)["store"] == "missing"
    assert missing.stderr == ""
    assert present.returncode == 0
    assert json.loads(present.stdout)["store"] == "ok"
    assert mismatch.returncode == 1
    assert json.loads(mismatch.stdout)["store"] == "schema_mismatch"
    assert "lacks" in mismatch.stderr


@pytest.mark.slow
@pytest.mark.parametrize("count", [0, 1, 12])
def test_worker_store_deleted_mid_run(tmp_path: Path, count: int) -> None:
    """Records queued after the store was deleted reach the new store; none only in the old."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    store = tmp_path / "store.sqlite3"
    log = tmp_path / "worker.log"
    queue.append_many(build_record(i) for i in range(3))
    worker = _start_worker(tmp_path, log)
    try:
        first = {build_record(i).prediction_id for i in range(3)}
        wait_for(lambda: _stored_ids(store) == first, 30, "the first 3 records")
        _delete_with_sidecars(store)
        queue.append_many(build_record(i) for i in range(100, 100 + count))
        later = {build_record(i).prediction_id for i in range(100, 100 + count)}
        wait_for(lambda: queue.depth() == 0, 30, "the worker to drain the queue")
        if count == 0:
            # No batch ran, so the worker has not touched the store yet.
            assert not store.exists()
            queue.append(build_record(500))
            later = {build_record(500).prediction_id}
            wait_for(lambda: queue.depth() == 0, 30, "the worker to drain the queue")
        stored = _stored_ids(store)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        queue.close()

    assert stored == later
    moved = [
        event
        for event in log_events(log)
        if event["event"] == "store file moved, writing the batch again"
    ]
    assert len(moved) == 1
    assert moved[0]["reason"] == "missing"
    assert moved[0]["store_path"] == str(store)


@pytest.mark.slow
def test_worker_queue_deleted_mid_run(tmp_path: Path) -> None:
    """A running worker drains the deleted queue, then the new file that producers write."""
    path = tmp_path / "queue.sqlite3"
    store = tmp_path / "store.sqlite3"
    log = tmp_path / "worker.log"
    producer = PredictionQueue(path)
    producer.append(build_record(0))
    worker = _start_worker(tmp_path, log)
    try:
        wait_for(lambda: build_record(0).prediction_id in _stored_ids(store), 30, "record 0")
        # Held records are still in the file when it is deleted, as acknowledged records
        # that the worker had not claimed yet would be.
        queue_held_records(producer, range(1, 4), available_at=time.time() + 1.0)
        _delete_with_sidecars(path)
        producer.append_many(build_record(i) for i in range(4, 6))
        expected = {build_record(i).prediction_id for i in range(6)}
        wait_for(lambda: _stored_ids(store) == expected, 30, "records 1 to 5")
        wait_for(
            lambda: "moved queue file drained, reopening its path" in _event_names(log),
            30,
            "the worker to reopen the queue path",
        )
        producer.append(build_record(6))
        expected.add(build_record(6).prediction_id)
        wait_for(lambda: _stored_ids(store) == expected, 30, "record 6")
        events = _event_names(log)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        producer.close()

    assert "queue file moved, draining the open file before reopening its path" in events
    assert path.exists()
    assert _queued_ids(path) == []
