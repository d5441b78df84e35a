"""Tests of QueueConsumer: leases, attempts, dead letters and replays."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from persistence_testkit import build_record
from structlog.testing import capture_logs


def _consumer(queue: PredictionQueue, **options: float) -> QueueConsumer:
    return QueueConsumer(queue, owner="test-worker", **options)  # type: ignore[arg-type]


def test_claim_empty_queue_returns_nothing(queue: PredictionQueue) -> None:
    """Claiming from an empty queue returns an empty list."""
    assert _consumer(queue).claim(10) == []


def test_claim_oldest_first_with_limit(queue: PredictionQueue) -> None:
    """A claim returns the oldest records up to the limit, decoded, with attempt 1."""
    queue.append_many(build_record(i) for i in range(5))
    items = _consumer(queue).claim(3)
    assert [i.prediction_id for i in items] == ["pred-000000", "pred-000001", "pred-000002"]
    assert [i.attempts for i in items] == [1, 1, 1]
    assert build_record(1) == items[1].record


def test_claim_leased_records_not_claimed_twice(queue: PredictionQueue) -> None:
    """A second claim while the lease runs gets only unclaimed records."""
    queue.append_many(build_record(i) for i in range(4))
    consumer = _consumer(queue, lease_seconds=60)
    first = consumer.claim(3)
    second = consumer.claim(3)
    assert len(first) == 3
    assert [i.prediction_id for i in second] == ["pred-000003"]
    assert consumer.claim(3) == []
    assert queue.depth() == 4


def test_claim_expired_lease_redelivered(queue: PredictionQueue) -> None:
    """Records of a worker that never completed come back after the lease, attempt 2."""
    queue.append(build_record(1))
    consumer = _consumer(queue, lease_seconds=0.05)
    assert len(consumer.claim(10)) == 1
    time.sleep(0.08)
    again = consumer.claim(10)
    assert [i.attempts for i in again] == [2]


def test_complete_deletes_records(queue: PredictionQueue) -> None:
    """Completed records leave the queue; others stay."""
    queue.append_many(build_record(i) for i in range(3))
    consumer = _consumer(queue)
    items = consumer.claim(2)
    consumer.complete([i.seq for i in items])
    assert queue.depth() == 1
    consumer.complete([])
    assert queue.depth() == 1


def test_release_without_attempt_refunds(queue: PredictionQueue) -> None:
    """A release with count_attempt=False gives the attempt back and delays the record."""
    queue.append(build_record(1))
    consumer = _consumer(queue)
    item = consumer.claim(1)[0]
    consumer.release([item.seq], delay_seconds=0.05, error="sink down", count_attempt=False)
    assert consumer.claim(1) == []
    time.sleep(0.07)
    assert [i.attempts for i in consumer.claim(1)] == [1]


def test_fail_below_max_attempts_retries(queue: PredictionQueue) -> None:
    """A failure before max_attempts releases the record with its error stored."""
    queue.append(build_record(1))
    consumer = _consumer(queue, max_attempts=2)
    item = consumer.claim(1)[0]
    assert consumer.fail(item, "ValueError: bad", delay_seconds=0) is False
    connection = sqlite3.connect(queue.path)
    stored = connection.execute("SELECT attempts, last_error FROM queue_items").fetchall()
    connection.close()
    assert stored == [(1, "ValueError: bad")]
    assert queue.dead_letter_count() == 0


def test_fail_at_max_attempts_dead_letters(queue: PredictionQueue) -> None:
    """The failure on the last allowed attempt moves the record to the dead-letter table."""
    queue.append(build_record(1))
    consumer = _consumer(queue, max_attempts=2)
    consumer.fail(consumer.claim(1)[0], "ValueError: bad", delay_seconds=0)
    assert consumer.fail(consumer.claim(1)[0], "ValueError: still bad", delay_seconds=0)
    assert queue.depth() == 0
    assert queue.dead_letter_count() == 1
    letters = consumer.list_dead_letters()
    assert [letter.prediction_id for letter in letters] == ["pred-000001"]
    assert letters[0].error == "ValueError: still bad"
    assert letters[0].attempts == 2


def test_claim_after_repeated_crashes_dead_letters(queue: PredictionQueue) -> None:
    """A record whose lease expired max_attempts times is dead-lettered at the next claim."""
    queue.append(build_record(1))
    consumer = _consumer(queue, lease_seconds=0.01, max_attempts=2)
    for _ in range(2):
        assert len(consumer.claim(1)) == 1
        time.sleep(0.02)
    with capture_logs() as logs:
        assert consumer.claim(1) == []
    letters = consumer.list_dead_letters()
    assert len(letters) == 1
    assert "claimed alone, on attempt 2 of 2" in letters[0].error
    assert letters[0].attempts == 2
    events = [(entry["event"], entry.get("prediction_id")) for entry in logs]
    assert events == [("lease expired", None), ("record moved to dead letters", "pred-000001")]


def test_replay_selected_dead_letters(queue: PredictionQueue) -> None:
    """Replaying one id moves only that record back, with attempts reset."""
    queue.append_many(build_record(i) for i in range(3))
    consumer = _consumer(queue, max_attempts=1)
    for item in consumer.claim(3):
        consumer.fail(item, "RuntimeError: x", delay_seconds=0)
    assert queue.dead_letter_count() == 3
    assert consumer.replay_dead_letters(["pred-000001"]) == 1
    assert consumer.replay_dead_letters(["no-such-id"]) == 0
    assert consumer.replay_dead_letters([]) == 0
    assert queue.dead_letter_count() == 2
    replayed = consumer.claim(5)
    assert [(i.prediction_id, i.attempts) for i in replayed] == [("pred-000001", 1)]
    assert build_record(1) == replayed[0].record


def test_replay_all_dead_letters(queue: PredictionQueue) -> None:
    """Replaying with no ids moves every dead letter back."""
    queue.append_many(build_record(i) for i in range(2))
    consumer = _consumer(queue, max_attempts=1)
    for item in consumer.claim(2):
        consumer.fail(item, "RuntimeError: x", delay_seconds=0)
    assert consumer.replay_dead_letters() == 2
    assert queue.dead_letter_count() == 0
    assert queue.depth() == 2


def test_undecodable_payload_claimed_without_record(queue: PredictionQueue) -> None:
    """A corrupt payload comes back with record None and a decode error."""
    queue.append(build_record(1))
    connection = sqlite3.connect(queue.path)
    connection.execute("UPDATE queue_items SET payload = x'7b7b'")
    connection.commit()
    connection.close()
    consumer = _consumer(queue)
    item = consumer.claim(1)[0]
    assert item.record is None
    assert item.decode_error is not None
    assert "cannot be decoded" in item.decode_error
    assert consumer.fail(item, item.decode_error, delay_seconds=0)


@pytest.mark.parametrize(("option", "value"), [("lease_seconds", 0), ("max_attempts", 0)])
def test_consumer_invalid_options_rejected(
    queue: PredictionQueue, option: str, value: float
) -> None:
    """Non-positive lease or attempts raise ValueError naming the option."""
    with pytest.raises(ValueError, match=f"{option}=0"):
        _consumer(queue, **{option: value})


def test_claim_spans_several_transactions(queue: PredictionQueue) -> None:
    """A claim of 250 records takes three transactions of at most 100 rows, oldest first."""
    queue.append_many(build_record(i) for i in range(260))
    consumer = _consumer(queue)
    transactions = []
    write = queue.file.write

    def counting_write(work: Any, **options: Any) -> Any:
        transactions.append(work)
        return write(work, **options)

    queue.file.write = counting_write  # type: ignore[method-assign]
    items = consumer.claim(250)
    assert len(transactions) == 3
    assert [item.prediction_id for item in items] == [f"pred-{i:06d}" for i in range(250)]
    assert [item.record for item in items[:2]] == [build_record(0), build_record(1)]
    assert [item.prediction_id for item in consumer.claim(250)] == [
        f"pred-{i:06d}" for i in range(250, 260)
    ]


def test_complete_spans_several_transactions(queue: PredictionQueue) -> None:
    """Completing 250 records deletes all of them, 100 rows per transaction."""
    queue.append_many(build_record(i) for i in range(251))
    consumer = _consumer(queue)
    items = consumer.claim(250)
    transactions = []
    write = queue.file.write

    def counting_write(work: Any, **options: Any) -> Any:
        transactions.append(work)
        return write(work, **options)

    queue.file.write = counting_write  # type: ignore[method-assign]
    consumer.complete([item.seq for item in items])
    assert len(transactions) == 3
    assert queue.depth() == 1


def test_checkpoint_copies_wal(queue: PredictionQueue) -> None:
    """After a checkpoint every WAL page written so far is in the database file."""
    queue.append_many(build_record(i) for i in range(20))
    consumer = _consumer(queue)
    consumer.complete([item.seq for item in consumer.claim(20)])
    wal_pages, copied = queue.file.checkpoint()
    assert wal_pages > 0
    assert copied == wal_pages
