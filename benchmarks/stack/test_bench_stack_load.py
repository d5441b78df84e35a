"""Open-loop load on the local stack: a rate sweep, then the model server and the worker stopped.

The stack here runs with the model client's default deadline (50 ms), as it would be deployed,
so a slow model response shows up as fallback share. The load generator, the gateway, the model
server and the worker all share the same 2 cores, so the rates are those of one small machine
doing everything, not of a production deployment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_gateway.testing import Stack
from evidence_persistence import PredictionQueue

from .conftest import start_stack, stop_stack
from .loadgen import (
    REQUEST_TIMEOUT_SECONDS,
    Outcome,
    TimedAction,
    percentiles_ms,
    run_open_loop,
    summarize,
)

pytestmark = pytest.mark.bench_full

DEADLINE_MS = 50.0
RATES = (5, 10, 15, 20, 30, 40, 60, 80, 120, 160, 240, 320)
STEP_SECONDS = 6.0
BOUNDS_MS = (10.0, 100.0)
# A rate counts as held when p99 is under the bound, no request failed and at most this share
# of responses came from the fallback, because a fallback response hides a missed model deadline.
MAX_FALLBACK_SHARE_HELD = 0.01
# Well below the rate the sweep holds on a loaded 2-core machine, so the faults, not overload,
# set what happens.
FAULT_RATE = 10.0
# Seconds to wait for the gateway to report "ready" (model reachable, circuit closed).
READY_TIMEOUT_SECONDS = 30.0
FAULT_SECONDS = 12.0
# After the model server stops, the median response may take the deadline plus the gateway's
# own work plus this allowance. The p99 is recorded, not gated, because on a shared 2-core
# machine it also catches scheduling stalls of several hundred ms that happen with or without
# the fault.
FAULT_LATENCY_ALLOWANCE_MS = 50.0


@pytest.fixture(scope="module")
def load_stack(tmp_path_factory: pytest.TempPathFactory, bench_artifact: Path) -> Iterator[Stack]:
    """Model server, gateway with the default 50 ms model deadline, and worker."""
    directory = tmp_path_factory.mktemp("load")
    stack = start_stack(directory, bench_artifact, MODEL_CLIENT_DEADLINE_MS=str(DEADLINE_MS))
    try:
        yield stack
    finally:
        stop_stack(stack)


@pytest.fixture(scope="module")
def bodies(typical_body: dict[str, str]) -> list[bytes]:
    """Fifty /v1/predict bodies of the typical pair under distinct policy numbers."""
    return [json.dumps({**typical_body, "policy_number": f"LOAD-{i:04d}"}).encode()
            for i in range(50)]  # fmt: skip


def _wait_ready(stack: Stack, body: bytes) -> None:
    """Wait until the gateway reports ``ready``, so a test starts with a closed circuit.

    An open circuit only probes the model again when a request arrives, so each poll also sends
    one prediction.
    """
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    status = "no response"
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=stack.gateway_url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                client.post("/v1/predict", content=body, headers=headers)
                status = client.get("/health/ready").json()["status"]
            except httpx.HTTPError as error:
                status = type(error).__name__
            if status == "ready":
                return
            time.sleep(0.5)
    msg = f"gateway not ready after {READY_TIMEOUT_SECONDS:g} s: last status {status}"
    raise AssertionError(msg)


def _held(steps: list[dict[str, Any]], bound_ms: float) -> float:
    held = [
        step["rate"]
        for step in steps
        if step["p99_ms"] < bound_ms
        and step["errors"] == 0
        and step["fallback_share"] <= MAX_FALLBACK_SHARE_HELD
    ]
    return max(held, default=0.0)


def test_bench_stack_rate_sweep(
    load_stack: Stack,
    bodies: list[bytes],
    record_result: Callable[[str, dict[str, Any]], None],
) -> None:
    """Raise the arrival rate step by step until p99 passes 100 ms (or the last rate)."""
    run_open_loop(load_stack.gateway_url, "/v1/predict", bodies, rate=10, duration=3)  # warm-up
    steps: list[dict[str, Any]] = []
    for rate in RATES:
        _wait_ready(load_stack, bodies[0])
        outcomes = run_open_loop(
            load_stack.gateway_url, "/v1/predict", bodies, rate=rate, duration=STEP_SECONDS
        )
        steps.append(summarize(outcomes, rate, STEP_SECONDS))
        print(f"\nrate {rate}/s: {steps[-1]}")
        if steps[-1]["p99_ms"] >= max(BOUNDS_MS) or steps[-1]["errors"] > 0:
            break
    held = {f"held_rate_p99_under_{bound:g}_ms": _held(steps, bound) for bound in BOUNDS_MS}
    record_result("rate_sweep", {"step_seconds": STEP_SECONDS, "deadline_ms": DEADLINE_MS,
                                 "steps": steps, **held})  # fmt: skip
    assert steps[0]["errors"] == 0


def _per_second(outcomes: list[Outcome], seconds: float) -> list[dict[str, float]]:
    """Fallback share and p99 for each whole second of due times."""
    bins = []
    for second in range(int(seconds)):
        chosen = [o for o in outcomes if second <= o.due < second + 1 and o.status == 200]
        fallbacks = sum(o.model_version == "RULE_BASED" for o in chosen)
        bins.append({
            "second": second,
            "answers": len(chosen),
            "fallback_share": round(fallbacks / len(chosen), 3) if chosen else 0.0,
            "p99_ms": percentiles_ms([o.latency for o in chosen])["p99_ms"],
        })  # fmt: skip
    return bins


def test_bench_stack_model_stopped(
    load_stack: Stack,
    bodies: list[bytes],
    record_result: Callable[[str, dict[str, Any]], None],
) -> None:
    """The model server stops halfway: no errors, the fallback takes over within the deadline."""
    _wait_ready(load_stack, bodies[0])
    model = load_stack.processes["model"]
    halfway = FAULT_SECONDS / 2
    outcomes = run_open_loop(
        load_stack.gateway_url, "/v1/predict", bodies, rate=FAULT_RATE, duration=FAULT_SECONDS,
        actions=[TimedAction(halfway, model.stop)],
    )  # fmt: skip
    model.start()
    before = [o for o in outcomes if o.due < halfway - 0.5]
    after = [o for o in outcomes if o.due >= halfway + 0.5]
    result: dict[str, Any] = {
        "rate": FAULT_RATE,
        "seconds": FAULT_SECONDS,
        "deadline_ms": DEADLINE_MS,
        "before": summarize(before, FAULT_RATE, halfway - 0.5),
        "after": summarize(after, FAULT_RATE, halfway - 0.5),
        "per_second": _per_second(outcomes, FAULT_SECONDS),
    }
    record_result("fault_model_stopped", result)

    assert sum(o.status != 200 for o in outcomes) == 0
    assert result["after"]["fallback_share"] >= 0.9
    assert result["after"]["fallback_share"] >= result["before"]["fallback_share"] + 0.5
    assert result["after"]["p50_ms"] <= DEADLINE_MS + FAULT_LATENCY_ALLOWANCE_MS
    assert result["after"]["max_ms"] < 1000 * REQUEST_TIMEOUT_SECONDS


def test_bench_stack_worker_stopped(
    load_stack: Stack,
    bodies: list[bytes],
    record_result: Callable[[str, dict[str, Any]], None],
) -> None:
    """The worker stops halfway: the queue grows, nothing is lost, the restart drains it."""
    _wait_ready(load_stack, bodies[0])
    worker = load_stack.processes["worker"]
    queue = PredictionQueue(load_stack.queue_path)
    depths: list[tuple[float, int]] = []
    started = time.perf_counter()

    def sample_depth() -> None:
        depths.append((round(time.perf_counter() - started, 2), queue.depth()))

    samples = [TimedAction(t / 2, sample_depth) for t in range(int(FAULT_SECONDS * 2))]
    outcomes = run_open_loop(
        load_stack.gateway_url, "/v1/predict", bodies, rate=FAULT_RATE, duration=FAULT_SECONDS,
        actions=[TimedAction(FAULT_SECONDS / 2, worker.stop), *samples],
    )  # fmt: skip
    depth_at_restart = queue.depth()
    restarted = time.perf_counter()
    worker.start_without_probe()
    while queue.depth() > 0 and time.perf_counter() - restarted < 60:
        time.sleep(0.05)
    drain_seconds = time.perf_counter() - restarted
    ids = [o.prediction_id for o in outcomes if o.prediction_id is not None]
    stored = load_stack.wait_stored(ids, timeout=30.0)
    result: dict[str, Any] = {
        "rate": FAULT_RATE,
        "seconds": FAULT_SECONDS,
        "answered": len(ids),
        "errors": sum(o.status != 200 for o in outcomes),
        "depth_at_restart": depth_at_restart,
        "restart_to_empty_seconds": round(drain_seconds, 2),
        "stored": stored,
        "depths": depths,
        "latency": percentiles_ms([o.latency for o in outcomes if o.status == 200]),
    }
    record_result("fault_worker_stopped", result)

    assert result["errors"] == 0
    assert depth_at_restart >= FAULT_RATE * FAULT_SECONDS / 4
    assert depth_at_restart > max(depth for _, depth in depths[: len(depths) // 2])
    assert stored == len(ids)
