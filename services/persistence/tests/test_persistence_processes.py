"""Crash-safety and concurrency tests with real worker and appender processes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from evidence_persistence import PredictionQueue
from persistence_testkit import (
    PREDICTIONS_TABLE,
    build_record,
    start_worker,
    stored_values,
)

HERE = Path(__file__).parent
APPENDER = HERE / "persistence_appender.py"
# Small batches and short leases make a drain of 10,000 records take a few seconds, long enough
# to kill the worker several times in the middle of it.
FAST_WORKER = {
    "batch_size": "20",
    "lease_seconds": "0.5",
    "max_attempts": "1000",
    "poll_interval_seconds": "0.01",
    "retry_backoff_max_seconds": "0.1",
}


def _wait_for(condition: Callable[[], bool], timeout: float, description: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {description}")
        time.sleep(0.02)


def _log_events(log: Path) -> list[dict[str, object]]:
    events = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def _expected_ids(indexes: range | set[int]) -> set[str]:
    return {build_record(i).prediction_id for i in indexes}


@pytest.mark.slow
def test_worker_sigkill_while_draining_loses_nothing(tmp_path: Path) -> None:
    """10,000 records survive four SIGKILLs of the worker; each id is stored exactly once."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    for start in range(0, 10_000, 1_000):
        queue.append_many(build_record(i) for i in range(start, start + 1_000))
    log = tmp_path / "worker.log"
    rng = random.Random(5)
    depths = []
    for _ in range(4):
        processed_before = log.read_text().count("batch processed") if log.exists() else 0
        worker = start_worker(tmp_path, log, **FAST_WORKER)

        def batch_processed(before: int = processed_before) -> bool:
            return log.read_text().count("batch processed") > before

        _wait_for(batch_processed, 60, "the worker's first batch")
        time.sleep(rng.uniform(0.05, 0.3))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        depths.append(queue.depth())
    assert 0 < depths[0] < 10_000
    assert depths == sorted(depths, reverse=True)

    final = start_worker(tmp_path, log, "--once", **FAST_WORKER)
    assert final.wait(timeout=120) == 0
    ids = stored_values(tmp_path / "store.sqlite3", PREDICTIONS_TABLE, "PREDICTION_ID")
    assert len(ids) == 10_000
    assert _expected_ids(range(10_000)) == set(ids)
    assert queue.depth() == 0
    assert queue.dead_letter_count() == 0


@pytest.mark.slow
def test_appenders_killed_after_append_records_arrive(tmp_path: Path) -> None:
    """Every append acknowledged before a SIGKILL of its process reaches the tables."""
    queue_path = tmp_path / "queue.sqlite3"
    rng = random.Random(11)
    acknowledged: set[int] = set()
    for process_number in range(3):
        first = process_number * 10_000
        with subprocess.Popen(
            [sys.executable, str(APPENDER), str(queue_path), str(first), "5000"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE,
        ) as appender:
            assert appender.stdout is not None
            for _ in range(rng.randint(50, 400)):
                line = appender.stdout.readline()
                assert line, "the appender exited before it was killed"
                acknowledged.add(int(line))
            appender.send_signal(signal.SIGKILL)
            # Lines already written to the pipe before the kill are acknowledgements too.
            acknowledged.update(int(line) for line in appender.stdout.read().split())
        assert appender.returncode == -signal.SIGKILL

    worker = start_worker(tmp_path, tmp_path / "worker.log", "--once", **FAST_WORKER)
    assert worker.wait(timeout=120) == 0
    stored = set(stored_values(tmp_path / "store.sqlite3", PREDICTIONS_TABLE, "PREDICTION_ID"))
    assert _expected_ids(acknowledged) <= stored
    assert len(acknowledged) >= 150


@pytest.mark.slow
def test_concurrent_appenders_and_worker_no_lock_errors(tmp_path: Path) -> None:
    """Four appender processes and a draining worker: no lock error escapes, nothing is lost."""
    queue_path = tmp_path / "queue.sqlite3"
    PredictionQueue(queue_path).check_writable()
    log = tmp_path / "worker.log"
    worker = start_worker(tmp_path, log, batch_size="50", poll_interval_seconds="0.01")
    appenders = [
        subprocess.Popen(
            [sys.executable, str(APPENDER), str(queue_path), str(n * 10_000), "800"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        for n in range(4)
    ]
    for appender in appenders:
        _, errors = appender.communicate(timeout=120)
        assert appender.returncode == 0, errors
        assert "locked" not in errors

    queue = PredictionQueue(queue_path)
    _wait_for(lambda: queue.depth() == 0, 60, "the worker to drain the queue")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    events = [event["event"] for event in _log_events(log)]
    assert "stop requested" in events
    assert events[-1] == "worker stopped"
    stored = stored_values(tmp_path / "store.sqlite3", PREDICTIONS_TABLE, "PREDICTION_ID")
    expected = {i for n in range(4) for i in range(n * 10_000, n * 10_000 + 800)}
    assert len(expected) == len(stored)
    assert _expected_ids(expected) == set(stored)


@pytest.mark.slow
def test_worker_metrics_endpoint_serves_queue_gauges(tmp_path: Path) -> None:
    """--metrics-port 0 binds a free port on 127.0.0.1 that serves the queue gauges."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(3))
    log = tmp_path / "worker.log"
    worker = start_worker(tmp_path, log, "--metrics-port", "0", poll_interval_seconds="0.05")
    try:
        _wait_for(lambda: queue.depth() == 0, 60, "the worker to drain the queue")
        started = next(e for e in _log_events(log) if e["event"] == "metrics endpoint started")
        response = httpx.get(f"http://127.0.0.1:{started['port']}/metrics", timeout=10)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert response.status_code == 200
    assert "evidence_persistence_queue_depth 0.0" in response.text
    assert "evidence_persistence_records_persisted_total 3.0" in response.text
    assert 'evidence_persistence_rows_written_total{table="ONLINE_FEATURES"} 3.0' in response.text
