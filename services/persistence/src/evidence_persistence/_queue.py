"""The durable prediction queue: a SQLite file in WAL mode shared by producers and the worker.

Durability: an append returns after its transaction committed to the write-ahead log. With the
default ``synchronous=NORMAL`` the commit is written to the file but not fsynced, so a record
survives the crash or SIGKILL of any process, and the last commits before a power loss or kernel
crash may be lost. ``synchronous=FULL`` fsyncs every commit and survives power loss too, at about
ten times the append latency (see docs/persistence.md).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

import structlog

from evidence_persistence._record import PredictionRecord, as_records, encode_record
from evidence_persistence._sqlite import SqliteFile
from evidence_persistence._sqlite_sidecars import ReopenHazard
from evidence_persistence.config import Settings, get_settings
from evidence_persistence.errors import QueueFullError, QueueUnavailableError

__all__ = ["QUEUE_SCHEMA", "QUEUE_SCHEMA_VERSION", "PredictionQueue"]

_log = structlog.get_logger("evidence_persistence.queue")

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_items (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    prediction_id TEXT    NOT NULL,
    enqueued_at   REAL    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    available_at  REAL    NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    last_error    TEXT,
    payload       BLOB    NOT NULL,
    features      BLOB    NOT NULL,
    mib_xml       BLOB,
    rx_xml        BLOB,
    lease_size    INTEGER,
    batch_limit   INTEGER
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq           INTEGER PRIMARY KEY,
    prediction_id TEXT    NOT NULL,
    enqueued_at   REAL    NOT NULL,
    failed_at     REAL    NOT NULL,
    attempts      INTEGER NOT NULL,
    error         TEXT    NOT NULL,
    payload       BLOB    NOT NULL,
    features      BLOB    NOT NULL,
    mib_xml       BLOB,
    rx_xml        BLOB
);
CREATE TABLE IF NOT EXISTS queue_depth (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    depth INTEGER NOT NULL
);
INSERT OR IGNORE INTO queue_depth (id, depth) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS queue_items_count_insert AFTER INSERT ON queue_items
    BEGIN UPDATE queue_depth SET depth = depth + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS queue_items_count_delete AFTER DELETE ON queue_items
    BEGIN UPDATE queue_depth SET depth = depth - 1 WHERE id = 1; END;
"""

# Version 2 added lease_size and batch_limit to queue_items and the queue_items_leased index,
# which let a claim tell a crash caused by one record from one that hit a whole batch.
QUEUE_SCHEMA_VERSION = 2
# Columns that version 2 added, as ALTER TABLE declares them. Both are nullable, so rows of
# an older file get NULL: no known lease size and no batch limit.
_ADDED_COLUMNS = (("lease_size", "INTEGER"), ("batch_limit", "INTEGER"))
# Rows that are leased, or that a lease expiry limited to small batches. Normal claims scan
# queue_items by seq and cannot use this index, so it costs them only its upkeep, while the
# claim finds expired leases and limited rows without a scan of the whole table.
_LEASED_INDEX = (
    "CREATE INDEX IF NOT EXISTS queue_items_leased ON queue_items (available_at) "
    "WHERE lease_owner IS NOT NULL OR batch_limit IS NOT NULL"
)

_INSERT_COLUMNS = "prediction_id, enqueued_at, payload, features, mib_xml, rx_xml"
_COLUMN_COUNT = 6
# Checkpoints copy the WAL into the database file. A commit that finds the WAL at least this
# many pages long runs one itself. The worker checkpoints every 0.5 s (QueueDrainer), so the
# appends' own checkpoints find little left to copy. Ten times SQLite's default makes them rarer.
# NOTE: under steady traffic the WAL file still grows to about this size (40 MB with 4 KB
# pages). The worker's checkpoints complete, but SQLite starts the WAL over only when a writer
# begins after a complete checkpoint while no other connection reads the WAL. In tests with a
# worker and appends at 500/s that rarely happened. The cause is not analysed further.
_PRODUCER_WAL_AUTOCHECKPOINT = 10_000
# SQLITE_MAX_VARIABLE_NUMBER before SQLite 3.32, used when the connection cannot report its own.
_DEFAULT_VARIABLE_LIMIT = 999
# Rows per INSERT statement. Every distinct row count is a separate SQL text in the statement
# caches, so the cap bounds their size. Larger appends run several statements in one transaction.
_MAX_ROWS_PER_STATEMENT = 100

Row = tuple[str, float, bytes, bytes, bytes | None, bytes | None]


class PredictionQueue:
    """Durable FIFO of prediction records in one SQLite file, safe for several processes.

    The gateway appends, and the persistence worker claims, writes and deletes (see
    ``QueueConsumer``). The constructor does no I/O because the file is opened on first use.
    Call :meth:`check_writable` for a readiness probe.

    Args:
        path: Queue file, such as ``var/queue.sqlite3``; the directory is created if missing.
        max_depth: Appends that would make the queue hold more records raise
            ``QueueFullError``.
        busy_timeout_ms: How long one transaction waits for another process's write lock.
        lock_retries: Attempts of a transaction whose lock wait timed out, with back-off.
        synchronous: ``"NORMAL"`` (default; survives process crashes) or ``"FULL"`` (also
            survives power loss; fsync per append).
        upgrade: False leaves a file of an older schema version unmigrated, for commands that
            only read the depth, the oldest age and the dead letters. Such a queue must not
            be claimed from.

    Example:
        >>> queue = PredictionQueue("var/queue.sqlite3", max_depth=100_000)
        >>> queue.append(record)  # doctest: +SKIP
        >>> queue.depth()  # doctest: +SKIP
        1
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_depth: int = 100_000,
        busy_timeout_ms: int = 1_000,
        lock_retries: int = 4,
        synchronous: str = "NORMAL",
        upgrade: bool = True,
    ) -> None:
        if max_depth < 1:
            msg = f"max_depth={max_depth!r} must be at least 1"
            raise ValueError(msg)
        self.max_depth = max_depth
        self.file = SqliteFile(
            path,
            schema=QUEUE_SCHEMA,
            error_type=QueueUnavailableError,
            label="queue",
            path_setting="PERSISTENCE_QUEUE_PATH",
            busy_timeout_ms=busy_timeout_ms,
            lock_retries=lock_retries,
            synchronous=synchronous,
            wal_autocheckpoint=_PRODUCER_WAL_AUTOCHECKPOINT,
            schema_version=QUEUE_SCHEMA_VERSION,
            migrate=_add_lease_columns,
            upgrade=upgrade,
        )
        self._rows_per_statement: int | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, upgrade: bool = True
    ) -> PredictionQueue:
        """Create the queue described by the ``PERSISTENCE_QUEUE_*`` settings.

        Producers and the worker that use this agree on the file through
        ``PERSISTENCE_QUEUE_PATH``. ``upgrade`` is passed to the constructor.
        """
        chosen = settings or get_settings()
        return cls(
            chosen.queue_path,
            max_depth=chosen.queue_max_depth,
            busy_timeout_ms=chosen.queue_busy_timeout_ms,
            lock_retries=chosen.queue_lock_retries,
            synchronous=chosen.queue_synchronous,
            upgrade=upgrade,
        )

    @property
    def path(self) -> Path:
        """The queue's SQLite file."""
        return self.file.path

    def append(self, record: PredictionRecord) -> None:
        """Append one record; when this returns the record is in the queue file.

        Raises:
            QueueFullError: The queue already contains ``max_depth`` records.
            QueueUnavailableError: The file cannot be written (locked beyond all retries,
                read-only, disk full, directory missing).
            TypeError: ``record`` is not a ``PredictionRecord``.
        """
        candidate: object = record
        if not isinstance(candidate, PredictionRecord):
            msg = f"append() expects a PredictionRecord, got {type(candidate).__name__}"
            raise TypeError(msg)
        encoded = encode_record(candidate)
        row = (
            encoded.prediction_id,
            time.time(),
            encoded.payload,
            encoded.features,
            encoded.mib_xml,
            encoded.rx_xml,
        )
        self._insert([row])

    def append_many(self, records: Iterable[PredictionRecord]) -> int:
        """Append several records in one transaction: all of them or none.

        Returns:
            The number of records appended.

        Raises:
            QueueFullError: The records do not all fit below ``max_depth``; none was appended.
            QueueUnavailableError: The file cannot be written.
        """
        items = as_records(records)
        if not items:
            return 0
        now = time.time()
        rows: list[Row] = []
        for record in items:
            encoded = encode_record(record)
            rows.append(
                (
                    encoded.prediction_id,
                    now,
                    encoded.payload,
                    encoded.features,
                    encoded.mib_xml,
                    encoded.rx_xml,
                )
            )
        self._insert(rows)
        return len(rows)

    def depth(self) -> int:
        """Return the number of records waiting, claimed ones included."""
        row = self.file.read(
            lambda c: c.execute("SELECT depth FROM queue_depth WHERE id = 1").fetchone()
        )
        return int(row[0])

    def oldest_age_seconds(self) -> float:
        """Return the age of the oldest waiting record in seconds, or 0.0 when empty."""
        row = self.file.read(
            lambda c: c.execute(
                "SELECT enqueued_at FROM queue_items ORDER BY seq LIMIT 1"
            ).fetchone()
        )
        if row is None:
            return 0.0
        return max(0.0, time.time() - float(row[0]))

    def dead_letter_count(self) -> int:
        """Return the number of records in the dead-letter table."""
        row = self.file.read(lambda c: c.execute("SELECT count(*) FROM dead_letters").fetchone())
        return int(row[0])

    @property
    def corruption(self) -> str | None:
        """SQLite error name of damage this process met in the queue file, or ``None``.

        Set by the first operation that failed with SQLITE_CORRUPT or SQLITE_NOTADB, or by an
        :meth:`integrity_problems` call that found problems, and kept until the process
        restarts. Reads of undamaged pages, such as :meth:`depth`, keep working meanwhile.
        """
        return self.file.corruption

    def integrity_problems(self, limit: int = 10) -> list[str]:
        """Run SQLite's ``PRAGMA quick_check`` on the queue file; return its problems.

        An empty list means the file is intact. The check reads the whole file, so it is meant
        for ``status`` and diagnosis, not for every scrape.

        Raises:
            QueueUnavailableError: The file cannot be opened or read at all.
        """
        return self.file.integrity_problems(limit)

    def check_header(self) -> None:
        """Read the queue file's header through a new connection, as a new process would.

        This process's own connection keeps serving an overwritten header from its page cache,
        so only a new connection finds that damage (see ``SqliteFile.check_header``). It costs
        a new connection and one read of page 1, about 35 µs with the file in the page cache.

        Raises:
            QueueUnavailableError: A new connection cannot open or read the file. Damage
                (SQLITE_NOTADB, SQLITE_CORRUPT) also sets :attr:`corruption`.
        """
        self.file.check_header()

    def check_writable(self) -> None:
        """Commit one write to the queue file, for readiness probes; the depth stays the same.

        Raises:
            QueueUnavailableError: The file cannot be opened or written.
        """

        def probe(connection: sqlite3.Connection) -> None:
            # SQLite skips writing a row whose new content equals the old one, so a no-op
            # UPDATE commits without touching the file and passes on a full disk. Changing
            # the row and changing it back dirties the page, so the commit must write it.
            connection.execute("UPDATE queue_depth SET depth = depth + 1 WHERE id = 1")
            connection.execute("UPDATE queue_depth SET depth = depth - 1 WHERE id = 1")

        self._write_at_path(probe, "readiness probe")

    def close(self) -> None:
        """Close this process's connection; later calls reopen it."""
        self.file.close()

    def _insert(self, rows: list[Row]) -> None:
        """Insert ``rows`` if they fit below ``max_depth``, all of them or none.

        Up to ``_MAX_ROWS_PER_STATEMENT`` rows this is one ``INSERT ... SELECT`` statement whose
        WHERE clause checks the depth. SQLite takes the write lock, checks, inserts and commits
        within one call, during which the GIL is released. With BEGIN, a depth query, the insert
        and COMMIT as four calls, the write lock stayed held while the thread took the GIL back
        between them. While other threads run Python code that can take up to the switch
        interval (5 ms), and the worker waited that long too.
        """

        def insert_one_statement(connection: sqlite3.Connection) -> None:
            cursor = connection.execute(
                _insert_if_room_sql(len(rows)), [*_flatten(rows), len(rows), self.max_depth]
            )
            if cursor.rowcount != len(rows):
                self._raise_full(_read_depth(connection), len(rows))

        def insert_in_chunks(connection: sqlite3.Connection) -> None:
            self._check_room(connection, len(rows))
            per_statement = self._rows_per_statement or 1
            for start in range(0, len(rows), per_statement):
                chunk = rows[start : start + per_statement]
                connection.execute(_insert_sql(len(chunk)), _flatten(chunk))

        if self._rows_per_statement is None:
            self._rows_per_statement = self.file.read(_rows_per_statement)
        if len(rows) <= self._rows_per_statement:
            self._write_at_path(insert_one_statement, "append", single_statement=True)
        else:
            self._write_at_path(insert_in_chunks, "append")

    def _write_at_path(
        self,
        work: Callable[[sqlite3.Connection], None],
        action: str,
        *,
        single_statement: bool = False,
    ) -> None:
        """Run ``work``, and run it again on the file at the path if the open one was moved.

        The first copy stays in the old file, where a running worker may still drain it, and
        the sinks' upserts store it once (see ``SqliteFile.write_at_path``).

        Raises:
            QueueUnavailableError: The write failed, or the path named another file after the
                second write too.
        """

        def log_moved(reason: str) -> None:
            _log.error(
                "queue file moved, writing again at its path",
                queue_path=str(self.path),
                reason=reason,
                action=action,
                fix="keep the queue file in place while the gateway and the worker run",
            )

        def log_unsafe_path(reason: str, hazard: ReopenHazard) -> None:
            _log.error(
                "queue file moved, path unsafe to open again",
                queue_path=str(self.path),
                reason=reason,
                action=action,
                fix=hazard.fix,
            )

        self.file.write_at_path(
            work,
            consequence=f"the {action} went into a file that the path no longer names, twice",
            on_moved=log_moved,
            single_statement=single_statement,
            unsafe_consequence=f"the {action} is rejected",
            on_unsafe_path=log_unsafe_path,
        )

    def _check_room(self, connection: sqlite3.Connection, count: int) -> None:
        depth = _read_depth(connection)
        if depth + count > self.max_depth:
            self._raise_full(depth, count)

    def _raise_full(self, depth: int, count: int) -> None:
        msg = (
            f"queue {str(self.path)!r} holds {depth} records and max_depth is "
            f"{self.max_depth}, so {count} more cannot be appended; start or scale the "
            "persistence worker, or raise PERSISTENCE_QUEUE_MAX_DEPTH"
        )
        raise QueueFullError(msg, depth=depth, max_depth=self.max_depth)


def _add_lease_columns(connection: sqlite3.Connection) -> None:
    """Bring a version 1 queue file to version 2: add the lease columns and their index.

    Idempotent, because two processes may both find version 1 and migrate one after the other.
    """
    present = {row[1] for row in connection.execute("PRAGMA table_info(queue_items)")}
    for name, declaration in _ADDED_COLUMNS:
        if name not in present:
            connection.execute(f"ALTER TABLE queue_items ADD COLUMN {name} {declaration}")
    connection.execute(_LEASED_INDEX)


def _read_depth(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT depth FROM queue_depth WHERE id = 1").fetchone()[0])


def _rows_per_statement(connection: sqlite3.Connection) -> int:
    try:
        limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except (AttributeError, sqlite3.Error):
        limit = _DEFAULT_VARIABLE_LIMIT
    # Two variables go to the depth check of the single-statement insert.
    return max(1, min(_MAX_ROWS_PER_STATEMENT, (limit - 2) // _COLUMN_COUNT))


def _flatten(rows: list[Row]) -> list[object]:
    return [value for row in rows for value in row]


@lru_cache(maxsize=_MAX_ROWS_PER_STATEMENT)
def _insert_if_room_sql(count: int) -> str:
    # The WHERE clause does not depend on the row, so SQLite evaluates it once. Its two
    # parameters follow the row values: the number of rows and max_depth.
    values = ", ".join(["(" + ", ".join("?" * _COLUMN_COUNT) + ")"] * count)
    return (
        f"INSERT INTO queue_items ({_INSERT_COLUMNS}) SELECT * FROM (VALUES {values}) "  # noqa: S608
        "WHERE (SELECT depth FROM queue_depth WHERE id = 1) + ? <= ?"
    )


@lru_cache(maxsize=_MAX_ROWS_PER_STATEMENT)
def _insert_sql(count: int) -> str:
    values = ", ".join(["(" + ", ".join("?" * _COLUMN_COUNT) + ")"] * count)
    return f"INSERT INTO queue_items ({_INSERT_COLUMNS}) VALUES {values}"  # noqa: S608
