"""Tests of the generated DDL: columns follow FEATURE_NAMES in both dialects."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import pytest
import sqlglot
from evidence_features import FEATURE_NAMES
from evidence_persistence.ddl import main, render_ddl
from sqlglot import exp

EXPECTED_TABLES = {
    "sqlite": [
        "FEATURE_STORE__ONLINE_FEATURES",
        "ML_MODELS__MODEL_PREDICTIONS",
        "FEATURE_STORE__RAW_EVIDENCE",
    ],
    "snowflake": [
        "FEATURE_STORE.ONLINE_FEATURES",
        "ML_MODELS.MODEL_PREDICTIONS",
        "FEATURE_STORE.RAW_EVIDENCE",
    ],
}
PREDICTION_COLUMNS = [
    "PREDICTION_ID",
    "POLICY_NUMBER",
    "RISK_SCORE",
    "RISK_LEVEL",
    "MODEL_NAME",
    "MODEL_VERSION",
    "FEATURE_SPEC_VERSION",
    "SOURCE",
    "INFERENCE_MS",
    "FALLBACK_REASON",
    "WARNINGS",
    "CREATED_AT",
    "PERSISTED_AT",
    "FEATURES",
    "ANSWERED_AT",
]


def _parse_creates(dialect: str) -> dict[str, exp.Create]:
    """Parse every CREATE TABLE statement; Snowflake's HYBRID and INDEX clauses are removed
    first because sqlglot does not know them, and checked separately."""
    parsed: dict[str, exp.Create] = {}
    for statement in render_ddl(dialect):  # type: ignore[arg-type]
        if statement.startswith("CREATE INDEX"):
            continue
        text = statement.replace("CREATE HYBRID TABLE", "CREATE TABLE")
        text = re.sub(r",\n\s+INDEX \w+ \([^)]*\)", "", text)
        tree = sqlglot.parse_one(text, read=dialect)
        assert isinstance(tree, exp.Create)
        table = tree.find(exp.Table)
        assert table is not None
        parsed[table.sql(dialect=dialect)] = tree
    return parsed


def _columns(create: exp.Create) -> list[str]:
    return [column.name for column in create.find_all(exp.ColumnDef)]


def _primary_key(create: exp.Create) -> list[str]:
    keys = list(create.find_all(exp.PrimaryKey))
    assert len(keys) == 1
    return [column.name for column in keys[0].find_all(exp.Identifier)]


@pytest.mark.parametrize("dialect", ["sqlite", "snowflake"])
def test_ddl_online_features_follow_feature_names(dialect: str) -> None:
    """ONLINE_FEATURES contains the key, the 105 features in spec order, then the metadata."""
    creates = _parse_creates(dialect)
    assert EXPECTED_TABLES[dialect] == list(creates)
    columns = _columns(creates[EXPECTED_TABLES[dialect][0]])
    assert len(columns) == 109
    assert columns[:1] == ["POLICY_NUMBER"]
    assert list(FEATURE_NAMES) == columns[1:106]
    assert columns[106:] == ["FEATURE_SPEC_VERSION", "PREDICTION_ID", "UPDATED_AT"]
    assert _primary_key(creates[EXPECTED_TABLES[dialect][0]]) == ["POLICY_NUMBER"]


@pytest.mark.parametrize("dialect", ["sqlite", "snowflake"])
def test_ddl_predictions_and_raw_evidence_keys(dialect: str) -> None:
    """MODEL_PREDICTIONS and RAW_EVIDENCE have the declared columns and primary keys."""
    creates = _parse_creates(dialect)
    predictions = creates[EXPECTED_TABLES[dialect][1]]
    raw = creates[EXPECTED_TABLES[dialect][2]]
    assert _columns(predictions) == PREDICTION_COLUMNS
    assert _primary_key(predictions) == ["PREDICTION_ID"]
    assert _columns(raw) == ["EVIDENCE_ID", "POLICY_NUMBER", "MIB_XML", "RX_XML", "CREATED_AT"]
    assert _primary_key(raw) == ["EVIDENCE_ID"]


def test_ddl_snowflake_hybrid_with_indexes() -> None:
    """Snowflake statements create hybrid tables with inline secondary indexes."""
    statements = render_ddl("snowflake")
    assert len(statements) == 3
    for statement in statements:
        assert statement.startswith("CREATE HYBRID TABLE IF NOT EXISTS ")
        assert "TIMESTAMP_TZ" not in statement
    assert "VARIANT" not in statements[0]
    assert "VARIANT" not in statements[2]
    assert "    FEATURES VARIANT,\n" in statements[1]
    assert "INDEX IDX_MODEL_PREDICTIONS_POLICY (POLICY_NUMBER)" in statements[1]
    assert "INDEX IDX_MODEL_PREDICTIONS_CREATED (CREATED_AT)" in statements[1]
    assert "PREDICTION_ID VARCHAR(128) NOT NULL" in statements[1]
    assert "MIB_TOTAL_RECORDS FLOAT NOT NULL" in statements[0]


def test_ddl_snowflake_database_prefix() -> None:
    """A database name qualifies every table."""
    statements = render_ddl("snowflake", database="EVIDENCE_DB")
    assert (
        "CREATE HYBRID TABLE IF NOT EXISTS EVIDENCE_DB.ML_MODELS.MODEL_PREDICTIONS ("
        in (statements[1])
    )


def test_ddl_sqlite_runs_twice() -> None:
    """The SQLite statements execute, and again without error (IF NOT EXISTS)."""
    connection = sqlite3.connect(":memory:")
    for _ in range(2):
        for statement in render_ddl("sqlite"):
            connection.execute(statement)
    indexes = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert {"IDX_MODEL_PREDICTIONS_POLICY", "IDX_MODEL_PREDICTIONS_CREATED"} <= indexes


def test_ddl_unknown_dialect_rejected() -> None:
    """An unsupported dialect raises ValueError naming it."""
    with pytest.raises(ValueError, match="dialect='postgres' is not supported"):
        render_ddl("postgres")  # type: ignore[arg-type]


def test_ddl_module_prints_statements() -> None:
    """python -m evidence_persistence.ddl prints three semicolon-terminated statements."""
    result = subprocess.run(
        [sys.executable, "-m", "evidence_persistence.ddl", "--dialect", "snowflake"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.count("CREATE HYBRID TABLE IF NOT EXISTS") == 3
    assert result.stdout.rstrip().endswith(");")
    assert ";\n".join(render_ddl("snowflake")) in result.stdout.replace(";\n\n", ";\n")


def test_ddl_main_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    """main() with --dialect sqlite prints CREATE TABLE and CREATE INDEX statements."""
    assert main(["--dialect", "sqlite"]) == 0
    output = capsys.readouterr().out
    assert output.count("CREATE TABLE IF NOT EXISTS") == 3
    assert output.count("CREATE INDEX IF NOT EXISTS") == 3
