"""Prometheus metrics of the gateway.

Durations are observed in seconds with explicit buckets that cover millisecond-scale responses.
The client library's default buckets start at 5 ms and would hide most of the distribution.
With several uvicorn workers, set ``PROMETHEUS_MULTIPROC_DIR`` to a directory that the workers
share, so ``render_metrics`` aggregates every worker's samples. ``evidence-gateway`` deletes
the files of earlier runs from it before the workers start (``server.clear_metrics_files``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE_LATEST",
    "EXTRACTION_RECYCLES",
    "EXTRACTION_SECONDS",
    "FALLBACKS",
    "FEATURE_WARNINGS",
    "MODEL_CALL_SECONDS",
    "PREDICTIONS",
    "QUEUE_APPEND_SECONDS",
    "REQUEST_SECONDS",
    "ROW_ERRORS",
    "mark_worker_dead",
    "render_metrics",
]

# Request and model latencies: a scored request takes 1-20 ms locally and up to the model
# deadline when the model is slow. MODEL_CLIENT_DEADLINE_MS allows 60 s, and a call cut off
# there is measured a little later, so the largest finite bucket is 120 s.
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
# Parsing and local SQLite appends: tens of microseconds to a few hundred milliseconds.
_FINE_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 5.0,
)  # fmt: skip

REQUEST_SECONDS = Histogram(
    "evidence_gateway_request_duration_seconds",
    "Time from request start to the last response byte.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
MODEL_CALL_SECONDS = Histogram(
    "evidence_gateway_model_call_duration_seconds",
    "Time of one scorer call for one or more coalesced requests (model or fallback).",
    ["model_version"],
    buckets=_LATENCY_BUCKETS,
)
EXTRACTION_SECONDS = Histogram(
    "evidence_gateway_feature_extraction_duration_seconds",
    "Time to parse the documents and build feature vectors for one request.",
    ["source"],
    buckets=_FINE_BUCKETS,
)
EXTRACTION_RECYCLES = Counter(
    "evidence_gateway_extraction_recycles",
    "Extraction pools replaced by fresh ones: after their input limit, which frees the XML name "
    "dictionaries of their threads, or because a worker process died.",
    ["pool", "reason"],
)
QUEUE_APPEND_SECONDS = Histogram(
    "evidence_gateway_queue_append_duration_seconds",
    "Time to append one request's predictions to the durable queue.",
    buckets=_FINE_BUCKETS,
)
PREDICTIONS = Counter(
    "evidence_gateway_predictions",
    "Predictions returned and queued.",
    ["source", "model_version"],
)
FALLBACKS = Counter(
    "evidence_gateway_fallbacks",
    "Predictions scored by the rule-based fallback, by reason.",
    ["reason"],
)
FEATURE_WARNINGS = Counter(
    "evidence_gateway_feature_warnings",
    "Parser warnings met while building features, by kind and document.",
    ["kind", "document"],
)
FUNCTION_BATCHES_WITHOUT_BATCH_ID = Counter(
    "evidence_gateway_function_batches_without_batch_id",
    "Service-function batches without the sf-external-function-query-batch-id header, whose "
    "rows got random prediction ids, so a retry of such a batch is stored twice.",
)
ROW_ERRORS = Counter(
    "evidence_gateway_row_errors",
    "Rows or requests that could not be scored, by error type.",
    ["source", "type"],
)

# prometheus_client's file names for the gauges of live processes: gauge_livemax_1234.db.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


class _QueueDepth(Collector):
    """``evidence_gateway_queue_depth`` as read by the scrape that renders it.

    Not a ``Gauge``: with several workers, each would keep the depth it read at its own last
    scrape, and any aggregate over workers would show a stale value.
    """

    def __init__(self, depth: float) -> None:
        self.depth = depth

    def collect(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "evidence_gateway_queue_depth",
                "Predictions waiting in the durable queue, read at scrape time; NaN when the "
                "queue file could not be read.",
                value=self.depth,
            )
        ]


def render_metrics(multiprocess_dir: Path | None, *, queue_depth: float | None = None) -> bytes:
    """Render the exposition text, aggregated over workers when a multiprocess dir is set.

    Args:
        multiprocess_dir: ``PROMETHEUS_MULTIPROC_DIR``, or None for this process alone.
        queue_depth: The queue depth this scrape read, exported as it is; None leaves it out.
    """
    registry = CollectorRegistry()
    if queue_depth is not None:
        registry.register(_QueueDepth(queue_depth))
    if multiprocess_dir is None:
        return generate_latest(REGISTRY) + generate_latest(registry)
    _forget_dead_workers(multiprocess_dir)
    prometheus_multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
        registry, path=str(multiprocess_dir)
    )
    return generate_latest(registry)


def _forget_dead_workers(multiprocess_dir: Path) -> None:
    """Drop the live gauges of workers that died without ``mark_worker_dead``.

    A worker killed with SIGKILL never runs its shutdown, and its circuit state would stay in
    the aggregate for ever.
    """
    pids = {
        int(match.group(1))
        for path in multiprocess_dir.glob("gauge_live*.db")
        if (match := _LIVE_GAUGE_FILE.fullmatch(path.name))
    }
    for pid in pids:
        if not _process_exists(pid):
            prometheus_multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                pid, path=str(multiprocess_dir)
            )


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_worker_dead(multiprocess_dir: Path | None) -> None:
    """Drop this process's live gauges from the aggregate when it shuts down."""
    if multiprocess_dir is not None:
        prometheus_multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
            os.getpid(), path=str(multiprocess_dir)
        )
