"""The worker's side of the queue: claim a batch under a lease, then delete, retry or dead-letter.

A claim sets ``available_at`` to now plus the lease and counts one attempt. A worker that crashes
before it deletes its batch leaves the rows in place, and they are claimed again once the lease
expires. Sinks write with upserts, so a record written twice leaves one row.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from evidence_persistence._queue import PredictionQueue
from evidence_persistence._record import PredictionRecord, decode_record
from evidence_persistence.errors import RecordDecodeError

__all__ = ["ClaimedItem", "DeadLetter", "QueueConsumer"]

_MAX_ERROR_LENGTH = 2_000
_log = structlog.get_logger("evidence_persistence.worker")


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
    """

    def __init__(
        self,
        queue: PredictionQueue,
        *,
        owner: str,
        lease_seconds: float = 60.0,
        max_attempts: int = 5,
    ) -> None:
        if lease_seconds <= 0:
            msg = f"lease_seconds={lease_seconds!r} must be positive"
            raise ValueError(msg)
        if max_attempts < 1:
            msg = f"max_attempts={max_attempts!r} must be at least 1"
            raise ValueError(msg)
        self.queue = queue
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts

    def claim(self, limit: int) -> list[ClaimedItem]:
        """Claim up to ``limit`` available records, oldest first, and count one attempt each.

        Records whose lease expired after ``max_attempts`` claims (the worker kept crashing on
        them) move to the dead-letter table instead of being returned.
        """
        now = time.time()
        exhausted: list[tuple[Any, ...]] = []

        def take(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            # The scan follows seq (the rowid) and stops after `limit` matches. An index on
            # available_at would make SQLite sort every waiting row instead.
            rows = connection.execute(
                "UPDATE queue_items SET attempts = attempts + 1, available_at = ?, "
                "lease_owner = ? WHERE seq IN (SELECT seq FROM queue_items "
                "WHERE available_at <= ? ORDER BY seq LIMIT ?) "
                "RETURNING seq, prediction_id, attempts, enqueued_at, payload, features, "
                "mib_xml, rx_xml",
                (now + self.lease_seconds, self.owner, now, limit),
            ).fetchall()
            # A retried transaction starts over, so forget rows found by a rolled-back attempt.
            exhausted[:] = [row for row in rows if row[2] > self.max_attempts]
            if exhausted:
                error = (
                    f"claimed {self.max_attempts} times without being completed, so the worker "
                    "crashed or exceeded its lease on this record each time"
                )
                _move_to_dead_letters(connection, [row[0] for row in exhausted], error, now)
            return [row for row in rows if row[2] <= self.max_attempts]

        rows = self.queue.file.write(take)
        for row in exhausted:
            _log.warning(
                "record moved to dead letters",
                prediction_id=row[1],
                seq=row[0],
                attempts=row[2],
                error_type="LeaseExpired",
            )
        items = [_to_item(row) for row in rows]
        items.sort(key=lambda item: item.seq)
        return items

    def complete(self, seqs: Sequence[int]) -> None:
        """Delete records that reached the sink."""
        if not seqs:
            return

        def delete(connection: sqlite3.Connection) -> None:
            connection.executemany(
                "DELETE FROM queue_items WHERE seq = ?", [(seq,) for seq in seqs]
            )

        self.queue.file.write(delete)

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


def _to_item(row: tuple[Any, ...]) -> ClaimedItem:
    seq, prediction_id, attempts, enqueued_at, payload, features, mib_xml, rx_xml = row
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
