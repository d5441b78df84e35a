"""Tests of the Snowflake sink's real merge code in Snowpark's local-testing session.

The emulator enforces no primary keys and lets a MERGE with duplicate source keys pass, so each
test asserts key uniqueness itself after the merges. It cannot run SQL either, so the staging
tables are filled through the DataFrame API here; ``test_persistence_snowflake_binds`` covers
the bound staging that production uses.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from persistence_testkit import BASE_TIME, build_record

snowpark = pytest.importorskip("snowflake.snowpark")

from evidence_persistence import SinkConfigurationError, SinkUnavailableError  # noqa: E402
from evidence_persistence._sink import open_sink  # noqa: E402
from evidence_persistence._tables import TABLES  # noqa: E402
from evidence_persistence.config import Settings  # noqa: E402
from evidence_persistence.sinks.snowflake import (  # noqa: E402
    SnowflakeSink,
    session_factory,
    struct_type,
)
from snowflake.connector.errors import OperationalError  # noqa: E402
from snowflake.snowpark import Session  # noqa: E402
from snowflake_testkit import stage_with_dataframe  # noqa: E402


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    """Return one local-testing session for the module."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        created = Session.builder.config("local_testing", True).create()
    yield created
    created.close()


@pytest.fixture
def sink(session: Session) -> SnowflakeSink:
    """Return a sink whose three tables exist and are empty."""
    for table in TABLES:
        empty = session.create_dataframe([], schema=struct_type(table))
        empty.write.save_as_table(table.snowflake_name(), mode="overwrite")
    return SnowflakeSink(lambda: session, store_raw_evidence=True, stage_rows=stage_with_dataframe)


def _column(session: Session, table: str, *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in session.table(table).select(*columns).collect()]


def _assert_unique(session: Session, table: str, key: str) -> list[Any]:
    keys = [row[0] for row in _column(session, table, key)]
    duplicated = [value for value, count in Counter(keys).items() if count > 1]
    assert duplicated == []
    return keys


def test_snowflake_sink_inserts_all_tables(sink: SnowflakeSink, session: Session) -> None:
    """A first batch inserts one row per record in each table."""
    records = [build_record(i) for i in range(3)]
    records.append(build_record(3, mib_xml=b"<MIBResponse/>"))
    result = sink.write_batch(records)
    assert (result.online_features, result.model_predictions, result.raw_evidence) == (4, 4, 1)
    ids = _assert_unique(session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID")
    assert sorted(ids) == ["pred-000000", "pred-000001", "pred-000002", "pred-000003"]
    assert _column(session, "FEATURE_STORE.RAW_EVIDENCE", "EVIDENCE_ID", "MIB_XML", "RX_XML") == [
        ("pred-000003", "<MIBResponse/>", None)
    ]


def test_snowflake_sink_duplicate_keys_in_batch(sink: SnowflakeSink, session: Session) -> None:
    """A batch with duplicate keys merges one source row per key, with the latest answer."""
    batch = [
        build_record(1, risk_score=0.5),
        build_record(1, risk_score=0.7, created_at=BASE_TIME),
        build_record(2, risk_score=0.2),
    ]
    result = sink.write_batch(batch)
    assert result.model_predictions == 2
    _assert_unique(session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID")
    scores = dict(_column(session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID", "RISK_SCORE"))
    assert scores == {"pred-000001": 0.5, "pred-000002": 0.2}
    times = _column(session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID", "CREATED_AT")
    assert dict(times)["pred-000001"] == BASE_TIME.replace(tzinfo=None)


def test_snowflake_sink_remerge_keeps_one_row(sink: SnowflakeSink, session: Session) -> None:
    """Merging the same batch again (a redelivery) updates in place: keys stay unique."""
    batch = [build_record(i) for i in range(20)]
    sink.write_batch(batch)
    sink.write_batch(batch)
    sink.write_batch(batch[5:10])
    assert len(_assert_unique(session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID")) == 20
    assert len(_assert_unique(session, "FEATURE_STORE.ONLINE_FEATURES", "POLICY_NUMBER")) == 20


def test_snowflake_sink_target_row_kept(sink: SnowflakeSink, session: Session) -> None:
    """A stored 'r1' takes the latest of later scorings, not one of the same time; 'r2' is added."""
    sink.write_batch([build_record(1, prediction_id="r1", risk_score=0.1)])
    sink.write_batch(
        [
            build_record(1, prediction_id="r1", risk_score=0.5),
            build_record(2, prediction_id="r1", risk_score=0.7),
            build_record(2, prediction_id="r2", risk_score=0.2),
        ]
    )
    _assert_unique(session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID")
    scores = dict(_column(session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID", "RISK_SCORE"))
    assert scores == {"r1": 0.7, "r2": 0.2}


def test_snowflake_sink_online_features_newest_wins(sink: SnowflakeSink, session: Session) -> None:
    """Per policy the latest created_at wins, and an older redelivery does not overwrite it."""
    sink.write_batch([build_record(5, policy_number="P-1", features=(5.0,) * 105)])
    sink.write_batch(
        [
            build_record(7, policy_number="P-1", features=(7.0,) * 105),
            build_record(6, policy_number="P-1", features=(6.0,) * 105),
        ]
    )
    sink.write_batch(
        [build_record(1, policy_number="P-1", features=(1.0,) * 105, created_at=BASE_TIME)]
    )
    _assert_unique(session, "FEATURE_STORE.ONLINE_FEATURES", "POLICY_NUMBER")
    rows = _column(
        session, "FEATURE_STORE.ONLINE_FEATURES", "PREDICTION_ID", "MIB_TOTAL_RECORDS", "UPDATED_AT"
    )
    assert [("pred-000007", 7.0, (BASE_TIME + timedelta(seconds=7)).replace(tzinfo=None))] == rows


def test_snowflake_sink_policy_with_sql_is_data(sink: SnowflakeSink, session: Session) -> None:
    """A policy number carrying SQL is stored verbatim."""
    hostile = "P'; DELETE FROM ML_MODELS.MODEL_PREDICTIONS; --"
    sink.write_batch([build_record(1, policy_number=hostile), build_record(2)])
    stored = dict(_column(session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID", "POLICY_NUMBER"))
    assert {"pred-000001": hostile, "pred-000002": "POL000002"} == stored


def test_snowflake_sink_connection_error_unavailable() -> None:
    """A session factory that cannot connect raises SinkUnavailableError, and retries later."""
    calls = []

    def failing_factory() -> Session:
        calls.append(1)
        raise OperationalError(msg="could not connect to Snowflake backend")

    sink = SnowflakeSink(failing_factory)
    for _ in range(2):
        with pytest.raises(SinkUnavailableError, match="Snowflake is unavailable"):
            sink.write_batch([build_record(1)])
    assert len(calls) == 2


def test_session_factory_without_credentials_rejected(clean_settings: None, tmp_path: Path) -> None:
    """Missing token file and key pair raise SinkConfigurationError naming the variables."""
    settings = Settings(snowflake_token_file=tmp_path / "absent", snowflake_account="acct")
    with pytest.raises(
        SinkConfigurationError,
        match="PERSISTENCE_SNOWFLAKE_USER, PERSISTENCE_SNOWFLAKE_PRIVATE_KEY_FILE are not set",
    ):
        session_factory(settings)


def test_session_factory_accepts_key_pair_or_token(clean_settings: None, tmp_path: Path) -> None:
    """A token file or a complete key pair yields a factory without connecting."""
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    assert callable(session_factory(Settings(snowflake_token_file=token)))
    key_pair = Settings(
        snowflake_token_file=tmp_path / "absent",
        snowflake_account="acct",
        snowflake_user="svc_user",
        snowflake_private_key_file=tmp_path / "key.p8",
    )
    assert callable(session_factory(key_pair))


def test_open_sink_snowflake_without_credentials_rejected(
    clean_settings: None, tmp_path: Path
) -> None:
    """open_sink with sink=snowflake and no credentials raises SinkConfigurationError."""
    settings = Settings(sink="snowflake", snowflake_token_file=tmp_path / "absent")
    with pytest.raises(SinkConfigurationError, match="PERSISTENCE_SNOWFLAKE_ACCOUNT"):
        open_sink(settings)


def test_settings_read_spcs_variables(
    clean_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SNOWFLAKE_ACCOUNT and SNOWFLAKE_DATABASE, as SPCS sets them, fill the settings."""
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "ab12345")
    monkeypatch.setenv("SNOWFLAKE_DATABASE", "EVIDENCE_DB")
    settings = Settings()
    assert settings.snowflake_account == "ab12345"
    assert settings.snowflake_database == "EVIDENCE_DB"
