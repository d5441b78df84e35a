"""The SQL the Snowflake sink sends through a real Snowpark session, captured at the cursor.

A stand-in connector connection records every statement and its parameters instead of calling
Snowflake. Snowpark requests result schemas from the server, so the stand-in returns them from the
declared tables. The tests check that no stored value reaches any SQL text and that every
statement names the configured staging schema.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from persistence_testkit import build_record

snowpark = pytest.importorskip("snowflake.snowpark")

from evidence_persistence import PredictionRecord, SinkConfigurationError  # noqa: E402
from evidence_persistence._rows import features_json  # noqa: E402
from evidence_persistence._sink import open_sink  # noqa: E402
from evidence_persistence._tables import TABLES  # noqa: E402
from evidence_persistence.config import Settings  # noqa: E402
from evidence_persistence.sinks import snowflake as snowflake_sink  # noqa: E402
from evidence_persistence.sinks import snowflake_staging  # noqa: E402
from evidence_persistence.sinks.snowflake import SnowflakeSink, struct_type  # noqa: E402
from snowflake.snowpark import Session  # noqa: E402
from snowflake.snowpark._internal.analyzer.expression import Attribute  # noqa: E402
from snowflake.snowpark.types import StringType  # noqa: E402

DATABASE = "EVIDENCE_DB"
SCHEMA = "STAGING"
MIB_XML = (
    b"<MIBResponse><Name>Janexample Doeperson</Name><DOB>1970-01-01</DOB>"
    b"<Code>503DZZ</Code></MIBResponse>"
)
RX_XML = b"<IntelRXResponse><DrugGenericName>OXYCODONEZZ</DrugGenericName></IntelRXResponse>"


@dataclass
class Statement:
    """One call that reached the connector cursor."""

    method: str
    sql: str
    params: Any = None


@dataclass
class RecordingCursor:
    """Connector cursor stand-in that records statements and returns empty results."""

    statements: list[Statement] = field(default_factory=list)
    description: list[Any] = field(default_factory=list)
    rowcount: int = 1
    sfqid: str = "01b2c3d4-0000-1234-0000-00012345abcd"
    _query_result_format: str = "json"

    def execute(self, sql: str, params: Any = None, *args: Any, **kwargs: Any) -> RecordingCursor:
        self.statements.append(Statement("execute", sql, params or kwargs.get("params")))
        return self

    def executemany(self, sql: str, params: Sequence[Any], **kwargs: Any) -> RecordingCursor:
        self.statements.append(Statement("executemany", sql, list(params)))
        return self

    def fetchall(self) -> list[tuple[int, ...]]:
        # A query, such as the read of the stored prediction rows, finds no row. Statements
        # that write report one row.
        if self.statements and self.statements[-1].sql.lstrip(" (").upper().startswith("SELECT"):
            return []
        return [(1, 1)]

    def fetchone(self) -> tuple[int, ...]:
        return (1, 1)

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return mock.MagicMock()


def _result_attributes(query: str, *args: Any, **kwargs: Any) -> list[Attribute]:
    # The schema of a query over one of the tables or staging tables is that table's schema.
    for table in TABLES:
        if re.search(rf"\b{table.name}(_STAGE)?\b", query):
            stage = f"{table.name}_STAGE" in query
            schema = struct_type(table, json_as_text=stage)
            return [Attribute(f.name, f.datatype, f.nullable) for f in schema.fields]
    names = dict.fromkeys(re.findall(r'"([A-Z_0-9]+)"', query))
    return [Attribute(name, StringType(), True) for name in names]


@pytest.fixture
def cursor() -> RecordingCursor:
    """Return the cursor that records what the session sends."""
    return RecordingCursor()


@pytest.fixture
def session(cursor: RecordingCursor) -> Iterator[Session]:
    """Return a real Snowpark session over a connector stand-in using ``qmark``."""
    connection = mock.MagicMock()
    connection._session_parameters = {}
    connection._paramstyle = "qmark"
    connection.is_pyformat = False
    connection.cursor.return_value = cursor
    connection.is_closed.return_value = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        created = Session.builder.configs({"connection": connection}).create()
    created._conn.get_result_attributes = _result_attributes
    yield created
    created.close()


def _records(count: int) -> list[PredictionRecord]:
    return [
        build_record(index, policy_number=f"P-SECRET-{index}", mib_xml=MIB_XML, rx_xml=RX_XML)
        for index in range(count)
    ]


def _stored_values(records: Sequence[PredictionRecord]) -> set[str]:
    values = {"Janexample", "1970-01-01", "503DZZ", "OXYCODONEZZ"}
    for record in records:
        values |= {record.prediction_id, record.policy_number, features_json(record)}
        values |= {repr(value) for value in record.features if value % 1}
        values.add(record.created_at.strftime("%Y-%m-%d %H:%M:%S"))
    return values


def _sink(session: Session) -> SnowflakeSink:
    return SnowflakeSink(lambda: session, database=DATABASE, schema=SCHEMA, store_raw_evidence=True)


@pytest.mark.parametrize("count", [1, 2, 6, 40])
def test_snowflake_sql_carries_no_value(
    session: Session, cursor: RecordingCursor, count: int
) -> None:
    """Batches below and above Snowpark's 512-value literal limit put no value in SQL text."""
    records = _records(count)
    _sink(session).write_batch(records)
    texts = "\n".join(statement.sql for statement in cursor.statements)
    leaked = sorted(value for value in _stored_values(records) if value in texts)
    assert leaked == []
    inserts = [s for s in cursor.statements if s.method == "executemany"]
    assert len(inserts) == 3
    bound = {value for statement in inserts for row in statement.params for value in row}
    assert records[0].policy_number in bound
    assert MIB_XML.decode() in bound


def test_snowflake_statement_sequence(session: Session, cursor: RecordingCursor) -> None:
    """Per table: create the staging table once per session, empty it later, insert, merge.

    MODEL_PREDICTIONS goes first and is read back, joined with its staging table, before the
    ONLINE_FEATURES rows are staged.
    """
    sink = _sink(session)
    sink.write_batch(_records(6))
    sink.write_batch(_records(6))
    kinds = []
    for statement in cursor.statements:
        words = statement.sql.split()
        if words[0] in {"CREATE", "DELETE", "INSERT", "MERGE", "SELECT"}:
            kinds.append((words[0], " ".join(words)))
    expected: list[str] = []
    for first in ("CREATE", "DELETE"):
        expected += [first, "INSERT", "MERGE", "SELECT"]
        expected += [first, "INSERT", "MERGE"] * 2
    assert [kind for kind, _ in kinds] == expected
    for kind, sql in kinds:
        if kind not in {"MERGE", "SELECT"}:
            assert f"{DATABASE}.{SCHEMA}." in sql
    assert kinds[0][1].startswith(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {DATABASE}.{SCHEMA}.MODEL_PREDICTIONS_STAGE ("
    )
    read_back = kinds[3][1]
    assert f"FROM {DATABASE}.ML_MODELS.MODEL_PREDICTIONS" in read_back
    assert f"FROM {DATABASE}.{SCHEMA}.MODEL_PREDICTIONS_STAGE" in read_back
    assert 'ON ("PREDICTION_ID" = "STAGED_ID")' in read_back
    merge = kinds[6][1]
    assert f"MERGE INTO {DATABASE}.FEATURE_STORE.ONLINE_FEATURES" in merge
    assert f"{DATABASE}.{SCHEMA}.ONLINE_FEATURES_STAGE" in merge


def test_snowflake_no_unqualified_temp_object(session: Session, cursor: RecordingCursor) -> None:
    """No statement creates a temporary object outside the configured staging schema."""
    _sink(session).write_batch(_records(40))
    creates = [s.sql for s in cursor.statements if re.match(r"\s*CREATE", s.sql, re.I)]
    assert creates
    for sql in creates:
        assert f"{DATABASE}.{SCHEMA}." in sql, sql


def test_snowflake_inserts_chunked(
    session: Session, cursor: RecordingCursor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch above the rows-per-INSERT bound is sent as several INSERTs of every row."""
    monkeypatch.setattr(snowflake_staging, "MAX_INSERT_ROWS", 4)
    _sink(session).write_batch(_records(10))
    inserts = [
        s for s in cursor.statements if s.method == "executemany" and "MODEL_PREDICTIONS" in s.sql
    ]
    assert [len(s.params) for s in inserts] == [4, 4, 2]


def test_snowflake_pyformat_connection_rejected(session: Session, cursor: RecordingCursor) -> None:
    """A connection under pyformat would inline the values, so the sink rejects it."""
    session.connection.is_pyformat = True  # type: ignore[misc]
    with pytest.raises(SinkConfigurationError, match="paramstyle='qmark'"):
        _sink(session).write_batch(_records(1))
    assert [s for s in cursor.statements if s.method == "executemany"] == []


@pytest.mark.parametrize("create_tables", [False, True])
def test_open_sink_creates_tables_only_when_set(
    session: Session,
    cursor: RecordingCursor,
    monkeypatch: pytest.MonkeyPatch,
    clean_settings: None,
    create_tables: bool,
) -> None:
    """The worker's sink runs CREATE HYBRID TABLE only with snowflake_create_tables set."""
    monkeypatch.setattr(snowflake_sink, "session_factory", lambda settings: lambda: session)
    settings = Settings(
        sink="snowflake",
        snowflake_database=DATABASE,
        snowflake_schema=SCHEMA,
        snowflake_create_tables=create_tables,
    )
    sink = open_sink(settings)
    try:
        sink.write_batch(_records(2))
    finally:
        sink.close()
    creates = [s.sql for s in cursor.statements if "CREATE HYBRID TABLE" in s.sql]
    assert len(creates) == (len(TABLES) if create_tables else 0)
    merges = [s.sql for s in cursor.statements if s.sql.split()[0] == "MERGE"]
    assert len(merges) == 2


def test_session_factory_sets_schema_and_qmark(
    clean_settings: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The session gets the staging schema, read from SNOWFLAKE_SCHEMA, and qmark binds."""
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    monkeypatch.setenv("SNOWFLAKE_SCHEMA", "STAGING")
    configs: list[dict[str, Any]] = []
    builder = mock.MagicMock()

    def record_configs(config: dict[str, Any]) -> mock.MagicMock:
        configs.append(config)
        return builder

    builder.configs.side_effect = record_configs
    monkeypatch.setattr(Session, "builder", builder)
    snowflake_sink.session_factory(Settings(snowflake_token_file=token))()
    assert configs[0]["schema"] == "STAGING"
    assert configs[0]["paramstyle"] == "qmark"
