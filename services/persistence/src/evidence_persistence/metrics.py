"""Prometheus metrics of the queue and the worker.

``QueueCollector`` reads depth, oldest age and dead-letter count from the queue file at scrape
time, so the numbers are those of the file, whichever process has it open. The worker's metrics
port exports them; the gateway exports only its own queue depth. ``WorkerMetrics`` contains the
worker's counters and registers the collector.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from evidence_persistence._queue import PredictionQueue
from evidence_persistence.errors import PersistenceError

__all__ = ["QueueCollector", "WorkerMetrics"]


class QueueCollector(Collector):
    """Export the state of one queue file; register it in any ``CollectorRegistry``.

    Exports ``evidence_persistence_queue_up`` (1 when the file could be read and this process
    has met no damage in it, see ``PredictionQueue.corruption``),
    ``evidence_persistence_queue_depth``, ``evidence_persistence_queue_oldest_age_seconds`` and
    ``evidence_persistence_dead_letters``.
    """

    def __init__(self, queue: PredictionQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the queue and yield its gauges; a failed read yields only ``queue_up 0``.

        A damaged file can still return its depth, because the pages that hold the counter
        may be intact. Then ``queue_up`` is 0 and the other gauges are still reported.
        """
        try:
            depth = self.queue.depth()
            oldest = self.queue.oldest_age_seconds()
            dead = self.queue.dead_letter_count()
        except PersistenceError:
            yield GaugeMetricFamily(
                "evidence_persistence_queue_up", "1 when the queue file was readable", value=0
            )
            return
        up = 0 if self.queue.corruption else 1
        yield GaugeMetricFamily(
            "evidence_persistence_queue_up", "1 when the queue file was readable", value=up
        )
        yield GaugeMetricFamily(
            "evidence_persistence_queue_depth", "Records waiting in the queue", value=depth
        )
        yield GaugeMetricFamily(
            "evidence_persistence_queue_oldest_age_seconds",
            "Age of the oldest waiting record in seconds",
            value=oldest,
        )
        yield GaugeMetricFamily(
            "evidence_persistence_dead_letters", "Records in the dead-letter table", value=dead
        )


class WorkerMetrics:
    """Counters and histograms of one worker process, in their own registry."""

    def __init__(self, queue: PredictionQueue, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.registry.register(QueueCollector(queue))
        self.batch_duration = Histogram(
            "evidence_persistence_batch_duration_seconds",
            "Time to write one batch to the sink and delete it from the queue",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.rows_written = Counter(
            "evidence_persistence_rows_written",
            "Rows upserted into the sink, per table",
            ["table"],
            registry=self.registry,
        )
        self.records_persisted = Counter(
            "evidence_persistence_records_persisted",
            "Queue records written to the sink and deleted from the queue",
            registry=self.registry,
        )
        self.batches = Counter(
            "evidence_persistence_batches",
            "Batches processed, by outcome (written, partly_written, none_written, "
            "sink_unavailable, sink_rejects_all)",
            ["outcome"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "evidence_persistence_dead_lettered",
            "Records this worker moved to the dead-letter table",
            registry=self.registry,
        )
        self.future_dated_records = Counter(
            "evidence_persistence_future_dated_records",
            "Written records whose created_at was more than clock_skew_tolerance_seconds "
            "ahead of the worker's clock",
            registry=self.registry,
        )
        self.store_attempt_failures = Counter(
            "evidence_persistence_store_attempt_failures",
            "Attempts to write a batch to the SQLite store that failed with a lock or I/O "
            "error, by SQLite error name (SQLITE_BUSY, SQLITE_IOERR_WRITE, ...)",
            ["error_code"],
            registry=self.registry,
        )
        self.online_features_skipped = Counter(
            "evidence_persistence_online_features_skipped",
            "ONLINE_FEATURES rows not written because the stored row of the policy had a "
            "newer UPDATED_AT",
            registry=self.registry,
        )
