"""Tests of QueueDrainer in one process, with faulty sinks at the sink boundary."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import structlog
from evidence_persistence import (
    PredictionQueue,
    PredictionRecord,
    QueueUnavailableError,
    SinkRecordError,
    SinkUnavailableError,
)
from evidence_persistence._consumer import ClaimedItem, QueueConsumer
from evidence_persistence._sink import WriteResult
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.metrics import WorkerMetrics
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import PREDICTIONS_TABLE, build_record, stored_values
from structlog.testing import capture_logs


class OutageSink:
    """Raise SinkUnavailableError for the first ``outages`` calls, then delegate."""

    def __init__(self, inner: SqliteSink, outages: int) -> None:
        self.inner = inner
        self.outages = outages
        self.calls = 0

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        self.calls += 1
        if self.calls <= self.outages:
            msg = "store unreachable (simulated outage)"
            raise SinkUnavailableError(msg)
        return self.inner.write_batch(records)

    def close(self) -> None:
        self.inner.close()


class PoisonSink:
    """Raise ValueError for any batch that contains a poisoned policy number."""

    def __init__(self, inner: SqliteSink, poisoned: set[str]) -> None:
        self.inner = inner
        self.poisoned = poisoned
        self.batch_sizes: list[int] = []

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        self.batch_sizes.append(len(records))
        if any(record.policy_number in self.poisoned for record in records):
            msg = "value rejected by the store"
            raise ValueError(msg)
        return self.inner.write_batch(records)

    def close(self) -> None:
        self.inner.close()


def _drainer(
    queue: PredictionQueue, sink: object, *, max_attempts: int = 3, batch_size: int = 50
) -> QueueDrainer:
    consumer = QueueConsumer(queue, owner="test", lease_seconds=30, max_attempts=max_attempts)
    return QueueDrainer(
        consumer,
        sink,  # type: ignore[arg-type]
        batch_size=batch_size,
        poll_interval_seconds=0.001,
        retry_backoff_max_seconds=0.01,
        metrics=WorkerMetrics(queue),
    )


def _drain(drainer: QueueDrainer) -> None:
    drainer.run(threading.Event(), exit_when_empty=True)


def test_drainer_moves_everything(queue: PredictionQueue, tmp_path: Path) -> None:
    """120 records in batches of 50 end up in the store and the queue is empty."""
    queue.append_many(build_record(i) for i in range(120))
    store = SqliteSink(tmp_path / "store.sqlite3")
    drainer = _drainer(queue, store)
    _drain(drainer)
    assert queue.depth() == 0
    assert drainer.stats.batches == 3
    assert drainer.stats.records_persisted == 120
    assert len(set(stored_values(store.path, PREDICTIONS_TABLE, "PREDICTION_ID"))) == 120


def test_drainer_sink_outage_holds_then_drains(queue: PredictionQueue, tmp_path: Path) -> None:
    """During an outage records stay queued without using attempts; afterwards all arrive."""
    queue.append_many(build_record(i) for i in range(30))
    sink = OutageSink(SqliteSink(tmp_path / "store.sqlite3"), outages=6)
    drainer = _drainer(queue, sink, max_attempts=2)
    for _ in range(6):
        drainer.drain_once()
        assert queue.depth() == 30
        queue.file.write(lambda c: c.execute("UPDATE queue_items SET available_at = 0"))
    _drain(drainer)
    assert queue.depth() == 0
    assert queue.dead_letter_count() == 0
    assert drainer.stats.sink_outages == 6
    assert len(stored_values(sink.inner.path, PREDICTIONS_TABLE, "PREDICTION_ID")) == 30


def test_drainer_isolates_poison_record(queue: PredictionQueue, tmp_path: Path) -> None:
    """One bad record among 16 is dead-lettered; the other 15 are written."""
    queue.append_many(build_record(i) for i in range(16))
    sink = PoisonSink(SqliteSink(tmp_path / "store.sqlite3"), poisoned={"POL000005"})
    drainer = _drainer(queue, sink, max_attempts=1, batch_size=16)
    _drain(drainer)
    assert queue.depth() == 0
    assert queue.dead_letter_count() == 1
    stored = set(stored_values(sink.inner.path, PREDICTIONS_TABLE, "PREDICTION_ID"))
    assert {f"pred-{i:06d}" for i in range(16) if i != 5} == stored
    assert sink.batch_sizes[0] == 16
    consumer = drainer.consumer
    letters = consumer.list_dead_letters()
    assert letters[0].error == "ValueError: value rejected by the store"


def test_drainer_poison_retried_until_max_attempts(queue: PredictionQueue, tmp_path: Path) -> None:
    """A failing record is retried and dead-lettered on its third attempt."""
    queue.append(build_record(1, policy_number="BAD"))
    sink = PoisonSink(SqliteSink(tmp_path / "store.sqlite3"), poisoned={"BAD"})
    drainer = _drainer(queue, sink, max_attempts=3)
    _drain(drainer)
    assert len(sink.batch_sizes) == 3
    assert [letter.attempts for letter in drainer.consumer.list_dead_letters()] == [3]


def test_drainer_metrics_counted(queue: PredictionQueue, tmp_path: Path) -> None:
    """The registry reports rows, records, batches, dead letters and queue gauges."""
    queue.append_many(build_record(i) for i in range(10))
    queue.append(build_record(99, policy_number="BAD"))
    sink = PoisonSink(SqliteSink(tmp_path / "store.sqlite3"), poisoned={"BAD"})
    drainer = _drainer(queue, sink, max_attempts=1)
    _drain(drainer)
    registry = drainer.metrics.registry if drainer.metrics else None
    assert registry is not None
    value = registry.get_sample_value
    assert value("evidence_persistence_rows_written_total", {"table": "MODEL_PREDICTIONS"}) == 10.0
    assert value("evidence_persistence_records_persisted_total") == 10.0
    assert value("evidence_persistence_dead_lettered_total") == 1.0
    assert value("evidence_persistence_dead_letters") == 1.0
    assert value("evidence_persistence_queue_depth") == 0.0
    assert value("evidence_persistence_queue_up") == 1.0
    batches_timed = value("evidence_persistence_batch_duration_seconds_count")
    assert batches_timed is not None
    assert batches_timed >= 1.0


def test_drainer_logs_ids_not_values(queue: PredictionQueue, tmp_path: Path) -> None:
    """Logs carry ids and counts, never feature values, XML or the error text of bad data."""
    secret_xml = b"<IntelRXResponse><DrugGenericName>METFORMIN</DrugGenericName></IntelRXResponse>"
    queue.append(build_record(1, rx_xml=secret_xml, features=(123.456,) * 105))
    queue.append(build_record(2, policy_number="BAD"))
    sink = PoisonSink(SqliteSink(tmp_path / "store.sqlite3", store_raw_evidence=True), {"BAD"})
    with capture_logs() as logs:
        _drain(_drainer(queue, sink, max_attempts=1))
    text = json.dumps(logs, default=str)
    assert "METFORMIN" not in text
    assert "123.456" not in text
    assert "value rejected" not in text
    events = [entry["event"] for entry in logs]
    assert "worker started" in events
    assert "record moved to dead letters" in events
    assert "worker stopped" in events
    dead = next(e for e in logs if e["event"] == "record moved to dead letters")
    assert dead["prediction_id"] == "pred-000002"


def test_drainer_stop_event_ends_run(queue: PredictionQueue, tmp_path: Path) -> None:
    """A set stop event ends run() before any batch."""
    queue.append(build_record(1))
    stop = threading.Event()
    stop.set()
    stats = _drainer(queue, SqliteSink(tmp_path / "s.sqlite3")).run(stop)
    assert stats.batches == 0
    assert queue.depth() == 1


def test_drainer_on_stop_before_last_line(queue: PredictionQueue, tmp_path: Path) -> None:
    """on_stop runs once, in the draining thread, before "worker stopped" is logged."""
    stop = threading.Event()
    stop.set()
    calls: list[str] = []

    def on_stop() -> None:
        calls.append(threading.current_thread().name)
        structlog.get_logger("test").info("stop requested")

    with capture_logs() as logs:
        _drainer(queue, SqliteSink(tmp_path / "s.sqlite3")).run(stop, on_stop=on_stop)

    events = [entry["event"] for entry in logs]
    assert calls == [threading.current_thread().name]
    assert events.index("stop requested") < events.index("worker stopped")


def test_drainer_on_stop_not_called_when_empty(queue: PredictionQueue, tmp_path: Path) -> None:
    """Leaving because the queue is empty (--once) is not a stop, so on_stop is not called."""
    calls: list[int] = []
    stop = threading.Event()

    _drainer(queue, SqliteSink(tmp_path / "s.sqlite3")).run(
        stop, exit_when_empty=True, on_stop=lambda: calls.append(1)
    )

    assert calls == []


@pytest.mark.parametrize("outages", [1, 3])
def test_drainer_backoff_grows(queue: PredictionQueue, tmp_path: Path, outages: int) -> None:
    """Each outage in a row doubles the back-off, up to its maximum."""
    queue.append(build_record(1))
    sink = OutageSink(SqliteSink(tmp_path / "store.sqlite3"), outages=outages)
    drainer = _drainer(queue, sink)
    drainer.retry_backoff_max_seconds = 100.0
    for _ in range(outages):
        drainer.drain_once()
        queue.file.write(lambda c: c.execute("UPDATE queue_items SET available_at = 0"))
    expected = 0.001 * 2 ** (outages - 1)
    assert expected * 0.8 <= drainer._backoff_seconds() <= expected * 1.2


class FlakyConsumer(QueueConsumer):
    """A consumer whose first ``failures`` claims raise QueueUnavailableError."""

    def __init__(self, queue: PredictionQueue, failures: int) -> None:
        super().__init__(queue, owner="flaky")
        self.failures = failures

    def claim(self, limit: int) -> list[ClaimedItem]:
        if self.failures:
            self.failures -= 1
            msg = "queue file is locked (simulated)"
            raise QueueUnavailableError(msg)
        return super().claim(limit)


def test_drainer_survives_queue_unavailable(queue: PredictionQueue, tmp_path: Path) -> None:
    """A queue error is logged and retried; the worker keeps running and drains later."""
    queue.append_many(build_record(i) for i in range(5))
    consumer = FlakyConsumer(queue, failures=2)
    drainer = QueueDrainer(
        consumer,
        SqliteSink(tmp_path / "store.sqlite3"),
        poll_interval_seconds=0.001,
        retry_backoff_max_seconds=0.01,
    )
    with capture_logs() as logs:
        drainer.run(threading.Event(), exit_when_empty=True)
    assert queue.depth() == 0
    assert drainer.stats.records_persisted == 5
    errors = [entry for entry in logs if entry["event"] == "queue unavailable"]
    assert len(errors) == 2
    assert errors[0]["log_level"] == "error"


class _RecordingStop(threading.Event):
    """A stop event that records each wait and is set after ``waits`` of them."""

    def __init__(self, waits: int) -> None:
        super().__init__()
        self.waits: list[float] = []
        self._limit = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0.0))
        if len(self.waits) >= self._limit:
            self.set()
        return self.is_set()


def test_drainer_polls_normally_after_queue_recovers(
    queue: PredictionQueue, tmp_path: Path
) -> None:
    """Once the queue is readable again an idle worker polls at its interval, not its back-off."""
    consumer = FlakyConsumer(queue, failures=3)
    drainer = QueueDrainer(
        consumer,
        SqliteSink(tmp_path / "store.sqlite3"),
        poll_interval_seconds=0.001,
        retry_backoff_max_seconds=5.0,
    )
    stop = _RecordingStop(waits=6)

    with capture_logs() as logs:
        drainer.run(stop)

    # Three back-offs that double from the poll interval, with jitter of up to 20 %.
    for wait, base in zip(stop.waits[:3], (0.001, 0.002, 0.004), strict=True):
        assert base * 0.8 <= wait <= base * 1.2
    assert stop.waits[3:] == [0.001, 0.001, 0.001]
    recovered = [entry for entry in logs if entry["event"] == "queue available again"]
    assert [entry["outages_in_a_row"] for entry in recovered] == [3]


def test_drainer_dead_letters_rejected_row(queue: PredictionQueue, tmp_path: Path) -> None:
    """A row SQLite rejects on a constraint is dead-lettered, not retried as an outage."""
    store = SqliteSink(tmp_path / "store.sqlite3")
    # The trigger simulates a constraint the store's schema may gain. RAISE(ABORT) makes SQLite
    # fail the statement with SQLITE_CONSTRAINT, which Python raises as IntegrityError.
    store.file.write(
        lambda c: c.execute(
            f"CREATE TRIGGER reject_one BEFORE INSERT ON {PREDICTIONS_TABLE} "
            "WHEN NEW.POLICY_NUMBER = 'POL000003' BEGIN SELECT RAISE(ABORT, 'rejected'); END"
        )
    )
    queue.append_many(build_record(i) for i in range(8))
    drainer = _drainer(queue, store, max_attempts=1, batch_size=8)
    _drain(drainer)
    assert queue.depth() == 0
    assert queue.dead_letter_count() == 1
    assert drainer.stats.sink_outages == 0
    stored = set(stored_values(store.path, PREDICTIONS_TABLE, "PREDICTION_ID"))
    assert {f"pred-{i:06d}" for i in range(8) if i != 3} == stored


def test_sink_constraint_raises_record_error(tmp_path: Path) -> None:
    """The sink names the rejection as a record error, with the SQLite code and no values."""
    store = SqliteSink(tmp_path / "store.sqlite3")
    store.file.write(
        lambda c: c.execute(
            f"CREATE TRIGGER reject_all BEFORE INSERT ON {PREDICTIONS_TABLE} "
            "BEGIN SELECT RAISE(ABORT, 'rejected'); END"
        )
    )
    with pytest.raises(SinkRecordError, match="SQLITE_CONSTRAINT") as caught:
        store.write_batch([build_record(1)])
    assert not isinstance(caught.value, SinkUnavailableError)
    assert "POL000001" not in str(caught.value)
