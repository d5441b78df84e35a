"""Tests of claims bounded by stored bytes as well as by record count."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._record import encode_record
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.config import Settings
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import RAW_TABLE, build_record, stored_values

XML = b"<IntelRXResponse>" + b"x" * 9_983 + b"</IntelRXResponse>"


def _fill(queue: PredictionQueue, count: int) -> int:
    """Append ``count`` records of equal stored size; return that size in bytes."""
    records = [build_record(i, risk_score=0.5, rx_xml=XML) for i in range(count)]
    queue.append_many(records)
    encoded = encode_record(records[0])
    return len(encoded.payload) + len(encoded.features) + len(XML)


@pytest.mark.parametrize(
    ("budget_records", "extra_bytes", "expected"),
    [
        (0, 1, 1),  # a budget below one record still takes the first record
        (1, 0, 1),
        (3, 0, 3),  # the fourth record would start at the budget, so it stays
        (3, 1, 4),  # the fourth record starts below the budget, so it is taken
        (150, 0, 150),  # the budget runs out in the second transaction of 100 rows
    ],
)
def test_claim_stops_at_byte_budget(
    queue: PredictionQueue, budget_records: int, extra_bytes: int, expected: int
) -> None:
    """A claim takes records while those before them hold fewer bytes than the budget."""
    size = _fill(queue, 250)
    budget = budget_records * size + extra_bytes
    consumer = QueueConsumer(queue, owner="test", max_batch_bytes=budget)

    items = consumer.claim(500)

    assert [item.prediction_id for item in items] == [f"pred-{i:06d}" for i in range(expected)]
    assert [item.attempts for item in items] == [1] * expected
    assert consumer.claim(500)[0].prediction_id == f"pred-{expected:06d}"


def test_claim_without_byte_budget_takes_limit(queue: PredictionQueue) -> None:
    """Without a budget a claim takes up to its record limit, whatever the sizes."""
    _fill(queue, 250)
    consumer = QueueConsumer(queue, owner="test", max_batch_bytes=None)
    assert len(consumer.claim(500)) == 250


def test_claim_empty_queue_with_budget(queue: PredictionQueue) -> None:
    """A budgeted claim of an empty queue returns nothing."""
    queue.check_writable()
    consumer = QueueConsumer(queue, owner="test", max_batch_bytes=1_000)
    assert consumer.claim(500) == []


def test_batch_max_bytes_setting(clean_settings: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """PERSISTENCE_BATCH_MAX_BYTES defaults to 64 MiB and rejects 0."""
    assert Settings().batch_max_bytes == 64 * 1024 * 1024
    monkeypatch.setenv("PERSISTENCE_BATCH_MAX_BYTES", "0")
    with pytest.raises(ValueError, match="batch_max_bytes"):
        Settings()


def test_consumer_rejects_zero_byte_budget(queue: PredictionQueue) -> None:
    """A byte budget below 1 raises ValueError naming the argument."""
    with pytest.raises(ValueError, match=r"max_batch_bytes=0 must be at least 1, or None"):
        QueueConsumer(queue, owner="test", max_batch_bytes=0)


def test_drainer_batches_split_by_bytes(queue: PredictionQueue, tmp_path: Path) -> None:
    """Ten records with a budget of three records' bytes are written in four batches."""
    size = _fill(queue, 10)
    consumer = QueueConsumer(queue, owner="test", max_batch_bytes=3 * size)
    sink = SqliteSink(tmp_path / "store.sqlite3", store_raw_evidence=True)
    drainer = QueueDrainer(consumer, sink, batch_size=500, poll_interval_seconds=0.001)

    drainer.run(threading.Event(), exit_when_empty=True)

    assert drainer.stats.batches == 4
    assert drainer.stats.records_persisted == 10
    assert len(stored_values(sink.path, RAW_TABLE, "EVIDENCE_ID")) == 10
