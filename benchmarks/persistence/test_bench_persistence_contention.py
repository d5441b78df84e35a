"""Benchmark of the queue append while a real worker process drains the same queue file.

The gateway appends each prediction with ``append_many`` while ``evidence-persistence worker``
claims and deletes rows of the same SQLite file. SQLite lets one connection write at a time, so
an append that arrives while the worker holds the write lock waits for it. This benchmark
appends at a fixed rate, as the gateway does under steady traffic, once with no worker and once
while a worker process drains a backlog in full batches, the case with the most lock traffic.
The two kinds of phase alternate, so both see the same load from other processes.

Run with ``pytest benchmarks/persistence -p no:randomly --benchmark-only -s`` to see the
figures. The gate is the p50 of the draining phases over the p50 of the phases with no worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from evidence_persistence import PredictionQueue, PredictionRecord
from pytest_benchmark.fixture import BenchmarkFixture

from ..conftest import bench_record

# The rate the gateway must sustain on 2 cores, in appends per second.
APPEND_RATE = 500.0
# Appends per phase, and phases of each kind (no worker, worker draining).
APPENDS_PER_PHASE = {"quick": 600, "full": 2_000}
PHASES_PER_KIND = {"quick": 2, "full": 3}
# Records queued before each draining phase: more than the worker drains during the phase on
# the benchmark machine (5,000-9,000 records/s), so that it claims full batches throughout.
BACKLOG_PER_APPEND = 20
# A p50 at most this many times the p50 with no worker. Most appends never meet the worker's
# lock, so the p50 ratio stayed between 0.66 and 0.97 on 2 loaded cores, before and after the
# worker's transactions were shortened. Those changes moved the p99, which this test reports
# but does not gate, because other processes on the machine set most of it.
MAX_DRAINING_P50_RATIO = 1.5
WORKER_START_TIMEOUT_SECONDS = 60.0


def _record(index: int) -> PredictionRecord:
    return bench_record(index, "contention")


def _worker_environment(directory: Path) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PERSISTENCE_", "SNOWFLAKE_"))
    }
    environment.update(
        PERSISTENCE_QUEUE_PATH=str(directory / "queue.sqlite3"),
        PERSISTENCE_STORE_PATH=str(directory / "store.sqlite3"),
        PERSISTENCE_SNOWFLAKE_TOKEN_FILE=str(directory / "no-token"),
        PERSISTENCE_QUEUE_MAX_DEPTH="10000000",
        PERSISTENCE_LOG_LEVEL="INFO",
    )
    return environment


class _Worker:
    """An ``evidence-persistence worker`` process logging into ``directory/worker.log``."""

    def __init__(self, directory: Path) -> None:
        self.log = directory / "worker.log"
        starts_before = self._start_events()
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "evidence_persistence", "worker"],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=_worker_environment(directory),
            )
        deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
        while self._start_events() <= starts_before:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the worker did not start; see {self.log}")
            time.sleep(0.02)

    def _start_events(self) -> int:
        if not self.log.exists():
            return 0
        return self.log.read_text(encoding="utf-8").count('"worker started"')

    def stop(self) -> None:
        """Stop the worker with SIGTERM and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def _paced_appends(queue: PredictionQueue, records: list[PredictionRecord]) -> list[float]:
    """Append one record per call at ``APPEND_RATE`` and return each call's time in µs."""
    samples = []
    started = time.perf_counter()
    for index, record in enumerate(records):
        due = started + index / APPEND_RATE
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        call_started = time.perf_counter_ns()
        queue.append_many([record])
        samples.append((time.perf_counter_ns() - call_started) / 1_000)
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples)
    return {
        "p50_us": round(float(np.percentile(values, 50)), 1),
        "p99_us": round(float(np.percentile(values, 99)), 1),
        "max_us": round(float(values.max()), 1),
        "over_1ms_percent": round(float((values > 1_000).mean() * 100), 2),
    }


@pytest.fixture
def contention_queue(tmp_path: Path) -> Iterator[PredictionQueue]:
    """A queue file in the test's directory, closed afterwards."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3", max_depth=10_000_000)
    queue.check_writable()
    yield queue
    queue.close()


@pytest.mark.benchmark_gate
def test_bench_append_while_worker_drains(
    benchmark: BenchmarkFixture,
    tmp_path: Path,
    contention_queue: PredictionQueue,
    bench_mode: str,
) -> None:
    """Append p50 with a worker draining, as a ratio to the p50 with no worker."""
    appends = APPENDS_PER_PHASE[bench_mode]
    phases = PHASES_PER_KIND[bench_mode]
    next_index = iter(range(100_000_000))
    idle: list[float] = []
    draining: list[float] = []
    drained_during_phases: list[int] = []

    for _ in range(phases):
        idle.extend(
            _paced_appends(contention_queue, [_record(next(next_index)) for _ in range(appends)])
        )

        backlog = [_record(next(next_index)) for _ in range(appends * BACKLOG_PER_APPEND)]
        for start in range(0, len(backlog), 5_000):
            contention_queue.append_many(backlog[start : start + 5_000])
        worker = _Worker(tmp_path)
        try:
            depth_before = contention_queue.depth()
            draining.extend(
                _paced_appends(
                    contention_queue, [_record(next(next_index)) for _ in range(appends)]
                )
            )
            drained_during_phases.append(depth_before + appends - contention_queue.depth())
        finally:
            worker.stop()

    figures = {"no worker": _summary(idle), "worker draining": _summary(draining)}
    for name, figure in figures.items():
        print(f"append_many of 1 record, {name:16s} {json.dumps(figure)}")
        benchmark.extra_info[name] = figure
    print(f"records the worker drained during each phase: {drained_during_phases}")
    benchmark.extra_info["drained_during_phases"] = drained_during_phases

    counter = iter(range(200_000_000, 300_000_000))
    benchmark.pedantic(lambda: contention_queue.append_many([_record(next(counter))]), rounds=200)

    p50_ratio = figures["worker draining"]["p50_us"] / figures["no worker"]["p50_us"]
    p99_ratio = figures["worker draining"]["p99_us"] / figures["no worker"]["p99_us"]
    benchmark.extra_info["draining_to_idle_p50_ratio"] = round(p50_ratio, 2)
    benchmark.extra_info["draining_to_idle_p99_ratio"] = round(p99_ratio, 2)
    print(f"p50 ratio {p50_ratio:.2f}, p99 ratio {p99_ratio:.2f}")
    assert min(drained_during_phases) > 0, "the worker drained nothing while appends ran"
    assert p50_ratio <= MAX_DRAINING_P50_RATIO


def _spin(stop: threading.Event) -> None:
    total = 0
    while not stop.is_set():
        for value in range(1_000):
            total += value * value


def test_bench_append_beside_busy_thread(
    benchmark: BenchmarkFixture, contention_queue: PredictionQueue, bench_mode: str
) -> None:
    """Measure the append while another thread of the process runs Python code, with no gate.

    The gateway appends from a worker thread while its extraction threads run Python code.
    Every call into SQLite releases the GIL, and taking it back can wait for the other thread's
    switch interval (``sys.getswitchinterval()``, 5 ms by default).
    """
    appends = APPENDS_PER_PHASE[bench_mode]
    next_index = iter(range(400_000_000, 500_000_000))
    alone = _paced_appends(contention_queue, [_record(next(next_index)) for _ in range(appends)])
    stop = threading.Event()
    spinner = threading.Thread(target=_spin, args=(stop,))
    spinner.start()
    try:
        beside = _paced_appends(
            contention_queue, [_record(next(next_index)) for _ in range(appends)]
        )
    finally:
        stop.set()
        spinner.join()

    figures = {"alone": _summary(alone), "beside a busy thread": _summary(beside)}
    for name, figure in figures.items():
        mean = float(np.mean(alone if name == "alone" else beside))
        figure["mean_us"] = round(mean, 1)
        print(f"append_many of 1 record, {name:20s} {json.dumps(figure)}")
        benchmark.extra_info[name] = figure
    benchmark.pedantic(lambda: contention_queue.append_many([_record(next(next_index))]), rounds=50)
