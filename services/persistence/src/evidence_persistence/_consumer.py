"""The worker's side of the queue: claim a batch under a lease, then delete, retry or dead-letter.

A claim sets ``available_at`` to now plus the lease and counts one attempt. ``lease_size`` stores
how many rows the batch has after the transaction that claimed the row, so it also counts the
rows of the batch's earlier transactions. A worker that crashes before it deletes or releases its
batch leaves the rows in place with their ``lease_owner``, and the next claim finds them expired.
A crash cannot be blamed on one record of a batch, so the expired rows get their attempt back
and a ``batch_limit`` of half their lease size, and later claims take them in batches of at most
that many. A record whose lease expired while it was claimed alone keeps the attempt, and after
``max_attempts`` attempts it moves to the dead letters. So a record that crashes the worker ends
there after about log2(batch) + ``max_attempts`` crashes, and the healthy records of its batch
are written meanwhile. Sinks write with upserts, so a record written twice leaves one row.

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

# Rows whose lease ended while they were still claimed: the worker that claimed them neither
# deleted nor released them. A lease of one row keeps its attempt and the row is claimed alone
# from then on. Any other lease gives its attempt back and halves the row's next batches. A
# lease_size of NULL comes from a file that version 1 of the queue schema leased, and counts as
# a batch of ROWS_PER_TRANSACTION rows. The partial index queue_items_leased serves the WHERE.
# NOTE: an expiry cannot tell a record that kills the worker from a kill for another reason, so
# a record that is claimed alone while the store stays locked and the worker is killed
# max_attempts more times is dead-lettered too.
_EXPIRE_SQL = (
    "UPDATE queue_items SET "
    "attempts = CASE WHEN lease_size = 1 THEN attempts ELSE max(attempts - 1, 0) END, "
    "batch_limit = CASE WHEN lease_size = 1 THEN 1 ELSE max(ifnull(lease_size, ?) / 2, 1) END, "
    "lease_owner = NULL, last_error = ? "
    "WHERE lease_owner IS NOT NULL AND available_at <= ? "
    "RETURNING seq, prediction_id, attempts, lease_size"
)
# The smallest batch_limit of the rows available now, or NULL when no expiry limits any.
_BATCH_LIMIT_SQL = (
    "SELECT min(batch_limit) FROM queue_items WHERE batch_limit IS NOT NULL AND available_at <= ?"
)
# Rows a claim takes, oldest first. The normal scan follows seq (the rowid) and stops after
# LIMIT matches, because an index on available_at would make SQLite sort every waiting row
# instead. Rows limited by an expiry are few, so sorting them by limit costs little, and taking
# the smallest limits first keeps each row in a batch no larger than its own limit. Both skip
# leased rows, even those whose lease ended, because only _EXPIRE_SQL may end a lease: it sets
# the row's attempts and batch limit from the lease.
_NORMAL_ROWS = (
    "SELECT seq FROM queue_items WHERE available_at <= ? AND batch_limit IS NULL "
    "AND lease_owner IS NULL ORDER BY seq LIMIT ?"
)
_LIMITED_ROWS = (
    "SELECT seq FROM queue_items WHERE batch_limit IS NOT NULL AND available_at <= ? "
    "AND lease_owner IS NULL ORDER BY batch_limit, seq LIMIT ?"
)
_LEASE = (
    "UPDATE queue_items SET attempts = attempts + 1, available_at = ?, lease_owner = ?, "
    "lease_size = ? "
)
_ROW_BYTES = (
    "length(payload) + length(features) + ifnull(length(mib_xml), 0) + ifnull(length(rx_xml), 0)"
)


@lru_cache(maxsize=4)
def _claim_sql(*, limited: bool, by_bytes: bool) -> str:
    """Return the claim statement: lease the rows the scan finds, and return them.

    With ``by_bytes``, it keeps each row whose predecessors hold fewer bytes than the budget, so
    the first row is always kept. length() of a BLOB takes the size from the row header without
    reading the XML (100 rows of 4 MB: 13 ms, against 270 ms to read them).
    """
    rows = _LIMITED_ROWS if limited else _NORMAL_ROWS
    if not by_bytes:
        return f"{_LEASE}WHERE seq IN ({rows}) RETURNING seq, prediction_id, attempts, enqueued_at"
    sized = rows.replace("SELECT seq FROM", f"SELECT seq, {_ROW_BYTES} AS size FROM", 1)
    return (
        f"{_LEASE}WHERE seq IN (SELECT seq FROM (SELECT seq, "  # noqa: S608 - constant parts
        f"sum(size) OVER (ORDER BY seq) - size AS before FROM ({sized})) WHERE before < ?) "
        f"RETURNING seq, prediction_id, attempts, enqueued_at, {_ROW_BYTES}"
    )


_LEASE_EXPIRED_ERROR = (
    "LeaseExpired: the worker crashed or exceeded its lease while it held this record"
)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """The outcome of one claim transaction."""

    items: list[ClaimedItem]
    requested: int
    """Rows the transaction asked for: the caller's limit, lowered to the batch limit."""
    found: int
    """Rows it claimed, with those that left the queue before their payloads were read."""
    size: int
    """Stored bytes of the rows claimed, 0 without a byte budget."""
    batch_limit: int | None
    """Smallest batch limit of the rows available, ``None`` for a normal claim."""


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

        Records whose lease expired get their attempt back and are claimed again in batches
        of at most half their last batch. A record whose lease expired while it was claimed
        alone keeps the attempt, and moves to the dead-letter table once that happened on
        attempt ``max_attempts`` (see the module docstring). The claim runs in
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
        # The first transaction decides whether this batch takes rows limited by a lease
        # expiry or the others, and the later ones take the same kind.
        limited: bool | None = None
        # Rows leased so far, with any that left the queue before their payloads were read.
        claimed = 0
        while claimed < limit:
            requested = min(ROWS_PER_TRANSACTION, limit - claimed)
            chunk = self._claim_chunk(requested, budget, limited=limited, claimed=claimed)
            items.extend(chunk.items)
            claimed += chunk.found
            limited = chunk.batch_limit is not None
            if chunk.batch_limit is not None:
                limit = min(limit, chunk.batch_limit)
            if chunk.found == 0 or chunk.found < chunk.requested:
                break
            if budget is not None:
                budget -= chunk.size
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

    def _claim_chunk(
        self, limit: int, budget: int | None, *, limited: bool | None, claimed: int
    ) -> _Chunk:
        """Claim up to ``limit`` records in one transaction, within ``budget`` stored bytes.

        The first transaction of a batch (``limited`` is ``None``) first ends the expired
        leases (see ``_EXPIRE_SQL``) and dead-letters the records that were alone in a lease
        that expired on their last allowed attempt.
        Rows limited by an expiry are then claimed before the others, so that the batch,
        with the ``claimed`` records that earlier transactions took for it, holds no more
        than the smallest limit among them. ``limited`` set to ``True`` or ``False`` claims
        only that kind, and ``None`` lets the transaction choose.
        """
        now = time.time()
        expired: list[tuple[Any, ...]] = []
        exhausted: list[tuple[Any, ...]] = []
        outcome = _Chunk([], limit, 0, 0, None)

        def take(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            # A retried transaction starts over, so forget what a rolled-back attempt found.
            nonlocal outcome
            # Only the first transaction of a batch ends expired leases, and the scans skip
            # leased rows. So a lease that ends before the claim does, such as one shorter than
            # the claim itself, cannot give this batch rows that it has already taken.
            if limited is None:
                expired[:] = connection.execute(
                    _EXPIRE_SQL, (ROWS_PER_TRANSACTION, _LEASE_EXPIRED_ERROR, now)
                ).fetchall()
            exhausted[:] = [row for row in expired if row[3] == 1 and row[2] >= self.max_attempts]
            if exhausted:
                error = (
                    f"LeaseExpired: the lease expired while this record was claimed alone, on "
                    f"attempt {self.max_attempts} of {self.max_attempts}, so the worker crashed "
                    "or exceeded its lease while it held only this record"
                )
                _move_to_dead_letters(connection, [row[0] for row in exhausted], error, now)

            batch_limit: int | None = None
            if limited is not False:
                found = connection.execute(_BATCH_LIMIT_SQL, (now,)).fetchone()[0]
                batch_limit = None if found is None else int(found)
            if limited and batch_limit is None:
                return []
            requested = limit if batch_limit is None else min(limit, batch_limit - claimed)
            if requested <= 0:
                outcome = _Chunk([], 0, 0, 0, batch_limit)
                return []
            sql = _claim_sql(limited=batch_limit is not None, by_bytes=budget is not None)
            # The lease size counts the whole batch so far, so only a batch of one record
            # is ever blamed for a crash.
            lease = (now + self.lease_seconds, self.owner, claimed + requested)
            if budget is None:
                rows = connection.execute(sql, (*lease, now, requested)).fetchall()
            else:
                rows = connection.execute(sql, (*lease, now, requested, budget)).fetchall()
            if 0 < len(rows) < requested:
                # The lease size decides whether a crash is blamed on a record, so it must be
                # the number of rows claimed, not the number requested.
                connection.executemany(
                    "UPDATE queue_items SET lease_size = ? WHERE seq = ?",
                    [(claimed + len(rows), row[0]) for row in rows],
                )
            size = sum(row[4] for row in rows) if budget is not None else 0
            outcome = _Chunk([], requested, len(rows), size, batch_limit)
            return rows

        rows = self.queue.file.write(take)
        self._log_expired(expired, exhausted)
        # The payloads are read after the commit, so the write lock is not held while SQLite
        # copies them out. Leased rows stay unchanged until this worker deletes or releases them.
        payloads = self._read_payloads([row[0] for row in rows])
        # A row missing from the payloads left the queue after the claim, for example because
        # its lease expired and another worker completed it.
        items = [_to_item(row[:4], payloads[row[0]]) for row in rows if row[0] in payloads]
        return _Chunk(items, outcome.requested, outcome.found, outcome.size, outcome.batch_limit)

    def _log_expired(
        self, expired: list[tuple[Any, ...]], exhausted: list[tuple[Any, ...]]
    ) -> None:
        if expired:
            alone = sum(1 for row in expired if row[3] == 1)
            _log.warning(
                "lease expired",
                records=len(expired),
                claimed_alone=alone,
                first_seq=min(row[0] for row in expired),
                last_seq=max(row[0] for row in expired),
            )
        for row in exhausted:
            _log.warning(
                "record moved to dead letters",
                prediction_id=row[1],
                seq=row[0],
                attempts=row[2],
                error_type="LeaseExpired",
            )

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
