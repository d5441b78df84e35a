"""Lease expiry: a crash counts against a record only when the record was claimed alone.

The consumer tests expire leases by waiting them out, as a killed worker would leave them. The
process tests kill real workers with SIGKILL, or let one die on one record through
``persistence_poison_worker.py``, against real queue and store files.
"""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import _LIMITED_ROWS, _NORMAL_ROWS, ClaimedItem, QueueConsumer
from evidence_persistence._queue import QUEUE_SCHEMA_VERSION
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import (
    PREDICTIONS_TABLE,
    build_record,
    child_environment,
    cli_argv,
    query_store,
    readonly_prefix,
    start_worker,
    stored_values,
    wait_for,
)

HERE = Path(__file__).parent
POISON_WORKER = HERE / "persistence_poison_worker.py"
LEASE = 0.02


def _consumer(queue: PredictionQueue, max_attempts: int = 3) -> QueueConsumer:
    return QueueConsumer(queue, owner="test-worker", lease_seconds=LEASE, max_attempts=max_attempts)


def _expire() -> None:
    """Wait until every lease taken so far has ended, as after a worker's SIGKILL."""
    time.sleep(LEASE * 2)


def _queue_rows(queue: PredictionQueue) -> dict[str, tuple[int, int | None]]:
    """Return the attempts and batch_limit of each queued record, by prediction id."""
    connection = sqlite3.connect(queue.path)
    try:
        rows = connection.execute("SELECT prediction_id, attempts, batch_limit FROM queue_items")
        return {row[0]: (row[1], row[2]) for row in rows}
    finally:
        connection.close()


def _ids(items: list[ClaimedItem]) -> list[str]:
    return [item.prediction_id for item in items]


def test_claim_without_expiry_takes_full_batch(queue: PredictionQueue) -> None:
    """With no expired lease a claim takes the full batch and limits no record."""
    queue.append_many(build_record(i) for i in range(600))
    items = QueueConsumer(queue, owner="test-worker", lease_seconds=60).claim(500)

    assert len(items) == 500
    assert {item.attempts for item in items} == {1}
    assert {limit for _, limit in _queue_rows(queue).values()} == {None}


def test_expired_batch_gets_attempts_back(queue: PredictionQueue) -> None:
    """An expired batch of 10 gives its attempts back and is claimed again 5 at a time."""
    queue.append_many(build_record(i) for i in range(10))
    consumer = _consumer(queue)
    assert len(consumer.claim(10)) == 10
    _expire()

    again = consumer.claim(10)

    assert _ids(again) == [f"pred-{i:06d}" for i in range(5)]
    assert [item.attempts for item in again] == [1] * 5
    rows = _queue_rows(queue)
    assert {rows[f"pred-{i:06d}"] for i in range(5, 10)} == {(0, 5)}
    assert queue.dead_letter_count() == 0


def test_expired_lease_size_counts_rows_claimed(queue: PredictionQueue) -> None:
    """A claim of 3 rows of the 500 requested halves from 3, so the next batch has 1 record."""
    queue.append_many(build_record(i) for i in range(3))
    consumer = _consumer(queue)
    assert len(consumer.claim(500)) == 3
    _expire()

    assert _ids(consumer.claim(500)) == ["pred-000000"]
    assert {limit for _, limit in _queue_rows(queue).values()} == {1}


def test_repeated_batch_expiry_dead_letters_nothing(queue: PredictionQueue) -> None:
    """Batches expire more often than max_attempts, and no record claimed with others is blamed."""
    queue.append_many(build_record(i) for i in range(16))
    consumer = _consumer(queue, max_attempts=3)
    sizes = []
    for _ in range(5):
        sizes.append(len(consumer.claim(16)))
        _expire()

    assert sizes == [16, 8, 4, 2, 1]
    assert queue.dead_letter_count() == 0
    assert max(attempts for attempts, _ in _queue_rows(queue).values()) == 1


def test_claim_skips_rows_leased_by_itself(queue: PredictionQueue) -> None:
    """A lease that ends during a claim of several transactions does not give its rows again."""
    queue.append_many(build_record(i) for i in range(150))
    consumer = QueueConsumer(queue, owner="test-worker", lease_seconds=1e-6, max_attempts=5)

    items = consumer.claim(300)

    seqs = [item.seq for item in items]
    assert len(seqs) == 150
    assert len(set(seqs)) == 150
    assert {item.attempts for item in items} == {1}


def test_claim_scans_keep_their_plans(queue: PredictionQueue) -> None:
    """The normal claim scans queue_items by rowid, the limited one uses queue_items_leased."""
    queue.append(build_record(0))
    connection = sqlite3.connect(queue.path)
    try:
        normal = connection.execute(f"EXPLAIN QUERY PLAN {_NORMAL_ROWS}", (0, 1)).fetchall()
        limited = connection.execute(f"EXPLAIN QUERY PLAN {_LIMITED_ROWS}", (0, 1)).fetchall()
    finally:
        connection.close()

    normal_plan = " | ".join(row[3] for row in normal)
    limited_plan = " | ".join(row[3] for row in limited)
    assert normal_plan == "SCAN queue_items"
    assert "USING INDEX queue_items_leased" in limited_plan


def test_limited_records_claimed_before_others(queue: PredictionQueue) -> None:
    """After an expiry the limited records form their own batches, and new records wait."""
    queue.append_many(build_record(i) for i in range(4))
    consumer = _consumer(queue)
    assert len(consumer.claim(4)) == 4
    _expire()
    queue.append_many(build_record(i) for i in range(4, 8))

    first = consumer.claim(10)
    second = consumer.claim(10)
    third = consumer.claim(10)

    assert _ids(first) == ["pred-000000", "pred-000001"]
    assert _ids(second) == ["pred-000002", "pred-000003"]
    assert _ids(third) == [f"pred-{i:06d}" for i in range(4, 8)]


def test_limited_claim_keeps_byte_budget(queue: PredictionQueue) -> None:
    """A claim of limited records also stops at max_batch_bytes, taking the first always."""
    queue.append_many(build_record(i) for i in range(4))
    assert len(_consumer(queue).claim(4)) == 4
    _expire()
    by_bytes = QueueConsumer(
        queue, owner="test-worker", lease_seconds=LEASE, max_attempts=3, max_batch_bytes=1
    )

    assert _ids(by_bytes.claim(4)) == ["pred-000000"]
    assert _queue_rows(queue)["pred-000000"] == (1, 2)
    assert _queue_rows(queue)["pred-000001"] == (0, 2)


def test_poison_record_dead_lettered_alone(queue: PredictionQueue) -> None:
    """A record whose batches always crash ends in dead letters alone, and the rest complete."""
    queue.append_many(build_record(i) for i in range(20))
    poison = "pred-000013"
    consumer = _consumer(queue, max_attempts=3)
    crashes = 0
    for _ in range(50):
        items = consumer.claim(20)
        if not items:
            break
        if poison in _ids(items):
            crashes += 1
            _expire()
            continue
        consumer.complete([item.seq for item in items])

    letters = consumer.list_dead_letters()
    assert [letter.prediction_id for letter in letters] == [poison]
    assert letters[0].attempts == 3
    assert letters[0].error.startswith("LeaseExpired: the lease expired while this record")
    assert queue.depth() == 0
    assert crashes <= math.ceil(math.log2(20)) + 3


def _create_version_1_queue(path: Path, *, leased_until: float) -> None:
    """Write a queue file as version 1 of the schema left it: no lease columns, no index."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE queue_items (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, prediction_id TEXT NOT NULL,
                enqueued_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                available_at REAL NOT NULL DEFAULT 0, lease_owner TEXT, last_error TEXT,
                payload BLOB NOT NULL, features BLOB NOT NULL, mib_xml BLOB, rx_xml BLOB);
            CREATE TABLE dead_letters (
                seq INTEGER PRIMARY KEY, prediction_id TEXT NOT NULL, enqueued_at REAL NOT NULL,
                failed_at REAL NOT NULL, attempts INTEGER NOT NULL, error TEXT NOT NULL,
                payload BLOB NOT NULL, features BLOB NOT NULL, mib_xml BLOB, rx_xml BLOB);
            CREATE TABLE queue_depth (
                id INTEGER PRIMARY KEY CHECK (id = 1), depth INTEGER NOT NULL);
            INSERT INTO queue_depth (id, depth) VALUES (1, 0);
            CREATE TRIGGER queue_items_count_insert AFTER INSERT ON queue_items
                BEGIN UPDATE queue_depth SET depth = depth + 1 WHERE id = 1; END;
            CREATE TRIGGER queue_items_count_delete AFTER DELETE ON queue_items
                BEGIN UPDATE queue_depth SET depth = depth - 1 WHERE id = 1; END;
            PRAGMA user_version = 1;
            """
        )
        # The version 1 worker that claimed record 0 four times died holding it.
        source = PredictionQueue(path.with_name("source.sqlite3"))
        source.append_many(build_record(i) for i in range(2))
        rows = source.file.read(
            lambda c: c.execute(
                "SELECT prediction_id, enqueued_at, payload, features, mib_xml, rx_xml "
                "FROM queue_items ORDER BY seq"
            ).fetchall()
        )
        source.close()
        connection.executemany(
            "INSERT INTO queue_items (prediction_id, enqueued_at, payload, features, mib_xml, "
            "rx_xml) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        connection.execute(
            "UPDATE queue_items SET attempts = 4, lease_owner = 'old-worker', available_at = ? "
            "WHERE prediction_id = 'pred-000000'",
            (leased_until,),
        )
    finally:
        connection.close()


def test_version_1_queue_migrated(tmp_path: Path) -> None:
    """A version 1 queue gains the lease columns and index, and its expired lease is not blamed."""
    path = tmp_path / "queue.sqlite3"
    _create_version_1_queue(path, leased_until=time.time() - 1)
    queue = PredictionQueue(path)

    items = _consumer(queue, max_attempts=5).claim(10)

    connection = sqlite3.connect(path)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        columns = {row[1] for row in connection.execute("PRAGMA table_info(queue_items)")}
        indexes = {row[1] for row in connection.execute("PRAGMA index_list(queue_items)")}
    finally:
        connection.close()
    assert version == QUEUE_SCHEMA_VERSION
    assert {"lease_size", "batch_limit"} <= columns
    assert "queue_items_leased" in indexes
    # Its lease size is unknown, so the expiry gives the attempt back and limits it to 50.
    assert [(item.prediction_id, item.attempts) for item in items] == [("pred-000000", 4)]
    assert _queue_rows(queue)["pred-000000"] == (4, 50)
    assert [(item.prediction_id, item.attempts) for item in _consumer(queue).claim(10)] == [
        ("pred-000001", 1)
    ]
    queue.close()


def test_version_1_migration_idempotent(tmp_path: Path) -> None:
    """A second migration of the same file, as by a second process, changes nothing."""
    path = tmp_path / "queue.sqlite3"
    _create_version_1_queue(path, leased_until=time.time() + 60)
    PredictionQueue(path).depth()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 1")
    connection.close()

    queue = PredictionQueue(path)

    assert queue.depth() == 2
    queue.close()


def _run_cli(
    path: Path, *arguments: str, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), *cli_argv(*arguments)],
        env=child_environment(path.parent),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_leaves_version_1_queue(tmp_path: Path) -> None:
    """status and dead-letters list read a version 1 queue without migrating it."""
    path = tmp_path / "queue.sqlite3"
    _create_version_1_queue(path, leased_until=time.time() + 60)

    status = _run_cli(path, "status")
    letters = _run_cli(path, "dead-letters", "list", "--json")

    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["depth"] == 2
    assert report["dead_letters"] == 0
    assert report["integrity"] == "ok"
    assert letters.returncode == 0, letters.stderr
    assert letters.stdout == ""
    assert query_store(path, "PRAGMA user_version") == [(1,)]


def test_status_reads_readonly_version_1_queue(tmp_path: Path) -> None:
    """status and dead-letters list work on a version 1 queue file without write permission."""
    path = tmp_path / "queue.sqlite3"
    _create_version_1_queue(path, leased_until=time.time() + 60)
    path.chmod(0o444)
    prefix = readonly_prefix()

    status = _run_cli(path, "status", prefix=prefix)
    letters = _run_cli(path, "dead-letters", "list", "--json", prefix=prefix)

    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["depth"] == 2
    assert letters.returncode == 0, letters.stderr
    assert query_store(path, "PRAGMA user_version") == [(1,)]


def _leased_by(queue: PredictionQueue, pid: int) -> bool:
    connection = sqlite3.connect(queue.path)
    try:
        row = connection.execute(
            "SELECT count(*) FROM queue_items WHERE lease_owner LIKE ?", (f"%:{pid}:%",)
        ).fetchone()
        return int(row[0]) > 0
    finally:
        connection.close()


@pytest.mark.slow
def test_worker_killed_on_locked_store_dead_letters_nothing(tmp_path: Path) -> None:
    """Eight SIGKILLs on a locked store leave no dead letter, and all 249 are then stored."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(249))
    store = tmp_path / "store.sqlite3"
    SqliteSink(store).file.write(lambda _connection: None)
    locker = sqlite3.connect(store, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    log = tmp_path / "worker.log"
    settings = {"lease_seconds": "1", "max_attempts": "5", "poll_interval_seconds": "0.05"}
    try:
        for kill in range(1, 9):
            worker = start_worker(tmp_path, log, **settings)

            def claimed(pid: int = worker.pid) -> bool:
                return _leased_by(queue, pid) or queue.dead_letter_count() > 0

            wait_for(claimed, 60, "the worker's claim")
            # The worker now waits for the store's lock, and its lease ends meanwhile.
            time.sleep(1.5)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            assert queue.dead_letter_count() == 0, f"dead letters after SIGKILL {kill}"
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    final = subprocess.run(
        [*cli_argv("worker", "--once")],
        env=child_environment(tmp_path, **settings),
        capture_output=True,
        timeout=120,
        check=False,
    )

    assert final.returncode == 0, final.stdout[-2000:]
    stored = stored_values(store, PREDICTIONS_TABLE, "PREDICTION_ID")
    assert sorted(stored) == [f"pred-{i:06d}" for i in range(249)]
    assert queue.dead_letter_count() == 0
    assert queue.depth() == 0


@pytest.mark.slow
def test_worker_crashing_on_one_record_dead_letters_it(tmp_path: Path) -> None:
    """A record that kills the worker ends in dead letters alone, and the other 39 are stored."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(40))
    poison = "pred-000013"
    environment = child_environment(
        tmp_path,
        batch_size="20",
        lease_seconds="0.5",
        max_attempts="3",
        poll_interval_seconds="0.01",
    )
    statuses = []
    for _ in range(30):
        run = subprocess.run(
            [sys.executable, str(POISON_WORKER), poison, "--once"],
            env=environment,
            capture_output=True,
            timeout=60,
            check=False,
        )
        statuses.append(run.returncode)
        if run.returncode != 137:
            break

    assert statuses[-1] == 0, run.stdout[-2000:]
    assert len(statuses) - 1 <= math.ceil(math.log2(20)) + 3
    letters = QueueConsumer(queue, owner="test").list_dead_letters()
    assert [letter.prediction_id for letter in letters] == [poison]
    assert letters[0].attempts == 3
    assert letters[0].error.startswith("LeaseExpired")
    stored = stored_values(tmp_path / "store.sqlite3", PREDICTIONS_TABLE, "PREDICTION_ID")
    assert sorted(stored) == [f"pred-{i:06d}" for i in range(40) if i != 13]
    assert queue.depth() == 0
