"""Tests of MODEL_PREDICTIONS.FEATURES: DDL, JSON encoding, both sinks and store migration."""

from __future__ import annotations

import json
import math
import sqlite3
import struct
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from evidence_persistence import PredictionQueue, PredictionRecord, SinkUnavailableError
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._rows import features_json
from evidence_persistence._tables import MODEL_PREDICTIONS, ONLINE_FEATURES
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.ddl import render_add_column, render_ddl
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import (
    BASE_TIME,
    FEATURES_TABLE,
    PREDICTIONS_TABLE,
    RAW_TABLE,
    build_features,
    build_record,
    child_environment,
    cli_argv,
    stored_values,
)
from sqlglot import exp

# Values whose decimal form is long, extreme or signed: each must come back bit for bit.
HARD_VALUES = (
    0.1,
    1 / 3,
    math.pi,
    5e-324,
    sys.float_info.min,
    sys.float_info.max,
    -0.0,
    2.0**53 + 2,
    1e16,
    123456789.123456789,
    -1.0,
    1e-300,
)
FEATURES_COLUMN = next(column for column in MODEL_PREDICTIONS.columns if column.name == "FEATURES")
A_MINUTE = timedelta(minutes=1)


def _hard_features(index: int) -> tuple[float, ...]:
    return (*HARD_VALUES, *build_features(index)[len(HARD_VALUES) :])


def _bits(values: list[float] | tuple[float, ...]) -> list[bytes]:
    """Pack each float as IEEE 754 bytes, so -0.0 and 0.0 compare different."""
    return [struct.pack("<d", value) for value in values]


def _with_features(record: PredictionRecord, features: tuple[float, ...]) -> PredictionRecord:
    """Return a copy of ``record`` whose features skip validation."""
    copy = build_record(0, **{"prediction_id": record.prediction_id})
    object.__setattr__(copy, "features", features)
    return copy


def _stored_features(store: Path) -> dict[str, str | None]:
    connection = sqlite3.connect(store)
    try:
        rows = connection.execute(f"SELECT PREDICTION_ID, FEATURES FROM {PREDICTIONS_TABLE}")  # noqa: S608
        return dict(rows.fetchall())
    finally:
        connection.close()


# DDL


@pytest.mark.parametrize(
    ("dialect", "expected_type"), [("sqlite", "TEXT"), ("snowflake", "VARIANT")]
)
def test_features_column_type_per_dialect(dialect: str, expected_type: str) -> None:
    """FEATURES follows PERSISTED_AT: nullable TEXT in SQLite, VARIANT in Snowflake."""
    statements = [
        statement
        for statement in render_ddl(dialect)  # type: ignore[arg-type]
        if "TABLE IF NOT EXISTS" in statement and "MODEL_PREDICTIONS (" in statement
    ]
    assert len(statements) == 1
    plain = statements[0].replace("CREATE HYBRID TABLE", "CREATE TABLE")
    plain = "\n".join(line for line in plain.splitlines() if "INDEX " not in line)
    tree = sqlglot.parse_one(plain.replace("),\n)", ")\n)"), read=dialect)
    columns = list(tree.find_all(exp.ColumnDef))
    [index] = [i for i, column in enumerate(columns) if column.name == "FEATURES"]
    features = columns[index]
    assert columns[index - 1].name == "PERSISTED_AT"
    assert features.args["kind"].sql(dialect=dialect).upper() == expected_type
    assert features.constraints == []


def test_features_column_never_indexed() -> None:
    """No index of any dialect names FEATURES, because hybrid tables cannot index VARIANT."""
    statements = render_ddl("snowflake") + render_ddl("sqlite")
    index_lines = [
        line for statement in statements for line in statement.splitlines() if "INDEX" in line
    ]
    assert len(index_lines) == 6
    assert [line for line in index_lines if "FEATURES" in line] == []


def test_render_add_column_both_dialects() -> None:
    """The ALTER statements add FEATURES with each dialect's type."""
    assert (
        render_add_column("sqlite", MODEL_PREDICTIONS, FEATURES_COLUMN)
        == "ALTER TABLE ML_MODELS__MODEL_PREDICTIONS ADD COLUMN FEATURES TEXT"
    )
    assert (
        render_add_column("snowflake", MODEL_PREDICTIONS, FEATURES_COLUMN, database="DB")
        == "ALTER TABLE DB.ML_MODELS.MODEL_PREDICTIONS ADD COLUMN IF NOT EXISTS FEATURES VARIANT"
    )


def test_render_add_column_bad_arguments_rejected() -> None:
    """A column of another table or an unknown dialect raises ValueError naming it."""
    with pytest.raises(ValueError, match="column 'FEATURES' is not declared in table 'ONLINE"):
        render_add_column("sqlite", ONLINE_FEATURES, FEATURES_COLUMN)
    with pytest.raises(ValueError, match="dialect='mysql' is not supported"):
        render_add_column("mysql", MODEL_PREDICTIONS, FEATURES_COLUMN)  # type: ignore[arg-type]


# JSON encoding


def test_features_json_keys_follow_feature_names() -> None:
    """The object has one key per feature, in FEATURE_NAMES order, with the record's values."""
    record = build_record(4)
    decoded = json.loads(features_json(record))
    assert list(FEATURE_NAMES) == list(decoded)
    assert list(record.features) == list(decoded.values())


def test_features_json_float64_round_trip() -> None:
    """Extreme, subnormal, negative-zero and long decimals decode to the same bits."""
    record = build_record(1, features=_hard_features(1))
    decoded = json.loads(features_json(record))
    assert _bits(record.features) == _bits(list(decoded.values()))
    assert math.copysign(1.0, decoded[FEATURE_NAMES[6]]) == -1.0


def test_features_json_matches_json_dumps() -> None:
    """The text equals the standard library's compact output, with no spaces."""
    record = build_record(2, features=_hard_features(2))
    text = features_json(record)
    standard = json.dumps(
        dict(zip(FEATURE_NAMES, record.features, strict=True)),
        separators=(",", ":"),
        allow_nan=False,
    )
    assert standard == text
    assert " " not in text
    assert text.isascii()
    assert text.startswith('{"' + FEATURE_NAMES[0] + '":')


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_features_json_non_finite_rejected(bad: float) -> None:
    """A NaN or infinite value that skipped validation raises ValueError naming the feature."""
    features = list(build_features(3))
    features[10] = bad
    record = _with_features(build_record(3), tuple(features))
    with pytest.raises(
        ValueError,
        match=f"feature {FEATURE_NAMES[10]} of prediction 'pred-000003' is NaN or infinite",
    ):
        features_json(record)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_record_non_finite_feature_rejected(bad: float) -> None:
    """PredictionRecord raises ValueError naming the index and name of a non-finite feature."""
    features = list(build_features(3))
    features[3] = bad
    with pytest.raises(
        ValueError, match=rf"features\[3\] \({FEATURE_NAMES[3]}\) is NaN or infinite; every"
    ):
        build_record(3, features=features)


# SQLite sink


def test_sqlite_sink_features_round_trip(tmp_path: Path) -> None:
    """Each prediction row stores its own feature object, equal to the record's bit for bit."""
    sink = SqliteSink(tmp_path / "store.sqlite3")
    records = [build_record(0, features=_hard_features(0)), build_record(1), build_record(2)]
    sink.write_batch(records)
    stored = _stored_features(sink.path)
    assert len(stored) == 3
    for record in records:
        text = stored[record.prediction_id]
        assert text is not None
        decoded = json.loads(text)
        assert dict(zip(FEATURE_NAMES, record.features, strict=True)) == decoded
        assert _bits(record.features) == _bits(list(decoded.values()))
    versions = stored_values(sink.path, PREDICTIONS_TABLE, "FEATURE_SPEC_VERSION")
    assert [FEATURE_SPEC_VERSION] * 3 == versions


def test_sqlite_sink_keeps_features_of_every_prediction(tmp_path: Path) -> None:
    """Three predictions of one policy keep three vectors; ONLINE_FEATURES keeps the latest."""
    sink = SqliteSink(tmp_path / "store.sqlite3")
    sink.write_batch([build_record(1, policy_number="P-1", features=(1.0,) * 105)])
    sink.write_batch(
        [
            build_record(2, policy_number="P-1", features=(2.0,) * 105),
            build_record(3, policy_number="P-1", features=(3.0,) * 105),
        ]
    )
    stored = _stored_features(sink.path)
    first_values = {
        prediction_id: set(json.loads(text).values())
        for prediction_id, text in stored.items()
        if text is not None
    }
    assert {"pred-000001": {1.0}, "pred-000002": {2.0}, "pred-000003": {3.0}} == first_values
    assert stored_values(sink.path, FEATURES_TABLE, "MIB_TOTAL_RECORDS") == [3.0]


def test_sqlite_sink_replay_keeps_features(tmp_path: Path) -> None:
    """A replayed prediction id stores the vector of its latest answer, not of an earlier one."""
    sink = SqliteSink(tmp_path / "store.sqlite3")
    sink.write_batch([build_record(5, features=(5.0,) * 105)])
    sink.write_batch([build_record(5, features=(6.0,) * 105, created_at=BASE_TIME + A_MINUTE)])
    stored = _stored_features(sink.path)
    assert list(stored) == ["pred-000005"]
    text = stored["pred-000005"]
    assert text is not None
    assert set(json.loads(text).values()) == {6.0}

    sink.write_batch([build_record(5, features=(7.0,) * 105, created_at=BASE_TIME)])
    text = _stored_features(sink.path)["pred-000005"]
    assert text is not None
    assert set(json.loads(text).values()) == {6.0}
    assert stored_values(sink.path, FEATURES_TABLE, "MIB_TOTAL_RECORDS") == [7.0]


def _old_store(path: Path, *, drop: str) -> None:
    """Create a store as a version-1 worker did, without the column ``drop``, holding one row.

    ANSWERED_AT, added in version 3, is left out too.
    """
    connection = sqlite3.connect(path)
    try:
        for statement in render_ddl("sqlite"):
            lines = [
                line
                for line in statement.splitlines()
                if not line.startswith((f"    {drop} ", "    ANSWERED_AT "))
            ]
            connection.execute("\n".join(lines))
        connection.execute(
            f"INSERT INTO {PREDICTIONS_TABLE} (PREDICTION_ID, POLICY_NUMBER, RISK_SCORE, "  # noqa: S608
            "RISK_LEVEL, MODEL_NAME, MODEL_VERSION, FEATURE_SPEC_VERSION, SOURCE, INFERENCE_MS, "
            "WARNINGS, CREATED_AT, PERSISTED_AT) VALUES ('old-1', 'POL-OLD', 0.5, 'MEDIUM', "
            "'EVIDENCE_RISK_MODEL', 'REGISTRY_V2', '1', 'API', 2.0, '[]', "
            "'2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:01.000000+00:00')"
        )
        connection.execute("PRAGMA user_version = 1")
        connection.commit()
    finally:
        connection.close()


def _old_store_without_raw_created_at(path: Path) -> None:
    """Create a version-1 store that lacks FEATURES and the NOT NULL RAW_EVIDENCE.CREATED_AT."""
    _old_store(path, drop="FEATURES")
    connection = sqlite3.connect(path)
    connection.execute(f"ALTER TABLE {RAW_TABLE} DROP COLUMN CREATED_AT")
    connection.commit()
    connection.close()


def _columns(path: Path, table: str) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    finally:
        connection.close()


def _user_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        connection.close()


def test_sqlite_store_version_1_gets_features_column(tmp_path: Path) -> None:
    """An existing store without FEATURES gains it on open; old rows keep NULL there."""
    path = tmp_path / "store.sqlite3"
    _old_store(path, drop="FEATURES")
    assert "FEATURES" not in _columns(path, PREDICTIONS_TABLE)

    record = build_record(7)
    SqliteSink(path).write_batch([record])

    assert _columns(path, PREDICTIONS_TABLE)[-2:] == ["FEATURES", "ANSWERED_AT"]
    assert _user_version(path) == 3
    stored = _stored_features(path)
    assert stored["old-1"] is None
    text = stored["pred-000007"]
    assert text is not None
    assert list(record.features) == list(json.loads(text).values())


def test_sqlite_store_migration_runs_twice(tmp_path: Path) -> None:
    """Running the migration on a store that already has the column adds nothing."""
    path = tmp_path / "store.sqlite3"
    _old_store(path, drop="FEATURES")
    SqliteSink(path).write_batch([build_record(1)])
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()

    SqliteSink(path).write_batch([build_record(2)])

    assert _columns(path, PREDICTIONS_TABLE).count("FEATURES") == 1
    assert _user_version(path) == 3
    assert sorted(_stored_features(path)) == ["old-1", "pred-000001", "pred-000002"]


def test_sqlite_store_missing_not_null_column_unavailable(tmp_path: Path) -> None:
    """A store lacking a NOT NULL column raises SinkUnavailableError and is rolled back.

    RAW_EVIDENCE is checked after MODEL_PREDICTIONS, so FEATURES has been added by then, and
    its absence afterwards shows that the whole migration was rolled back.
    """
    path = tmp_path / "store.sqlite3"
    _old_store_without_raw_created_at(path)

    with pytest.raises(SinkUnavailableError, match="lacks the NOT NULL column CREATED_AT"):
        SqliteSink(path).write_batch([build_record(1)])

    assert _user_version(path) == 1
    assert "FEATURES" not in _columns(path, PREDICTIONS_TABLE)
    assert stored_values(path, PREDICTIONS_TABLE, "PREDICTION_ID") == ["old-1"]


def _status(directory: Path) -> subprocess.CompletedProcess[str]:
    """Run ``evidence-persistence status`` over an existing queue in ``directory``."""
    queue = PredictionQueue(directory / "queue.sqlite3")
    queue.check_writable()
    queue.close()
    return subprocess.run(
        cli_argv("status"),
        env=child_environment(directory),
        capture_output=True,
        text=True,
        check=False,
    )


def test_status_version_1_store_needs_migration(tmp_path: Path) -> None:
    """status reports a store without FEATURES as needs_migration, and one batch fixes it."""
    path = tmp_path / "store.sqlite3"
    _old_store(path, drop="FEATURES")

    before = _status(tmp_path)
    SqliteSink(path).write_batch([build_record(1)])
    after = _status(tmp_path)

    assert before.returncode == 0
    assert json.loads(before.stdout)["store"] == "needs_migration"
    assert f"{PREDICTIONS_TABLE}.FEATURES" in before.stderr
    assert "adds them when it writes its next batch" in before.stderr
    assert "move the file aside" not in before.stderr
    assert after.returncode == 0
    assert json.loads(after.stdout)["store"] == "ok"
    assert after.stderr == ""


def test_status_not_null_gap_schema_mismatch(tmp_path: Path) -> None:
    """status reports schema_mismatch, exit 1, when a NOT NULL column is missing too."""
    path = tmp_path / "store.sqlite3"
    _old_store_without_raw_created_at(path)

    result = _status(tmp_path)

    assert result.returncode == 1
    assert json.loads(result.stdout)["store"] == "schema_mismatch"
    assert "lacks 3 declared column(s)" in result.stderr
    assert f"{RAW_TABLE}.CREATED_AT" in result.stderr
    with pytest.raises(SinkUnavailableError, match="NOT NULL column CREATED_AT"):
        SqliteSink(path).write_batch([build_record(1)])


def test_status_current_version_gap_schema_mismatch(tmp_path: Path) -> None:
    """A nullable gap in a store already at version 3 is a mismatch, because no migration runs."""
    path = tmp_path / "store.sqlite3"
    _old_store(path, drop="FEATURES")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 3")
    connection.commit()
    connection.close()

    result = _status(tmp_path)

    assert result.returncode == 1
    assert json.loads(result.stdout)["store"] == "schema_mismatch"
    with pytest.raises(SinkUnavailableError, match="do not match the schema"):
        SqliteSink(path).write_batch([build_record(1)])


def test_drainer_dead_letters_non_finite_features(queue: PredictionQueue, tmp_path: Path) -> None:
    """A queued record with NaN features is dead-lettered, and its batch neighbours are written."""
    poisoned = _with_features(build_record(2), (math.nan,) * 105)
    queue.append_many([build_record(1), poisoned, build_record(3)])
    sink = SqliteSink(tmp_path / "store.sqlite3")
    consumer = QueueConsumer(queue, owner="test", lease_seconds=30, max_attempts=1)
    drainer = QueueDrainer(
        consumer, sink, batch_size=10, poll_interval_seconds=0.001, retry_backoff_max_seconds=0.01
    )

    drainer.run(threading.Event(), exit_when_empty=True)

    assert sorted(_stored_features(sink.path)) == ["pred-000001", "pred-000003"]
    letters = consumer.list_dead_letters()
    assert [letter.prediction_id for letter in letters] == ["pred-000002"]
    assert letters[0].error == (
        "RecordDecodeError: queued record 'pred-000002' cannot be decoded: ValueError: "
        f"features[0] ({FEATURE_NAMES[0]}) is NaN or infinite; every feature must be a finite "
        "number because the tables store it as FLOAT and JSON"
    )


# Snowflake sink in Snowpark's local-testing session

snowpark = pytest.importorskip("snowflake.snowpark")

from evidence_persistence._tables import TABLES  # noqa: E402
from evidence_persistence.sinks.snowflake import SnowflakeSink, struct_type  # noqa: E402
from snowflake.snowpark import Session  # noqa: E402
from snowflake.snowpark.types import StringType, VariantType  # noqa: E402
from snowflake_testkit import stage_with_dataframe  # noqa: E402


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    """Return one local-testing session for the Snowflake tests of this module."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        created = Session.builder.config("local_testing", True).create()
    yield created
    created.close()


@pytest.fixture
def snowflake_sink(session: Session) -> SnowflakeSink:
    """Return a sink whose three tables exist, empty, with FEATURES as a VARIANT column."""
    for table in TABLES:
        empty = session.create_dataframe([], schema=struct_type(table))
        empty.write.save_as_table(table.snowflake_name(), mode="overwrite")
    return SnowflakeSink(lambda: session, stage_rows=stage_with_dataframe)


def _snowflake_features(session: Session) -> dict[str, Any]:
    rows = session.table("ML_MODELS.MODEL_PREDICTIONS").select("PREDICTION_ID", "FEATURES")
    return {row[0]: row[1] for row in rows.collect()}


def test_struct_type_features_variant_or_text() -> None:
    """The table schema has FEATURES as VARIANT; the merge source carries it as text."""
    assert isinstance(struct_type(MODEL_PREDICTIONS)["FEATURES"].datatype, VariantType)
    source = struct_type(MODEL_PREDICTIONS, json_as_text=True)
    assert isinstance(source["FEATURES"].datatype, StringType)
    assert source.names == struct_type(MODEL_PREDICTIONS).names


def test_snowflake_sink_features_round_trip(
    snowflake_sink: SnowflakeSink, session: Session
) -> None:
    """The merged VARIANT reads back as the record's feature object, bit for bit."""
    records = [build_record(0, features=_hard_features(0)), build_record(1)]
    snowflake_sink.write_batch(records)
    stored = _snowflake_features(session)
    assert sorted(stored) == ["pred-000000", "pred-000001"]
    for record in records:
        decoded = json.loads(stored[record.prediction_id])
        assert dict(zip(FEATURE_NAMES, record.features, strict=True)) == decoded
        assert _bits(record.features) == _bits([decoded[name] for name in FEATURE_NAMES])


def test_snowflake_sink_replay_keeps_features(
    snowflake_sink: SnowflakeSink, session: Session
) -> None:
    """A replayed prediction stores the VARIANT of its latest answer, not of an earlier one."""
    snowflake_sink.write_batch([build_record(5, features=(5.0,) * 105)])
    replay = build_record(5, features=(6.0,) * 105, created_at=BASE_TIME + A_MINUTE)
    snowflake_sink.write_batch([replay, build_record(6)])
    stored = _snowflake_features(session)
    assert sorted(stored) == ["pred-000005", "pred-000006"]
    assert set(json.loads(stored["pred-000005"]).values()) == {6.0}

    snowflake_sink.write_batch([build_record(5, features=(7.0,) * 105, created_at=BASE_TIME)])
    assert set(json.loads(_snowflake_features(session)["pred-000005"]).values()) == {6.0}
