"""Tests of a sink that rejects every record: the batch is held as an outage, not bisected."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue, PredictionRecord
from evidence_persistence import _worker as worker_module
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._sink import WriteResult
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.metrics import WorkerMetrics
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import PREDICTIONS_TABLE, build_record, stored_values
from structlog.testing import capture_logs


class CountingSink:
    """Count the calls of ``write_batch`` and delegate them."""

    def __init__(self, inner: SqliteSink) -> None:
        self.inner = inner
        self.calls = 0

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        self.calls += 1
        return self.inner.write_batch(records)

    def close(self) -> None:
        self.inner.close()


def _rejecting_store(path: Path) -> SqliteSink:
    """Return a store whose trigger rejects every prediction row, as a missing privilege would."""
    store = SqliteSink(path)
    store.file.write(
        lambda c: c.execute(
            f"CREATE TRIGGER deny BEFORE INSERT ON {PREDICTIONS_TABLE} "
            "BEGIN SELECT RAISE(ABORT, 'not authorized'); END"
        )
    )
    return store


def _drainer(queue: PredictionQueue, sink: object, batch_size: int) -> QueueDrainer:
    consumer = QueueConsumer(queue, owner="test", lease_seconds=30, max_attempts=1)
    return QueueDrainer(
        consumer,
        sink,  # type: ignore[arg-type]
        batch_size=batch_size,
        poll_interval_seconds=0.001,
        retry_backoff_max_seconds=0.01,
        metrics=WorkerMetrics(queue),
    )


def _attempts(queue: PredictionQueue) -> list[int]:
    rows = queue.file.read(
        lambda c: c.execute("SELECT attempts FROM queue_items ORDER BY seq").fetchall()
    )
    return [int(row[0]) for row in rows]


@pytest.mark.parametrize("records", [4, 40, 500])
def test_sink_rejecting_all_holds_batch(tmp_path: Path, records: int) -> None:
    """Four failing writes release the whole batch with its attempts given back."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(records))
    sink = CountingSink(_rejecting_store(tmp_path / "store.sqlite3"))
    drainer = _drainer(queue, sink, batch_size=records)

    with capture_logs() as logs:
        assert drainer.drain_once() == records

    assert sink.calls == 4
    assert queue.depth() == records
    assert queue.dead_letter_count() == 0
    assert _attempts(queue) == [0] * records
    released = [entry for entry in logs if entry["event"].startswith("sink rejected every")]
    assert [(entry["records"], entry["error_type"], entry["error_code"]) for entry in released] == [
        (records, "SinkRecordError", "SQLITE_CONSTRAINT_TRIGGER")
    ]
    metrics = drainer.metrics
    assert metrics is not None
    samples = {
        sample.labels["outcome"]: sample.value
        for sample in metrics.batches.collect()[0].samples
        if sample.name.endswith("_total")
    }
    assert samples == {"sink_rejects_all": 1.0}


@pytest.mark.parametrize("records", [1, 3])
def test_small_batch_isolated_per_record(tmp_path: Path, records: int) -> None:
    """Below four records each record is tried alone and dead-lettered, as before."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(records))
    sink = CountingSink(_rejecting_store(tmp_path / "store.sqlite3"))
    drainer = _drainer(queue, sink, batch_size=records)

    drainer.run(threading.Event(), exit_when_empty=True)

    assert queue.depth() == 0
    assert queue.dead_letter_count() == records
    assert sink.calls == 2 * records - 1


def test_sink_fault_cleared_then_drained(tmp_path: Path) -> None:
    """Once the sink accepts rows again, the held batch is written in full."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(40))
    store = _rejecting_store(tmp_path / "store.sqlite3")
    drainer = _drainer(queue, store, batch_size=40)
    drainer.drain_once()

    store.file.write(lambda c: c.execute("DROP TRIGGER deny"))
    queue.file.write(lambda c: c.execute("UPDATE queue_items SET available_at = 0"))
    drainer.run(threading.Event(), exit_when_empty=True)

    assert queue.depth() == 0
    assert queue.dead_letter_count() == 0
    assert len(stored_values(store.path, PREDICTIONS_TABLE, "PREDICTION_ID")) == 40


class PoisonSink:
    """Raise ValueError for any batch that contains a poisoned policy number."""

    def __init__(self, inner: SqliteSink, poisoned: set[str]) -> None:
        self.inner = inner
        self.poisoned = poisoned
        self.calls = 0

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        self.calls += 1
        if any(record.policy_number in self.poisoned for record in records):
            msg = "value rejected by the store"
            raise ValueError(msg)
        return self.inner.write_batch(records)

    def close(self) -> None:
        self.inner.close()


def test_two_bad_records_in_both_halves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad records in both halves and a good random record: only the bad ones are dead."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(8))
    sink = PoisonSink(SqliteSink(tmp_path / "store.sqlite3"), {"POL000001", "POL000006"})
    monkeypatch.setattr(worker_module.random, "randrange", lambda _stop: 3)
    drainer = _drainer(queue, sink, batch_size=8)

    drainer.drain_once()

    assert queue.depth() == 0
    letters = drainer.consumer.list_dead_letters()
    assert sorted(letter.prediction_id for letter in letters) == ["pred-000001", "pred-000006"]
    stored = sorted(stored_values(sink.inner.path, PREDICTIONS_TABLE, "PREDICTION_ID"))
    assert [f"pred-{i:06d}" for i in (0, 2, 3, 4, 5, 7)] == stored
    # The batch, its halves and the probe, then five writes in the first half without the
    # probe and four in the second half, which keeps its known error.
    assert sink.calls == 13


def test_bad_probe_holds_then_drains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe that draws a bad record keeps the batch queued once; a good draw isolates them."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(8))
    sink = PoisonSink(SqliteSink(tmp_path / "store.sqlite3"), {"POL000001", "POL000006"})
    draws = iter([1, 3])
    monkeypatch.setattr(worker_module.random, "randrange", lambda _stop: next(draws))
    drainer = _drainer(queue, sink, batch_size=8)

    drainer.drain_once()
    assert (queue.depth(), queue.dead_letter_count()) == (8, 0)

    queue.file.write(lambda c: c.execute("UPDATE queue_items SET available_at = 0"))
    drainer.drain_once()
    assert (queue.depth(), queue.dead_letter_count()) == (0, 2)
