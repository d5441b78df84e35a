"""Latency against Rx report size and against service-function batch size, plus 200-row gates.

A 200-row batch has a ratio gate and an absolute target (under 50 ms). Wall time on a shared
2-core machine mostly measures how long the processes waited for a core. So both read the CPU
time that the gateway and the model server spent on each batch, from psutil over all threads
and child processes in 10 ms clock ticks. They take the median of five batches and keep the
best of three such medians. The ratio gate divides that by the CPU time of
``extract_features`` over the same 200 rows in this process. Wall-clock figures are recorded
beside them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from evidence_features import extract_features
from evidence_synthetic import generate_pairs, generate_rx_report

from .conftest import BenchStack
from .loadgen import percentiles_ms

BATCH_BOUND_MS = 50.0
# Batch scoring adds JSON decoding, the model call, the fallback check and the queue append to
# the extraction of each row. In the runs recorded in docs/benchmarks.md it cost 1.13 to 1.31x
# the in-process extraction (median 1.16), so past 2x something other than extraction got
# expensive.
# On 2026-12-05 at 11:50 UTC the VM measured 1.65 to 1.77 with this code and 1.67 to 1.75
# with the code of the morning (commit f3b9db8), so the bound went back to 2.
MAX_BATCH_RATIO_TO_EXTRACT = 2.0
BATCH_GATE_ROWS = 200
# Batches per median, and medians per gate; the gate takes the best median.
BATCH_GATE_ROUNDS = 5
BATCH_GATE_REPEATS = 3
FILLS = (10, 50, 200, 1000)
BATCH_SIZES = (1, 10, 100, 500)


def _cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by the processes and their children."""
    total = 0.0
    for pid in pids:
        process = psutil.Process(pid)
        for member in [process, *process.children(recursive=True)]:
            times = member.cpu_times()
            total += times.user + times.system
    return total


def _server_pids(bench: BenchStack) -> list[int]:
    return [bench.stack.processes["gateway"].pid, bench.stack.processes["model"].pid]


def _function_rows(count: int) -> list[list[Any]]:
    """``count`` service-function rows of generated applicants (invented data, no edge cases)."""
    rows: list[list[Any]] = []
    for pair in generate_pairs(2 * count + 10, seed=8, edge_rate=0.0):
        if pair.mib_xml.startswith(b"<") and pair.rx_xml.startswith(b"<"):
            rows.append([len(rows), pair.policy_number, pair.mib_xml.decode(),
                         pair.rx_xml.decode()])  # fmt: skip
        if len(rows) == count:
            return rows
    msg = f"generated too few well-formed pairs for {count} rows"
    raise AssertionError(msg)


def _time_batches(
    client: httpx.Client, pids: Sequence[int], rows: list[list[Any]], rounds: int
) -> tuple[list[float], list[float]]:
    """Post the batch ``rounds`` times; return wall and server CPU seconds per batch."""
    walls, cpus = [], []
    for _ in range(rounds):
        cpu_before = _cpu_seconds(pids)
        started = time.perf_counter()
        response = client.post("/functions/predict", json={"data": rows})
        wall = time.perf_counter() - started
        response.raise_for_status()
        answers = response.json()["data"]
        assert [answer[0] for answer in answers] == [row[0] for row in rows]
        # CPU is read after the response, so work finished by then is counted; later work is not.
        cpus.append(_cpu_seconds(pids) - cpu_before)
        walls.append(wall)
    return walls, cpus


def _extract_cpu_per_row(rows: list[list[Any]]) -> float:
    """Best of three in-process CPU times per row for ``extract_features`` over ``rows``."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for row in rows:
            extract_features(row[2], row[3])
        best = min(best, (time.process_time() - started) / len(rows))
    return best


@pytest.fixture(scope="module")
def batch_200(
    bench_stack: BenchStack, record_result: Callable[[str, dict[str, Any]], None]
) -> dict[str, Any]:
    """Server CPU and wall time of 200-row batches, with the extraction floor of the same rows."""
    rows = _function_rows(BATCH_GATE_ROWS)
    pids = _server_pids(bench_stack)
    medians_cpu, walls = [], []
    with httpx.Client(base_url=bench_stack.stack.gateway_url, timeout=60.0) as client:
        _time_batches(client, pids, rows, 1)
        for _ in range(BATCH_GATE_REPEATS):
            wall, cpu = _time_batches(client, pids, rows, BATCH_GATE_ROUNDS)
            medians_cpu.append(statistics.median(cpu) * 1000)
            walls.extend(wall)
    floor_ms = _extract_cpu_per_row(rows) * 1000 * len(rows)
    best = min(medians_cpu)
    result: dict[str, Any] = {
        "rows": BATCH_GATE_ROWS,
        "cpu_medians_ms": [round(value, 2) for value in medians_cpu],
        "best_cpu_median_ms": round(best, 2),
        "extract_floor_cpu_ms": round(floor_ms, 2),
        "ratio_to_extract_floor": round(best / floor_ms, 3),
        "wall": percentiles_ms(walls),
        "bound_ms": BATCH_BOUND_MS,
    }
    record_result("batch_200", result)
    return result


@pytest.mark.benchmark_gate
def test_bench_stack_batch_200_ratio(batch_200: dict[str, Any]) -> None:
    """A 200-row batch costs the servers at most 2x the CPU of extracting its rows in-process."""
    ratio = batch_200["ratio_to_extract_floor"]
    assert ratio <= MAX_BATCH_RATIO_TO_EXTRACT, f"200-row batch: {ratio:.2f}x the extraction CPU"


@pytest.mark.benchmark_gate
@pytest.mark.xfail(
    strict=True,
    reason="target not reached: extraction alone costs 0.7 to 0.9 ms of CPU per applicant, "
    "so 200 rows need 140 to 180 ms on one core",
)
def test_bench_stack_batch_200_target(batch_200: dict[str, Any]) -> None:
    """Target: a 200-row batch costs the servers under 50 ms of CPU (best of three medians)."""
    assert batch_200["best_cpu_median_ms"] < BATCH_BOUND_MS


@pytest.mark.bench_full
def test_bench_stack_batch_sizes(
    bench_stack: BenchStack, record_result: Callable[[str, dict[str, Any]], None]
) -> None:
    """Service-function latency for batches of 1, 10, 100 and 500 rows."""
    pids = _server_pids(bench_stack)
    all_rows = _function_rows(max(BATCH_SIZES))
    results: list[dict[str, Any]] = []
    with httpx.Client(base_url=bench_stack.stack.gateway_url, timeout=120.0) as client:
        for size in BATCH_SIZES:
            rows = all_rows[:size]
            _time_batches(client, pids, rows, 2)
            rounds = {1: 60, 10: 30, 100: 10, 500: 5}[size]
            walls, cpus = _time_batches(client, pids, rows, rounds)
            wall = percentiles_ms(walls)
            results.append({
                "rows": size,
                "rounds": rounds,
                "wall": wall,
                "cpu_p50_ms": round(statistics.median(cpus) * 1000, 3),
                "wall_p50_per_row_ms": round(wall["p50_ms"] / size, 3),
            })  # fmt: skip
    record_result("batch_sizes", {"batches": results})
    per_row = [result["wall_p50_per_row_ms"] for result in results]
    assert per_row[-1] < per_row[0], "batching should cost less per row than single calls"


def _series(function: Callable[[], object], rounds: int) -> list[float]:
    for _ in range(3):
        function()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


@pytest.mark.bench_full
def test_bench_stack_rx_sizes(
    bench_stack: BenchStack,
    typical_body: dict[str, str],
    record_result: Callable[[str, dict[str, Any]], None],
) -> None:
    """extract_features and /v1/predict for Rx reports of 10, 50, 200 and 1,000 fills."""
    mib = typical_body["mib_xml"]
    results: list[dict[str, Any]] = []
    with httpx.Client(base_url=bench_stack.stack.gateway_url, timeout=60.0) as client:
        for fills in FILLS:
            rx = generate_rx_report(np.random.default_rng(fills), fills).decode()
            body = {"policy_number": f"FILLS-{fills}", "mib_xml": mib, "rx_xml": rx}
            rounds = {10: 200, 50: 200, 200: 100, 1000: 30}[fills]

            def extract_one(rx: str = rx) -> object:
                return extract_features(mib, rx)

            extract = _series(extract_one, rounds)

            def predict(body: dict[str, str] = body) -> None:
                client.post("/v1/predict", json=body).raise_for_status()

            end_to_end = _series(predict, max(20, rounds // 2))
            results.append({
                "fills": fills,
                "rx_bytes": len(rx.encode()),
                "extract": percentiles_ms(extract),
                "predict": percentiles_ms(end_to_end),
            })  # fmt: skip
    record_result("rx_sizes", {"reports": results})
    p50 = [result["extract"]["p50_ms"] for result in results]
    assert p50[-1] > p50[0], "a 1,000-fill report should take longer than a 10-fill one"
