"""Tests of records that must never reach the sink: invalid on append or corrupt in the queue."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from evidence_persistence import (
    PredictionQueue,
    SinkRecordError,
    SinkUnavailableError,
)
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._record import encode_record
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.metrics import WorkerMetrics
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import (
    PREDICTIONS_TABLE,
    build_record,
    child_environment,
    cli_argv,
    stored_values,
)

# A payload whose risk_level is a list, as a damaged or hand-edited queue row may hold.
_WRONG_TYPE = "wrong_type"
# A payload nested so deeply that json.loads raises RecursionError.
_DEEP_JSON = "deep_json"
_EXPECTED_ERRORS = {
    _WRONG_TYPE: (
        "RecordDecodeError: queued record 'bad' cannot be decoded: TypeError: risk_level "
        "must be a str, got list"
    ),
    _DEEP_JSON: (
        "RecordDecodeError: queued record 'bad' cannot be decoded: RecursionError: the "
        "payload's JSON is nested too deeply"
    ),
}


def _insert_corrupt_row(queue: PredictionQueue, kind: str) -> None:
    """Insert a queue row with prediction id ``bad`` that no valid record encodes to."""
    queue.check_writable()  # creates the file and its tables when nothing was appended yet
    encoded = encode_record(build_record(999))
    if kind == _WRONG_TYPE:
        scalars = json.loads(encoded.payload)
        scalars["l"] = [1, 2]
        payload = json.dumps(scalars).encode()
    else:
        payload = b'{"p":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    connection = sqlite3.connect(queue.path)
    connection.execute(
        "INSERT INTO queue_items (prediction_id, enqueued_at, payload, features) "
        "VALUES ('bad', ?, ?, ?)",
        (time.time(), payload, encoded.features),
    )
    connection.commit()
    connection.close()


def _drain_with_deadline(drainer: QueueDrainer, seconds: float = 20.0) -> None:
    """Drain until the queue is empty, or stop after ``seconds`` so a stalled worker fails."""
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        drainer.run(stop, exit_when_empty=True)
    finally:
        timer.cancel()
    assert not stop.is_set(), f"the drainer did not empty the queue within {seconds} s"


@pytest.mark.parametrize("kind", [_WRONG_TYPE, _DEEP_JSON])
@pytest.mark.parametrize("valid", [0, 1, 40])
def test_corrupt_row_dead_lettered_alone(
    queue: PredictionQueue, tmp_path: Path, kind: str, valid: int
) -> None:
    """A corrupt row goes to the dead letters on its first claim; its batch is written."""
    before = valid // 2
    queue.append_many(build_record(i) for i in range(before))
    _insert_corrupt_row(queue, kind)
    queue.append_many(build_record(i) for i in range(before, valid))
    sink = SqliteSink(tmp_path / "store.sqlite3")
    sink.file.read(lambda _: None)  # creates the tables, which a batch of none would not
    consumer = QueueConsumer(queue, owner="test", lease_seconds=30, max_attempts=3)
    drainer = QueueDrainer(
        consumer,
        sink,
        batch_size=50,
        poll_interval_seconds=0.001,
        retry_backoff_max_seconds=0.01,
        metrics=WorkerMetrics(queue),
    )

    _drain_with_deadline(drainer)

    assert queue.depth() == 0
    assert drainer.stats.sink_outages == 0
    assert drainer.metrics is not None
    outcomes = {
        sample.labels["outcome"]: sample.value
        for sample in next(iter(drainer.metrics.batches.collect())).samples
        if sample.name.endswith("_total")
    }
    assert outcomes == ({"partly_written": 1.0} if valid else {"none_written": 1.0})
    assert drainer.stats.records_persisted == valid
    letters = consumer.list_dead_letters()
    assert [letter.prediction_id for letter in letters] == ["bad"]
    assert letters[0].attempts == 1
    assert _EXPECTED_ERRORS[kind] == letters[0].error
    stored = sorted(stored_values(sink.path, PREDICTIONS_TABLE, "PREDICTION_ID"))
    assert [f"pred-{i:06d}" for i in range(valid)] == stored


def test_append_rejects_wrong_type_record(queue: PredictionQueue) -> None:
    """A record with a dict as fallback_reason is rejected before it reaches the queue."""
    with pytest.raises(TypeError, match=r"^fallback_reason must be a str, got dict$"):
        queue.append(build_record(0, fallback_reason={"kind": "timeout", "ms": 50}))
    queue.append_many(build_record(i) for i in range(1, 3))
    assert queue.depth() == 2


@pytest.mark.slow
def test_worker_once_exits_after_corrupt_row(tmp_path: Path) -> None:
    """`worker --once` dead-letters a deeply nested row, writes the rest and exits with 0."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(5))
    _insert_corrupt_row(queue, _DEEP_JSON)
    queue.append_many(build_record(i) for i in range(5, 10))
    queue.close()

    completed = subprocess.run(
        cli_argv("worker", "--once"),
        env=child_environment(tmp_path, max_attempts="2", lease_seconds="2"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout[-2000:]
    events = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    dead = [event for event in events if event["event"] == "record moved to dead letters"]
    assert [(event["prediction_id"], event["error_type"]) for event in dead] == [
        ("bad", "RecordDecodeError")
    ]
    stored = stored_values(tmp_path / "store.sqlite3", PREDICTIONS_TABLE, "PREDICTION_ID")
    assert [f"pred-{i:06d}" for i in range(10)] == sorted(stored)
    batches = [event for event in events if event["event"] == "batch processed"]
    assert sum(event["persisted"] for event in batches) == 10
    assert sum(event["claimed"] for event in batches) == 11
    assert {event["outcome"] for event in batches} <= {"written", "partly_written"}
    assert all("dropped_keys" not in event for event in batches)


def test_sink_binding_error_is_record_error(tmp_path: Path) -> None:
    """A value SQLite cannot bind raises SinkRecordError naming the type, not the value."""
    sink = SqliteSink(tmp_path / "store.sqlite3")
    record = build_record(1)
    # Construction rejects this value, so the test sets it afterwards, as a bug could.
    object.__setattr__(record, "fallback_reason", {"kind": "SECRET-VALUE"})
    with pytest.raises(SinkRecordError, match="Error binding parameter 10: type 'dict'") as info:
        sink.write_batch([record])
    assert not isinstance(info.value, SinkUnavailableError)
    assert "SECRET-VALUE" not in str(info.value)


def test_sink_closed_connection_stays_outage(tmp_path: Path) -> None:
    """A ProgrammingError that is not a binding error is still SinkUnavailableError."""
    sink = SqliteSink(tmp_path / "store.sqlite3")
    sink.write_batch([build_record(1)])
    connection = sink.file._connection
    assert connection is not None
    connection.close()
    with pytest.raises(SinkUnavailableError, match="ProgrammingError") as info:
        sink.write_batch([build_record(2)])
    assert "the connection is reopened on the next call" in str(info.value)
    assert "disk has space" not in str(info.value)
    sink.write_batch([build_record(3)])
    stored = sorted(stored_values(sink.path, PREDICTIONS_TABLE, "PREDICTION_ID"))
    assert ["pred-000001", "pred-000003"] == stored
