"""The worker drains its queue after SIGTERM, for up to PERSISTENCE_STOP_GRACE_SECONDS.

Each test starts a real worker process on real SQLite files. A second connection holds the
store's write lock (``BEGIN IMMEDIATE``) until the test has sent its signal, so the records are
still queued when the signal arrives however fast the machine is. The worker's store writes
give up after 20 ms, and the batch is released unchanged as in any store outage.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import (
    PREDICTIONS_TABLE,
    build_record,
    child_environment,
    cli_argv,
    stored_values,
)

pytestmark = pytest.mark.slow

QUEUED = 120
# The store's tables are created by writing one record, whose id no queued record has.
SETUP_INDEX = 999_999
LOCKED_STORE_WORKER = {
    "batch_size": "20",
    "poll_interval_seconds": "0.02",
    "retry_backoff_max_seconds": "0.1",
    "store_busy_timeout_ms": "20",
    "store_lock_retries": "1",
}


class Worker:
    """A worker process whose JSON log lines go to a file."""

    def __init__(self, tmp_path: Path, **settings: str) -> None:
        self.log = tmp_path / "worker.log"
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                cli_argv("worker"),
                stdout=output,
                stderr=subprocess.STDOUT,
                env=child_environment(tmp_path, **settings),
            )

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.events() if line["event"] == event]

    def wait_for(self, condition: Callable[[], bool], description: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            if self.process.poll() is not None:
                code = self.process.returncode
                pytest.fail(f"the worker exited with {code} before {description}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after 60 s waiting for {description}")
            time.sleep(0.02)

    def wait_for_event(self, event: str) -> None:
        self.wait_for(lambda: bool(self.named(event)), f"the log line {event!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class StoreLock:
    """A second connection that holds the store's write lock from its creation."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    def close(self) -> None:
        self.release()
        self.connection.close()


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[PredictionQueue]:
    """Return the worker's queue, which contains ``QUEUED`` records."""
    created = PredictionQueue(tmp_path / "queue.sqlite3")
    created.append_many(build_record(index) for index in range(QUEUED))
    yield created
    created.close()


@pytest.fixture
def lock(tmp_path: Path) -> Iterator[StoreLock]:
    """Return a write lock on a store that exists with its tables and one setup record."""
    path = tmp_path / "store.sqlite3"
    setup = SqliteSink(path)
    setup.write_batch([build_record(SETUP_INDEX)])
    setup.close()
    holder = StoreLock(path)
    yield holder
    holder.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Return a function that starts a worker with ``LOCKED_STORE_WORKER`` and more settings."""
    started: list[Worker] = []

    def start(**settings: str) -> Worker:
        worker = Worker(tmp_path, **(LOCKED_STORE_WORKER | settings))
        started.append(worker)
        # Two failed batches show that the worker runs and the store is locked.
        worker.wait_for(
            lambda: len(worker.named("sink unavailable, batch released")) >= 2,
            "two batches released on the locked store",
        )
        return worker

    yield start
    for worker in started:
        worker.stop()


def _stored_ids(tmp_path: Path) -> set[str]:
    """Return the prediction ids in the store, apart from the setup record's."""
    stored = set(stored_values(tmp_path / "store.sqlite3", PREDICTIONS_TABLE, "PREDICTION_ID"))
    return stored - {build_record(SETUP_INDEX).prediction_id}


def _expected_ids(indexes: range) -> set[str]:
    return {build_record(index).prediction_id for index in indexes}


def _signal_and_wait(worker: Worker, signum: signal.Signals) -> float:
    """Send ``signum``, check the exit status 0 and return the seconds until the exit."""
    signalled = time.monotonic()
    worker.process.send_signal(signum)
    assert worker.process.wait(timeout=30) == 0
    return time.monotonic() - signalled


@dataclass(frozen=True, slots=True)
class LockedStoreRun:
    """The queue of ``QUEUED`` records, the locked store and the worker starter of one test."""

    tmp_path: Path
    queue: PredictionQueue
    lock: StoreLock
    start_worker: Callable[..., Worker]

    def start_draining(self, **settings: str) -> Worker:
        """Start a worker, send it SIGTERM and wait for its ``stop drain started`` line."""
        worker = self.start_worker(**settings)
        worker.process.send_signal(signal.SIGTERM)
        worker.wait_for_event("stop drain started")
        return worker

    def assert_all_still_queued(self) -> None:
        """Release the store, then check that every record is queued, none dead or stored."""
        self.lock.release()
        assert self.queue.depth() == QUEUED
        assert self.queue.dead_letter_count() == 0
        assert set() == _stored_ids(self.tmp_path)


@pytest.fixture
def locked_run(
    tmp_path: Path,
    queue: PredictionQueue,
    lock: StoreLock,
    start_worker: Callable[..., Worker],
) -> LockedStoreRun:
    """Return the queue, the locked store and the worker starter as one object."""
    return LockedStoreRun(tmp_path, queue, lock, start_worker)


def test_sigterm_drains_queued_and_appended(locked_run: LockedStoreRun) -> None:
    """Records queued at SIGTERM and appended during the drain are stored, and exit is 0."""
    queue = locked_run.queue
    worker = locked_run.start_draining(stop_grace_seconds="60")

    queue.append_many(build_record(index) for index in range(QUEUED, QUEUED + 30))
    locked_run.lock.release()

    assert worker.process.wait(timeout=60) == 0
    assert _expected_ids(range(QUEUED + 30)) == _stored_ids(locked_run.tmp_path)
    assert queue.depth() == 0
    assert queue.dead_letter_count() == 0
    (started,) = worker.named("stop drain started")
    assert started["queue_depth"] == QUEUED
    assert started["grace_seconds"] == 60
    (finished,) = worker.named("stop drain finished")
    assert finished["records"] == QUEUED + 30
    assert finished["remaining"] == 0
    assert finished["timed_out"] is False
    assert finished["interrupted"] is False
    assert finished["level"] == "info"
    assert 1_000 <= finished["duration_ms"] < 60_000
    assert "dropped_keys" not in finished
    events = [line["event"] for line in worker.events()]
    assert events.index("stop requested") < events.index("stop drain started")
    assert events[-1] == "worker stopped"


def test_sigterm_empty_queue_stops_soon(tmp_path: Path) -> None:
    """With nothing queued the default grace time ends the worker about 1 s after SIGTERM."""
    worker = Worker(tmp_path, poll_interval_seconds="0.05")
    try:
        worker.wait_for_event("worker started")
        signalled = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)

        assert worker.process.wait(timeout=30) == 0
        assert time.monotonic() - signalled < 4
        (started,) = worker.named("stop drain started")
        assert started["queue_depth"] == 0
        assert started["grace_seconds"] == 5
        (finished,) = worker.named("stop drain finished")
        assert finished["records"] == 0
        assert finished["remaining"] == 0
        assert finished["timed_out"] is False
    finally:
        worker.stop()


def test_grace_zero_stops_without_drain(locked_run: LockedStoreRun) -> None:
    """Grace time 0 finishes the batch in progress and exits, leaving the queue as it was."""
    worker = locked_run.start_worker(stop_grace_seconds="0")

    assert _signal_and_wait(worker, signal.SIGTERM) < 3
    locked_run.assert_all_still_queued()
    events = [line["event"] for line in worker.events()]
    assert "stop requested" in events
    assert "stop drain started" not in events
    assert "stop drain finished" not in events
    assert events[-1] == "worker stopped"


def test_locked_store_times_out_keeps_queue(locked_run: LockedStoreRun) -> None:
    """A store locked for the whole drain: exit after the grace time, every record still queued."""
    worker = locked_run.start_worker(stop_grace_seconds="2")

    assert 2 <= _signal_and_wait(worker, signal.SIGTERM) < 6
    locked_run.assert_all_still_queued()
    (finished,) = worker.named("stop drain finished")
    assert finished["records"] == 0
    assert finished["remaining"] == QUEUED
    assert finished["timed_out"] is True
    assert finished["interrupted"] is False
    assert finished["level"] == "warning"
    assert 2_000 <= finished["duration_ms"] < 6_000


def test_second_signal_ends_drain(locked_run: LockedStoreRun) -> None:
    """SIGINT during a drain of 60 s ends the worker after the batch in progress."""
    worker = locked_run.start_draining(stop_grace_seconds="60")

    assert _signal_and_wait(worker, signal.SIGINT) < 3
    locked_run.assert_all_still_queued()
    (finished,) = worker.named("stop drain finished")
    assert finished["remaining"] == QUEUED
    assert finished["timed_out"] is False
    assert finished["interrupted"] is True
    (requested,) = worker.named("stop requested")
    assert requested["signal"] == "SIGTERM"
