"""Snowflake sink: MERGE each batch into the hybrid tables, with every value bound.

Each table's rows are first loaded into a temporary staging table of the session with bind
parameters (see ``snowflake_staging``), so no stored value appears in any SQL text. The MERGE
is then built with Snowpark's ``Table.merge``, reading the staging table. The same merge code
runs in Snowpark's local-testing session, which cannot execute SQL, when a test passes a
staging function that fills the staging table through the DataFrame API. That emulator
enforces no primary keys and merges duplicate source keys silently, whereas Snowflake rejects
a MERGE in which two source rows match one target row. Batches are therefore de-duplicated by
key before the merge (see ``build_rows``).

``JSON`` columns such as ``MODEL_PREDICTIONS.FEATURES`` travel as JSON text in a string column
of the staging table and are converted with ``PARSE_JSON`` inside the MERGE. The SQLite sink
stores the same text, so both sinks write one encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from snowflake.snowpark import Column, DataFrame, Session, Table
from snowflake.snowpark.exceptions import SnowparkSessionException
from snowflake.snowpark.functions import (
    coalesce,
    col,
    parse_json,
    when_matched,
    when_not_matched,
)
from snowflake.snowpark.types import (
    DoubleType,
    StringType,
    StructField,
    StructType,
    TimestampTimeZone,
    TimestampType,
    VariantType,
)

from evidence_persistence._record import PredictionRecord
from evidence_persistence._rows import Row, build_rows, future_cutoff, stored_update_time
from evidence_persistence._sink import WriteResult
from evidence_persistence._tables import (
    FIRST_SCORING_COLUMNS,
    MODEL_PREDICTIONS,
    ONLINE_FEATURES,
    RAW_EVIDENCE,
    ColumnType,
)
from evidence_persistence._tables import Table as TableSpec
from evidence_persistence.config import Settings
from evidence_persistence.ddl import render_ddl
from evidence_persistence.errors import SinkConfigurationError, SinkUnavailableError
from evidence_persistence.sinks.snowflake_staging import BoundStaging, StageRows, stage_table_name

__all__ = ["SnowflakeSink", "session_factory", "struct_type"]

_SNOWPARK_TYPES: dict[ColumnType, Callable[[], Any]] = {
    "ID": lambda: StringType(128),
    "KEY": lambda: StringType(64),
    "TEXT": StringType,
    "FLOAT": DoubleType,
    "TIMESTAMP": lambda: TimestampType(TimestampTimeZone.NTZ),
    "JSON": VariantType,
}


def struct_type(table: TableSpec, *, json_as_text: bool = False) -> StructType:
    """Return the Snowpark schema of one declared table.

    With ``json_as_text`` the ``JSON`` columns are strings, as in the merge source, instead
    of ``VARIANT`` as in the table.
    """
    fields = []
    for column in table.columns:
        if json_as_text and column.type == "JSON":
            data_type = StringType()
        else:
            data_type = _SNOWPARK_TYPES[column.type]()
        fields.append(StructField(column.name, data_type, nullable=column.nullable))
    return StructType(fields)


def _source_values(table: TableSpec, source: DataFrame) -> dict[str, Column]:
    # JSON text becomes a VARIANT here, on the server, so no value is encoded twice.
    return {
        column.name: parse_json(source[column.name])
        if column.type == "JSON"
        else source[column.name]
        for column in table.columns
    }


def _connection_errors() -> tuple[type[BaseException], ...]:
    # The connector's network and login failures; anything else may be the data's fault.
    from snowflake.connector import errors

    return (
        SnowparkSessionException,
        errors.OperationalError,
        errors.InterfaceError,
        errors.ServiceUnavailableError,
        errors.GatewayTimeoutError,
        errors.BadGatewayError,
    )


class SnowflakeSink:
    """Merge batches into the three hybrid tables, one MERGE statement per table.

    Args:
        session_factory: Creates a Snowpark session; called again after a connection failure.
        database: Database holding the ``FEATURE_STORE`` and ``ML_MODELS`` schemas; ``None``
            uses the session's current database.
        schema: Schema of the temporary staging tables, in which the session's role needs
            CREATE TABLE; ``None`` uses the session's current schema.
        store_raw_evidence: Write ``RAW_EVIDENCE`` rows for records that carry XML.
        create_tables: Run the ``CREATE HYBRID TABLE IF NOT EXISTS`` statements once per
            session. Snowflake checks CREATE TABLE on the schemas even when the tables exist,
            so the role needs that privilege. Needs SQL, so it must be ``False`` in a
            local-testing session.
        stage_rows: Loads a table's rows into its staging table; the default binds every value.
        clock_skew_tolerance_seconds: ``ONLINE_FEATURES.UPDATED_AT`` is at most this far
            ahead of this process's clock (see ``build_rows``).

    NOTE: the three MERGE statements are separate transactions. A failure between them leaves
    part of a batch written. The worker then retries the whole batch, and because every write
    is an upsert the second write leaves one row per key.
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        database: str | None = None,
        schema: str | None = None,
        store_raw_evidence: bool = False,
        create_tables: bool = False,
        stage_rows: StageRows | None = None,
        clock_skew_tolerance_seconds: float = 300.0,
    ) -> None:
        self._session_factory = session_factory
        self._session: Session | None = None
        self.database = database
        self.schema = schema
        self.store_raw_evidence = store_raw_evidence
        self._create_tables = create_tables
        self._bound_staging = BoundStaging()
        self._stage_rows: StageRows = stage_rows or self._bound_staging
        self.clock_skew_tolerance_seconds = clock_skew_tolerance_seconds

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        """Merge the records into the three tables.

        Raises:
            SinkUnavailableError: Snowflake is unreachable or the login failed; the session is
                dropped and rebuilt on the next call.
            SinkConfigurationError: Creating the tables failed, or the session would write
                bound values into the SQL text.
        """
        now = datetime.now(UTC)
        build = partial(
            build_rows,
            records,
            store_raw_evidence=self.store_raw_evidence,
            persisted_at=now,
            timestamp=_naive_utc,
            max_updated_at=future_cutoff(self.clock_skew_tolerance_seconds, now),
        )
        predictions = build().model_predictions
        try:
            session = self._current_session()
            # MODEL_PREDICTIONS goes first, so that the rows read back from it carry each id's
            # first scoring time, which orders the ONLINE_FEATURES rows.
            stage = self._merge_predictions(session, predictions)
            rows = build(stored_update_times=self._stored_update_times(session, stage))
            self._merge(session, ONLINE_FEATURES, rows.online_features, time_column="UPDATED_AT")
            self._merge(session, RAW_EVIDENCE, rows.raw_evidence, time_column="CREATED_AT")
        except _connection_errors() as exc:
            self.close()
            msg = f"Snowflake is unavailable ({type(exc).__name__}: {exc}); the batch stays queued"
            raise SinkUnavailableError(msg) from exc
        # NOTE: the MERGE reports no row that its condition kept out, so online_features_skipped
        # stays empty and the worker logs no skipped update for Snowflake.
        return WriteResult(
            online_features=len(rows.online_features),
            model_predictions=len(predictions),
            raw_evidence=len(rows.raw_evidence),
        )

    def close(self) -> None:
        """Close the Snowpark session, if one is open."""
        self._bound_staging.reset()
        if self._session is not None:
            session, self._session = self._session, None
            session.close()

    def _current_session(self) -> Session:
        if self._session is None:
            session = self._session_factory()
            # Until the set-up succeeds the session is not kept, so it must be closed here or
            # every failed attempt would leave one open.
            try:
                if self._create_tables:
                    self._create_hybrid_tables(session)
            except BaseException:
                session.close()
                raise
            self._session = session
        return self._session

    def _create_hybrid_tables(self, session: Session) -> None:
        try:
            for statement in render_ddl("snowflake", database=self.database):
                session.sql(statement).collect()
        except _connection_errors():
            raise
        except Exception as exc:
            msg = (
                f"creating the hybrid tables failed ({type(exc).__name__}: {exc}); create "
                "them with deploy/sql/03_hybrid_tables.sql and set "
                "PERSISTENCE_SNOWFLAKE_CREATE_TABLES=false, or grant the role CREATE TABLE "
                "on the FEATURE_STORE and ML_MODELS schemas"
            )
            raise SinkConfigurationError(msg) from exc

    def _merge(
        self, session: Session, table: TableSpec, rows: list[Row], *, time_column: str
    ) -> str | None:
        """Merge ``rows`` into ``table`` and return the staging table's name, or None if empty.

        In ``ONLINE_FEATURES`` a row of another prediction replaces the stored row when its
        ``time_column`` is at least as late, and a row of the stored prediction only when it
        is strictly earlier. In ``RAW_EVIDENCE`` only a strictly earlier ``time_column``
        replaces the stored row. So a prediction keeps its first scoring in both tables.
        """
        if not rows:
            return None
        stage_name, source, target = self._stage(session, table, rows)
        key = table.primary_key
        values = _source_values(table, source)
        updates = {name: value for name, value in values.items() if name != key}
        if table is ONLINE_FEATURES:
            # As in the SQLite sink, a row of the stored prediction passes only when it lowers
            # UPDATED_AT to the prediction's first scoring time. A replay ties and is kept out.
            same_prediction = source["PREDICTION_ID"] == target["PREDICTION_ID"]
            condition = (same_prediction & (source[time_column] < target[time_column])) | (
                ~same_prediction & (source[time_column] >= target[time_column])
            )
        else:
            condition = source[time_column] < target[time_column]
        target.merge(
            source,
            target[key] == source[key],
            [when_matched(condition).update(updates), when_not_matched().insert(values)],
        )
        return stage_name

    def _merge_predictions(self, session: Session, rows: list[Row]) -> str | None:
        """Merge ``MODEL_PREDICTIONS`` rows and return the staging table's name, or None if empty.

        A stored row takes the incoming first-scoring columns (``FIRST_SCORING_COLUMNS``) only
        for an earlier ``CREATED_AT``, and the incoming answer columns only for a later
        ``ANSWERED_AT``, as the SQLite sink's upsert does. The conditions of the three WHEN
        MATCHED clauses exclude each other, so their order does not matter.
        """
        if not rows:
            return None
        table = MODEL_PREDICTIONS
        stage_name, source, target = self._stage(session, table, rows)
        key = table.primary_key
        values = _source_values(table, source)
        # A row added before ANSWERED_AT existed keeps it NULL and counts as answered at its
        # CREATED_AT, the time of the only scoring it holds.
        stored_answered = coalesce(target["ANSWERED_AT"], target["CREATED_AT"])
        earlier = source["CREATED_AT"] < target["CREATED_AT"]
        later = source["ANSWERED_AT"] > stored_answered
        first_scoring = {name: values[name] for name in FIRST_SCORING_COLUMNS}
        answer = {
            name: value
            for name, value in values.items()
            if name != key and name not in FIRST_SCORING_COLUMNS
        }
        target.merge(
            source,
            target[key] == source[key],
            [
                when_matched(earlier & later).update({**first_scoring, **answer}),
                when_matched(~earlier & later).update(answer),
                when_matched(earlier & ~later).update(
                    {**first_scoring, "ANSWERED_AT": stored_answered}
                ),
                when_not_matched().insert(values),
            ],
        )
        return stage_name

    def _stage(
        self, session: Session, table: TableSpec, rows: list[Row]
    ) -> tuple[str, Table, Table]:
        """Load ``rows`` into the table's staging table and return its name, it and the target."""
        stage_name = stage_table_name(table, self.database, self.schema)
        self._stage_rows(session, table, stage_name, rows)
        source = session.table(stage_name)
        target: Table = session.table(table.snowflake_name(self.database))
        return stage_name, source, target

    def _stored_update_times(self, session: Session, stage_name: str | None) -> dict[str, datetime]:
        """Return ``stored_update_time`` of each prediction id in the staging table.

        The join reads the ids from the staging table, so no id appears in the SQL text.
        """
        if stage_name is None:
            return {}
        # The staged column gets its own name, so the join condition names two distinct columns.
        stage = session.table(stage_name).select(col("PREDICTION_ID").alias("STAGED_ID"))
        stored = session.table(MODEL_PREDICTIONS.snowflake_name(self.database))
        joined = stored.join(stage, stored["PREDICTION_ID"] == stage["STAGED_ID"]).select(
            "PREDICTION_ID", "CREATED_AT", "PERSISTED_AT"
        )
        return {
            str(prediction_id): stored_update_time(
                _aware_utc(created_at), _aware_utc(persisted_at), self.clock_skew_tolerance_seconds
            )
            for prediction_id, created_at, persisted_at in joined.collect()
        }


def _naive_utc(value: datetime) -> datetime:
    # The columns are TIMESTAMP_NTZ holding UTC. The connector binds a naive datetime as that
    # wall-clock time, whatever the session's time zone.
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware_utc(value: datetime) -> datetime:
    # TIMESTAMP_NTZ columns come back naive, holding UTC (see _naive_utc).
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def session_factory(settings: Settings) -> Callable[[], Session]:
    """Return a function that opens a Snowpark session from the settings.

    Inside SPCS the OAuth token file the platform mounts (``snowflake_token_file``) is used and
    re-read for every new session, because SPCS refreshes it. Elsewhere a key-pair user is
    needed: ``PERSISTENCE_SNOWFLAKE_ACCOUNT``, ``PERSISTENCE_SNOWFLAKE_USER`` and
    ``PERSISTENCE_SNOWFLAKE_PRIVATE_KEY_FILE``.

    Raises:
        SinkConfigurationError: Neither a token file nor a complete key-pair configuration exists.
    """
    base: dict[str, Any] = {
        key: value
        for key, value in {
            "account": settings.snowflake_account,
            "host": settings.snowflake_host,
            "role": settings.snowflake_role,
            "warehouse": settings.snowflake_warehouse,
            "database": settings.snowflake_database,
            "schema": settings.snowflake_schema,
        }.items()
        if value
    }
    # Snowpark 1.56 already defaults to qmark. It is set here anyway, because under the
    # connector's own default, pyformat, the staging INSERTs would carry their values in the
    # SQL text.
    base["paramstyle"] = "qmark"
    token_file = settings.snowflake_token_file
    if token_file.is_file():

        def open_with_token() -> Session:
            token = token_file.read_text(encoding="utf-8").strip()
            config = {**base, "authenticator": "oauth", "token": token}
            session: Session = Session.builder.configs(config).create()
            return session

        return open_with_token

    missing = [
        name
        for name, value in (
            ("PERSISTENCE_SNOWFLAKE_ACCOUNT", settings.snowflake_account),
            ("PERSISTENCE_SNOWFLAKE_USER", settings.snowflake_user),
            ("PERSISTENCE_SNOWFLAKE_PRIVATE_KEY_FILE", settings.snowflake_private_key_file),
        )
        if not value
    ]
    if missing:
        msg = (
            f"the Snowflake sink has no credentials: {token_file} does not exist and "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; set them "
            "or use PERSISTENCE_SINK=sqlite"
        )
        raise SinkConfigurationError(msg)
    config = {
        **base,
        "user": settings.snowflake_user,
        "authenticator": "SNOWFLAKE_JWT",
        "private_key_file": str(settings.snowflake_private_key_file),
    }
    if settings.snowflake_private_key_passphrase is not None:
        passphrase = settings.snowflake_private_key_passphrase.get_secret_value()
        config["private_key_file_pwd"] = passphrase

    def open_with_key_pair() -> Session:
        session: Session = Session.builder.configs(config).create()
        return session

    return open_with_key_pair
