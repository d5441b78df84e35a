"""Tests of the SQLite sink: upserts, newest-wins features, chunking and data safety."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from evidence_features import FEATURE_NAMES
from evidence_persistence import SinkUnavailableError
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import (
    BASE_TIME,
    FEATURES_TABLE,
    PREDICTIONS_TABLE,
    RAW_TABLE,
    build_features,
    build_record,
    stored_values,
)


@pytest.fixture
def sink(tmp_path: Path) -> SqliteSink:
    """Return a SQLite sink on a new store file."""
    return SqliteSink(tmp_path / "store.sqlite3")


def _rows(sink: SqliteSink, columns: str, table: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(sink.path)
    try:
        return connection.execute(f"SELECT {columns} FROM {table}").fetchall()  # noqa: S608
    finally:
        connection.close()


def test_sqlite_sink_writes_both_tables(sink: SqliteSink) -> None:
    """One record gives one prediction row and one feature row with every value."""
    record = build_record(3, fallback_reason="circuit open", warnings=("a", "b"))
    result = sink.write_batch([record])
    assert (result.online_features, result.model_predictions, result.raw_evidence) == (1, 1, 0)
    predictions = _rows(sink, "*", PREDICTIONS_TABLE)
    assert len(predictions) == 1
    row = predictions[0]
    assert row[:6] == (
        "pred-000003",
        "POL000003",
        0.03,
        "LOW",
        "EVIDENCE_RISK_MODEL",
        "REGISTRY_V2",
    )
    assert row[7:11] == ("API", 4.25, "circuit open", '["a", "b"]')
    assert (BASE_TIME + timedelta(seconds=3)).isoformat(timespec="microseconds") == row[11]
    features = _rows(sink, ", ".join(FEATURE_NAMES), FEATURES_TABLE)
    assert [build_features(3)] == features


def test_sqlite_sink_rewrite_leaves_one_row(sink: SqliteSink) -> None:
    """Writing the same batch twice leaves one row per key (redelivery after a crash)."""
    batch = [build_record(i) for i in range(10)]
    sink.write_batch(batch)
    sink.write_batch(batch)
    assert len(stored_values(sink.path, PREDICTIONS_TABLE, "PREDICTION_ID")) == 10
    assert len(stored_values(sink.path, FEATURES_TABLE, "POLICY_NUMBER")) == 10


def test_sqlite_sink_duplicate_ids_first_wins(sink: SqliteSink) -> None:
    """Two records with one prediction id and one created_at leave the one enqueued first."""
    first = build_record(1, risk_score=0.1)
    second = build_record(1, risk_score=0.7)
    result = sink.write_batch([first, second, build_record(2)])
    assert result.model_predictions == 2
    scores = _rows(sink, "PREDICTION_ID, RISK_SCORE", PREDICTIONS_TABLE)
    assert {("pred-000001", 0.1), ("pred-000002", 0.02)} == set(scores)


def test_sqlite_sink_online_features_newest_wins(sink: SqliteSink) -> None:
    """Per policy the features with the latest created_at stay, across and within batches."""
    newer = build_record(1, policy_number="P-1", features=(2.0,) * 105)
    older = build_record(2, policy_number="P-1", features=(1.0,) * 105, created_at=BASE_TIME)
    sink.write_batch([newer])
    sink.write_batch([older])
    assert _rows(sink, "MIB_TOTAL_RECORDS, PREDICTION_ID", FEATURES_TABLE) == [(2.0, "pred-000001")]
    newest = build_record(9, policy_number="P-1", features=(3.0,) * 105)
    sink.write_batch([newest, build_record(4, policy_number="P-1")])
    assert _rows(sink, "MIB_TOTAL_RECORDS, PREDICTION_ID", FEATURES_TABLE) == [(3.0, "pred-000009")]


def test_sqlite_sink_policy_number_with_sql_is_data(sink: SqliteSink) -> None:
    """Policy numbers and ids that contain SQL are stored verbatim and execute nothing."""
    hostile = "X'); DROP TABLE ML_MODELS__MODEL_PREDICTIONS;--"
    record = build_record(1, policy_number=hostile, prediction_id="1' OR '1'='1")
    sink.write_batch([record, build_record(2)])
    predictions = _rows(sink, "PREDICTION_ID, POLICY_NUMBER", PREDICTIONS_TABLE)
    assert {("1' OR '1'='1", hostile), ("pred-000002", "POL000002")} == set(predictions)
    assert {hostile, "POL000002"} == set(stored_values(sink.path, FEATURES_TABLE, "POLICY_NUMBER"))


def test_sqlite_sink_batch_above_variable_limit(sink: SqliteSink) -> None:
    """A batch needing more bound variables than one statement allows is split, not lost."""
    sink.file.read(lambda c: c.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999))
    sink.write_batch([build_record(i) for i in range(1_000)])
    assert sink.file.read(lambda c: c.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)) == 999
    assert len(set(stored_values(sink.path, PREDICTIONS_TABLE, "PREDICTION_ID"))) == 1_000
    assert len(set(stored_values(sink.path, FEATURES_TABLE, "POLICY_NUMBER"))) == 1_000


def test_sqlite_sink_raw_evidence_only_when_enabled(tmp_path: Path) -> None:
    """RAW_EVIDENCE gets rows only with store_raw_evidence and only for records with XML."""
    with_xml = build_record(1, mib_xml=b"<MIBResponse/>", rx_xml=b"<IntelRXResponse/>")
    disabled = SqliteSink(tmp_path / "off.sqlite3")
    disabled.write_batch([with_xml])
    assert stored_values(disabled.path, RAW_TABLE, "EVIDENCE_ID") == []
    enabled = SqliteSink(tmp_path / "on.sqlite3", store_raw_evidence=True)
    result = enabled.write_batch([with_xml, build_record(2)])
    assert result.raw_evidence == 1
    raw_rows = _rows(enabled, "EVIDENCE_ID, POLICY_NUMBER, MIB_XML, RX_XML", RAW_TABLE)
    assert raw_rows == [("pred-000001", "POL000001", "<MIBResponse/>", "<IntelRXResponse/>")]


def test_sqlite_sink_empty_batch_writes_nothing(sink: SqliteSink) -> None:
    """An empty batch succeeds with zero rows."""
    assert sink.write_batch([]).total == 0


def test_sqlite_sink_unwritable_store_unavailable(tmp_path: Path) -> None:
    """A store path under a regular file raises SinkUnavailableError."""
    blocker = tmp_path / "blocker"
    blocker.write_text("file")
    broken = SqliteSink(blocker / "store.sqlite3")
    with pytest.raises(SinkUnavailableError, match="store file"):
        broken.write_batch([build_record(1)])


def test_sqlite_sink_batch_is_one_transaction(sink: SqliteSink) -> None:
    """A batch that fails half-way leaves no rows of that batch."""
    sink.write_batch([build_record(0)])
    pages = sink.file.read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    sink.file.read(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 2}"))
    with pytest.raises(SinkUnavailableError, match="SQLITE_FULL"):
        sink.write_batch([build_record(i) for i in range(1, 500)])
    assert stored_values(sink.path, PREDICTIONS_TABLE, "PREDICTION_ID") == ["pred-000000"]
