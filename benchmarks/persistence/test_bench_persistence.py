"""Benchmarks of the durable queue's append latency and the worker's drain throughput.

Run with ``pytest benchmarks/persistence -p no:randomly --benchmark-only -s``; each test prints
its figures. Floors are measured in the same run: a bare SQLite ``BEGIN IMMEDIATE; INSERT;
COMMIT`` of the same columns for appends, and bare multi-row inserts of the same rows into the
same tables for the drain. The gates are ratios to those floors.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from evidence_persistence import PredictionQueue, PredictionRecord
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._queue import QUEUE_SCHEMA
from evidence_persistence._record import encode_record
from evidence_persistence._rows import build_rows
from evidence_persistence._tables import MODEL_PREDICTIONS, ONLINE_FEATURES
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.ddl import render_ddl
from evidence_persistence.sinks.sqlite import SqliteSink
from pytest_benchmark.fixture import BenchmarkFixture

from ..conftest import bench_record

APPENDS = 3_000
DRAIN_RECORDS = 20_000
# append() adds record encoding (JSON of the scalars, packing of 105 floats), the depth check
# and the lock wrapper to the bare insert. Without fsync the bare insert takes tens of
# microseconds, so these additions may cost up to this many times the floor.
MAX_APPEND_RATIO = 3.0
# The drain adds claims, deletes, decoding and de-duplication to the bare inserts. On 2 loaded
# cores it reached 0.33-0.38 of the floor, so a fall below 0.2 means a real regression.
MIN_DRAIN_FRACTION_OF_FLOOR = 0.2


def _record(index: int) -> PredictionRecord:
    return bench_record(index, "bench")


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2] / 1_000
    p99 = ordered[int(len(ordered) * 0.99)] / 1_000
    return p50, p99


def _time_calls(call: Callable[[int], None], count: int) -> list[int]:
    samples = []
    for index in range(count):
        started = time.perf_counter_ns()
        call(index)
        samples.append(time.perf_counter_ns() - started)
    return samples


def _time_alternating(
    floor: Callable[[int], None], subject: Callable[[int], None], count: int
) -> tuple[list[int], list[int]]:
    """Time ``floor`` and ``subject`` call by call in turn.

    Other work on the machine then slows both series alike, and the ratio of their medians
    stays stable even when the load changes during the run.
    """
    floor_samples: list[int] = []
    subject_samples: list[int] = []
    for index in range(count):
        for call, samples in ((floor, floor_samples), (subject, subject_samples)):
            started = time.perf_counter_ns()
            call(index)
            samples.append(time.perf_counter_ns() - started)
    return floor_samples, subject_samples


def _bare_insert(path: Path) -> Callable[[int], None]:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(QUEUE_SCHEMA)
    encoded = encode_record(_record(0))

    def insert(index: int) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO queue_items (prediction_id, enqueued_at, payload, features) "
            "VALUES (?, ?, ?, ?)",
            (str(index), time.time(), encoded.payload, encoded.features),
        )
        connection.execute("COMMIT")

    return insert


@pytest.mark.benchmark_gate
def test_bench_append_latency(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    """Append p50/p99 against a bare SQLite insert floor; FULL and record building reported."""
    records = [_record(i) for i in range(APPENDS)]
    normal = PredictionQueue(tmp_path / "normal.sqlite3", synchronous="NORMAL")
    normal.depth()
    floor, appends = _time_alternating(
        _bare_insert(tmp_path / "floor.sqlite3"),
        lambda i: normal.append(records[i]),
        APPENDS,
    )

    built = PredictionQueue(tmp_path / "built.sqlite3", synchronous="NORMAL")
    built.depth()
    build_and_append = _time_calls(lambda i: built.append(_record(i)), APPENDS)

    full = PredictionQueue(tmp_path / "full.sqlite3", synchronous="FULL")
    full.depth()
    full_appends = _time_calls(lambda i: full.append(records[i]), APPENDS // 3)

    figures = {
        "floor bare insert (NORMAL)": _percentiles(floor),
        "append (NORMAL)": _percentiles(appends),
        "build record + append (NORMAL)": _percentiles(build_and_append),
        "append (FULL)": _percentiles(full_appends),
    }
    for name, (p50, p99) in figures.items():
        print(f"{name:32s} p50 {p50:8.1f} us   p99 {p99:8.1f} us")
        benchmark.extra_info[name] = {"p50_us": round(p50, 1), "p99_us": round(p99, 1)}

    counter = iter(range(APPENDS, 10 * APPENDS))
    benchmark.pedantic(lambda: normal.append(records[next(counter) % APPENDS]), rounds=500)

    ratio = figures["append (NORMAL)"][0] / figures["floor bare insert (NORMAL)"][0]
    benchmark.extra_info["append_to_floor_p50_ratio"] = round(ratio, 2)
    assert ratio <= MAX_APPEND_RATIO


def _floor_drain_rate(path: Path, records: list[PredictionRecord]) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    for statement in render_ddl("sqlite"):
        connection.execute(statement)
    started = time.perf_counter()
    for start in range(0, len(records), 500):
        rows = build_rows(
            records[start : start + 500],
            store_raw_evidence=False,
            timestamp=lambda value: value.isoformat(timespec="microseconds"),
        )
        connection.execute("BEGIN IMMEDIATE")
        for table, table_rows in (
            (ONLINE_FEATURES, rows.online_features),
            (MODEL_PREDICTIONS, rows.model_predictions),
        ):
            placeholders = "(" + ",".join("?" * len(table.columns)) + ")"
            per_statement = 32_766 // len(table.columns)
            for chunk_start in range(0, len(table_rows), per_statement):
                chunk = table_rows[chunk_start : chunk_start + per_statement]
                values = [value for row in chunk for value in row]
                connection.execute(
                    f"INSERT INTO {table.sqlite_name} VALUES "  # noqa: S608
                    + ",".join([placeholders] * len(chunk)),
                    values,
                )
        connection.execute("COMMIT")
    return len(records) / (time.perf_counter() - started)


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    """Drop the worker's per-batch info logs during the drain, then restore the config."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.configure(**previous)


@pytest.mark.benchmark_gate
@pytest.mark.usefixtures("quiet_logs")
def test_bench_drain_throughput(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    """Records per second from the queue into the SQLite store with 105 feature columns."""
    records = [_record(i) for i in range(DRAIN_RECORDS)]
    floor_rate = max(_floor_drain_rate(tmp_path / f"floor{n}.sqlite3", records) for n in range(3))
    rates: list[float] = []
    run = iter(range(100))

    def setup() -> tuple[tuple[QueueDrainer], dict[str, object]]:
        directory = tmp_path / f"run{next(run)}"
        queue = PredictionQueue(directory / "queue.sqlite3", max_depth=1_000_000)
        for start in range(0, DRAIN_RECORDS, 5_000):
            queue.append_many(records[start : start + 5_000])
        consumer = QueueConsumer(queue, owner="bench")
        drainer = QueueDrainer(consumer, SqliteSink(directory / "store.sqlite3"), batch_size=500)
        return (drainer,), {}

    def drain(drainer: QueueDrainer) -> None:
        started = time.perf_counter()
        drainer.run(threading.Event(), exit_when_empty=True)
        rates.append(drainer.stats.records_persisted / (time.perf_counter() - started))
        assert drainer.stats.records_persisted == DRAIN_RECORDS

    benchmark.pedantic(drain, setup=setup, rounds=3)
    best = max(rates)
    # Each record is one MODEL_PREDICTIONS row and one ONLINE_FEATURES row (distinct policies).
    print(f"drain floor (bare inserts)   {floor_rate:10.0f} records/s, {2 * floor_rate:.0f} rows/s")
    print(f"drain (claim, write, delete) {best:10.0f} records/s, {2 * best:.0f} rows/s")
    benchmark.extra_info["floor_records_per_second"] = round(floor_rate)
    benchmark.extra_info["drain_records_per_second"] = round(best)
    assert best >= MIN_DRAIN_FRACTION_OF_FLOOR * floor_rate
