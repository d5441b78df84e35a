"""The Streamlit page driven by ``AppTest`` against a store filled by the persistence worker.

Expected figures come from the records the fixture built, not from the dashboard's own queries.
"""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from evidence_dashboard.config import get_settings
from evidence_persistence.ddl import render_ddl
from streamlit.testing.v1 import AppTest

if TYPE_CHECKING:
    from .conftest import StoreFixture

pytestmark = pytest.mark.slow

EMPTY_BIN_FLOOR = 1e-4


def run_app(app_path: Path, window: str = "All time") -> AppTest:
    """Run the page once, then again with the given look-back window."""
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    assert not at.exception
    at.selectbox(key="window").set_value(window).run()
    assert not at.exception
    return at


def metric_value(at: AppTest, label: str) -> str:
    """Return the displayed value of the metric with this label."""
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, f"expected one metric {label!r}, found {len(values)}"
    return str(values[0])


def dataframe_with(at: AppTest, column: str) -> pd.DataFrame:
    """Return the first displayed dataframe that has ``column``."""
    for element in at.dataframe:
        if column in element.value.columns:
            frame: pd.DataFrame = element.value
            return frame
    raise AssertionError(f"no dataframe with column {column!r}")


def chart_specs(at: AppTest) -> list[dict[str, Any]]:
    """Return the Vega-Lite specs of every Altair chart on the page."""
    return [json.loads(element.proto.spec) for element in at.get("vega_lite_chart")]


def chart_data(at: AppTest) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Return each chart's spec with its rows, all datasets of the chart concatenated.

    Streamlit sends the data of an Altair chart beside the spec as Arrow tables.
    """
    charts = []
    for element in at.get("vega_lite_chart"):
        frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in element.proto.datasets]
        data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        charts.append((json.loads(element.proto.spec), data))
    return charts


def chart_with_fields(at: AppTest, *fields: str) -> pd.DataFrame:
    """Return the rows of the first chart whose data has all of ``fields`` as columns."""
    for _spec, data in chart_data(at):
        if set(fields) <= set(data.columns):
            return data
    raise AssertionError(f"no chart with columns {fields!r}")


def test_page_renders_every_panel(dashboard_env: StoreFixture, app_path: Path) -> None:
    """With a filled store every section renders its charts and no exception is raised."""
    at = run_app(app_path)

    subheaders = [element.value for element in at.subheader]
    for title in (
        "Service state",
        "Traffic and latency",
        "Model",
        "Drift",
        "Policy lookup",
        "Test prediction",
    ):
        assert title in subheaders
    # throughput, latency histogram, serving share, score histogram, level mix, PSI bars,
    # feature bins, warnings
    charts = chart_data(at)
    assert len(charts) == 8
    for spec, data in charts:
        assert len(data) > 0, f"chart without data: {spec.get('mark') or spec.get('layer')}"


def test_service_state_matches_queue_and_store(dashboard_env: StoreFixture, app_path: Path) -> None:
    """Queue depth, dead letters and stored rows match what the fixture left behind."""
    at = run_app(app_path)
    connection = sqlite3.connect(dashboard_env.store_path)
    try:
        stored = connection.execute("SELECT COUNT(*) FROM ML_MODELS__MODEL_PREDICTIONS").fetchone()
    finally:
        connection.close()

    assert len(dashboard_env.records) == stored[0]
    assert f"{len(dashboard_env.records):,}" == metric_value(at, "Stored predictions")
    assert metric_value(at, "Queue depth") == "3"
    assert metric_value(at, "Dead letters") == "1"


def test_unreachable_gateway_shows_message(dashboard_env: StoreFixture, app_path: Path) -> None:
    """A gateway address with nothing listening is reported as unreachable, not as a crash."""
    at = run_app(app_path)

    assert metric_value(at, "Gateway") == "Unreachable"
    assert any("Gateway unreachable at http://127.0.0.1:" in e.value for e in at.error)


def test_latency_percentiles_match_records(dashboard_env: StoreFixture, app_path: Path) -> None:
    """p50/p95/p99 per source equal numpy's percentiles of the records' inference_ms."""
    at = run_app(app_path)
    table = dataframe_with(at, "p95").set_index("source")

    records = dashboard_env.records
    for source in ("API", "SQL"):
        values = [r.inference_ms for r in records if r.source == source]
        expected = np.percentile(values, [50, 95, 99])
        assert len(values) == table.loc[source, "predictions"]
        assert expected == pytest.approx(table.loc[source, ["p50", "p95", "p99"]].to_numpy())
    all_values = [r.inference_ms for r in records]
    assert np.percentile(all_values, 99) == pytest.approx(table.loc["ALL", "p99"])


def test_last_hour_window_excludes_older_rows(dashboard_env: StoreFixture, app_path: Path) -> None:
    """The one-hour window counts only records created in the last hour."""
    at = run_app(app_path, window="Last hour")
    table = dataframe_with(at, "p95").set_index("source")

    cutoff = dashboard_env.now - timedelta(hours=1)
    recent = [r for r in dashboard_env.records if r.created_at >= cutoff]
    assert len(recent) == table.loc["ALL", "predictions"]
    assert len([r for r in recent if r.source == "SQL"]) == table.loc["SQL", "predictions"]


def test_model_panel_matches_records(dashboard_env: StoreFixture, app_path: Path) -> None:
    """Registry, fallback and built-in shares, version counts and mean score match the records."""
    at = run_app(app_path)
    records = dashboard_env.records

    fallback = sum(r.model_version == "RULE_BASED" for r in records) / len(records)
    assert f"{fallback:.1%}" == metric_value(at, "Served by rule-based fallback")
    registry = sum(r.model_version == "REGISTRY_V2" for r in records) / len(records)
    assert f"{registry:.1%}" == metric_value(at, "Served by registry model")
    builtin = sum(r.model_version == "REGISTRY_BUILTIN" for r in records) / len(records)
    assert 0 < builtin < 1
    assert any(f"{builtin:.1%}" in caption.value for caption in at.caption)
    mean_score = sum(r.risk_score for r in records) / len(records)
    assert f"{mean_score:.3f}" == metric_value(at, "Mean risk score")
    versions = dataframe_with(at, "model_version").set_index("model_version")
    assert (
        sum(r.model_version == "REGISTRY_V2" for r in records)
        == (versions.loc["REGISTRY_V2", "predictions"])
    )
    level_data = chart_with_fields(at, "risk_level", "predictions")
    levels = dict(zip(level_data["risk_level"], level_data["predictions"], strict=True))
    for level in ("LOW", "MEDIUM", "HIGH"):
        assert sum(r.risk_level == level for r in records) == levels[level]


def test_drift_ranks_shifted_feature_first(dashboard_env: StoreFixture, app_path: Path) -> None:
    """The feature moved outside its training range ranks first with the hand-computed PSI."""
    at = run_app(app_path)
    drift = dataframe_with(at, "psi")

    metadata = json.loads((dashboard_env.artifact_dir / "metadata.json").read_text())
    expected_fractions = metadata["feature_stats"]["MIB_TOTAL_RECORDS"]["bin_fractions"]
    # Every recent value lies above the last training edge, so all of them land in the last bin.
    actual_fractions = [0.0] * (len(expected_fractions) - 1) + [1.0]
    expected_psi = sum(
        (max(a, EMPTY_BIN_FLOOR) - max(e, EMPTY_BIN_FLOOR))
        * math.log(max(a, EMPTY_BIN_FLOOR) / max(e, EMPTY_BIN_FLOOR))
        for e, a in zip(expected_fractions, actual_fractions, strict=True)
    )
    assert drift.loc[0, "feature"] == "MIB_TOTAL_RECORDS"
    assert expected_psi == pytest.approx(drift.loc[0, "psi"])
    # One row per prediction from MODEL_PREDICTIONS.FEATURES, including repeated policies.
    assert len(dashboard_env.records) == drift.loc[0, "rows"]


def test_warnings_chart_counts_kinds(dashboard_env: StoreFixture, app_path: Path) -> None:
    """The warnings chart counts each kind once per prediction, as the records carry them."""
    at = run_app(app_path)
    data = chart_with_fields(at, "kind", "predictions")
    counted = data.groupby("kind")["predictions"].sum().to_dict()

    records = dashboard_env.records
    assert sum("unknown_drug" in r.warnings for r in records) == counted["unknown_drug"]
    assert sum("undated_record" in r.warnings for r in records) == counted["undated_record"]


def test_lookup_finds_known_policy(dashboard_env: StoreFixture, app_path: Path) -> None:
    """Looking up a policy scored three times lists its three predictions and its features."""
    at = run_app(app_path)
    at.text_input(key="lookup_policy").input("P-DASH-0007").run()

    predictions = dataframe_with(at, "RISK_SCORE")
    expected = sorted(
        (r for r in dashboard_env.records if r.policy_number == "P-DASH-0007"),
        key=lambda r: r.created_at,
        reverse=True,
    )
    assert [r.prediction_id for r in expected] == list(predictions["PREDICTION_ID"])
    features = dataframe_with(at, "value").set_index("feature")
    assert expected[0].features[1] == pytest.approx(features.loc["MIB_HIT_COUNT", "value"])


def test_lookup_unknown_policy_says_so(dashboard_env: StoreFixture, app_path: Path) -> None:
    """An unknown policy number gets a plain 'nothing stored' message."""
    at = run_app(app_path)
    at.text_input(key="lookup_policy").input("P-NOT-THERE").run()

    assert any(
        "No features or predictions stored for policy 'P-NOT-THERE'" in i.value for i in at.info
    )


def test_empty_store_says_no_predictions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, app_path: Path, unused_port: int
) -> None:
    """A store with the tables but no rows shows the 'no predictions yet' message."""
    store_path = tmp_path / "store.sqlite3"
    connection = sqlite3.connect(store_path)
    try:
        for statement in render_ddl("sqlite"):
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()
    monkeypatch.setenv("DASHBOARD_STORE_PATH", str(store_path))
    monkeypatch.setenv("DASHBOARD_QUEUE_PATH", str(tmp_path / "queue.sqlite3"))
    monkeypatch.setenv("DASHBOARD_ARTIFACT_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("DASHBOARD_GATEWAY_URL", f"http://127.0.0.1:{unused_port}")
    get_settings.cache_clear()
    try:
        at = run_app(app_path)
    finally:
        get_settings.cache_clear()

    assert metric_value(at, "Stored predictions") == "0"
    assert any(i.value.startswith("No predictions stored yet.") for i in at.info)
    assert chart_specs(at) == []


def test_missing_store_file_names_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, app_path: Path, unused_port: int
) -> None:
    """A store path that does not exist is reported with the path and the setting to change."""
    monkeypatch.setenv("DASHBOARD_STORE_PATH", str(tmp_path / "absent.sqlite3"))
    monkeypatch.setenv("DASHBOARD_QUEUE_PATH", str(tmp_path / "absent-queue.sqlite3"))
    monkeypatch.setenv("DASHBOARD_GATEWAY_URL", f"http://127.0.0.1:{unused_port}")
    get_settings.cache_clear()
    try:
        at = run_app(app_path)
    finally:
        get_settings.cache_clear()

    assert any("absent.sqlite3" in e.value and "DASHBOARD_STORE_PATH" in e.value for e in at.error)
    assert any("DASHBOARD_QUEUE_PATH" in w.value for w in at.warning)
