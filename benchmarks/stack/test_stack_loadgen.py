"""Checks of the load generator and its summaries, so the figures in the report can be trusted."""

from __future__ import annotations

import math

from .conftest import BenchStack
from .loadgen import Outcome, TimedAction, percentiles_ms, run_open_loop, summarize


def test_percentiles_ms_hand_computed() -> None:
    """numpy's linear interpolation over 1..100 ms gives these exact values."""
    result = percentiles_ms([i / 1000 for i in range(1, 101)])

    assert result["p50_ms"] == 50.5
    assert result["p95_ms"] == 95.05
    assert result["p99_ms"] == 99.01
    assert result["max_ms"] == 100.0


def test_percentiles_ms_empty_is_nan() -> None:
    """No samples gives NaN, not an exception."""
    assert math.isnan(percentiles_ms([])["p99_ms"])


def test_summarize_counts_errors_and_fallbacks() -> None:
    """Errors leave the percentiles; the fallback share counts only answered requests."""
    outcomes = [
        Outcome(0.0, 0.010, 200, "REGISTRY_V2", "a"),
        Outcome(0.1, 0.020, 200, "RULE_BASED", "b"),
        Outcome(0.2, 0.030, 200, "RULE_BASED", "c"),
        Outcome(0.3, 0.040, 200, "REGISTRY_V2", "d"),
        Outcome(0.4, 5.000, 0, None, None),
    ]

    result = summarize(outcomes, rate=10.0, duration=0.5)

    assert result["requests"] == 5
    assert result["errors"] == 1
    assert result["fallback_share"] == 0.5
    assert result["achieved_rps"] == 8.0
    assert result["max_ms"] == 40.0


def test_open_loop_sends_on_schedule(bench_stack: BenchStack) -> None:
    """40 requests at 40/s against the echo app: all answered, due times 25 ms apart."""
    fired: list[bool] = []
    outcomes = run_open_loop(
        bench_stack.echo_url,
        "/echo",
        [b'{"policy_number": "LOADGEN-1"}'],
        rate=40.0,
        duration=1.0,
        actions=[TimedAction(0.5, lambda: fired.append(True))],
    )

    assert len(outcomes) == 40
    assert [o.status for o in outcomes] == [200] * 40
    assert [round(o.due, 3) for o in outcomes[:3]] == [0.0, 0.025, 0.05]
    assert all(o.latency > 0 for o in outcomes)
    assert fired == [True]
