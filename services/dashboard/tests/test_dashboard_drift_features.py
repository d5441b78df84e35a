"""Drift over the features of every prediction in the window, read from MODEL_PREDICTIONS.FEATURES.

The stores are checked against the records the fixture wrote, and the PSI against values
computed by hand. ONLINE_FEATURES is read only when the predictions table lacks the column.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sqlite3
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import yaml
from evidence_dashboard.config import Settings
from evidence_dashboard.drift import FeatureBins, compute_feature_drift
from evidence_dashboard.store.base import parse_feature_objects
from evidence_dashboard.store.sqlite import SqliteStore
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from evidence_persistence import PredictionRecord
from evidence_persistence.sinks.sqlite import SqliteSink

if TYPE_CHECKING:
    from .conftest import StoreFixture

REPO = Path(__file__).resolve().parents[3]
PREDICTIONS = "ML_MODELS__MODEL_PREDICTIONS"
FIRST = FEATURE_NAMES[0]


def _record(index: int, policy: str, first_value: float, created_at: datetime) -> PredictionRecord:
    features = [0.0] * len(FEATURE_NAMES)
    features[0] = first_value
    return PredictionRecord(
        prediction_id=f"drift-{index}",
        policy_number=policy,
        features=tuple(features),
        feature_spec_version=FEATURE_SPEC_VERSION,
        risk_score=0.5,
        risk_level="MEDIUM",
        model_name="EVIDENCE_RISK_MODEL",
        model_version="REGISTRY_V2",
        source="API",
        inference_ms=1.0,
        created_at=created_at,
    )


def _drop_features_column(path: Path) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"ALTER TABLE {PREDICTIONS} DROP COLUMN FEATURES")
        connection.commit()
    finally:
        connection.close()


def _copy_store(source: Path, directory: Path) -> Path:
    target = directory / "store.sqlite3"
    shutil.copyfile(source, target)
    return target


def _window_records(filled_store: StoreFixture, since: datetime | None) -> list[PredictionRecord]:
    """Return the fixture's records in the window, newest first, as the store orders them."""
    records = [r for r in filled_store.records if since is None or r.created_at >= since]
    return sorted(records, key=lambda r: r.created_at, reverse=True)


# Parsing stored values


def test_parse_feature_objects_forms() -> None:
    """Text, bytes and dicts parse; missing keys are NaN; unknown keys and junk are dropped."""
    full = dict.fromkeys(FEATURE_NAMES, 1.5)
    partial = {FIRST: 2.0, "NOT_A_FEATURE": 9.0}
    values = [json.dumps(full), json.dumps(partial).encode(), {FIRST: 3.0}, "not json", "[1, 2]", 7]

    frame, invalid = parse_feature_objects(values)

    assert invalid == 3
    assert list(FEATURE_NAMES) == list(frame.columns)
    assert frame[FIRST].tolist() == [1.5, 2.0, 3.0]
    assert frame.loc[0].tolist() == [1.5] * len(FEATURE_NAMES)
    assert frame.loc[1, list(FEATURE_NAMES[1:])].isna().all()
    assert "NOT_A_FEATURE" not in frame.columns
    assert set(frame.dtypes) == {np.dtype("float64")}


def test_parse_feature_objects_empty() -> None:
    """No values give an empty frame that still has the 105 feature columns."""
    frame, invalid = parse_feature_objects([])

    assert invalid == 0
    assert frame.empty
    assert list(FEATURE_NAMES) == list(frame.columns)


# SQLite store


def test_sqlite_drift_features_one_row_per_prediction(filled_store: StoreFixture) -> None:
    """The last hour gives every prediction's vector, bit for bit, newest first."""
    store = SqliteStore(filled_store.store_path, max_rows=200_000)
    since = filled_store.now - timedelta(hours=1)
    expected = _window_records(filled_store, since)

    sample = store.drift_features(since, max_rows=1_000)

    assert sample.per_prediction
    assert sample.invalid == 0
    assert not sample.result.truncated
    assert len(expected) == len(sample.result.frame)
    assert np.array_equal(
        np.array([r.features for r in expected]), sample.result.frame.to_numpy(dtype=np.float64)
    )
    # ONLINE_FEATURES has one row per policy, fewer than the predictions of repeated policies.
    policies = len(store.recent_features(since).frame)
    assert len({r.policy_number for r in expected}) == policies
    assert policies < len(expected)


def test_sqlite_drift_features_row_cap(filled_store: StoreFixture) -> None:
    """A cap returns the newest vectors and sets truncated."""
    store = SqliteStore(filled_store.store_path, max_rows=200_000)
    newest = _window_records(filled_store, None)[:10]

    sample = store.drift_features(None, max_rows=10)

    assert sample.result.truncated
    assert np.array_equal(
        np.array([r.features for r in newest]), sample.result.frame.to_numpy(dtype=np.float64)
    )


def test_sqlite_drift_features_skips_null_and_junk(
    filled_store: StoreFixture, tmp_path: Path
) -> None:
    """A NULL FEATURES row is left out; a value that is not JSON is left out and counted."""
    path = _copy_store(filled_store.store_path, tmp_path)
    connection = sqlite3.connect(path)
    connection.execute(
        f"UPDATE {PREDICTIONS} SET FEATURES = NULL WHERE PREDICTION_ID = 'pred-0001'"  # noqa: S608
    )
    connection.execute(
        f"UPDATE {PREDICTIONS} SET FEATURES = 'not json' WHERE PREDICTION_ID = 'pred-0002'"  # noqa: S608
    )
    connection.commit()
    connection.close()

    sample = SqliteStore(path, max_rows=200_000).drift_features(None, max_rows=1_000)

    assert sample.invalid == 1
    assert len(filled_store.records) - 2 == len(sample.result.frame)


def test_sqlite_drift_features_fallback_without_column(
    filled_store: StoreFixture, tmp_path: Path
) -> None:
    """Without a FEATURES column the sample is ONLINE_FEATURES, one row per policy."""
    path = _copy_store(filled_store.store_path, tmp_path)
    _drop_features_column(path)
    store = SqliteStore(path, max_rows=200_000)
    since = filled_store.now - timedelta(hours=1)

    sample = store.drift_features(since, max_rows=1_000)

    assert not sample.per_prediction
    pd.testing.assert_frame_equal(store.recent_features(since).frame, sample.result.frame)


def test_sqlite_drift_features_store_without_tables(tmp_path: Path) -> None:
    """A store file the worker has not filled yet gives an empty ONLINE_FEATURES sample."""
    path = tmp_path / "store.sqlite3"
    sqlite3.connect(path).close()

    sample = SqliteStore(path, max_rows=200_000).drift_features(None, max_rows=1_000)

    assert not sample.per_prediction
    assert sample.result.frame.empty


def test_psi_counts_every_prediction(tmp_path: Path) -> None:
    """Three predictions of one policy at 0.5 and one of another at 1.5 give PSI ln(3) / 4.

    Training bins [0, 1) and [1, 2] hold half each. Per prediction the recent fractions are
    0.75 and 0.25, so PSI = 0.25 * ln(1.5) + 0.25 * ln(2) = 0.25 * ln(3). The latest vector per
    policy (ONLINE_FEATURES) has one value in each bin, and its PSI is 0.
    """
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [_record(i, "P-A", 0.5, start + timedelta(minutes=i)) for i in range(3)]
    records.append(_record(3, "P-B", 1.5, start))
    sink = SqliteSink(tmp_path / "store.sqlite3")
    sink.write_batch(records)
    sink.close()
    bins = {FIRST: FeatureBins(edges=(0.0, 1.0, 2.0), fractions=(0.5, 0.5))}
    store = SqliteStore(tmp_path / "store.sqlite3", max_rows=200_000)

    per_prediction = compute_feature_drift(
        store.drift_features(None, max_rows=100).result.frame, bins
    )
    _drop_features_column(tmp_path / "store.sqlite3")
    per_policy = compute_feature_drift(store.drift_features(None, max_rows=100).result.frame, bins)

    assert per_prediction.loc[0, "rows"] == 4
    assert 0.25 * math.log(3.0) == pytest.approx(per_prediction.loc[0, "psi"], rel=1e-12)
    assert per_policy.loc[0, "rows"] == 2
    assert per_policy.loc[0, "psi"] == pytest.approx(0.0, abs=1e-12)


# Snowflake store in Snowpark's local-testing session

snowpark = pytest.importorskip("snowflake.snowpark")

from evidence_dashboard.store.snowflake import SnowflakeStore  # noqa: E402
from snowflake.snowpark import Session  # noqa: E402
from snowflake.snowpark import functions as F  # noqa: E402, N812

DATABASE = "DRIFT_DB"


def _load(session: Session, store_path: Path, sqlite_name: str, qualified: str) -> None:
    """Copy one SQLite table into the session, with FEATURES as a VARIANT as in Snowflake."""
    connection = sqlite3.connect(store_path)
    try:
        frame = pd.read_sql_query(f"SELECT * FROM {sqlite_name}", connection)  # noqa: S608
    finally:
        connection.close()
    for column in ("CREATED_AT", "UPDATED_AT", "PERSISTED_AT"):
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
    table = session.create_dataframe(frame)
    if "FEATURES" in frame.columns:
        table = table.with_column("FEATURES", F.parse_json(F.col("FEATURES")))
    table.write.save_as_table(qualified, mode="overwrite")


@pytest.fixture(scope="module")
def drift_session(
    filled_store: StoreFixture, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    """A local session with the store's tables in DRIFT_DB, and without FEATURES in OLD_DB."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = Session.builder.config("local_testing", True).create()
    old_store = _copy_store(filled_store.store_path, tmp_path_factory.mktemp("old_store"))
    _drop_features_column(old_store)
    for database, path in ((DATABASE, filled_store.store_path), ("OLD_DB", old_store)):
        _load(session, path, PREDICTIONS, f"{database}.ML_MODELS.MODEL_PREDICTIONS")
        _load(
            session,
            path,
            "FEATURE_STORE__ONLINE_FEATURES",
            f"{database}.FEATURE_STORE.ONLINE_FEATURES",
        )
    yield session
    session.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pandas.errors.PerformanceWarning")
@pytest.mark.parametrize("hours", [None, 1])
def test_snowflake_drift_features_match_sqlite(
    filled_store: StoreFixture, drift_session: Session, hours: int | None
) -> None:
    """Fields extracted from the VARIANT equal the SQLite store's parsed JSON, row for row."""
    since = None if hours is None else filled_store.now - timedelta(hours=hours)
    expected = SqliteStore(filled_store.store_path, max_rows=200_000).drift_features(
        since, max_rows=1_000
    )

    actual = SnowflakeStore(drift_session, Settings(database=DATABASE)).drift_features(
        since, max_rows=1_000
    )

    assert actual.per_prediction
    assert len(_window_records(filled_store, since)) == len(actual.result.frame)
    pd.testing.assert_frame_equal(expected.result.frame, actual.result.frame)
    assert not actual.result.truncated


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pandas.errors.PerformanceWarning")
def test_snowflake_drift_features_fallback(
    filled_store: StoreFixture, drift_session: Session
) -> None:
    """Without a FEATURES column the Snowflake store reads ONLINE_FEATURES."""
    store = SnowflakeStore(drift_session, Settings(database="OLD_DB"))

    sample = store.drift_features(None, max_rows=1_000)

    assert not sample.per_prediction
    assert len({r.policy_number for r in filled_store.records}) == len(sample.result.frame)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pandas.errors.PerformanceWarning")
def test_snowflake_drift_features_row_cap(drift_session: Session) -> None:
    """A cap on the Snowflake store returns that many rows and sets truncated."""
    store = SnowflakeStore(drift_session, Settings(database=DATABASE))

    sample = store.drift_features(None, max_rows=5)

    assert sample.result.truncated
    assert len(sample.result.frame) == 5


# Streamlit-in-Snowflake defaults against the deploy scripts


def _deployed_name(pattern: str, variables: dict[str, str]) -> str:
    """Return the object name ``pattern`` captures in deploy/sql, with variables filled in."""
    scripts = sorted((REPO / "deploy" / "sql").glob("*.sql"))
    matches = [m for path in scripts for m in re.finditer(pattern, path.read_text("utf-8"))]
    assert len(matches) == 1, f"expected one match of {pattern!r} in deploy/sql/*.sql"
    return re.sub(r"<% ctx\.env\.(\w+) %>", lambda m: variables[m.group(1)], matches[0].group(1))


def test_snowflake_defaults_name_deployed_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default database, service and function are the objects deploy/sql creates."""
    for name in ("DASHBOARD_DATABASE", "DASHBOARD_GATEWAY_SERVICE", "DASHBOARD_PREDICT_FUNCTION"):
        monkeypatch.delenv(name, raising=False)
    project = yaml.safe_load((REPO / "deploy" / "snowflake.yml").read_text(encoding="utf-8"))
    variables: dict[str, str] = {key: str(value) for key, value in project["env"].items()}
    settings = Settings()

    # Object names contain "<% ctx.env.NAME %>" variables, which have spaces.
    service = _deployed_name(r"CREATE SERVICE IF NOT EXISTS ([^\n]+?)\s*\n", variables)
    function = _deployed_name(r"CREATE OR ALTER FUNCTION ([^(\n]+)\(\s*policy_number", variables)

    assert settings.database == "REALTIME_ML_PIPELINE"
    assert variables["database_name"] == settings.database
    assert f"{settings.database}.{settings.gateway_service}" == service
    assert f"{settings.database}.{settings.predict_function}" == function
    assert function.endswith(".ML_MODELS.FN_API_PREDICT")
