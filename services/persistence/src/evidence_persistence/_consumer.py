"""The worker's side of the queue: claim a batch under a lease, then delete, retry or dead-letter.

A claim sets ``available_at`` to now plus the lease and counts one attempt. A worker that crashes
before it deletes its batch leaves the rows in place, and they are claimed again once the lease
expires. Sinks write with upserts, so a record written twice leaves one row.

Producers wait for the queue's write lock while a claim or a delete holds it, so both work in
transactions of at most ``ROWS_PER_TRANSACTION`` rows. Rewriting 500 queue rows took 2 to 3.5 ms
on the benchmark machine and 100 rows about 0.6 ms. A batch therefore takes a few short holds
of the lock instead of one long one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import structlog

from evidence_persistence._queue import PredictionQueue
from evidence_persistence._record import PredictionRecord, decode_record
from evidence_persistence._sqlite_sidecars import SIDECAR_REASONS, ReopenHazard
from evidence_persistence.errors import RecordDecodeError

__all__ = ["ClaimedItem", "DeadLetter", "QueueConsumer"]

_MAX_ERROR_LENGTH = 2_000
ROWS_PER_TRANSACTION = 100
_log = structlog.get_logger("evidence_persistence.worker")

# The scan follows seq (the rowid) and stops after LIMIT matches. An index on available_at would
# make SQLite sort every waiting row instead.
_CLAIM_SQL = (
    "UPDATE queue_items SET attempts = attempts + 1, available_at = ?, lease_owner = ? "
    "WHERE seq IN (SELECT seq FROM queue_items WHERE available_at <= ? ORDER BY seq LIMIT ?) "
    "RETURNING seq, prediction_id, attempts, enqueued_at"
)
_ROW_BYTES = (
    "length(payload) + length(features) + ifnull(length(mib_xml), 0) + ifnull(length(rx_xml), 0)"
)
# The same scan, keeping each row whose predecessors hold fewer bytes than the budget, so the
# first row is always kept. length() of a BLOB takes the size from the row header without
# reading the XML (100 rows of 4 MB: 13 ms, against 270 ms to read them).
_CLAIM_BYTES_SQL = (
    "UPDATE queue_items SET attempts = attempts + 1, available_at = ?, lease_owner = ? "  # noqa: S608
    "WHERE seq IN (SELECT seq FROM (SELECT seq, sum(size) OVER (ORDER BY seq) - size AS before "
    f"FROM (SELECT seq, {_ROW_BYTES} AS size FROM queue_items WHERE available_at <= ? "
    "ORDER BY seq LIMIT ?)) WHERE before < ?) "
    f"RETURNING seq, prediction_id, attempts, enqueued_at, {_ROW_BYTES}"
)


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """One queue row claimed by a worker."""

    seq: int
    prediction_id: str
    attempts: int
    enqueued_at: float
    record: PredictionRecord | None
    """The decoded record, or ``None`` when the payload could not be decoded."""
    decode_error: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that failed ``max_attempts`` times, with the last error."""

    seq: int
    prediction_id: str
    attempts: int
    enqueued_at: float
    failed_at: float
    error: str


class QueueConsumer:
    """Claim, complete, release and dead-letter records of one :class:`PredictionQueue`.

    Args:
        queue: The queue to consume.
        owner: Identifier of this worker, stored with each claim for diagnosis.
        lease_seconds: Time after which an unfinished claim is delivered again.
        max_attempts: Claims after which a failing record moves to the dead-letter table.
        max_batch_bytes: Stored bytes (payload, features and XML) after which a claim stops
            taking records; ``None`` bounds claims by count only. The first record is always
            taken, so a larger record still goes through on its own.
    """

    def __init__(
        self,
        queue: PredictionQueue,
        *,
        owner: str,
        lease_seconds: float = 60.0,
        max_attempts: int = 5,
        max_batch_bytes: int | None = None,
    ) -> None:
        if lease_seconds <= 0:
            msg = f"lease_seconds={lease_seconds!r} must be positive"
            raise ValueError(msg)
        if max_attempts < 1:
            msg = f"max_attempts={max_attempts!r} must be at least 1"
            raise ValueError(msg)
        if max_batch_bytes is not None and max_batch_bytes < 1:
            msg = f"max_batch_bytes={max_batch_bytes!r} must be at least 1, or None"
            raise ValueError(msg)
        self.queue = queue
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.max_batch_bytes = max_batch_bytes
        self._moved_reported = False

    def claim(self, limit: int) -> list[ClaimedItem]:
        """Claim up to ``limit`` available records, oldest first, and count one attempt each.

        Records whose lease expired after ``max_attempts`` claims (the worker kept crashing on
        them) move to the dead-letter table instead of being returned. The claim runs in
        transactions of at most ``ROWS_PER_TRANSACTION`` rows, each one complete on its own.
        With ``max_batch_bytes`` set, the claim also stops once the records taken hold that
        many stored bytes. When the queue file was deleted or replaced under the worker, the
        claims go on reading the file that the worker has open until it contains no record, and
        then the queue is opened again at its path, unless that is unsafe (see
        ``SqliteFile.reopen``). When only the file's -wal or -shm was deleted or replaced,
        nothing is claimed and the path is not opened again.

        Raises:
            QueueUnavailableError: The queue file cannot be read or written, including by a
                new connection (see ``PredictionQueue.check_header``).
        """
        # This process's connection would go on claiming from its page cache after the file's
        # header was overwritten, while the gateway and every new process fail on the file.
        # Checking through a new connection first keeps the worker from consuming a queue that
        # no producer can reach, and makes it log the damage on every back-off cycle.
        # A moved file is still drained through this connection, and the path's file is not
        # this worker's file until it reopens, so its header is not checked meanwhile.
        moved = self.queue.file.moved()
        if moved == "reopened":
            # Another thread, such as a metrics scrape after an error, opened the connection
            # again at the path, so it is the path's file that the next claim reads.
            moved = None
        if moved in SIDECAR_REASONS:
            # A claim would write into the deleted -wal, and its checkpoints would copy pages
            # into the database file that a connection opened since then reads without them.
            self.queue.file.reopen(moved, "no record is claimed", self._log_unsafe_path)
            moved = None
        if moved is None:
            self.queue.check_header()
        items = self._claim_batch(limit)
        if moved is not None:
            self._leave_moved_file_when_drained(moved, claimed=len(items))
        return items

    def _claim_batch(self, limit: int) -> list[ClaimedItem]:
        items: list[ClaimedItem] = []
        budget = self.max_batch_bytes
        while len(items) < limit:
            requested = min(ROWS_PER_TRANSACTION, limit - len(items))
            claimed, found, size = self._claim_chunk(requested, budget)
            items.extend(claimed)
            if found < requested:
                break
            if budget is not None:
                budget -= size
                if budget <= 0:
                    break
        items.sort(key=lambda item: item.seq)
        return items

    def _leave_moved_file_when_drained(self, reason: str, *, claimed: int) -> None:
        """Reopen the queue at its path once the deleted or replaced file contains no record.

        The records that producers appended before the file was moved are only in that file,
        which this connection still reads, so the worker stores them first. Producers write
        again at the path once they find the file moved, so the old file does not grow for
        long.
        """
        self._report_moved(reason)
        if claimed or self.queue.depth() > 0:
            return
        # NOTE: the dead letters of the moved file are not copied, so they are lost with it.
        dead_letters = self.queue.dead_letter_count()
        self.queue.file.reopen(reason, "no record is claimed from the path", self._log_unsafe_path)
        _log.warning(
            "moved queue file drained, reopening its path",
            queue_path=str(self.queue.path),
            dead_letters_left_behind=dead_letters,
        )
        self._moved_reported = False

    def _report_moved(self, reason: str) -> None:
        if self._moved_reported:
            return
        _log.error(
            "queue file moved, draining the open file before reopening its path",
            queue_path=str(self.queue.path),
            reason=reason,
            fix="keep the queue file and its -wal and -shm in place while the gateway and "
            "the worker run",
        )
        self._moved_reported = True

    def _log_unsafe_path(self, reason: str, hazard: ReopenHazard) -> None:
        _log.error(
            "queue file moved, path unsafe to open again",
            queue_path=str(self.queue.path),
            reason=reason,
            fix=hazard.fix,
        )

    def _claim_chunk(self, limit: int, budget: int | None) -> tuple[list[ClaimedItem], int, int]:
        """Claim up to ``limit`` records in one transaction, within ``budget`` stored bytes.

        Returns:
            The claimed items, the number of rows claimed, and their stored bytes (0 without
            a budget).
        """
        now = time.time()
        exhausted: list[tuple[Any, ...]] = []
        matched = 0
        size = 0

        def take(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            lease = (now + self.lease_seconds, self.owner)
            if budget is None:
                rows = connection.execute(_CLAIM_SQL, (*lease, now, limit)).fetchall()
            else:
                rows = connection.execute(_CLAIM_BYTES_SQL, (*lease, now, limit, budget)).fetchall()
            # A retried transaction starts over, so forget rows found by a rolled-back attempt.
            nonlocal matched, size
            matched = len(rows)
            size = sum(row[4] for row in rows) if budget is not None else 0
            exhausted[:] = [row for row in rows if row[2] > self.max_attempts]
            if exhausted:
                error = (
                    f"LeaseExpired: claimed {self.max_attempts} times without being completed, "
                    "so the worker crashed or exceeded its lease on this record each time"
                )
                _move_to_dead_letters(connection, [row[0] for row in exhausted], error, now)
            return [row for row in rows if row[2] <= self.max_attempts]

        rows = self.queue.file.write(take)
        # The payloads are read after the commit, so the write lock is not held while SQLite
        # copies them out. Leased rows stay unchanged until this worker deletes or releases them.
        payloads = self._read_payloads([row[0] for row in rows])
        for row in exhausted:
            _log.warning(
                "record moved to dead letters",
                prediction_id=row[1],
                seq=row[0],
                attempts=row[2],
                error_type="LeaseExpired",
            )
        # A row missing from the payloads left the queue after the claim, for example because
        # its lease expired and another worker completed it.
        items = [_to_item(row[:4], payloads[row[0]]) for row in rows if row[0] in payloads]
        return items, matched, size

    def _read_payloads(self, seqs: list[int]) -> dict[int, tuple[Any, ...]]:
        if not seqs:
            return {}
        rows = self.queue.file.read(
            lambda c: c.execute(_select_payloads_sql(len(seqs)), seqs).fetchall()
        )
        return {row[0]: row[1:] for row in rows}

    def complete(self, seqs: Sequence[int]) -> None:
        """Delete records that reached the sink, ``ROWS_PER_TRANSACTION`` rows per transaction.

        A crash between two of these transactions leaves the rest of the batch leased, and it is
        delivered again once the lease expires. The sinks' upserts make that harmless.
        """
        for start in range(0, len(seqs), ROWS_PER_TRANSACTION):
            chunk = [(seq,) for seq in seqs[start : start + ROWS_PER_TRANSACTION]]
            self.queue.file.write(partial(_delete_rows, rows=chunk))

    def checkpoint(self) -> None:
        """Copy the queue's WAL into its database file, so that appends need not do it.

        Without this, SQLite runs the checkpoint inside whichever commit finds the WAL over the
        size limit, most often a producer's append.
        """
        self.queue.file.checkpoint()

    def release(
        self,
        seqs: Sequence[int],
        *,
        delay_seconds: float,
        error: str | None,
        count_attempt: bool = True,
    ) -> None:
        """Make claimed records available again after ``delay_seconds``.

        Args:
            seqs: Records to release.
            delay_seconds: Back-off before the records can be claimed again.
            error: Last error, stored for diagnosis.
            count_attempt: ``False`` gives back the attempt the claim counted, for failures
                that are not the records' fault (a sink outage).
        """
        if not seqs:
            return
        available_at = time.time() + delay_seconds
        refund = 0 if count_attempt else 1
        message = None if error is None else error[:_MAX_ERROR_LENGTH]

        def update(connection: sqlite3.Connection) -> None:
            connection.executemany(
                "UPDATE queue_items SET available_at = ?, lease_owner = NULL, last_error = ?, "
                "attempts = max(attempts - ?, 0) WHERE seq = ?",
                [(available_at, message, refund, seq) for seq in seqs],
            )

        self.queue.file.write(update)

    def fail(self, item: ClaimedItem, error: str, *, delay_seconds: float) -> bool:
        """Record a failure of one record: dead-letter it or release it for a later retry.

        Returns:
            ``True`` when the record moved to the dead-letter table.
        """
        if item.attempts >= self.max_attempts or item.record is None:
            now = time.time()
            self.queue.file.write(
                lambda c: _move_to_dead_letters(c, [item.seq], error[:_MAX_ERROR_LENGTH], now)
            )
            return True
        self.release([item.seq], delay_seconds=delay_seconds, error=error)
        return False

    def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Return up to ``limit`` dead letters, oldest failure first."""
        rows = self.queue.file.read(
            lambda c: c.execute(
                "SELECT seq, prediction_id, attempts, enqueued_at, failed_at, error "
                "FROM dead_letters ORDER BY failed_at, seq LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            DeadLetter(
                seq=int(r[0]),
                prediction_id=str(r[1]),
                attempts=int(r[2]),
                enqueued_at=float(r[3]),
                failed_at=float(r[4]),
                error=str(r[5]),
            )
            for r in rows
        ]

    def replay_dead_letters(self, prediction_ids: Sequence[str] | None = None) -> int:
        """Move dead letters back into the queue with their attempts reset.

        Args:
            prediction_ids: Records to replay; ``None`` replays all of them. Replays ignore
                ``max_depth`` because an operator asked for them.

        Returns:
            The number of records moved back.
        """

        def move(connection: sqlite3.Connection) -> int:
            if prediction_ids is None:
                found = connection.execute("SELECT seq FROM dead_letters ORDER BY seq").fetchall()
            else:
                found = [
                    row
                    for prediction_id in prediction_ids
                    for row in connection.execute(
                        "SELECT seq FROM dead_letters WHERE prediction_id = ? ORDER BY seq",
                        (prediction_id,),
                    ).fetchall()
                ]
            for (seq,) in found:
                connection.execute(
                    "INSERT INTO queue_items (prediction_id, enqueued_at, payload, features, "
                    "mib_xml, rx_xml) SELECT prediction_id, enqueued_at, payload, features, "
                    "mib_xml, rx_xml FROM dead_letters WHERE seq = ?",
                    (seq,),
                )
                connection.execute("DELETE FROM dead_letters WHERE seq = ?", (seq,))
            return len(found)

        return self.queue.file.write(move)


def _delete_rows(connection: sqlite3.Connection, rows: list[tuple[int]]) -> None:
    connection.executemany("DELETE FROM queue_items WHERE seq = ?", rows)


def _move_to_dead_letters(
    connection: sqlite3.Connection, seqs: Sequence[int], error: str, now: float
) -> None:
    for seq in seqs:
        connection.execute(
            "INSERT OR REPLACE INTO dead_letters (seq, prediction_id, enqueued_at, failed_at, "
            "attempts, error, payload, features, mib_xml, rx_xml) SELECT seq, prediction_id, "
            "enqueued_at, ?, attempts, ?, payload, features, mib_xml, rx_xml "
            "FROM queue_items WHERE seq = ?",
            (now, error, seq),
        )
        connection.execute("DELETE FROM queue_items WHERE seq = ?", (seq,))


@lru_cache(maxsize=ROWS_PER_TRANSACTION)
def _select_payloads_sql(count: int) -> str:
    placeholders = ", ".join("?" * count)
    return (
        "SELECT seq, payload, features, mib_xml, rx_xml FROM queue_items "  # noqa: S608
        f"WHERE seq IN ({placeholders})"
    )


def _to_item(row: tuple[Any, ...], payload_row: tuple[Any, ...]) -> ClaimedItem:
    seq, prediction_id, attempts, enqueued_at = row
    payload, features, mib_xml, rx_xml = payload_row
    record: PredictionRecord | None
    try:
        record = decode_record(prediction_id, payload, features, mib_xml, rx_xml)
        error = None
    except RecordDecodeError as exc:
        record, error = None, str(exc)
    return ClaimedItem(
        seq=seq,
        prediction_id=prediction_id,
        attempts=attempts,
        enqueued_at=enqueued_at,
        record=record,
        decode_error=error,
    )
