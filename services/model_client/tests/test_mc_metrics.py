"""Tests of the model client's Prometheus metrics and their buckets."""

from __future__ import annotations

import pytest
from evidence_model_client.config import MAX_DEADLINE_MS
from evidence_model_client.metrics import LATENCY_BUCKETS_SECONDS, ModelMetrics
from prometheus_client import CollectorRegistry

MAX_DEADLINE_SECONDS = MAX_DEADLINE_MS / 1000


def _bucket_count(registry: CollectorRegistry, name: str, upper: float, **labels: str) -> float:
    # prometheus-client labels these buckets as str(float) does, such as "0.0005" and "120.0".
    value = registry.get_sample_value(f"{name}_bucket", {**labels, "le": str(float(upper))})
    assert value is not None, f"no bucket le={upper} in {name}"
    return value


@pytest.mark.parametrize(
    "seconds",
    [2.8, MAX_DEADLINE_SECONDS - 0.1, MAX_DEADLINE_SECONDS + 0.5],
    ids=["2.8s", "below-max-deadline", "timed-out-at-max-deadline"],
)
def test_metrics_slow_call_in_finite_bucket(seconds: float) -> None:
    """A call near the largest MODEL_CLIENT_DEADLINE_MS is counted below +Inf."""
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry)
    metrics.call_duration.labels(outcome="ok").observe(seconds)
    metrics.pool_wait.observe(seconds)

    largest = max(LATENCY_BUCKETS_SECONDS)
    name = "evidence_model_call_duration_seconds"
    assert _bucket_count(registry, name, largest, outcome="ok") == 1
    assert _bucket_count(registry, "evidence_model_pool_wait_seconds", largest) == 1


def test_metrics_millisecond_buckets_kept() -> None:
    """A 0.7 ms call falls between the 0.5 ms and 1 ms buckets."""
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry)
    metrics.call_duration.labels(outcome="ok").observe(0.0007)

    name = "evidence_model_call_duration_seconds"
    assert _bucket_count(registry, name, 0.0005, outcome="ok") == 0
    assert _bucket_count(registry, name, 0.001, outcome="ok") == 1
