"""Open-loop load generator over httpx, and latency summaries.

Requests leave on a fixed clock (request ``i`` is due at ``start + i / rate``) whatever the
server does, and each latency runs from the due time to the last byte of the answer. A slow
answer therefore cannot delay later sends and hide queueing, which a closed loop of clients
waiting for their previous answer would do. If the generator itself falls behind its clock,
that lag counts as latency too, so the figures err on the slow side.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import numpy as np

# Each request gives up after this many seconds, so a run lasts at most its duration plus this.
REQUEST_TIMEOUT_SECONDS = 5.0
# The generator refuses to open more requests than this at once and counts them as dropped.
MAX_IN_FLIGHT = 2000


@dataclass(frozen=True)
class Outcome:
    """One request: due time (s since start), latency (s), status (0: no answer), details."""

    due: float
    latency: float
    status: int
    model_version: str | None
    prediction_id: str | None


@dataclass(frozen=True)
class TimedAction:
    """A blocking action (stop a process, say) run in a thread ``at`` seconds into the run."""

    at: float
    action: Callable[[], None]


async def _send(
    client: httpx.AsyncClient, path: str, body: bytes, due: float, started: float
) -> Outcome:
    status, version, prediction_id = 0, None, None
    try:
        response = await client.post(path, content=body)
        status = response.status_code
        if status == 200:
            answer = json.loads(response.content)
            version = answer.get("model_version")
            prediction_id = answer.get("prediction_id")
    except httpx.HTTPError:
        status = 0
    return Outcome(due, time.perf_counter() - started - due, status, version, prediction_id)


async def _run_action(action: TimedAction, started: float) -> None:
    await asyncio.sleep(max(0.0, started + action.at - time.perf_counter()))
    await asyncio.to_thread(action.action)


async def open_loop(
    base_url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    rate: float,
    duration: float,
    actions: Sequence[TimedAction] = (),
) -> list[Outcome]:
    """Send ``rate * duration`` POSTs at a fixed rate, cycling through ``bodies``.

    Returns one outcome per request in due order; requests dropped by the in-flight cap have
    status -1 and zero latency.
    """
    count = int(rate * duration)
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=256)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT_SECONDS, headers=headers
    ) as client:
        tasks: list[asyncio.Task[Outcome]] = []
        dropped: list[Outcome] = []
        in_flight = 0

        def finished(_: asyncio.Task[Outcome]) -> None:
            nonlocal in_flight
            in_flight -= 1

        started = time.perf_counter()
        helpers = [asyncio.create_task(_run_action(action, started)) for action in actions]
        for index in range(count):
            due = index / rate
            delay = started + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= MAX_IN_FLIGHT:
                dropped.append(Outcome(due, 0.0, -1, None, None))
                continue
            body = bodies[index % len(bodies)]
            task = asyncio.create_task(_send(client, path, body, due, started))
            task.add_done_callback(finished)
            in_flight += 1
            tasks.append(task)
        outcomes = list(await asyncio.gather(*tasks)) + dropped
        await asyncio.gather(*helpers)
    return sorted(outcomes, key=lambda outcome: outcome.due)


def run_open_loop(
    base_url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    rate: float,
    duration: float,
    actions: Sequence[TimedAction] = (),
) -> list[Outcome]:
    """Run :func:`open_loop` on a fresh event loop."""
    return asyncio.run(
        open_loop(base_url, path, bodies, rate=rate, duration=duration, actions=actions)
    )


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Return p50, p95, p99 and max of ``seconds`` in milliseconds, rounded to 0.001 ms."""
    if not seconds:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"),
                "max_ms": float("nan")}  # fmt: skip
    values = np.asarray(seconds) * 1000.0
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "max_ms": round(float(values.max()), 3),
    }


def summarize(outcomes: Sequence[Outcome], rate: float, duration: float) -> dict[str, float]:
    """Percentiles of the answered requests, error and fallback shares, achieved rate."""
    answered = [outcome for outcome in outcomes if outcome.status == 200]
    errors = len(outcomes) - len(answered)
    fallbacks = sum(outcome.model_version == "RULE_BASED" for outcome in answered)
    return {
        "rate": rate,
        "requests": len(outcomes),
        "errors": errors,
        "fallback_share": round(fallbacks / len(answered), 4) if answered else 0.0,
        "achieved_rps": round(len(answered) / duration, 1),
        **percentiles_ms([outcome.latency for outcome in answered]),
    }
