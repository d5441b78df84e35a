"""Panel queries against the SQLite sink that the persistence worker writes locally."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from evidence_dashboard.errors import StoreUnavailableError
from evidence_dashboard.store import schema
from evidence_dashboard.store.base import (
    FeatureSample,
    PolicyLookup,
    QueryResult,
    normalise_frame,
    parse_feature_objects,
    window_end,
)

__all__ = ["SqliteStore"]

_BUSY_TIMEOUT_SECONDS = 5.0


def _sqlite_error_in_chain(error: BaseException) -> sqlite3.Error | None:
    """Return the first sqlite3 error among ``error``'s causes and contexts, or None.

    pandas 2.3 raises its DatabaseError ``from`` the sqlite3 error, or from the error of the
    rollback that failed after it, whose own context is then the sqlite3 error.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, sqlite3.Error):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class SqliteStore:
    """Read-only panel queries on the SQLite store file.

    The file is opened read-only for each query, so the dashboard never holds a lock that could
    stall the worker. A missing table reads as an empty table: the worker creates the tables
    when it first starts, which may be after the dashboard.
    """

    backend_name = "SQLite"

    def __init__(self, path: Path, *, max_rows: int) -> None:
        self.path = path
        self.max_rows = max_rows
        self._predictions = schema.sqlite_table(schema.PREDICTIONS_TABLE)
        self._features = schema.sqlite_table(schema.FEATURES_TABLE)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self.path.is_file():
            msg = (
                f"store file {str(self.path)!r} not found; start the persistence worker "
                "(evidence-persistence worker) or set DASHBOARD_STORE_PATH"
            )
            raise StoreUnavailableError(msg)
        try:
            connection = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=_BUSY_TIMEOUT_SECONDS,
            )
        except sqlite3.Error as exc:
            msg = f"cannot open store file {str(self.path)!r}: {exc}"
            raise StoreUnavailableError(msg) from exc
        try:
            yield connection
        except sqlite3.Error as exc:
            raise self._query_failed(exc) from exc
        except pd.errors.DatabaseError as exc:
            # pandas' read_sql_query wraps the sqlite3 error in a message that quotes the whole
            # SQL text. The store error is built from the wrapped error and chained from it, so
            # neither the page nor a logged traceback shows that text.
            cause = _sqlite_error_in_chain(exc)
            if cause is not None:
                raise self._query_failed(cause) from cause
            wrapped = exc.__cause__
            msg = (
                f"query on store file {str(self.path)!r} failed with "
                f"{type(wrapped or exc).__name__}; check that the file is a store written by "
                "the persistence worker"
            )
            raise StoreUnavailableError(msg) from wrapped
        finally:
            connection.close()

    def _query_failed(self, error: sqlite3.Error) -> StoreUnavailableError:
        msg = f"query on store file {str(self.path)!r} failed: {error}"
        return StoreUnavailableError(msg)

    def _has_table(self, connection: sqlite3.Connection, table: str) -> bool:
        row = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return row is not None

    def _has_column(self, connection: sqlite3.Connection, table: str, column: str) -> bool:
        # table_info returns no rows for a missing table, so this is False then too.
        rows = connection.execute(f"PRAGMA table_info({table})").fetchall()
        return any(str(row[1]).upper() == column for row in rows)

    def _select_window(
        self,
        table: str,
        columns: Sequence[str],
        time_column: str,
        since: datetime | None,
        *,
        max_rows: int | None = None,
        not_null: str | None = None,
    ) -> QueryResult:
        limit = self.max_rows if max_rows is None else max_rows
        with self._connect() as connection:
            if not self._has_table(connection, table):
                return QueryResult(pd.DataFrame(columns=list(columns)), truncated=False)
            # NOTE: julianday() parses ISO 8601 text with 'T' or ' ' and an offset or 'Z', so the
            # comparison works for any ISO form the sink writes. Column and table names come
            # from the schema module, never from user input.
            conditions = [] if not_null is None else [f"{not_null} IS NOT NULL"]
            if since is not None:
                conditions.append(f"julianday({time_column}) >= julianday(?)")
                conditions.append(f"julianday({time_column}) <= julianday(?)")
            where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            sql = (
                f"SELECT {', '.join(columns)} FROM {table} {where} "  # noqa: S608
                f"ORDER BY julianday({time_column}) DESC LIMIT ?"
            )
            params: tuple[object, ...] = (limit + 1,)
            if since is not None:
                params = (since.astimezone(UTC).isoformat(), window_end().isoformat(), *params)
            frame = pd.read_sql_query(sql, connection, params=params)
        truncated = len(frame) > limit
        return QueryResult(normalise_frame(frame.head(limit)), truncated=truncated)

    def count_predictions(self) -> int:
        """Count all rows of the predictions table; 0 when it does not exist yet."""
        with self._connect() as connection:
            if not self._has_table(connection, self._predictions):
                return 0
            row = connection.execute(f"SELECT COUNT(*) FROM {self._predictions}").fetchone()  # noqa: S608
        return int(row[0])

    def traffic(self, since: datetime | None) -> QueryResult:
        """Return time, source and latency of each prediction since ``since``."""
        return self._select_window(
            self._predictions, schema.TRAFFIC_COLUMNS, schema.CREATED_AT, since
        )

    def model_usage(self, since: datetime | None) -> QueryResult:
        """Return model name and version, score and level of each prediction since ``since``."""
        return self._select_window(
            self._predictions, schema.MODEL_COLUMNS, schema.CREATED_AT, since
        )

    def feature_warnings(self, since: datetime | None) -> QueryResult:
        """Return time and warning kinds of each prediction since ``since``."""
        return self._select_window(
            self._predictions, schema.WARNING_COLUMNS, schema.CREATED_AT, since
        )

    def recent_features(self, since: datetime | None) -> QueryResult:
        """Return the feature columns of policies updated since ``since``."""
        return self._select_window(self._features, schema.FEATURE_COLUMNS, schema.UPDATED_AT, since)

    def drift_features(self, since: datetime | None, *, max_rows: int) -> FeatureSample:
        """Return the features of the newest predictions since ``since``, parsed from JSON.

        Falls back to ``recent_features`` when the predictions table has no ``FEATURES``
        column. Rows whose ``FEATURES`` is NULL, written before the column existed, are left out.
        """
        with self._connect() as connection:
            has_features = self._has_column(connection, self._predictions, schema.FEATURES)
        if not has_features:
            return FeatureSample(self.recent_features(since), per_prediction=False)
        stored = self._select_window(
            self._predictions,
            (schema.FEATURES,),
            schema.CREATED_AT,
            since,
            max_rows=max_rows,
            not_null=schema.FEATURES,
        )
        frame, invalid = parse_feature_objects(stored.frame[schema.FEATURES])
        return FeatureSample(
            QueryResult(frame, truncated=stored.truncated), per_prediction=True, invalid=invalid
        )

    def lookup_policy(self, policy_number: str, *, limit: int = 50) -> PolicyLookup:
        """Return the stored features and the newest predictions of one policy."""
        feature_columns = (schema.POLICY_NUMBER, schema.UPDATED_AT, *schema.FEATURE_COLUMNS)
        with self._connect() as connection:
            if self._has_table(connection, self._features):
                features = pd.read_sql_query(
                    f"SELECT {', '.join(feature_columns)} FROM {self._features} "  # noqa: S608
                    f"WHERE {schema.POLICY_NUMBER} = ?",
                    connection,
                    params=(policy_number,),
                )
            else:
                features = pd.DataFrame(columns=list(feature_columns))
            if self._has_table(connection, self._predictions):
                predictions = pd.read_sql_query(
                    f"SELECT {', '.join(schema.LOOKUP_PREDICTION_COLUMNS)} "  # noqa: S608
                    f"FROM {self._predictions} WHERE {schema.POLICY_NUMBER} = ? "
                    f"ORDER BY julianday({schema.CREATED_AT}) DESC LIMIT ?",
                    connection,
                    params=(policy_number, limit),
                )
            else:
                predictions = pd.DataFrame(columns=list(schema.LOOKUP_PREDICTION_COLUMNS))
        return PolicyLookup(normalise_frame(features), normalise_frame(predictions))
