"""Tests of a sink that rejects every record: the batch is held as an outage, not bisected.

Records that fail on their own values are split down and dead-lettered instead, even when every
record of a batch fails alike.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue, PredictionRecord
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._sink import WriteResult
from evidence_persistence._worker import QueueDrainer, is_sink_fault
from evidence_persistence.errors import SinkConfigurationError, SinkRecordError
from evidence_persistence.metrics import WorkerMetrics
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import PREDICTIONS_TABLE, build_record, stored_values
from snowflake.connector.errors import DataError, IntegrityError, ProgrammingError
from snowflake.snowpark.exceptions import SnowparkSQLException
from structlog.testing import capture_logs


def _privilege_error() -> SnowparkSQLException:
    """Return the error Snowpark raises from a MERGE into a table the role may not write."""
    message = "Insufficient privileges to operate on table"
    cause = ProgrammingError(msg=message, errno=3001, sqlstate="42501")
    return SnowparkSQLException(message, error_code="1304", conn_error=cause)


class DeniedSink:
    """Raise Snowflake's insufficient-privileges error for every batch while ``denied`` is set."""

    def __init__(self, inner: SqliteSink) -> None:
        self.inner = inner
        self.denied = True
        self.calls = 0

    @property
    def path(self) -> Path:
        return self.inner.path

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        self.calls += 1
        if self.denied:
            raise _privilege_error()
        return self.inner.write_batch(records)

    def close(self) -> None:
        self.inner.close()


def _denied_store(path: Path) -> DeniedSink:
    return DeniedSink(SqliteSink(path))


def _drainer(
    queue: PredictionQueue, sink: object, batch_size: int, *, max_attempts: int = 1
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


def _batch_outcomes(drainer: QueueDrainer) -> dict[str, float]:
    """Return the drainer's batch count per outcome label."""
    metrics = drainer.metrics
    assert metrics is not None
    return {
        sample.labels["outcome"]: sample.value
        for sample in next(iter(metrics.batches.collect())).samples
        if sample.name.endswith("_total")
    }


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
    sink = _denied_store(tmp_path / "store.sqlite3")
    drainer = _drainer(queue, sink, batch_size=records)

    with capture_logs() as logs:
        assert drainer.drain_once() == records

    assert sink.calls == 4
    assert queue.depth() == records
    assert queue.dead_letter_count() == 0
    assert _attempts(queue) == [0] * records
    released = [entry for entry in logs if entry["event"].startswith("sink rejected every")]
    assert [(entry["records"], entry["error_type"]) for entry in released] == [
        (records, "SnowparkSQLException")
    ]
    samples = _batch_outcomes(drainer)
    assert samples == {"sink_rejects_all": 1.0}


@pytest.mark.parametrize("records", [1, 3])
def test_small_batch_isolated_per_record(tmp_path: Path, records: int) -> None:
    """Below four records each record is tried alone and dead-lettered, as before."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(records))
    sink = _denied_store(tmp_path / "store.sqlite3")
    drainer = _drainer(queue, sink, batch_size=records)

    drainer.run(threading.Event(), exit_when_empty=True)

    assert queue.depth() == 0
    assert queue.dead_letter_count() == records
    assert sink.calls == 2 * records - 1
    # Every record went to the dead letters, so no batch counts as written.
    assert _batch_outcomes(drainer) == {"none_written": 1.0}


class MisconfiguredSink:
    """Raise ``SinkConfigurationError`` for every batch, as a sink whose set-up failed does."""

    def __init__(self) -> None:
        self.calls = 0

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        self.calls += 1
        raise SinkConfigurationError("creating the staging table failed: insufficient privileges")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("records", [1, 3, 40])
def test_misconfigured_sink_holds_any_batch(tmp_path: Path, records: int) -> None:
    """A sink configuration error keeps the batch queued at once, even below four records."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(records))
    sink = MisconfiguredSink()
    drainer = _drainer(queue, sink, batch_size=records, max_attempts=2)

    for _ in range(3):
        queue.file.write(lambda c: c.execute("UPDATE queue_items SET available_at = 0"))
        assert drainer.drain_once() == records

    assert sink.calls == 3
    assert queue.depth() == records
    assert queue.dead_letter_count() == 0
    assert _attempts(queue) == [0] * records
    samples = _batch_outcomes(drainer)
    assert samples == {"sink_rejects_all": 3.0}


def test_sink_fault_cleared_then_drained(tmp_path: Path) -> None:
    """Once the sink accepts rows again, the held batch is written in full."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(40))
    store = _denied_store(tmp_path / "store.sqlite3")
    drainer = _drainer(queue, store, batch_size=40)
    drainer.drain_once()

    store.denied = False
    queue.file.write(lambda c: c.execute("UPDATE queue_items SET available_at = 0"))
    drainer.run(threading.Event(), exit_when_empty=True)

    assert queue.depth() == 0
    assert queue.dead_letter_count() == 0
    assert len(stored_values(store.path, PREDICTIONS_TABLE, "PREDICTION_ID")) == 40


class PoisonSink:
    """Raise ``make_error()`` for any batch that contains a poisoned policy number.

    With the default error, a sink fault, this models a privilege that covers some rows only,
    such as a row access policy.
    """

    def __init__(
        self,
        inner: SqliteSink,
        poisoned: set[str],
        make_error: Callable[[], Exception] = _privilege_error,
    ) -> None:
        self.inner = inner
        self.poisoned = poisoned
        self.make_error = make_error
        self.calls = 0

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        self.calls += 1
        if any(record.policy_number in self.poisoned for record in records):
            raise self.make_error()
        return self.inner.write_batch(records)

    def close(self) -> None:
        self.inner.close()


def test_two_bad_records_in_both_halves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad records in both halves and a good random record: only the bad ones are dead."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(8))
    sink = PoisonSink(SqliteSink(tmp_path / "store.sqlite3"), {"POL000001", "POL000006"})
    monkeypatch.setattr(random, "randrange", lambda _stop: 3)
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
    monkeypatch.setattr(random, "randrange", lambda _stop: next(draws))
    drainer = _drainer(queue, sink, batch_size=8)

    drainer.drain_once()
    assert (queue.depth(), queue.dead_letter_count()) == (8, 0)

    queue.file.write(lambda c: c.execute("UPDATE queue_items SET available_at = 0"))
    drainer.drain_once()
    assert (queue.depth(), queue.dead_letter_count()) == (0, 2)


def _value_error() -> Exception:
    return ValueError("value rejected by the store")


def test_record_error_skips_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error of the records' own values is split at once, with no random probe."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(8))
    sink = PoisonSink(
        SqliteSink(tmp_path / "store.sqlite3"), {"POL000001", "POL000006"}, _value_error
    )

    def fail_on_draw(_stop: int) -> int:
        raise AssertionError("a record error must not draw a probe")

    monkeypatch.setattr(random, "randrange", fail_on_draw)
    drainer = _drainer(queue, sink, batch_size=8)

    drainer.drain_once()

    assert queue.depth() == 0
    letters = drainer.consumer.list_dead_letters()
    assert sorted(letter.prediction_id for letter in letters) == ["pred-000001", "pred-000006"]
    # The batch and its halves, then four writes in each half: two quarters and two records.
    assert sink.calls == 11


def _constraint_store(path: Path) -> SqliteSink:
    """Return a store whose trigger fails the CHECK of every prediction with a BAD policy."""
    store = SqliteSink(path)
    store.file.write(
        lambda c: c.execute(
            f"CREATE TRIGGER rej BEFORE INSERT ON {PREDICTIONS_TABLE} "
            "WHEN NEW.POLICY_NUMBER LIKE 'BAD%' "
            "BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed'); END"
        )
    )
    return store


def test_all_bad_batch_dead_lettered(tmp_path: Path) -> None:
    """A batch of records that all break a constraint is dead-lettered, not held as an outage."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    bad = [build_record(i, policy_number=f"BAD{i:06d}") for i in range(8)]
    good = [build_record(i) for i in range(8, 12)]
    queue.append_many([*bad, *good])
    store = _constraint_store(tmp_path / "store.sqlite3")
    drainer = _drainer(queue, store, batch_size=8, max_attempts=3)
    stop = threading.Event()
    # Stops a worker that keeps the batch queued for ever, so the test fails instead of hanging.
    timer = threading.Timer(10.0, stop.set)
    timer.start()
    try:
        drainer.run(stop, exit_when_empty=True)
    finally:
        timer.cancel()

    assert not stop.is_set(), "the queue did not drain within 10 s"
    assert queue.depth() == 0
    letters = drainer.consumer.list_dead_letters()
    assert sorted(letter.prediction_id for letter in letters) == [r.prediction_id for r in bad]
    assert {letter.attempts for letter in letters} == {3}
    assert {letter.error.split(":")[0] for letter in letters} == {"SinkRecordError"}
    stored = sorted(stored_values(store.path, PREDICTIONS_TABLE, "PREDICTION_ID"))
    assert stored == [record.prediction_id for record in good]
    assert drainer.stats.sink_outages == 0
    assert drainer.stats.dead_lettered == 8


def _sqlite_constraint_error() -> SinkRecordError:
    try:
        raise sqlite3.IntegrityError("CHECK constraint failed")
    except sqlite3.IntegrityError as exc:
        try:
            raise SinkRecordError("store rejected a row") from exc
        except SinkRecordError as error:
            return error


def _wrapped_privilege_error() -> RuntimeError:
    try:
        raise _privilege_error()
    except SnowparkSQLException as exc:
        try:
            raise RuntimeError("merge failed") from exc
        except RuntimeError as error:
            return error


@pytest.mark.parametrize(
    ("make_error", "expected"),
    [
        (_sqlite_constraint_error, False),
        (_value_error, False),
        (lambda: SinkConfigurationError("role lacks INSERT"), True),
        (_privilege_error, True),
        (_wrapped_privilege_error, True),
        (lambda: ProgrammingError(msg="missing table", errno=2003, sqlstate="42S02"), True),
        (lambda: ProgrammingError(msg="missing schema", errno=2003, sqlstate="02000"), True),
        (lambda: ProgrammingError(msg="invalid identifier", errno=904, sqlstate="42000"), True),
        (lambda: ProgrammingError(msg="NULL in NOT NULL", errno=100072, sqlstate="22000"), False),
        (
            lambda: DataError(msg="numeric value not recognized", errno=100038, sqlstate="22018"),
            False,
        ),
        (lambda: IntegrityError(msg="duplicate key", errno=200001, sqlstate="23505"), False),
    ],
    ids=[
        "sqlite-constraint",
        "value-error",
        "sink-configuration",
        "snowpark-privilege",
        "wrapped-privilege",
        "missing-table",
        "missing-schema",
        "missing-column",
        "not-null",
        "data-error",
        "integrity-error",
    ],
)
def test_is_sink_fault_classification(make_error: Callable[[], Exception], expected: bool) -> None:
    """Only errors about the sink's objects and rights count as a sink fault."""
    assert is_sink_fault(make_error()) is expected
