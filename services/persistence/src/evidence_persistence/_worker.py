"""The drain loop: claim a batch, write it to the sink in one call, then delete it.

Failures are sorted into two kinds. A ``SinkUnavailableError`` (store unreachable or locked) is
not the records' fault: the batch is released unchanged without using up an attempt, and the
worker backs off exponentially. Any other exception may come from one bad record, so the batch is
split in halves until each failing record is alone in its batch. Those records are retried later
and move to the dead-letter table after ``max_attempts`` claims.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from evidence_persistence._consumer import ClaimedItem, QueueConsumer
from evidence_persistence._logging import describe_error
from evidence_persistence._sink import Sink, WriteResult
from evidence_persistence.errors import QueueError, SinkUnavailableError
from evidence_persistence.metrics import WorkerMetrics

__all__ = ["DrainStats", "QueueDrainer"]

_log = structlog.get_logger("evidence_persistence.worker")
# Time between the worker's checkpoints of the queue file. With appends at 500/s and a worker
# draining them, the WAL gained about 1,200 pages in that time (appends, claims and deletes
# together), far below the 10,000 pages at which an append runs a checkpoint itself.
CHECKPOINT_INTERVAL_SECONDS = 0.5


@dataclass(slots=True)
class DrainStats:
    """Totals of one ``QueueDrainer.run``."""

    batches: int = 0
    records_persisted: int = 0
    dead_lettered: int = 0
    sink_outages: int = 0
    rows_written: dict[str, int] = field(default_factory=dict)


class _SinkUnavailable(Exception):  # noqa: N818 - internal control flow, never escapes
    """Stops the bisection of a batch because the sink went away."""

    def __init__(self, message: str, seqs: set[int], cause: BaseException) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.seqs = seqs


class QueueDrainer:
    """Move records from a queue to a sink until stopped.

    Args:
        consumer: Claims and completes queue records.
        sink: Destination of the records.
        batch_size: Records claimed per batch.
        poll_interval_seconds: Sleep while the queue is empty; also the first back-off step.
        retry_backoff_max_seconds: Upper bound of the back-off after sink outages.
        metrics: Counters to update; ``None`` keeps none.
    """

    def __init__(
        self,
        consumer: QueueConsumer,
        sink: Sink,
        *,
        batch_size: int = 500,
        poll_interval_seconds: float = 0.2,
        retry_backoff_max_seconds: float = 30.0,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.consumer = consumer
        self.sink = sink
        self.batch_size = batch_size
        self.poll_interval_seconds = poll_interval_seconds
        self.retry_backoff_max_seconds = retry_backoff_max_seconds
        self.metrics = metrics
        self.stats = DrainStats()
        self._outages_in_a_row = 0
        self._next_checkpoint = 0.0

    def run(
        self,
        stop: threading.Event,
        *,
        exit_when_empty: bool = False,
        on_stop: Callable[[], None] | None = None,
    ) -> DrainStats:
        """Drain batches until ``stop`` is set, checked between batches.

        Args:
            stop: Set it (from a signal handler, say) to finish the current batch and return.
            exit_when_empty: Also return once the queue is empty. Records claimed by a crashed
                worker count as waiting, so this waits for their leases to expire.
            on_stop: Called in this thread when ``stop`` ended the loop, before the last log
                line. A signal handler must not log, because the signal can arrive while this
                thread holds the log stream's lock, so the caller logs the signal here.
        """
        _log.info("worker started", owner=self.consumer.owner, batch_size=self.batch_size)
        while not stop.is_set():
            try:
                claimed = self.drain_once()
                self._checkpoint_when_due()
            except QueueError as exc:
                # The queue file is locked beyond all retries or unwritable. Records stay in it,
                # so waiting and trying again loses nothing.
                self._outages_in_a_row += 1
                _log.error(
                    "queue unavailable",
                    owner=self.consumer.owner,
                    outages_in_a_row=self._outages_in_a_row,
                    **describe_error(exc),
                )
                stop.wait(self._backoff_seconds())
                continue
            if self._outages_in_a_row:
                stop.wait(self._backoff_seconds())
            elif claimed == 0:
                if exit_when_empty and self.consumer.queue.depth() == 0:
                    break
                stop.wait(self.poll_interval_seconds)
        if stop.is_set() and on_stop is not None:
            on_stop()
        _log.info(
            "worker stopped",
            owner=self.consumer.owner,
            batches=self.stats.batches,
            records=self.stats.records_persisted,
            dead_lettered=self.stats.dead_lettered,
        )
        return self.stats

    def _checkpoint_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_checkpoint:
            return
        self._next_checkpoint = now + CHECKPOINT_INTERVAL_SECONDS
        self.consumer.checkpoint()

    def drain_once(self) -> int:
        """Claim and process one batch; return the number of records claimed."""
        items = self.consumer.claim(self.batch_size)
        if not items:
            return 0

        started = time.perf_counter()
        undecodable = [item for item in items if item.record is None]
        for item in undecodable:
            error = f"RecordDecodeError: {item.decode_error or 'payload cannot be decoded'}"
            self._fail(item, error, "RecordDecodeError")
        decoded = [item for item in items if item.record is not None]

        outcome = "written"
        try:
            self._write(decoded)
            self._outages_in_a_row = 0
        except _SinkUnavailable as exc:
            outcome = "sink_unavailable"
            self._outages_in_a_row += 1
            self.stats.sink_outages += 1
            pending = [item for item in decoded if item.seq in exc.seqs]
            delay = self._backoff_seconds()
            self.consumer.release(
                [item.seq for item in pending],
                delay_seconds=delay,
                error=exc.message,
                count_attempt=False,
            )
            _log.warning(
                "sink unavailable, batch released",
                records=len(pending),
                retry_in_seconds=round(delay, 3),
                outages_in_a_row=self._outages_in_a_row,
                **describe_error(exc.cause),
            )

        duration = time.perf_counter() - started
        self.stats.batches += 1
        if self.metrics is not None:
            self.metrics.batches.labels(outcome).inc()
            if outcome == "written":
                self.metrics.batch_duration.observe(duration)
        _log.info(
            "batch processed",
            outcome=outcome,
            claimed=len(items),
            first_seq=items[0].seq,
            last_seq=items[-1].seq,
            duration_ms=round(duration * 1000, 2),
        )
        return len(items)

    def _write(self, items: Sequence[ClaimedItem]) -> None:
        """Write ``items``; split on failures that are not outages; raise ``_SinkUnavailable``."""
        if not items:
            return
        records = [item.record for item in items if item.record is not None]
        try:
            result = self.sink.write_batch(records)
        except SinkUnavailableError as exc:
            raise _SinkUnavailable(str(exc), {item.seq for item in items}, exc) from exc
        except Exception as exc:
            if len(items) == 1:
                # The full message goes to the dead-letter table only, because it may quote
                # the record's values.
                self._fail(items[0], f"{type(exc).__name__}: {exc}", type(exc).__name__)
                return
            middle = len(items) // 2
            _log.warning(
                "batch write failed, splitting",
                records=len(items),
                error_type=type(exc).__name__,
            )
            first, second = items[:middle], items[middle:]
            try:
                self._write(first)
            except _SinkUnavailable as outage:
                seqs = outage.seqs | {item.seq for item in second}
                raise _SinkUnavailable(outage.message, seqs, outage.cause) from outage
            self._write(second)
            return
        self.consumer.complete([item.seq for item in items])
        self._count(result, len(items))

    def _fail(self, item: ClaimedItem, error: str, error_type: str) -> None:
        dead = self.consumer.fail(item, error, delay_seconds=self._backoff_seconds(1))
        if dead:
            self.stats.dead_lettered += 1
            if self.metrics is not None:
                self.metrics.dead_lettered.inc()
        _log.warning(
            "record moved to dead letters" if dead else "record failed, will retry",
            prediction_id=item.prediction_id,
            seq=item.seq,
            attempts=item.attempts,
            error_type=error_type,
        )

    def _count(self, result: WriteResult, records: int) -> None:
        self.stats.records_persisted += records
        per_table = {
            "ONLINE_FEATURES": result.online_features,
            "MODEL_PREDICTIONS": result.model_predictions,
            "RAW_EVIDENCE": result.raw_evidence,
        }
        for table, rows in per_table.items():
            self.stats.rows_written[table] = self.stats.rows_written.get(table, 0) + rows
            if self.metrics is not None and rows:
                self.metrics.rows_written.labels(table).inc(rows)
        if self.metrics is not None:
            self.metrics.records_persisted.inc(records)

    def _backoff_seconds(self, step: int | None = None) -> float:
        exponent = self._outages_in_a_row if step is None else step
        delay = min(
            self.retry_backoff_max_seconds,
            self.poll_interval_seconds * 2.0 ** max(exponent - 1, 0),
        )
        jitter: float = random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
        return delay * jitter
