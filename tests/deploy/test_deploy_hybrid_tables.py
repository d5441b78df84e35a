"""The generated hybrid-table script is current and matches the feature spec."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import sqlglot
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from sqlglot import exp


@pytest.fixture(scope="module")
def generator(support: ModuleType) -> ModuleType:
    """deploy/generate_sql.py loaded as a module (deploy/ is not a package)."""
    path = support.DEPLOY_DIR / "generate_sql.py"
    spec = importlib.util.spec_from_file_location("deploy_generate_sql", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tables(rendered_sql: dict[str, str]) -> dict[str, exp.Create]:
    """The three CREATE HYBRID TABLE statements, parsed as plain CREATE TABLE by sqlglot.

    sqlglot keeps hybrid tables as opaque commands. Without the HYBRID keyword and the inline
    INDEX clauses, the statement is a CREATE TABLE that it parses into columns and constraints.
    """
    parsed: dict[str, exp.Create] = {}
    for statement in rendered_sql["03_hybrid_tables.sql"].split(";"):
        if "CREATE HYBRID TABLE" not in statement:
            continue
        plain = statement.replace("CREATE HYBRID TABLE", "CREATE TABLE")
        plain = re.sub(r",\s*INDEX \w+ \([^)]*\)", "", plain)
        tree = sqlglot.parse_one(plain, read="snowflake")
        assert isinstance(tree, exp.Create)
        table = tree.find(exp.Table)
        assert table is not None
        parsed[f"{table.db}.{table.name}"] = tree
    return parsed


def _columns(tree: exp.Create) -> list[tuple[str, str, bool]]:
    columns = []
    for column in tree.find_all(exp.ColumnDef):
        not_null = any(
            isinstance(constraint.kind, exp.NotNullColumnConstraint)
            for constraint in column.constraints
        )
        kind = column.args["kind"]
        columns.append((column.name, kind.sql(dialect="snowflake"), not_null))
    return columns


def _primary_key(tree: exp.Create) -> list[str]:
    key = tree.find(exp.PrimaryKey)
    assert key is not None
    return [column.name for column in key.expressions]


def test_hybrid_tables_file_is_current(generator: ModuleType, support: ModuleType) -> None:
    """The committed 03_hybrid_tables.sql equals the generator's output (regenerate if not)."""
    committed = (support.SQL_DIR / "03_hybrid_tables.sql").read_text(encoding="utf-8")

    assert generator.render_script() == committed, "run: python deploy/generate_sql.py"


def test_generator_check_flags_stale_file(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--check exits 1 for a stale file and 0 for a current one, without writing."""
    target = tmp_path / "03_hybrid_tables.sql"
    monkeypatch.setattr(generator, "OUTPUT", target)
    target.write_text("-- stale\n", encoding="utf-8")

    assert generator.main(["--check"]) == 1
    assert target.read_text(encoding="utf-8") == "-- stale\n"

    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_hybrid_tables_are_the_three_declared(tables: dict[str, exp.Create]) -> None:
    """The script creates exactly the three tables of the design."""
    assert {
        "FEATURE_STORE.ONLINE_FEATURES",
        "ML_MODELS.MODEL_PREDICTIONS",
        "FEATURE_STORE.RAW_EVIDENCE",
    } == set(tables)


def test_online_features_columns_follow_feature_names(tables: dict[str, exp.Create]) -> None:
    """ONLINE_FEATURES contains POLICY_NUMBER, the 105 features in spec order, then bookkeeping."""
    names = [name for name, _, _ in _columns(tables["FEATURE_STORE.ONLINE_FEATURES"])]
    features = [name for name in names if name.upper() in {f.upper() for f in FEATURE_NAMES}]

    assert len(FEATURE_NAMES) == 105
    assert [name.upper() for name in FEATURE_NAMES] == features
    assert names[0] == "POLICY_NUMBER"
    assert {"FEATURE_SPEC_VERSION", "UPDATED_AT"} <= set(names)


def test_online_features_feature_columns_are_float(tables: dict[str, exp.Create]) -> None:
    """Feature columns are NOT NULL FLOAT: the float64 values the model saw.

    sqlglot prints Snowflake's FLOAT (always double precision) as DOUBLE.
    """
    feature_set = {name.upper() for name in FEATURE_NAMES}
    for name, kind, not_null in _columns(tables["FEATURE_STORE.ONLINE_FEATURES"]):
        if name in feature_set:
            assert (kind, not_null) == ("DOUBLE", True), name


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("FEATURE_STORE.ONLINE_FEATURES", ["POLICY_NUMBER"]),
        ("ML_MODELS.MODEL_PREDICTIONS", ["PREDICTION_ID"]),
        ("FEATURE_STORE.RAW_EVIDENCE", ["EVIDENCE_ID"]),
    ],
)
def test_hybrid_table_primary_keys(
    tables: dict[str, exp.Create], table: str, key: list[str]
) -> None:
    """Each hybrid table has the primary key of the design, on NOT NULL bounded VARCHARs."""
    columns = {name: (kind, not_null) for name, kind, not_null in _columns(tables[table])}

    assert key == _primary_key(tables[table])
    for column in key:
        assert columns[column][1], column
        assert columns[column][0].startswith("VARCHAR("), column


def test_model_predictions_columns(tables: dict[str, exp.Create]) -> None:
    """MODEL_PREDICTIONS carries the lineage fields the dashboard and the smoke test read."""
    names = {name for name, _, _ in _columns(tables["ML_MODELS.MODEL_PREDICTIONS"])}

    assert {
        "PREDICTION_ID",
        "POLICY_NUMBER",
        "RISK_SCORE",
        "RISK_LEVEL",
        "MODEL_NAME",
        "MODEL_VERSION",
        "FEATURE_SPEC_VERSION",
        "SOURCE",
        "INFERENCE_MS",
        "CREATED_AT",
        "ANSWERED_AT",
    } <= names


def test_hybrid_tables_avoid_unsupported_types(rendered_sql: dict[str, str]) -> None:
    """No UUID column and no TIMESTAMP_TZ, which hybrid-table keys reject."""
    text = rendered_sql["03_hybrid_tables.sql"]

    assert " UUID" not in text
    assert "TIMESTAMP_TZ" not in text


def test_hybrid_tables_indexes(rendered_sql: dict[str, str]) -> None:
    """The prediction log is indexed by policy and by time, the raw evidence by policy."""
    indexes = re.findall(r"INDEX (\w+) \(([^)]*)\)", rendered_sql["03_hybrid_tables.sql"])

    assert {
        ("IDX_MODEL_PREDICTIONS_POLICY", "POLICY_NUMBER"),
        ("IDX_MODEL_PREDICTIONS_CREATED", "CREATED_AT"),
        ("IDX_RAW_EVIDENCE_POLICY", "POLICY_NUMBER"),
    } == set(indexes)


def test_hybrid_tables_header_names_spec_version(rendered_sql: dict[str, str]) -> None:
    """The header records the feature spec version the tables were generated from."""
    assert f"feature spec {FEATURE_SPEC_VERSION}," in rendered_sql["03_hybrid_tables.sql"]
