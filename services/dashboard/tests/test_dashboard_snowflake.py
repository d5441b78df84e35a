"""The Snowflake backend in Snowpark's local-testing session, checked against the SQLite one.

The tables are loaded with the rows the persistence worker wrote to the SQLite store, so both
backends must return the same frames for every panel query.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from evidence_dashboard.config import Settings, get_settings
from evidence_dashboard.runtime import ServiceMonitor, active_snowpark_session, build_runtime
from evidence_dashboard.store.snowflake import SnowflakeServices, SnowflakeStore
from evidence_dashboard.store.sqlite import SqliteStore
from snowflake.snowpark import Session
from snowflake.snowpark import functions as F  # noqa: N812
from streamlit.testing.v1 import AppTest

if TYPE_CHECKING:
    from .conftest import StoreFixture

pytestmark = [
    pytest.mark.slow,
    # Snowpark's local-testing emulator builds wide frames column by column, which makes pandas
    # warn about fragmentation; the warning is about the emulator, not about the dashboard.
    pytest.mark.filterwarnings("ignore::pandas.errors.PerformanceWarning"),
]

DATABASE = "EVIDENCE_DB"


def _load_table(session: Session, store_path: Any, sqlite_name: str, qualified: str) -> None:
    connection = sqlite3.connect(store_path)
    try:
        frame = pd.read_sql_query(f"SELECT * FROM {sqlite_name}", connection)  # noqa: S608
    finally:
        connection.close()
    for column in ("CREATED_AT", "UPDATED_AT", "PERSISTED_AT", "ANSWERED_AT"):
        if column in frame.columns:
            # The hybrid tables hold UTC in TIMESTAMP_NTZ columns.
            frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
    table = session.create_dataframe(frame)
    if "FEATURES" in frame.columns:
        # MODEL_PREDICTIONS.FEATURES is a VARIANT in Snowflake and JSON text in SQLite.
        table = table.with_column("FEATURES", F.parse_json(F.col("FEATURES")))
    table.write.save_as_table(qualified, mode="overwrite")


@pytest.fixture(scope="module")
def local_session(filled_store: StoreFixture) -> Iterator[Session]:
    """A local-testing session holding copies of the filled SQLite store's tables."""
    session = Session.builder.config("local_testing", True).create()
    _load_table(
        session,
        filled_store.store_path,
        "ML_MODELS__MODEL_PREDICTIONS",
        f"{DATABASE}.ML_MODELS.MODEL_PREDICTIONS",
    )
    _load_table(
        session,
        filled_store.store_path,
        "FEATURE_STORE__ONLINE_FEATURES",
        f"{DATABASE}.FEATURE_STORE.ONLINE_FEATURES",
    )
    yield session
    session.close()


@pytest.fixture
def stores(
    filled_store: StoreFixture, local_session: Session
) -> tuple[SqliteStore, SnowflakeStore]:
    """The SQLite and the Snowflake store over the same rows."""
    settings = Settings(database=DATABASE)
    return (
        SqliteStore(filled_store.store_path, max_rows=settings.max_rows),
        SnowflakeStore(local_session, settings),
    )


def _same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        left.reset_index(drop=True), right.reset_index(drop=True), check_dtype=False
    )


def test_count_matches_sqlite(stores: tuple[SqliteStore, SnowflakeStore]) -> None:
    """Both backends count the same rows."""
    sqlite_store, snowflake_store = stores

    assert sqlite_store.count_predictions() == snowflake_store.count_predictions()


@pytest.mark.parametrize("query", ["traffic", "model_usage", "feature_warnings", "recent_features"])
@pytest.mark.parametrize("hours", [None, 1])
def test_panel_queries_match_sqlite(
    stores: tuple[SqliteStore, SnowflakeStore],
    filled_store: StoreFixture,
    query: str,
    hours: int | None,
) -> None:
    """Every windowed panel query returns the same frame from both backends."""
    sqlite_store, snowflake_store = stores
    since = None if hours is None else filled_store.now - timedelta(hours=hours)

    expected = getattr(sqlite_store, query)(since)
    actual = getattr(snowflake_store, query)(since)

    assert not expected.frame.empty
    _same(expected.frame, actual.frame)
    assert expected.truncated == actual.truncated


def test_row_cap_sets_truncated(filled_store: StoreFixture, local_session: Session) -> None:
    """A cap below the row count returns the newest rows and flags the cut."""
    store = SnowflakeStore(local_session, Settings(database=DATABASE, max_rows=100))
    store.max_rows = 10

    result = store.traffic(None)

    assert result.truncated
    assert len(result.frame) == 10
    newest = max(r.created_at for r in filled_store.records)
    assert newest == result.frame["CREATED_AT"].iloc[0].to_pydatetime()


def test_lookup_matches_sqlite(stores: tuple[SqliteStore, SnowflakeStore]) -> None:
    """The policy lookup returns the same predictions and features from both backends."""
    sqlite_store, snowflake_store = stores

    expected = sqlite_store.lookup_policy("P-DASH-0007")
    actual = snowflake_store.lookup_policy("P-DASH-0007")

    assert len(actual.predictions) == 3
    _same(expected.predictions, actual.predictions)
    _same(expected.features, actual.features)


def test_services_without_sql_report_unknown_status(local_session: Session) -> None:
    """Local testing cannot run SHOW SERVICE CONTAINERS, so the status reads as unreachable."""
    services: ServiceMonitor = SnowflakeServices(local_session, Settings(database=DATABASE))

    readiness = services.readiness()

    assert not readiness.reachable
    assert readiness.error is not None
    assert services.queue_status() is None


def test_runtime_picks_active_session(local_session: Session) -> None:
    """The snowflake backend uses the active Snowpark session."""
    assert active_snowpark_session() is local_session
    runtime = build_runtime(Settings(backend="snowflake", database=DATABASE))

    assert runtime.store.backend_name == "Snowflake"


def test_page_renders_on_snowflake_backend(
    monkeypatch: pytest.MonkeyPatch,
    local_session: Session,
    filled_store: StoreFixture,
    app_path: Path,
) -> None:
    """The whole page renders from the Snowpark session, as in Streamlit in Snowflake."""
    monkeypatch.setenv("DASHBOARD_BACKEND", "snowflake")
    monkeypatch.setenv("DASHBOARD_DATABASE", DATABASE)
    monkeypatch.setenv("DASHBOARD_ARTIFACT_DIR", str(filled_store.artifact_dir))
    get_settings.cache_clear()
    try:
        at = AppTest.from_file(str(app_path), default_timeout=60).run()
        at.selectbox(key="window").set_value("All time").run()
    finally:
        get_settings.cache_clear()

    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert f"{len(filled_store.records):,}" == values["Stored predictions"]
    assert values["Queue depth"] == "n/a"
    assert len(at.get("vega_lite_chart")) == 8
