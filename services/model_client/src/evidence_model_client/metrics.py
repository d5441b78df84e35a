"""Prometheus metrics of the model client and scorer.

Latencies are observed in seconds (``perf_counter`` differences) with buckets from 0.5 ms to
120 s. The fine buckets below 100 ms are there because a healthy local call takes about a
millisecond and the default deadline is 50 ms. The coarse ones reach beyond the largest
deadline that ``MODEL_CLIENT_DEADLINE_MS`` accepts (60 s), so that slow calls and calls that
time out land in a finite bucket.
Pass the gateway's registry so the metrics appear on its ``/metrics``. In multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``) the circuit-state gauge is exported per live process.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS_SECONDS", "ModelMetrics"]

LATENCY_BUCKETS_SECONDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    # A call that times out at the largest deadline (60 s) is observed a little after it,
    # because the timeout ends the call on a later turn of the event loop.
    120.0,
)


class ModelMetrics:
    """The model-call latency, pool wait, fallback count and circuit-state metrics."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.call_duration = Histogram(
            "evidence_model_call_duration_seconds",
            "Duration of one model call (one batch), retries and pool wait included.",
            ["outcome"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.pool_wait = Histogram(
            "evidence_model_pool_wait_seconds",
            "Time a model call waited for a free pooled connection.",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.fallbacks = Counter(
            "evidence_model_fallbacks",
            "Rows scored by the rule-based fallback, by reason.",
            ["reason"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            "evidence_model_circuit_state",
            "Model circuit breaker state: 0 closed, 1 open, 2 half-open.",
            registry=registry,
            multiprocess_mode="liveall",
        )
