"""QueueDrainer.run after ``stop`` in one process: the drain, its grace time and ``halt``."""

from __future__ import annotations

import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._stop_drain import STOP_DRAIN_QUIET_SECONDS, StopDrain
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.config import Settings
from evidence_persistence.errors import QueueError
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import PREDICTIONS_TABLE, build_record, stored_values


def _drainer(queue: PredictionQueue, sink: SqliteSink, grace_seconds: float) -> QueueDrainer:
    consumer = QueueConsumer(queue, owner="test", lease_seconds=30, max_attempts=3)
    return QueueDrainer(
        consumer,
        sink,
        batch_size=10,
        poll_interval_seconds=0.01,
        retry_backoff_max_seconds=0.01,
        stop_grace_seconds=grace_seconds,
    )


def _stopped() -> threading.Event:
    stop = threading.Event()
    stop.set()
    return stop


@pytest.mark.parametrize("queued", [0, 1, 35])
def test_stop_drains_whole_queue(
    queue: PredictionQueue,
    tmp_path: Path,
    queued: int,
    worker_logs: list[MutableMapping[str, Any]],
) -> None:
    """A stop with a grace time writes every queued record, then waits the quiet time."""
    queue.append_many(build_record(index) for index in range(queued))
    sink = SqliteSink(tmp_path / "store.sqlite3")
    calls: list[str] = []

    started = time.monotonic()
    logs = worker_logs
    stats = _drainer(queue, sink, 30.0).run(_stopped(), on_stop=lambda: calls.append("stop"))
    elapsed = time.monotonic() - started
    sink.close()

    assert ["stop"] == calls
    assert stats.records_persisted == queued
    assert queue.depth() == 0
    if queued:
        assert queued == len(stored_values(tmp_path / "store.sqlite3", PREDICTIONS_TABLE, "1"))
    assert STOP_DRAIN_QUIET_SECONDS <= elapsed < 10
    events = [line["event"] for line in logs]
    assert events.index("stop drain started") == 1
    assert events[-2:] == ["stop drain finished", "worker stopped"]
    assert events.count("batch processed") == -(-queued // 10)
    assert logs[1]["queue_depth"] == queued
    finished = logs[-2]
    assert finished["records"] == queued
    assert finished["remaining"] == 0
    assert finished["timed_out"] is False
    assert finished["interrupted"] is False


def test_grace_zero_writes_nothing(
    queue: PredictionQueue, tmp_path: Path, worker_logs: list[MutableMapping[str, Any]]
) -> None:
    """With grace time 0 a stop set before the first batch returns without claiming."""
    queue.append_many(build_record(index) for index in range(5))
    sink = SqliteSink(tmp_path / "store.sqlite3")

    stats = _drainer(queue, sink, 0.0).run(_stopped())
    sink.close()

    assert stats.records_persisted == 0
    assert queue.depth() == 5
    events = [line["event"] for line in worker_logs]
    assert ["worker started", "worker stopped"] == events


def test_halt_ends_drain(
    queue: PredictionQueue, tmp_path: Path, worker_logs: list[MutableMapping[str, Any]]
) -> None:
    """``halt`` set together with ``stop`` returns before any batch, with no drain lines."""
    queue.append_many(build_record(index) for index in range(5))
    sink = SqliteSink(tmp_path / "store.sqlite3")
    calls: list[str] = []

    stats = _drainer(queue, sink, 30.0).run(
        _stopped(), halt=_stopped(), on_stop=lambda: calls.append("stop")
    )
    sink.close()

    assert ["stop"] == calls
    assert stats.records_persisted == 0
    assert queue.depth() == 5
    assert ["worker started", "worker stopped"] == [line["event"] for line in worker_logs]


def test_settings_stop_grace(clean_settings: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The grace time defaults to 5 s and reads 0 and fractions from its variable."""
    assert Settings().stop_grace_seconds == 5.0

    monkeypatch.setenv("PERSISTENCE_STOP_GRACE_SECONDS", "0")
    assert Settings().stop_grace_seconds == 0.0

    monkeypatch.setenv("PERSISTENCE_STOP_GRACE_SECONDS", "12.5")
    assert Settings().stop_grace_seconds == 12.5


def test_unreadable_depth_logs_owner(
    queue: PredictionQueue,
    monkeypatch: pytest.MonkeyPatch,
    worker_logs: list[MutableMapping[str, Any]],
) -> None:
    """A depth that fails logs the error type and the worker's owner, and counts as unknown."""

    def fail() -> int:
        raise QueueError("queue file unreadable")

    monkeypatch.setattr(queue, "depth", fail)

    drain = StopDrain.begin(queue, owner="worker-7", grace_seconds=5.0, records_before=0)

    assert drain.record_claim(0) is False
    warnings = [line for line in worker_logs if line["event"] == "queue depth unavailable"]
    assert len(warnings) == 2
    for line in warnings:
        assert line["owner"] == "worker-7"
        assert line["error_type"] == "QueueError"
        assert line["log_level"] == "warning"
    (started,) = [line for line in worker_logs if line["event"] == "stop drain started"]
    assert started["queue_depth"] is None
