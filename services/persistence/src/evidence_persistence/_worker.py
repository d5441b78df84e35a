"""The drain loop: claim a batch, write it to the sink in one call, then delete it.

Failures are sorted into two kinds. A ``SinkUnavailableError`` (store unreachable or locked) is
not the records' fault: the batch is released unchanged without using up an attempt, and the
worker backs off exponentially. Any other exception may come from one bad record, so the batch is
split in halves until each failing record is alone in its batch. Those records are retried later
and move to the dead-letter table after ``max_attempts`` claims.

A sink that rejects every record (a missing privilege, table or column) raises the second kind
for each one. Splitting then costs about two failing transactions per record and dead-letters the
whole queue. So a batch whose halves and one randomly drawn record all fail with the same
exception type is released like an outage instead, but only when that error is a sink fault (see
``is_sink_fault``). An error that can come from the records' own values, such as a failed
constraint, is always split down to single records, which reach the dead letters after
``max_attempts``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from evidence_persistence._consumer import ClaimedItem, QueueConsumer
from evidence_persistence._logging import describe_error
from evidence_persistence._record import PredictionRecord
from evidence_persistence._sink import Sink, WriteResult
from evidence_persistence._stop_drain import StopDrain
from evidence_persistence.errors import (
    QueueError,
    SchemaVersionError,
    SinkConfigurationError,
    SinkUnavailableError,
)
from evidence_persistence.metrics import WorkerMetrics

__all__ = ["DrainStats", "QueueDrainer", "is_sink_fault"]

_log = structlog.get_logger("evidence_persistence.worker")
# Time between the worker's checkpoints of the queue file. With appends at 500/s and a worker
# draining them, the WAL gained about 1,200 pages in that time (appends, claims and deletes
# together), far below the 10,000 pages at which an append runs a checkpoint itself.
CHECKPOINT_INTERVAL_SECONDS = 0.5
# Smallest batch on which a sink fault shared by both halves and a random record is taken to
# reject every record. In smaller batches a few records that fail alike would look the same, so
# their records are isolated one by one.
MIN_RECORDS_FOR_SINK_FAULT = 4
# SQLSTATE classes of errors about the statement or the caller's rights, not the values. Class
# 42 is "syntax error or access rule violation", such as 42S02 table not found or 42501
# insufficient privilege. Class 28 is "invalid authorization specification".
_SINK_FAULT_SQLSTATE_CLASSES = frozenset({"42", "28"})
# Prediction ids per warning about clock skew. The count goes with them, and a batch can hold
# hundreds of records from one producer whose clock runs ahead.
MAX_LOGGED_PREDICTION_IDS = 20
# Snowflake error numbers of a missing or unauthorized object (2003) and of insufficient
# privileges (3001), as snowflake-ml-python 2.6.0 tests them in snowflake/ml/jobs/manager.py.
# Number 2003 comes with SQLSTATE 02000 for a missing schema or service, outside the classes above.
_SINK_FAULT_SNOWFLAKE_ERRNOS = frozenset({2003, 3001})


def is_sink_fault(error: BaseException) -> bool:
    """Tell whether ``error`` points at the sink, so it would fail every record alike.

    True for a ``SinkConfigurationError``, which a sink may raise from ``write_batch`` to mark
    such a fault (the Snowflake sink does when creating the tables fails or its connection
    would put bound values into the SQL text). True also for a database error whose SQLSTATE
    or Snowflake error number names a missing object or privilege or an invalid statement: a
    connector ``ProgrammingError``, or a Snowpark ``SnowparkSQLException`` wrapping one. False
    for everything else, above all for errors that can come from the records' own values: the
    ``SinkRecordError`` of a failed SQLite constraint or an unbindable value, and SQLSTATE class
    22 (data exception) or 23 (integrity constraint violation). Only a sink fault can make the
    worker hold a batch as rejected in full. Records that keep failing with any other error
    reach the dead letters after ``max_attempts``.

    NOTE: only the sink can tell a fault of its own from one of the records. A SQLite trigger
    that rejects every row raises an ``IntegrityError`` like a failed CHECK, so the SQLite
    sink's rejections always count as the records' fault. The Snowflake codes have not been
    seen from a live account.
    """
    if isinstance(error, SinkConfigurationError):
        return True
    for cause in _error_chain(error):
        sqlstate = getattr(cause, "sqlstate", None)
        errno = getattr(cause, "errno", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _SINK_FAULT_SQLSTATE_CLASSES:
            return True
        if isinstance(errno, int) and errno in _SINK_FAULT_SNOWFLAKE_ERRNOS:
            return True
    return False


def _error_chain(error: BaseException) -> list[BaseException]:
    """Return ``error``, the connector error a Snowpark exception wraps, and their causes."""
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        wrapped = getattr(current, "conn_error", None)
        pending.append(current.__cause__)
        if isinstance(wrapped, BaseException):
            pending.append(wrapped)
    return chain


@dataclass(slots=True)
class DrainStats:
    """Totals of one ``QueueDrainer.run``."""

    batches: int = 0
    records_persisted: int = 0
    dead_lettered: int = 0
    sink_outages: int = 0
    rows_written: dict[str, int] = field(default_factory=dict)


class _SinkUnavailable(Exception):  # noqa: N818 - internal control flow, never escapes
    """Signal that stops the bisection of a batch: the sink went away or rejects every record."""

    def __init__(
        self, message: str, seqs: set[int], cause: BaseException, *, rejects_all: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.seqs = seqs
        self.rejects_all = rejects_all

    def including(self, groups: Iterable[Sequence[ClaimedItem]]) -> _SinkUnavailable:
        """Return the same outage with the records of ``groups`` also to be released."""
        seqs = self.seqs | {item.seq for group in groups for item in group}
        return _SinkUnavailable(self.message, seqs, self.cause, rejects_all=self.rejects_all)


def _same_sink_fault(candidate: Exception | None, error: Exception) -> bool:
    """Tell whether ``candidate`` is a sink fault of the same exception type as ``error``."""
    return candidate is not None and type(candidate) is type(error) and is_sink_fault(candidate)


class QueueDrainer:
    """Move records from a queue to a sink until stopped.

    Args:
        consumer: Claims and completes queue records.
        sink: Destination of the records.
        batch_size: Records claimed per batch.
        poll_interval_seconds: Sleep while the queue is empty; also the first back-off step.
        retry_backoff_max_seconds: Upper bound of the back-off after sink outages.
        metrics: Counters to update; ``None`` keeps none.
        clock_skew_tolerance_seconds: Records whose ``created_at`` is further ahead of this
            process's clock are logged and counted as future-dated.
        stop_grace_seconds: How long ``run`` keeps draining once ``stop`` is set. With 0 it
            returns after the batch in progress.
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
        clock_skew_tolerance_seconds: float = 300.0,
        stop_grace_seconds: float = 0.0,
    ) -> None:
        self.consumer = consumer
        self.stop_grace_seconds = stop_grace_seconds
        self.clock_skew_tolerance_seconds = clock_skew_tolerance_seconds
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
        halt: threading.Event | None = None,
    ) -> DrainStats:
        """Drain batches until ``stop`` is set, then drain on for up to ``stop_grace_seconds``.

        After ``stop`` the loop returns once the queue has stayed empty for
        ``STOP_DRAIN_QUIET_SECONDS``, once the grace time has passed, or once ``halt`` is set.
        The events are checked between batches, so the batch in progress is always finished.

        Args:
            stop: Set it (from a signal handler, say) to drain the queue and return.
            exit_when_empty: Also return once the queue is empty. Records claimed by a crashed
                worker count as waiting, so this waits for their leases to expire.
            on_stop: Called in this thread once the loop finds ``stop`` set, before any further log
                line. A signal handler must not log, because the signal can arrive while this
                thread holds the log stream's lock, so the caller logs the signal here.
            halt: Set it to return after the batch in progress, also during the drain.

        Raises:
            SchemaVersionError: A newer release wrote the queue or the store file. The batch
                in progress is released first, with no attempt used.
        """
        halt = halt if halt is not None else threading.Event()
        _log.info("worker started", owner=self.consumer.owner, batch_size=self.batch_size)
        stop_seen = False
        drain: StopDrain | None = None
        # Counted apart from the sink's outages: once the queue is readable again the worker polls
        # at its usual interval, while a sink that still fails keeps its own back-off.
        queue_outages = 0
        while not halt.is_set():
            if stop.is_set() and not stop_seen:
                stop_seen = True
                if on_stop is not None:
                    on_stop()
                if self.stop_grace_seconds > 0:
                    drain = self._begin_stop_drain()
            if stop_seen and (drain is None or drain.expired()):
                break
            try:
                claimed = self.drain_once()
                self._checkpoint_when_due()
            except QueueError as exc:
                # The queue file is locked beyond all retries, unwritable or damaged. Records stay
                # in it, so waiting and trying again loses nothing.
                queue_outages += 1
                _log.error(
                    "queue unavailable",
                    owner=self.consumer.owner,
                    outages_in_a_row=queue_outages,
                    **describe_error(exc),
                )
                self._pause(self._backoff_seconds(queue_outages), stop, halt, drain)
                continue
            if queue_outages:
                _log.info(
                    "queue available again",
                    owner=self.consumer.owner,
                    outages_in_a_row=queue_outages,
                )
                queue_outages = 0
            if self._outages_in_a_row:
                self._pause(self._backoff_seconds(), stop, halt, drain)
                continue
            if drain is not None:
                if drain.record_claim(claimed):
                    break
            elif claimed == 0 and exit_when_empty and self.consumer.queue.depth() == 0:
                break
            if claimed == 0:
                self._pause(self.poll_interval_seconds, stop, halt, drain)
        if stop.is_set() and not stop_seen and on_stop is not None:
            on_stop()
        if drain is not None:
            drain.finish(records_after=self.stats.records_persisted, interrupted=halt.is_set())
        _log.info(
            "worker stopped",
            owner=self.consumer.owner,
            batches=self.stats.batches,
            records=self.stats.records_persisted,
            dead_lettered=self.stats.dead_lettered,
        )
        return self.stats

    def _begin_stop_drain(self) -> StopDrain:
        return StopDrain.begin(
            self.consumer.queue,
            owner=self.consumer.owner,
            grace_seconds=self.stop_grace_seconds,
            records_before=self.stats.records_persisted,
        )

    @staticmethod
    def _pause(
        seconds: float, stop: threading.Event, halt: threading.Event, drain: StopDrain | None
    ) -> None:
        """Sleep up to ``seconds``. Wake on ``stop``, or during the drain on ``halt`` or its end."""
        if drain is None:
            stop.wait(seconds)
        else:
            halt.wait(min(seconds, drain.seconds_left()))

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
        persisted_before = self.stats.records_persisted
        undecodable = [item for item in items if item.record is None]
        for item in undecodable:
            error = f"RecordDecodeError: {item.decode_error or 'payload cannot be decoded'}"
            self._fail(item, error, "RecordDecodeError")
        decoded = [item for item in items if item.record is not None]

        outcome = "written"
        try:
            self._write(decoded)
            self._outages_in_a_row = 0
        except SchemaVersionError as exc:
            # Only a newer release can write this store, so no record is at fault and none
            # loses an attempt. Rows already deleted from the queue are not matched again.
            self.consumer.release(
                [item.seq for item in decoded],
                delay_seconds=0,
                error=f"{type(exc).__name__}: {exc}",
                count_attempt=False,
            )
            raise
        except _SinkUnavailable as exc:
            outcome = "sink_rejects_all" if exc.rejects_all else "sink_unavailable"
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
                "sink rejected every record, batch released"
                if exc.rejects_all
                else "sink unavailable, batch released",
                records=len(pending),
                retry_in_seconds=round(delay, 3),
                outages_in_a_row=self._outages_in_a_row,
                **describe_error(exc.cause),
            )

        duration = time.perf_counter() - started
        persisted = self.stats.records_persisted - persisted_before
        if outcome == "written" and persisted < len(items):
            # The other records failed one by one: to dead letters, or released for a retry.
            outcome = "partly_written" if persisted else "none_written"
        self.stats.batches += 1
        if self.metrics is not None:
            self.metrics.batches.labels(outcome).inc()
            if outcome in ("written", "partly_written"):
                self.metrics.batch_duration.observe(duration)
        _log.info(
            "batch processed",
            outcome=outcome,
            claimed=len(items),
            persisted=persisted,
            first_seq=items[0].seq,
            last_seq=items[-1].seq,
            duration_ms=round(duration * 1000, 2),
        )
        return len(items)

    def _write(self, items: Sequence[ClaimedItem]) -> None:
        """Write ``items`` and isolate failing records; raise ``_SinkUnavailable`` on an outage."""
        error = self._attempt(items, also_release=())
        if error is None:
            return
        groups: list[tuple[Sequence[ClaimedItem], Exception | None]] = [(items, error)]
        if len(items) >= MIN_RECORDS_FOR_SINK_FAULT and is_sink_fault(error):
            groups = self._split_checking_sink(items, error)
        self._isolate(groups)

    def _attempt(
        self,
        items: Sequence[ClaimedItem],
        *,
        also_release: Iterable[tuple[Sequence[ClaimedItem], Exception | None]],
    ) -> Exception | None:
        """Write and complete ``items``; return the exception if the sink rejected them.

        Raises:
            _SinkUnavailable: The sink is unavailable. It names ``items`` and the groups in
                ``also_release``, which are not written yet, as the records to release.
        """
        if not items:
            return None
        records = [item.record for item in items if item.record is not None]
        try:
            result = self.sink.write_batch(records)
        except SinkUnavailableError as exc:
            outage = _SinkUnavailable(str(exc), {item.seq for item in items}, exc)
            raise outage.including(group for group, _ in also_release) from exc
        except SinkConfigurationError as exc:
            # The sink itself reports that its set-up is wrong (such as a missing privilege or
            # table), which no record can cause, so the batch waits whatever its size.
            message = (
                f"the sink is misconfigured, so every record stays queued until it is fixed: "
                f"{type(exc).__name__}: {exc}"
            )
            seqs = {item.seq for item in items}
            outage = _SinkUnavailable(message, seqs, exc, rejects_all=True)
            raise outage.including(group for group, _ in also_release) from exc
        except SchemaVersionError:
            raise
        except Exception as exc:  # any other error may be one record's fault
            return exc
        self.consumer.complete([item.seq for item in items])
        self._count(result, len(items))
        self._report_clock_skew(records, result)
        return None

    def _split_checking_sink(
        self, items: Sequence[ClaimedItem], error: Exception
    ) -> list[tuple[Sequence[ClaimedItem], Exception | None]]:
        """Write both halves of a batch that failed with a sink fault, and probe one record.

        Returns:
            The groups still to isolate, each with its error, or ``None`` when the group has
            not been written on its own yet.

        Raises:
            _SinkUnavailable: Both halves and one record drawn at random failed with a sink
                fault of the whole batch's exception type, so the sink is taken to reject
                every record.
        """
        self._log_split(items, error)
        middle = len(items) // 2
        first, second = items[:middle], items[middle:]
        first_error = self._attempt(first, also_release=[(second, None)])
        later = [(first, first_error)] if first_error is not None else []
        second_error = self._attempt(second, also_release=later)
        failed = [
            (half, half_error)
            for half, half_error in ((first, first_error), (second, second_error))
            if half_error is not None
        ]
        if not (_same_sink_fault(first_error, error) and _same_sink_fault(second_error, error)):
            return list(failed)

        # Two records that meet a sink fault, one in each half, also fail both halves. A record
        # drawn at random is then most likely a good one, and the next claim draws again.
        probe = items[random.randrange(len(items))]  # noqa: S311 - sampling, not a secret
        others = [item for item in items if item.seq != probe.seq]
        probe_error = self._attempt([probe], also_release=[(others, None)])
        if _same_sink_fault(probe_error, error):
            message = (
                f"the sink rejected a batch of {len(items)} records, both its halves and one "
                f"record of it with {type(error).__name__}, so it is taken to reject every "
                "record, as with a missing privilege, table or column; the records stay queued "
                f"until the sink accepts them: {type(error).__name__}: {error}"
            )
            seqs = {item.seq for item in items}
            raise _SinkUnavailable(message, seqs, error, rejects_all=True)
        # The half that held the probe has not failed without it, so it is written again.
        remaining: list[tuple[Sequence[ClaimedItem], Exception | None]] = [
            ([item for item in half if item.seq != probe.seq], None)
            if probe in half
            else (half, half_error)
            for half, half_error in failed
        ]
        if probe_error is not None:
            remaining.append(([probe], probe_error))
        return [(group, group_error) for group, group_error in remaining if group]

    def _isolate(self, groups: list[tuple[Sequence[ClaimedItem], Exception | None]]) -> None:
        """Split failed groups in halves until each failing record is alone, and fail those.

        A group whose error is ``None`` is written first, and split only if that fails.
        """
        pending = list(reversed(groups))
        while pending:
            group, error = pending.pop()
            if error is None:
                error = self._attempt(group, also_release=pending)
                if error is None:
                    continue
            if len(group) == 1:
                # The full message goes to the dead-letter table only, because it may quote
                # the record's values.
                self._fail(group[0], f"{type(error).__name__}: {error}", type(error).__name__)
                continue
            self._log_split(group, error)
            middle = len(group) // 2
            pending.append((group[middle:], None))
            pending.append((group[:middle], None))

    def _log_split(self, items: Sequence[ClaimedItem], error: Exception) -> None:
        _log.warning(
            "batch write failed, splitting",
            records=len(items),
            error_type=type(error).__name__,
        )

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

    def _report_clock_skew(self, records: Sequence[PredictionRecord], result: WriteResult) -> None:
        """Log and count written records dated ahead of this clock, and features kept out."""
        now = datetime.now(UTC)
        cutoff = now + timedelta(seconds=self.clock_skew_tolerance_seconds)
        future = [record for record in records if record.created_at > cutoff]
        if future:
            ahead = max(record.created_at for record in future) - now
            _log.warning(
                "records dated in the future",
                records=len(future),
                prediction_ids=[r.prediction_id for r in future[:MAX_LOGGED_PREDICTION_IDS]],
                max_ahead_seconds=round(ahead.total_seconds(), 3),
                tolerance_seconds=self.clock_skew_tolerance_seconds,
            )
            if self.metrics is not None:
                self.metrics.future_dated_records.inc(len(future))
        skipped = result.online_features_skipped
        if skipped:
            _log.warning(
                "online features kept, stored row newer",
                records=len(skipped),
                prediction_ids=list(skipped[:MAX_LOGGED_PREDICTION_IDS]),
            )
            if self.metrics is not None:
                self.metrics.online_features_skipped.inc(len(skipped))

    def _backoff_seconds(self, step: int | None = None) -> float:
        exponent = self._outages_in_a_row if step is None else step
        delay = min(
            self.retry_backoff_max_seconds,
            self.poll_interval_seconds * 2.0 ** max(exponent - 1, 0),
        )
        jitter: float = random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
        return delay * jitter
