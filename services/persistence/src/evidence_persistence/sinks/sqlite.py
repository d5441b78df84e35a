"""SQLite sink: the three tables in one local file, upserted in one transaction per batch."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache, partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from evidence_persistence._record import PredictionRecord
from evidence_persistence._rows import (
    Row,
    TableRows,
    build_rows,
    future_cutoff,
    stored_update_time,
)
from evidence_persistence._sink import WriteResult
from evidence_persistence._sqlite import SqliteFile
from evidence_persistence._sqlite_sidecars import ReopenHazard
from evidence_persistence._tables import (
    FIRST_SCORING_COLUMNS,
    MODEL_PREDICTIONS,
    ONLINE_FEATURES,
    RAW_EVIDENCE,
    TABLES,
    Column,
    Table,
)
from evidence_persistence.ddl import render_add_column, render_ddl
from evidence_persistence.errors import SinkRecordError, SinkUnavailableError
from evidence_persistence.sinks.sqlite_attempts import StoreAttemptReporter

if TYPE_CHECKING:
    from evidence_persistence.metrics import WorkerMetrics

__all__ = ["SqliteSink", "inspect_store"]

_log = structlog.get_logger("evidence_persistence.store")

# SQLITE_MAX_VARIABLE_NUMBER defaults to 32,766 since SQLite 3.32 and to 999 before; the
# connection reports the real value, and this is the fallback when it cannot.
_DEFAULT_VARIABLE_LIMIT = 999
# PRAGMA user_version of a store whose tables have every declared column. Version 1 stores were
# created before MODEL_PREDICTIONS had FEATURES, version 2 stores before it had ANSWERED_AT, and
# both get the missing columns added on open (see _migrate_store).
_STORE_SCHEMA_VERSION = 3


class SqliteSink:
    """Write batches into the SQLite store, one transaction per batch.

    Each table is written with multi-row ``INSERT ... ON CONFLICT DO UPDATE`` statements, each
    carrying as many rows as the connection's bound-variable limit allows. ``ONLINE_FEATURES``
    keeps a stored row whose ``UPDATED_AT`` is newer than the incoming one, and the stored row
    of the same prediction id unless the incoming ``UPDATED_AT`` is earlier. ``RAW_EVIDENCE``
    keeps a stored row unless the incoming ``CREATED_AT`` is earlier. ``MODEL_PREDICTIONS``
    takes the incoming ``CREATED_AT`` and ``PERSISTED_AT`` only when that ``CREATED_AT`` is
    earlier, and the incoming answer columns only when its ``ANSWERED_AT`` is later. So a
    replayed prediction id keeps its first scoring time, its first features in
    ``ONLINE_FEATURES`` and its latest answer in ``MODEL_PREDICTIONS`` (see ``build_rows``).

    Args:
        path: Store file, such as ``var/store.sqlite3``; created with its tables when missing,
            also when it was deleted while the sink had it open (see ``write_batch``).
        store_raw_evidence: Write ``RAW_EVIDENCE`` rows for records that carry XML.
        busy_timeout_ms: How long one attempt of a write waits for a reader or writer of
            another process.
        lock_retries: Attempts of a write whose lock wait timed out, the first one included.
        clock_skew_tolerance_seconds: ``ONLINE_FEATURES.UPDATED_AT`` is at most this far
            ahead of this process's clock (see ``build_rows``).
        metrics: Counters of the worker, which count the failed attempts. Each failed attempt
            is logged whether or not they are given.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        store_raw_evidence: bool = False,
        busy_timeout_ms: int = 5_000,
        lock_retries: int = 4,
        clock_skew_tolerance_seconds: float = 300.0,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.store_raw_evidence = store_raw_evidence
        self.clock_skew_tolerance_seconds = clock_skew_tolerance_seconds
        self.file = SqliteFile(
            path,
            schema=";\n".join(render_ddl("sqlite")) + ";",
            error_type=SinkUnavailableError,
            data_error_type=SinkRecordError,
            label="store",
            path_setting="PERSISTENCE_STORE_PATH",
            busy_timeout_ms=busy_timeout_ms,
            lock_retries=lock_retries,
            synchronous="NORMAL",
            schema_version=_STORE_SCHEMA_VERSION,
            migrate=_migrate_store,
        )
        self._variable_limit: int | None = None
        self.attempts = StoreAttemptReporter(metrics)

    @property
    def path(self) -> Path:
        """The store's SQLite file."""
        return self.file.path

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        """Upsert the records into the three tables in one transaction.

        After the commit the path must still name the file written to. Otherwise the batch is
        written once more to the file at the path, created if none is there.

        Raises:
            SinkUnavailableError: The store file cannot be opened or written, or the path named
                another file after that second write too.
            SinkRecordError: SQLite rejected a row, such as on a constraint.
        """
        now = datetime.now(UTC)
        prediction_ids = list(dict.fromkeys(record.prediction_id for record in records))

        def write(connection: sqlite3.Connection) -> tuple[TableRows, set[str]]:
            limit = self._limit(connection)
            # Read inside the write transaction, so no other writer can store one of these ids
            # between the read and the upserts.
            stored = self._stored_update_times(connection, prediction_ids, limit)
            rows = build_rows(
                records,
                store_raw_evidence=self.store_raw_evidence,
                persisted_at=now,
                timestamp=_iso_timestamp,
                max_updated_at=future_cutoff(self.clock_skew_tolerance_seconds, now),
                stored_update_times=stored,
            )
            written = _upsert(connection, ONLINE_FEATURES, rows.online_features, limit)
            written |= _unchanged_rows(connection, rows.online_features, written, limit)
            _upsert(connection, MODEL_PREDICTIONS, rows.model_predictions, limit)
            _upsert(connection, RAW_EVIDENCE, rows.raw_evidence, limit)
            return rows, written

        def log_moved(reason: str) -> None:
            # The rows went into a file that nothing at the path reads any more. Writing them
            # again at the path, as a restarted worker would, keeps the worker from deleting
            # the records from the queue while the store at the path lacks them.
            _log.error(
                "store file moved, writing the batch again",
                store_path=str(self.path),
                reason=reason,
                records=len(records),
                fix="keep the store file in place while the worker runs",
            )

        def log_unsafe_path(reason: str, hazard: ReopenHazard) -> None:
            _log.error(
                "store file moved, path unsafe to open again",
                store_path=str(self.path),
                reason=reason,
                records=len(records),
                fix=hazard.fix,
            )

        rows, written = self.file.write_at_path(
            write,
            consequence=(
                "the batch was written to a file that the path no longer names, twice, "
                "and stays queued"
            ),
            on_moved=log_moved,
            on_failed_attempt=partial(self.attempts.report_failure, batch_size=len(records)),
            unsafe_consequence="the batch stays queued",
            on_unsafe_path=log_unsafe_path,
        )
        self.attempts.report_success(batch_size=len(records))
        prediction_id = ONLINE_FEATURES.column_names.index("PREDICTION_ID")
        skipped = tuple(
            str(row[prediction_id])
            for row in rows.online_features
            if row[prediction_id] not in written
        )
        return WriteResult(
            online_features=len(rows.online_features),
            model_predictions=len(rows.model_predictions),
            raw_evidence=len(rows.raw_evidence),
            online_features_skipped=skipped,
        )

    def _stored_update_times(
        self, connection: sqlite3.Connection, prediction_ids: list[str], variable_limit: int
    ) -> dict[str, datetime]:
        """Return ``stored_update_time`` of each of the ids that ``MODEL_PREDICTIONS`` holds."""
        stored: dict[str, datetime] = {}
        columns = "PREDICTION_ID, CREATED_AT, PERSISTED_AT"
        for prediction_id, created_at, persisted_at in _select_where_in(
            connection, MODEL_PREDICTIONS, columns, prediction_ids, variable_limit
        ):
            stored[str(prediction_id)] = stored_update_time(
                datetime.fromisoformat(created_at),
                datetime.fromisoformat(persisted_at),
                self.clock_skew_tolerance_seconds,
            )
        return stored

    def check_schema_version(self) -> None:
        """Reject a store that a newer release wrote, without creating or changing the file.

        Raises:
            SchemaVersionError: The store's ``PRAGMA user_version`` is above the version this
                sink writes.
        """
        self.file.check_schema_version()

    def close(self) -> None:
        """Close this process's connection."""
        self.file.close()

    def _limit(self, connection: sqlite3.Connection) -> int:
        if self._variable_limit is None:
            try:
                self._variable_limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            except (AttributeError, sqlite3.Error):
                self._variable_limit = _DEFAULT_VARIABLE_LIMIT
        return self._variable_limit


def inspect_store(path: Path) -> tuple[str, str | None]:
    """Check, read-only and without creating it, that the store file has the declared tables.

    Returns:
        The state and, for every state but ``"ok"``, a message that names the path and what
        to do. The state is ``"ok"``, ``"missing"``, ``"unreadable"``, ``"needs_migration"``
        (only nullable columns are missing, which the worker adds when it next opens the file)
        or ``"schema_mismatch"`` (a NOT NULL column is missing, or a nullable one from a file
        whose ``PRAGMA user_version`` says it needs no migration). The message names tables
        and columns, never stored values.
    """
    resolved = str(path.resolve())
    if not path.is_file():
        return "missing", (
            f"no store file at {resolved!r}; the worker creates it with its next batch, so the "
            "rows of an earlier store there are gone unless its files were moved aside"
        )
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            nullable, not_null = _find_missing_columns(connection)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return "unreadable", (
            f"cannot read store file {resolved!r} as an SQLite file ({exc}); check "
            "PERSISTENCE_STORE_PATH and the file's permissions"
        )
    missing = [f"{table.sqlite_name}.{column.name}" for table, column in not_null + nullable]
    # NOTE: a worker that opens a file below _STORE_SCHEMA_VERSION also creates missing tables,
    # so a file that lacks a whole table is reported as schema_mismatch though it would work.
    if not_null or (nullable and version >= _STORE_SCHEMA_VERSION):
        return "schema_mismatch", (
            f"store file {resolved!r} lacks {len(missing)} declared column(s), the first being "
            f"{missing[0]}; stop the worker, move the file aside with its -wal and -shm, and "
            "start the worker, which creates the tables anew"
        )
    if nullable:
        return "needs_migration", (
            f"store file {resolved!r} lacks {len(missing)} nullable column(s), the first being "
            f"{missing[0]}; the worker adds them when it writes its next batch, and rows "
            "already stored keep NULL in them"
        )
    return "ok", None


def _find_missing_columns(
    connection: sqlite3.Connection,
) -> tuple[list[tuple[Table, Column]], list[tuple[Table, Column]]]:
    """Return the declared columns that the store's tables lack: nullable ones, then NOT NULL.

    Every column of a missing table counts as missing.
    """
    nullable: list[tuple[Table, Column]] = []
    not_null: list[tuple[Table, Column]] = []
    for table in TABLES:
        info = connection.execute(f"PRAGMA table_info({table.sqlite_name})").fetchall()
        existing = {str(row[1]).upper() for row in info}
        for column in table.columns:
            if column.name not in existing:
                (nullable if column.nullable else not_null).append((table, column))
    return nullable, not_null


def _migrate_store(connection: sqlite3.Connection) -> None:
    """Add the columns that an older store lacks; idempotent.

    Rows stored before ``ANSWERED_AT`` existed keep it NULL, which the upsert reads as their
    ``CREATED_AT``. Filling it would rewrite the whole table in the transaction that sets the
    schema version, and need free disk space for a WAL about the size of the table.
    """
    _add_missing_columns(connection)


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Add every declared column that an older store's tables lack, as a nullable column.

    Raises:
        SinkUnavailableError: A missing column is declared NOT NULL, so rows already stored
            would violate it. The worker then keeps the records queued until the store file
            is replaced.
    """
    nullable, not_null = _find_missing_columns(connection)
    if not_null:
        table, column = not_null[0]
        msg = (
            f"store table {table.sqlite_name} lacks the NOT NULL column {column.name}, "
            "which cannot be added to existing rows; move the store file aside and "
            "let the worker create a new one"
        )
        raise SinkUnavailableError(msg)
    for table, column in nullable:
        connection.execute(render_add_column("sqlite", table, column))


def _upsert(
    connection: sqlite3.Connection,
    table: Table,
    rows: list[Row],
    variable_limit: int,
) -> set[str]:
    """Upsert ``rows``; for ``ONLINE_FEATURES`` return the prediction ids of the rows written.

    A row that the guard of ``_upsert_sql`` kept out is neither written nor returned.
    """
    written: set[str] = set()
    if not rows:
        return written
    width = len(table.columns)
    rows_per_statement = max(1, variable_limit // width)
    for start in range(0, len(rows), rows_per_statement):
        chunk = rows[start : start + rows_per_statement]
        parameters = list(chain.from_iterable(chunk))
        cursor = connection.execute(_upsert_sql(table, len(chunk)), parameters)
        if table is ONLINE_FEATURES:
            written.update(str(prediction_id) for (prediction_id,) in cursor.fetchall())
    return written


def _unchanged_rows(
    connection: sqlite3.Connection, rows: list[Row], written: set[str], variable_limit: int
) -> set[str]:
    """Return the prediction ids of ``rows`` kept out because the stored row has that id.

    Such a row is a replay of the stored features, which stay as they are, so it counts as
    written. Only a row kept out by a newer scoring of another prediction is skipped.
    """
    prediction_id = ONLINE_FEATURES.column_names.index("PREDICTION_ID")
    policy = ONLINE_FEATURES.column_names.index(ONLINE_FEATURES.primary_key)
    kept_out = {
        str(row[policy]): str(row[prediction_id])
        for row in rows
        if row[prediction_id] not in written
    }
    columns = f"{ONLINE_FEATURES.primary_key}, PREDICTION_ID"
    return {
        str(stored_id)
        for stored_policy, stored_id in _select_where_in(
            connection, ONLINE_FEATURES, columns, list(kept_out), variable_limit
        )
        if kept_out[str(stored_policy)] == str(stored_id)
    }


def _select_where_in(
    connection: sqlite3.Connection,
    table: Table,
    columns: str,
    keys: list[str],
    variable_limit: int,
) -> Iterator[tuple[Any, ...]]:
    """Yield ``columns`` of the rows whose primary key is in ``keys``, in chunks of the limit."""
    for start in range(0, len(keys), variable_limit):
        chunk = keys[start : start + variable_limit]
        yield from connection.execute(
            f"SELECT {columns} FROM {table.sqlite_name} "  # noqa: S608
            f"WHERE {table.primary_key} IN ({','.join('?' * len(chunk))})",
            chunk,
        )


@lru_cache(maxsize=64)
def _upsert_sql(table: Table, row_count: int) -> str:
    columns = table.column_names
    placeholders = "(" + ",".join("?" * len(columns)) + ")"
    assignments = ", ".join(
        f"{name} = excluded.{name}" for name in columns if name != table.primary_key
    )
    # Timestamps are fixed-width UTC ISO strings, so text order is time order.
    if table is ONLINE_FEATURES:
        # The newest features of a policy win. A row of the stored prediction is a replay or
        # its first scoring, and build_rows gives it no later an UPDATED_AT than the stored
        # one. It passes only with a strictly earlier time: the first scoring stored after its
        # replay. A replay ties, so the stored features stay those of the first scoring, as
        # in MODEL_PREDICTIONS. RETURNING lists the inserted and updated rows, not those the
        # WHERE clause kept out.
        stored = table.sqlite_name
        guard = (
            f" WHERE (excluded.PREDICTION_ID = {stored}.PREDICTION_ID"
            f" AND excluded.UPDATED_AT < {stored}.UPDATED_AT)"
            f" OR (excluded.PREDICTION_ID <> {stored}.PREDICTION_ID"
            f" AND excluded.UPDATED_AT >= {stored}.UPDATED_AT)"
            " RETURNING PREDICTION_ID"
        )
    elif table is MODEL_PREDICTIONS:
        return _prediction_upsert_sql(row_count)
    else:
        # A prediction's row keeps its first scoring: only a strictly earlier one replaces it.
        guard = f" WHERE excluded.CREATED_AT < {table.sqlite_name}.CREATED_AT"
    return (
        f"INSERT INTO {table.sqlite_name} ({', '.join(columns)}) VALUES "  # noqa: S608
        + ",".join([placeholders] * row_count)
        + f" ON CONFLICT ({table.primary_key}) DO UPDATE SET {assignments}{guard}"
    )


def _prediction_upsert_sql(row_count: int) -> str:
    """Return the ``MODEL_PREDICTIONS`` upsert, which merges the stored and the incoming row.

    The first-scoring columns take the incoming values only for an earlier ``CREATED_AT``, the
    answer columns only for a later ``ANSWERED_AT``, and a row that brings neither is kept out.
    Each SET expression reads the stored row as it was before the statement, so the order of
    the assignments does not matter.
    """
    table = MODEL_PREDICTIONS
    stored = table.sqlite_name
    columns = table.column_names
    placeholders = "(" + ",".join("?" * len(columns)) + ")"
    earlier = f"excluded.CREATED_AT < {stored}.CREATED_AT"
    # A row stored before ANSWERED_AT existed keeps it NULL (see _migrate_store) and counts as
    # answered at its CREATED_AT, as in the Snowflake sink.
    stored_answered = f"COALESCE({stored}.ANSWERED_AT, {stored}.CREATED_AT)"
    later = f"excluded.ANSWERED_AT > {stored_answered}"
    assignments = []
    for name in columns:
        if name == table.primary_key:
            continue
        condition = earlier if name in FIRST_SCORING_COLUMNS else later
        current = stored_answered if name == "ANSWERED_AT" else f"{stored}.{name}"
        assignments.append(
            f"{name} = CASE WHEN {condition} THEN excluded.{name} ELSE {current} END"
        )
    return (
        f"INSERT INTO {stored} ({', '.join(columns)}) VALUES "  # noqa: S608
        + ",".join([placeholders] * row_count)
        + f" ON CONFLICT ({table.primary_key}) DO UPDATE SET {', '.join(assignments)}"
        + f" WHERE {earlier} OR {later}"
    )


def _iso_timestamp(value: datetime) -> str:
    # Fixed width (always with microseconds) and always UTC, so text order is time order.
    return value.isoformat(timespec="microseconds")
