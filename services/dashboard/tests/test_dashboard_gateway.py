"""Service state and the test form against a real gateway process on 127.0.0.1.

No model server runs, so the gateway scores with its rule-based fallback. The test form must
show that response with its reasons.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from evidence_dashboard.config import get_settings
from evidence_dashboard.gateway import fetch_readiness, find_circuit_state
from evidence_gateway.testing import free_port, start_gateway
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A gateway whose model URL has nothing listening; yields its URL and queue file."""
    directory = tmp_path_factory.mktemp("dashboard_gateway")
    artifact_dir = directory / "model"
    artifact_dir.mkdir()
    (artifact_dir / "metadata.json").write_text(json.dumps(_metadata()), encoding="utf-8")
    # start_gateway returns a process that is already running and ready.
    process, url = start_gateway(directory, f"http://127.0.0.1:{free_port()}", artifact_dir)
    try:
        yield url, directory / "queue.sqlite3"
    finally:
        process.stop()


def _metadata() -> dict[str, object]:
    from evidence_features import FEATURE_NAMES
    from evidence_model_client import ArtifactMetadata, compute_feature_stats

    training = np.random.default_rng(3).normal(5.0, 1.0, size=(500, len(FEATURE_NAMES)))
    metadata = ArtifactMetadata(
        model_version="V2",
        metrics={},
        feature_stats=compute_feature_stats(training),
        feature_importances=dict.fromkeys(FEATURE_NAMES, 0.0),
        training_summary={"rows": 500},
    )
    result: dict[str, object] = metadata.to_json()
    return result


@pytest.fixture
def gateway_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gateway: tuple[str, Path]
) -> Iterator[tuple[str, Path]]:
    """Point the dashboard at the running gateway and its queue file."""
    url, queue_path = gateway
    monkeypatch.setenv("DASHBOARD_GATEWAY_URL", url)
    monkeypatch.setenv("DASHBOARD_QUEUE_PATH", str(queue_path))
    monkeypatch.setenv("DASHBOARD_STORE_PATH", str(tmp_path / "store.sqlite3"))
    get_settings.cache_clear()
    yield gateway
    get_settings.cache_clear()


def queue_depth(queue_path: Path) -> int:
    """Read the queue's depth counter directly; 0 before the gateway created the queue."""
    if not queue_path.exists():
        return 0
    connection = sqlite3.connect(f"{queue_path.as_uri()}?mode=ro", uri=True)
    try:
        row = connection.execute(
            "SELECT depth FROM queue_depth WHERE EXISTS "
            "(SELECT 1 FROM sqlite_master WHERE name = 'queue_depth')"
        ).fetchone()
    except sqlite3.OperationalError:
        return 0
    finally:
        connection.close()
    return 0 if row is None else int(row[0])


def test_readiness_reports_circuit_state(gateway: tuple[str, Path]) -> None:
    """The readiness call returns the gateway's status and the model circuit's state."""
    url, _ = gateway
    readiness = fetch_readiness(url, timeout=5.0)

    assert readiness.reachable
    assert readiness.http_status == 200
    assert readiness.status in ("ready", "degraded")
    assert readiness.circuit_state in ("closed", "open", "half_open")


def test_find_circuit_state_reads_check_detail() -> None:
    """The circuit state is found under any check whose detail names a circuit."""
    checks = {
        "queue": {"ok": True, "detail": {"depth": 0}},
        "model": {"detail": {"circuit_state": "open"}},
    }

    assert find_circuit_state(checks) == "open"
    assert find_circuit_state({"queue": {"ok": True, "detail": {"depth": 0}}}) is None


def test_form_shows_score_and_reasons(gateway_env: tuple[str, Path], app_path: Path) -> None:
    """Submitting the sample pair shows the gateway's score, version and reason chart."""
    _, queue_path = gateway_env
    depth_before = queue_depth(queue_path)
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    assert not at.exception
    gateway_metric = next(m for m in at.metric if m.label == "Gateway")
    assert gateway_metric.value in ("Ready", "Degraded")

    at.text_input(key="form_policy").input("DASH-FORM-1")
    at.button(key="form_submit").click().run()

    assert not at.exception
    assert not [e.value for e in at.error if "did not score" in e.value]
    values = {m.label: m.value for m in at.metric}
    assert values["Model version"] == "RULE_BASED"
    assert 0.0 <= float(values["Risk score"]) <= 1.0
    assert values["Risk level"] in ("LOW", "MEDIUM", "HIGH")
    reason_charts = [
        pa.ipc.open_stream(d.data.data).read_pandas()
        for element in at.get("vega_lite_chart")
        for d in element.proto.datasets
    ]
    reasons = next(frame for frame in reason_charts if "contribution" in frame.columns)
    assert len(reasons) >= 1
    assert depth_before + 1 == queue_depth(queue_path)


def test_form_shows_gateway_rejection(gateway_env: tuple[str, Path], app_path: Path) -> None:
    """A malformed document is rejected by the gateway and the form shows its message."""
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    at.text_area(key="form_mib").input("<Response><unclosed>")
    at.button(key="form_submit").click().run()

    errors = [e.value for e in at.error if "did not score" in e.value]
    assert len(errors) == 1
    assert "HTTP 4" in errors[0]
    assert not pd.isna(errors[0])
