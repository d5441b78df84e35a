"""Each stage of one prediction against its floor, measured in the same run, and the whole.

Every pair alternates floor and subject call by call, so both see the same load on a shared
machine. Figures are p50/p95/p99 in milliseconds plus the ratio of the p50s. The stack test
also splits one /v1/predict into the stages' medians (the latency budget in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest
from evidence_features import extract_features
from evidence_features._xml import _new_parser
from evidence_model_client.client import ModelClient, RetryPolicy
from evidence_model_client.protocol import encode_dataframe_split
from evidence_persistence import PredictionQueue, PredictionRecord
from evidence_persistence._queue import QUEUE_SCHEMA
from evidence_persistence._record import encode_record
from lxml import etree

from ..conftest import bench_record
from .conftest import BenchStack
from .loadgen import percentiles_ms

# Calls per measured series in each mode.
ROUNDS = {"quick": {"cpu": 200, "http": 100, "queue": 400},
          "full": {"cpu": 1000, "http": 500, "queue": 3000}}  # fmt: skip
WARMUP = 20
# /v1/predict makes one nested HTTP call to the model server, so its floor is two round trips:
# the echo round trip plus the bare model call. The end-to-end p50 may cost this many times
# that. The quick runs recorded in docs/benchmarks.md measured 1.54 to 2.76 (median 2.38), so
# 1.5 times the median would be looser than this bound. Against the echo round trip alone the
# ratio is not gated here, because the bare model call by itself costs about one echo round trip.
MAX_PREDICT_TO_TWO_ROUND_TRIPS = 3.0


def _paired(floor: Callable[[], object], subject: Callable[[], object], rounds: int) -> Any:
    """Time ``floor`` and ``subject`` alternately; return both series in seconds."""
    for _ in range(WARMUP):
        floor()
        subject()
    floor_times, subject_times = [], []
    gc.disable()
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            floor()
            middle = time.perf_counter()
            subject()
            floor_times.append(middle - started)
            subject_times.append(time.perf_counter() - middle)
    finally:
        gc.enable()
    return floor_times, subject_times


def _pair_result(floor_name: str, floor: list[float], name: str, subject: list[float]) -> Any:
    floor_stats, subject_stats = percentiles_ms(floor), percentiles_ms(subject)
    return {
        "floor": {"name": floor_name, **floor_stats, "samples_ms": _rounded_ms(floor)},
        "subject": {"name": name, **subject_stats, "samples_ms": _rounded_ms(subject)},
        "p50_ratio": round(subject_stats["p50_ms"] / floor_stats["p50_ms"], 2),
    }


def _rounded_ms(seconds: list[float]) -> list[float]:
    return [round(value * 1000, 4) for value in seconds]


def _record(index: int) -> PredictionRecord:
    return bench_record(index, "stage")


def _stage_extract(body: dict[str, str], rounds: int) -> Any:
    mib, rx = body["mib_xml"].encode(), body["rx_xml"].encode()
    parser = _new_parser()
    floor, subject = _paired(
        lambda: (etree.fromstring(mib, parser), etree.fromstring(rx, parser)),
        lambda: extract_features(mib, rx),
        rounds,
    )
    return _pair_result("lxml parse of both documents", floor, "extract_features", subject)


def _stage_predict(bench: BenchStack, body: dict[str, str], rounds: int) -> Any:
    with (
        httpx.Client(base_url=bench.echo_url, timeout=30.0) as echo,
        httpx.Client(base_url=bench.stack.gateway_url, timeout=30.0) as gateway,
    ):
        versions: set[str] = set()

        def predict() -> None:
            response = gateway.post("/v1/predict", json=body)
            response.raise_for_status()
            versions.add(response.json()["model_version"])

        floor, subject = _paired(
            lambda: echo.post("/echo", json=body).raise_for_status(), predict, rounds
        )
    assert versions == {"REGISTRY_V2"}, f"fallback answered during the benchmark: {versions}"
    return _pair_result("FastAPI echo round trip", floor, "/v1/predict end to end", subject)


def _stage_model_call(bench: BenchStack, body: dict[str, str], rounds: int) -> Any:
    matrix = extract_features(body["mib_xml"], body["rx_xml"]).values.reshape(1, -1)
    payload = encode_dataframe_split(matrix)
    loop = asyncio.new_event_loop()
    client = ModelClient(bench.stack.model_url, deadline_seconds=1.0, retry=RetryPolicy(0))
    url = f"{bench.stack.model_url}/predict-proba"
    headers = {"Content-Type": "application/json"}

    async def open_bare() -> aiohttp.ClientSession:
        # aiohttp binds a session to the loop running when it is created.
        return aiohttp.ClientSession()

    bare = loop.run_until_complete(open_bare())

    async def bare_call() -> None:
        # The floor is the library ModelClient sends with, without its checks and breaker.
        async with bare.post(url, data=payload, headers=headers) as response:
            response.raise_for_status()
            await response.read()

    try:
        floor, subject = _paired(
            lambda: loop.run_until_complete(bare_call()),
            lambda: loop.run_until_complete(client.predict_proba(matrix)),
            rounds,
        )
    finally:
        loop.run_until_complete(bare.close())
        loop.run_until_complete(client.aclose())
        loop.close()
    return _pair_result("bare aiohttp POST /predict-proba", floor, "ModelClient.predict_proba",
                        subject)  # fmt: skip


@pytest.fixture
def floor_connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A WAL SQLite file with the queue's schema, for the bare insert floor."""
    connection = sqlite3.connect(tmp_path / "floor.sqlite3", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(QUEUE_SCHEMA)
    yield connection
    connection.close()


def _stage_queue(connection: sqlite3.Connection, queue: PredictionQueue, rounds: int) -> Any:
    records = [_record(i) for i in range(rounds + WARMUP)]
    encoded = encode_record(records[0])
    counter = {"floor": 0, "append": 0}

    def insert() -> None:
        counter["floor"] += 1
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO queue_items (prediction_id, enqueued_at, payload, features) "
            "VALUES (?, ?, ?, ?)",
            (str(counter["floor"]), time.time(), encoded.payload, encoded.features),
        )
        connection.execute("COMMIT")

    def append() -> None:
        queue.append(records[counter["append"]])
        counter["append"] += 1

    floor, subject = _paired(insert, append, rounds)
    return _pair_result("bare SQLite BEGIN IMMEDIATE; INSERT; COMMIT", floor,
                        "PredictionQueue.append", subject)  # fmt: skip


@pytest.mark.benchmark_gate
def test_bench_stack_stages(
    bench_stack: BenchStack,
    bench_mode: str,
    typical_body: dict[str, str],
    floor_connection: sqlite3.Connection,
    tmp_path: Path,
    record_result: Callable[[str, dict[str, Any]], None],
) -> None:
    """Every stage against its floor, then the end-to-end median split into stages."""
    rounds = ROUNDS[bench_mode]
    queue = PredictionQueue(tmp_path / "queue.sqlite3", synchronous="NORMAL")
    stages = {
        "extract": _stage_extract(typical_body, rounds["cpu"]),
        "predict": _stage_predict(bench_stack, typical_body, rounds["http"]),
        "model_call": _stage_model_call(bench_stack, typical_body, rounds["http"]),
        "queue_append": _stage_queue(floor_connection, queue, rounds["queue"]),
    }
    end_to_end = stages["predict"]["subject"]["p50_ms"]
    parts = {
        "HTTP framework round trip (echo p50)": stages["predict"]["floor"]["p50_ms"],
        "feature extraction (p50)": stages["extract"]["subject"]["p50_ms"],
        "model call through ModelClient (p50)": stages["model_call"]["subject"]["p50_ms"],
        "queue append (p50)": stages["queue_append"]["subject"]["p50_ms"],
    }
    parts["rest: validation, thread hand-off, response, scheduling"] = round(
        end_to_end - sum(parts.values()), 3
    )
    two_round_trips = stages["predict"]["floor"]["p50_ms"] + stages["model_call"]["floor"]["p50_ms"]
    ratio = round(end_to_end / two_round_trips, 2)
    result = {"mode": bench_mode, "rounds": rounds, "stages": stages,
              "budget": {"end_to_end_p50_ms": end_to_end, "parts_ms": parts},
              "predict_to_two_round_trips_p50_ratio": ratio}  # fmt: skip
    record_result("stages", result)

    assert np.isfinite(end_to_end)
    assert ratio <= MAX_PREDICT_TO_TWO_ROUND_TRIPS, (
        f"/v1/predict p50 {end_to_end} ms is {ratio}x the echo plus bare model round trips"
    )
