"""Gateway latency and throughput over loopback against a bare FastAPI echo round trip.

Every figure compares the gateway with the echo server measured in the same run by the same
client, so the gates hold on any machine. Results are printed and attached to the
pytest-benchmark record (``extra_info``).
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_synthetic import generate_pairs

from .conftest import REPO_ROOT, BenchStack

pytestmark = pytest.mark.benchmark_gate

SAMPLE = REPO_ROOT / "data" / "samples" / "02-diabetic"
SEQUENTIAL_CALLS = 300
CLIENTS = 8
CALLS_PER_CLIENT = 60


def _typical_body() -> dict[str, Any]:
    return {
        "policy_number": "BENCH-0001",
        "mib_xml": (SAMPLE / "mib.xml").read_text(encoding="utf-8"),
        "rx_xml": (SAMPLE / "rx.xml").read_text(encoding="utf-8"),
    }


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 3),
    }


def _sequential(url: str, path: str, body: dict[str, Any], calls: int) -> list[float]:
    latencies = []
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for _ in range(20):
            client.post(path, json=body).raise_for_status()
        for _ in range(calls):
            started = time.perf_counter()
            client.post(path, json=body).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def _concurrent(url: str, path: str, body: dict[str, Any]) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS + 1)

    def run() -> None:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            client.post(path, json=body).raise_for_status()
            barrier.wait()
            mine = []
            for _ in range(CALLS_PER_CLIENT):
                started = time.perf_counter()
                client.post(path, json=body).raise_for_status()
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


# NOTE: the targets below come from the gateway's requirements and are not met yet (figures and
# the time breakdown are in docs/benchmarks.md, section Gateway). Each is a strict xfail, so the
# run fails on the day a target is met and the marker must go.
_P50_TARGET_MISSED = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="the model call is a second loopback round trip, so p50 stays above 3x one echo",
)


@_P50_TARGET_MISSED
def test_bench_predict_sequential(benchmark: Any, bench_stack: BenchStack) -> None:
    """Sequential /v1/predict: p50 at most 3x the echo round trip's p50."""
    body = _typical_body()
    echo = _summary(_sequential(bench_stack.echo_url, "/echo", body, SEQUENTIAL_CALLS))
    gateway_latencies: list[float] = []

    with httpx.Client(base_url=bench_stack.gateway_url, timeout=30.0) as client:

        def call() -> None:
            started = time.perf_counter()
            response = client.post("/v1/predict", json=body)
            gateway_latencies.append(time.perf_counter() - started)
            assert response.json()["model_version"].startswith("REGISTRY_")

        benchmark.pedantic(call, rounds=SEQUENTIAL_CALLS, warmup_rounds=20, iterations=1)

    gateway = _summary(gateway_latencies[20:] if len(gateway_latencies) > 20 else gateway_latencies)
    ratio = gateway["p50_ms"] / echo["p50_ms"]
    benchmark.extra_info.update({"echo": echo, "gateway": gateway, "p50_ratio": round(ratio, 2)})
    print(f"\nsequential: echo {echo}, gateway {gateway}, p50 ratio {ratio:.2f}")
    assert ratio <= 3.0


def test_bench_predict_concurrent(benchmark: Any, bench_stack: BenchStack) -> None:
    """8 concurrent clients on /v1/predict: p50 ratio to echo (regression gate) and requests/s."""
    body = _typical_body()
    echo_latencies, echo_elapsed = _concurrent(bench_stack.echo_url, "/echo", body)
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["latencies"], outcome["elapsed"] = _concurrent(
            bench_stack.gateway_url, "/v1/predict", body
        )

    benchmark.pedantic(run, rounds=1, iterations=1)

    calls = CLIENTS * CALLS_PER_CLIENT
    echo = {**_summary(echo_latencies), "rps": round(calls / echo_elapsed, 1)}
    gateway = {**_summary(outcome["latencies"]), "rps": round(calls / outcome["elapsed"], 1)}
    ratio = gateway["p50_ms"] / echo["p50_ms"]
    benchmark.extra_info.update({"echo": echo, "gateway": gateway, "p50_ratio": round(ratio, 2)})
    print(f"\n8 clients: echo {echo}, gateway {gateway}, p50 ratio {ratio:.2f}")
    # The 3x target is not met (6-7x measured, see docs/benchmarks.md), but under 8 concurrent
    # clients the echo's own p50 swings enough that a strict xfail on 3x passed by chance once.
    # So this is a regression gate at about twice the measured ratio instead.
    assert ratio <= 12.0


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="extract_features costs about 1.5-2 ms per generated pair, 300-400 ms per 200 rows",
)
def test_bench_function_batch_200(benchmark: Any, bench_stack: BenchStack, tmp_path: Path) -> None:
    """One 200-row service-function batch of generated typical pairs, end to end."""
    rows = [
        [i, f"BATCH-{i:04d}", pair.mib_xml.decode("utf-8"), pair.rx_xml.decode("utf-8")]
        for i, pair in enumerate(generate_pairs(400, seed=8, edge_rate=0.0))
        if pair.mib_xml.startswith(b"<") and pair.rx_xml.startswith(b"<")
    ][:200]
    rows = [[i, *row[1:]] for i, row in enumerate(rows)]
    payload = {"data": rows}
    with httpx.Client(base_url=bench_stack.gateway_url, timeout=60.0) as client:

        def call() -> None:
            response = client.post("/functions/predict", json=payload)
            assert len(response.json()["data"]) == 200

        benchmark.pedantic(call, rounds=10, warmup_rounds=1, iterations=1)

    median_ms = benchmark.stats.stats.median * 1000
    benchmark.extra_info["batch_200_median_ms"] = round(median_ms, 1)
    print(f"\n200-row batch: median {median_ms:.1f} ms")
    assert median_ms < 50.0
