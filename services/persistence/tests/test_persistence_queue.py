"""Tests of PredictionQueue: appends, depth, limits and unwritable files."""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from evidence_persistence import (
    PersistenceError,
    PredictionQueue,
    QueueFullError,
    QueueUnavailableError,
)
from persistence_testkit import build_record, readonly_prefix


def test_queue_empty_depth_zero(queue: PredictionQueue) -> None:
    """A new queue has depth 0, oldest age 0.0 and no dead letters."""
    assert queue.depth() == 0
    assert queue.oldest_age_seconds() == 0.0
    assert queue.dead_letter_count() == 0


def test_queue_append_counts_one(queue: PredictionQueue) -> None:
    """One append makes depth 1 and the row is in the file for another connection."""
    queue.append(build_record(1))
    assert queue.depth() == 1
    other = sqlite3.connect(queue.path)
    assert other.execute("SELECT prediction_id FROM queue_items").fetchall() == [("pred-000001",)]
    other.close()


def test_queue_append_many_counts_all(queue: PredictionQueue) -> None:
    """append_many of three records returns 3 and depth becomes 3; an empty list appends 0."""
    assert queue.append_many(build_record(i) for i in range(3)) == 3
    assert queue.append_many([]) == 0
    assert queue.depth() == 3


def test_queue_oldest_age_grows(queue: PredictionQueue) -> None:
    """The oldest age is measured from the first append."""
    queue.append(build_record(1))
    time.sleep(0.05)
    queue.append(build_record(2))
    assert 0.05 <= queue.oldest_age_seconds() < 5.0


def test_queue_max_depth_reached_rejects(tmp_path: Path) -> None:
    """With max_depth=3 the fourth append raises QueueFullError and depth stays 3."""
    bounded = PredictionQueue(tmp_path / "q.sqlite3", max_depth=3)
    for index in range(3):
        bounded.append(build_record(index))
    with pytest.raises(QueueFullError, match="holds 3 records and max_depth is 3") as caught:
        bounded.append(build_record(3))
    assert caught.value.depth == 3
    assert caught.value.max_depth == 3
    assert bounded.depth() == 3


def test_queue_append_many_over_limit_appends_none(tmp_path: Path) -> None:
    """A batch that does not fit is rejected whole."""
    bounded = PredictionQueue(tmp_path / "q.sqlite3", max_depth=4)
    bounded.append(build_record(0))
    with pytest.raises(QueueFullError, match="so 4 more cannot be appended"):
        bounded.append_many(build_record(i) for i in range(1, 5))
    assert bounded.depth() == 1
    assert bounded.append_many(build_record(i) for i in range(1, 4)) == 3


def test_queue_full_is_persistence_error() -> None:
    """Callers can catch every queue failure through PersistenceError."""
    assert issubclass(QueueFullError, PersistenceError)
    assert issubclass(QueueUnavailableError, PersistenceError)


def test_queue_invalid_max_depth_rejected(tmp_path: Path) -> None:
    """max_depth below 1 raises ValueError."""
    with pytest.raises(ValueError, match="max_depth=0 must be at least 1"):
        PredictionQueue(tmp_path / "q.sqlite3", max_depth=0)


def test_queue_append_wrong_type_rejected(queue: PredictionQueue) -> None:
    """Appending something other than a record raises TypeError."""
    with pytest.raises(TypeError, match="expects a PredictionRecord, got dict"):
        queue.append({"prediction_id": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected PredictionRecord, got str"):
        queue.append_many(["x"])  # type: ignore[list-item]


def test_queue_creates_missing_directory(tmp_path: Path) -> None:
    """The parent directory of the queue file is created on first use."""
    nested = PredictionQueue(tmp_path / "var" / "deep" / "queue.sqlite3")
    nested.append(build_record(1))
    assert (tmp_path / "var" / "deep" / "queue.sqlite3").is_file()


def test_queue_directory_is_a_file_unavailable(tmp_path: Path) -> None:
    """A path whose parent is a regular file raises QueueUnavailableError, not OSError."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    broken = PredictionQueue(blocker / "queue.sqlite3")
    with pytest.raises(QueueUnavailableError, match="cannot create the directory"):
        broken.append(build_record(1))


def test_queue_disk_full_unavailable(queue: PredictionQueue) -> None:
    """SQLITE_FULL becomes QueueUnavailableError naming the cause."""
    queue.append(build_record(0))
    pages = queue.file.read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    queue.file.read(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    with pytest.raises(QueueUnavailableError, match="SQLITE_FULL"):
        queue.append_many(build_record(i) for i in range(1, 200))
    assert queue.depth() == 1


def test_queue_check_writable_passes(queue: PredictionQueue) -> None:
    """check_writable succeeds on a writable file and appends nothing."""
    queue.check_writable()
    assert queue.depth() == 0


_READONLY_CHILD = """
import sys
from persistence_testkit import build_record
from evidence_persistence import PredictionQueue, QueueUnavailableError
queue = PredictionQueue(sys.argv[1])
print(queue.depth())
try:
    queue.append(build_record(99))
except QueueUnavailableError as exc:
    print("unavailable:", exc)
try:
    queue.check_writable()
except QueueUnavailableError:
    print("probe failed")
"""


def test_queue_readonly_file_unavailable(tmp_path: Path) -> None:
    """Appending to a read-only queue file raises QueueUnavailableError; reads still work."""
    path = tmp_path / "queue.sqlite3"
    writable = PredictionQueue(path)
    writable.append(build_record(1))
    writable.close()
    path.chmod(0o444)
    result = subprocess.run(
        [*readonly_prefix(), sys.executable, "-c", _READONLY_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1"
    assert lines[1].startswith("unavailable: queue file")
    assert "SQLITE_READONLY" in lines[1]
    assert lines[2] == "probe failed"


_READONLY_RECOVERY_CHILD = """
import os, sys
from persistence_testkit import build_record
from evidence_persistence import PredictionQueue, QueueUnavailableError
queue = PredictionQueue(sys.argv[1])
try:
    queue.append(build_record(1))
    print("appended while read-only")
except QueueUnavailableError:
    print("unavailable")
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(sys.argv[1] + suffix):
        os.chmod(sys.argv[1] + suffix, 0o644)
queue.append(build_record(2))
print(queue.depth())
"""


def test_queue_readonly_file_recovers_when_writable(tmp_path: Path) -> None:
    """Once the read-only file is writable again, the same queue object appends again."""
    path = tmp_path / "queue.sqlite3"
    PredictionQueue(path).check_writable()
    path.chmod(0o444)
    result = subprocess.run(
        [*readonly_prefix(), sys.executable, "-c", _READONLY_RECOVERY_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["unavailable", "1"]


_DISK_FULL_CHILD = """
import resource, sys
from evidence_persistence import PredictionQueue, QueueUnavailableError
queue = PredictionQueue(sys.argv[1])
queue.check_writable()
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
try:
    queue.check_writable()
    outcome = "probe passed"
except QueueUnavailableError:
    outcome = "probe failed"
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
queue.check_writable()
print(outcome, queue.depth())
"""


def test_queue_check_writable_fails_on_full_disk(tmp_path: Path) -> None:
    """With file writes capped at 1 byte (RLIMIT_FSIZE), the probe fails, then recovers."""
    result = subprocess.run(
        [sys.executable, "-c", _DISK_FULL_CHILD, str(tmp_path / "queue.sqlite3")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "probe failed 0"


def test_queue_lock_held_past_retries_unavailable(tmp_path: Path) -> None:
    """A write lock held longer than all retries raises QueueUnavailableError, not sqlite3."""
    path = tmp_path / "queue.sqlite3"
    impatient = PredictionQueue(path, busy_timeout_ms=20, lock_retries=3)
    impatient.depth()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(QueueUnavailableError, match="held the write lock for more than 20 ms"):
            impatient.append(build_record(1))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    impatient.append(build_record(1))
    assert impatient.depth() == 1


def test_queue_lock_released_during_retries_succeeds(tmp_path: Path) -> None:
    """A lock that outlasts the busy timeout but not the retries costs time, not the record."""
    path = tmp_path / "queue.sqlite3"
    patient = PredictionQueue(path, busy_timeout_ms=30, lock_retries=6)
    patient.depth()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.12, lambda: holder.execute("ROLLBACK"))
    releaser.start()
    try:
        patient.append(build_record(1))
    finally:
        releaser.join()
        holder.close()
    assert patient.depth() == 1


def test_queue_deferred_read_then_write_no_busy_snapshot(tmp_path: Path) -> None:
    """Appends never fail with an instant BUSY when another connection committed meanwhile."""
    path = tmp_path / "queue.sqlite3"
    first = PredictionQueue(path)
    second = PredictionQueue(path)
    for index in range(50):
        first.append(build_record(2 * index))
        second.append(build_record(2 * index + 1))
    assert first.depth() == 100


def test_queue_threads_share_one_object(queue: PredictionQueue) -> None:
    """Eight threads appending through one queue object lose nothing."""

    def append_range(start: int) -> None:
        for index in range(start, start + 50):
            queue.append(build_record(index))

    threads = [threading.Thread(target=append_range, args=(n * 50,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert queue.depth() == 400


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_queue_after_fork_child_opens_own_connection(queue: PredictionQueue) -> None:
    """A queue used before fork() works in the child, which opens its own connection."""
    queue.append(build_record(1))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            queue.append(build_record(2))
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert queue.depth() == 2


def test_queue_append_many_beyond_one_statement(queue: PredictionQueue) -> None:
    """250 records, more than one INSERT statement carries, are appended in order in one go."""
    assert queue.append_many(build_record(i) for i in range(250)) == 250
    assert queue.depth() == 250
    connection = sqlite3.connect(queue.path)
    ids = [
        row[0] for row in connection.execute("SELECT prediction_id FROM queue_items ORDER BY seq")
    ]
    connection.close()
    assert ids == [f"pred-{i:06d}" for i in range(250)]


def test_queue_large_append_over_limit_appends_none(tmp_path: Path) -> None:
    """A 150-record batch that does not fit below max_depth is rejected whole."""
    bounded = PredictionQueue(tmp_path / "q.sqlite3", max_depth=200)
    bounded.append_many(build_record(i) for i in range(100))
    with pytest.raises(QueueFullError, match="holds 100 records and max_depth is 200, so 150"):
        bounded.append_many(build_record(i) for i in range(100, 250))
    assert bounded.depth() == 100
    assert bounded.append_many(build_record(i) for i in range(100, 200)) == 100
    assert bounded.depth() == 200


def test_queue_brief_lock_short_wait(tmp_path: Path) -> None:
    """A lock held 4 ms costs an append less than it costs SQLite's own busy handler.

    SQLite's busy handler tries after 1, 3 and 8 ms, so it gets the lock at about 8 ms. The
    queue tries again after 50 µs, doubling up to 1 ms, so it gets it about 1 ms after the
    release. The two kinds of writer alternate, 30 collisions each, so both see the same load.
    """
    path = tmp_path / "queue.sqlite3"
    patient = PredictionQueue(path)
    patient.depth()
    handler_writer = sqlite3.connect(path, isolation_level=None, timeout=1.0)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def collide(write: Callable[[int], object], index: int) -> float:
        holder.execute("BEGIN IMMEDIATE")
        releaser = threading.Timer(0.004, lambda: holder.execute("ROLLBACK"))
        started = time.perf_counter()
        releaser.start()
        write(index)
        waited = time.perf_counter() - started
        releaser.join()
        return waited

    def append_with_handler(index: int) -> None:
        handler_writer.execute("BEGIN IMMEDIATE")
        handler_writer.execute(
            "INSERT INTO queue_items (prediction_id, enqueued_at, payload, features) "
            "VALUES (?, 0, x'00', x'00')",
            (f"handler-{index}",),
        )
        handler_writer.execute("COMMIT")

    records = [build_record(index) for index in range(30)]
    queue_waits, handler_waits = [], []
    for index in range(30):
        queue_waits.append(collide(lambda i: patient.append(records[i]), index))
        handler_waits.append(collide(append_with_handler, index))
    holder.close()
    handler_writer.close()
    assert patient.depth() == 60
    assert statistics.median(queue_waits) < 0.8 * statistics.median(handler_waits)
