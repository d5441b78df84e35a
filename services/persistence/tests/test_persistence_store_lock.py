"""A store held locked or failing: one warning per failed attempt, a line once it is writable.

Each test holds a real store file locked through a second connection, as an operator's
``BEGIN EXCLUSIVE`` in the sqlite3 shell does, with busy timeouts of a few milliseconds. The lock
is released from the log chain when the Nth warning is logged, so the number of failed attempts
does not depend on how fast the machine is.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._logging import filter_allowed_keys
from evidence_persistence._sink import open_sink
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.config import Settings
from evidence_persistence.errors import SinkRecordError, SinkUnavailableError
from evidence_persistence.metrics import WorkerMetrics
from evidence_persistence.sinks import sqlite_attempts
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import PREDICTIONS_TABLE, build_record, stored_values
from structlog.testing import LogCapture

FAILED = "store write attempt failed"
RECOVERED = "store writable again"
FAILURES_METRIC = "evidence_persistence_store_attempt_failures_total"
BUSY_TIMEOUT_MS = 20

LogLines = list[MutableMapping[str, Any]]


class StoreLock:
    """A second connection that holds the store's write lock until the Nth failed attempt."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.release_after: int | None = None
        self.failures_seen = 0

    def hold(self, *, release_after: int | None = None) -> None:
        """Take the lock until the ``release_after``-th failed attempt, or for good on ``None``."""
        self.release_after = release_after
        self.failures_seen = 0
        self.connection.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        """Roll back the holding transaction, if it is still open."""
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    def __call__(
        self, _logger: object, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor: count failed attempts and release the lock at the Nth."""
        if event["event"] == FAILED:
            self.failures_seen += 1
            if self.failures_seen == self.release_after:
                self.release()
        return event


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Return a store file that exists with its tables and one stored record."""
    path = tmp_path / "store.sqlite3"
    setup = SqliteSink(path)
    setup.write_batch([build_record(0)])
    setup.close()
    return path


@pytest.fixture
def lock(store: Path) -> Iterator[StoreLock]:
    """Return the lock holder of the store, which is released and closed after the test."""
    holder = StoreLock(store)
    yield holder
    holder.release()
    holder.connection.close()


@pytest.fixture
def store_logs(monkeypatch: pytest.MonkeyPatch, lock: StoreLock) -> LogLines:
    """Capture the store's log lines through the worker's key filter, with their own chain.

    capture_logs swaps structlog's global configuration, which a thread left behind by an
    earlier test in the same xdist worker can configure again while this test runs.
    """
    capture = LogCapture()
    logger = structlog.wrap_logger(
        None,
        processors=[lock, filter_allowed_keys, capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    monkeypatch.setattr(sqlite_attempts, "_log", logger)
    return capture.entries


def _lines(logs: LogLines, event: str) -> LogLines:
    return [line for line in logs if line["event"] == event]


def _sink(store: Path, metrics: WorkerMetrics, *, lock_retries: int = 4) -> SqliteSink:
    return SqliteSink(
        store, busy_timeout_ms=BUSY_TIMEOUT_MS, lock_retries=lock_retries, metrics=metrics
    )


def _failures(metrics: WorkerMetrics, error_code: str) -> float | None:
    return metrics.registry.get_sample_value(FAILURES_METRIC, {"error_code": error_code})


def _failures_of_any_code(metrics: WorkerMetrics) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == FAILURES_METRIC
    )


def test_store_unlocked_logs_nothing(
    store: Path, queue: PredictionQueue, store_logs: LogLines
) -> None:
    """A write that finds no lock logs no store line and counts no failure."""
    metrics = WorkerMetrics(queue)

    _sink(store, metrics).write_batch([build_record(1), build_record(2)])

    assert [] == store_logs
    assert _failures_of_any_code(metrics) == 0


@pytest.mark.parametrize("failed_attempts", [1, 3])
def test_store_lock_released_during_retries(
    store: Path,
    queue: PredictionQueue,
    lock: StoreLock,
    store_logs: LogLines,
    failed_attempts: int,
) -> None:
    """Each failed attempt logs one warning, and the write that then succeeds one info line."""
    metrics = WorkerMetrics(queue)
    sink = _sink(store, metrics)
    sink.write_batch([build_record(1)])  # opens the sink's connection before the lock
    lock.hold(release_after=failed_attempts)

    sink.write_batch([build_record(index) for index in range(2, 5)])

    warnings = _lines(store_logs, FAILED)
    assert list(range(1, failed_attempts + 1)) == [line["attempt"] for line in warnings]
    for line in warnings:
        assert line["max_attempts"] == 4
        assert line["batch_size"] == 3
        assert line["error_code"] == "SQLITE_BUSY"
        assert line["log_level"] == "warning"
        assert BUSY_TIMEOUT_MS <= line["waited_ms"] < 5_000
        assert "dropped_keys" not in line
    recovered = _lines(store_logs, RECOVERED)
    assert len(recovered) == 1
    assert recovered[0]["failed_attempts"] == failed_attempts
    assert recovered[0]["batch_size"] == 3
    assert recovered[0]["log_level"] == "info"
    assert BUSY_TIMEOUT_MS * failed_attempts <= recovered[0]["outage_ms"] < 10_000
    assert "dropped_keys" not in recovered[0]
    assert store_logs[-1] is recovered[0]
    assert _failures(metrics, "SQLITE_BUSY") == failed_attempts
    assert len(stored_values(store, PREDICTIONS_TABLE, "PREDICTION_ID")) == 5


def test_store_lock_held_past_retries(
    store: Path, queue: PredictionQueue, lock: StoreLock, store_logs: LogLines
) -> None:
    """Every attempt of two failed writes is logged, and the next success logs one info line."""
    metrics = WorkerMetrics(queue)
    sink = _sink(store, metrics)
    sink.write_batch([build_record(1)])
    lock.hold()

    with pytest.raises(SinkUnavailableError, match="more than 20 ms in each of 4 attempts"):
        sink.write_batch([build_record(2), build_record(3)])
    with pytest.raises(SinkUnavailableError):
        sink.write_batch([build_record(2)])

    warnings = _lines(store_logs, FAILED)
    assert [1, 2, 3, 4, 1, 2, 3, 4] == [line["attempt"] for line in warnings]
    assert [2, 2, 2, 2, 1, 1, 1, 1] == [line["batch_size"] for line in warnings]
    assert [] == _lines(store_logs, RECOVERED)
    assert _failures(metrics, "SQLITE_BUSY") == 8
    assert _failures_of_any_code(metrics) == 8

    lock.release()
    sink.write_batch([build_record(2), build_record(3)])

    recovered = _lines(store_logs, RECOVERED)
    assert len(recovered) == 1
    assert recovered[0]["failed_attempts"] == 8
    sink.write_batch([build_record(4)])
    assert len(_lines(store_logs, RECOVERED)) == 1
    assert len(_lines(store_logs, FAILED)) == 8


def test_store_single_attempt_setting(
    store: Path, queue: PredictionQueue, lock: StoreLock, store_logs: LogLines
) -> None:
    """With one attempt, a held lock fails the write after one warning."""
    metrics = WorkerMetrics(queue)
    sink = _sink(store, metrics, lock_retries=1)
    sink.write_batch([build_record(1)])
    lock.hold()

    with pytest.raises(SinkUnavailableError, match="in each of 1 attempts"):
        sink.write_batch([build_record(2)])

    warnings = _lines(store_logs, FAILED)
    assert [(1, 1)] == [(line["attempt"], line["max_attempts"]) for line in warnings]
    assert _failures(metrics, "SQLITE_BUSY") == 1


def test_store_disk_full_logged(store: Path, queue: PredictionQueue, store_logs: LogLines) -> None:
    """An I/O error fails its attempt at once with one warning, and the next write succeeds."""
    metrics = WorkerMetrics(queue)
    sink = _sink(store, metrics)
    pages = sink.file.read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    sink.file.read(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 2}"))

    with pytest.raises(SinkUnavailableError, match="SQLITE_FULL"):
        sink.write_batch([build_record(index) for index in range(1, 500)])

    warnings = _lines(store_logs, FAILED)
    assert len(warnings) == 1
    assert warnings[0]["attempt"] == 1
    assert warnings[0]["max_attempts"] == 1
    assert warnings[0]["batch_size"] == 499
    assert warnings[0]["error_code"] == "SQLITE_FULL"
    assert _failures(metrics, "SQLITE_FULL") == 1

    # The failed write closed the connection, and the new one has no page limit.
    sink.write_batch([build_record(1)])

    assert [1] == [line["failed_attempts"] for line in _lines(store_logs, RECOVERED)]


def test_store_directory_uncreatable_logged(
    tmp_path: Path, queue: PredictionQueue, store_logs: LogLines
) -> None:
    """A store whose directory cannot be created is logged with the OSError's type."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the directory should be", encoding="utf-8")
    metrics = WorkerMetrics(queue)

    with pytest.raises(SinkUnavailableError, match="cannot create the directory"):
        _sink(blocker / "store.sqlite3", metrics).write_batch([build_record(1)])

    warnings = _lines(store_logs, FAILED)
    assert [("FileExistsError", 1)] == [(w["error_code"], w["max_attempts"]) for w in warnings]
    assert _failures(metrics, "FileExistsError") == 1


def test_store_rejected_row_not_logged(
    store: Path, queue: PredictionQueue, store_logs: LogLines
) -> None:
    """A row the store rejects is the record's fault: no store warning and no count."""
    connection = sqlite3.connect(store)
    connection.execute(
        f"CREATE TRIGGER reject_all BEFORE INSERT ON {PREDICTIONS_TABLE} "
        "BEGIN SELECT RAISE(ABORT, 'rejected'); END"
    )
    connection.commit()
    connection.close()
    metrics = WorkerMetrics(queue)

    with pytest.raises(SinkRecordError):
        _sink(store, metrics).write_batch([build_record(1)])

    assert [] == store_logs
    assert _failures_of_any_code(metrics) == 0


def test_worker_locked_store_from_settings(
    store: Path,
    queue: PredictionQueue,
    lock: StoreLock,
    store_logs: LogLines,
    clean_settings: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's sink takes the busy timeout and retries from settings and counts failures."""
    monkeypatch.setenv("PERSISTENCE_STORE_PATH", str(store))
    monkeypatch.setenv("PERSISTENCE_STORE_BUSY_TIMEOUT_MS", "30")
    monkeypatch.setenv("PERSISTENCE_STORE_LOCK_RETRIES", "3")
    queue.append_many([build_record(index) for index in range(1, 6)])
    metrics = WorkerMetrics(queue)
    sink = open_sink(Settings(), metrics)
    sink.write_batch([build_record(0)])
    lock.hold(release_after=2)
    drainer = QueueDrainer(QueueConsumer(queue, owner="test"), sink, metrics=metrics)

    drainer.run(threading.Event(), exit_when_empty=True)

    warnings = _lines(store_logs, FAILED)
    assert [(1, 3, 5), (2, 3, 5)] == [
        (line["attempt"], line["max_attempts"], line["batch_size"]) for line in warnings
    ]
    assert all(line["waited_ms"] >= 30 for line in warnings)
    assert [2] == [line["failed_attempts"] for line in _lines(store_logs, RECOVERED)]
    assert _failures(metrics, "SQLITE_BUSY") == 2
    assert queue.depth() == 0
    assert len(stored_values(store, PREDICTIONS_TABLE, "PREDICTION_ID")) == 6
