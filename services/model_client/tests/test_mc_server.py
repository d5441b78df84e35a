"""Tests of the real local model server, started as a subprocess on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH
from evidence_model_client.artifact import ModelArtifact
from evidence_model_client.config import ServerSettings
from evidence_model_client.errors import ArtifactError, SpecHashMismatchError
from evidence_model_client.fallback import rule_based_scores
from evidence_model_client.served_model import load_served_model
from evidence_model_client.server import create_app

from .conftest import SERVER_BIN, ServerProcess, start_server, stop_server, train_artifact

# Most tests here share the real server subprocess; whichever runs first pays its start-up.
pytestmark = pytest.mark.slow


def _shapes(matrix: np.ndarray) -> dict[str, dict[str, object]]:
    rows = matrix.tolist()
    records = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in rows]
    return {
        "flat": {"data": [[i, *row] for i, row in enumerate(rows)]},
        "wide": {"data": [[i, record] for i, record in enumerate(records)]},
        "dataframe_split": {
            "dataframe_split": {
                "index": list(range(len(rows))),
                "columns": list(FEATURE_NAMES),
                "data": rows,
            }
        },
        "dataframe_records": {"dataframe_records": records},
    }


@pytest.mark.parametrize("shape", ["flat", "wide", "dataframe_split", "dataframe_records"])
def test_server_predict_proba_every_shape(
    model_server: ServerProcess, artifact_dir: Path, rows: np.ndarray, shape: str
) -> None:
    """Every request shape returns the artifact model's probabilities, row by row."""
    expected = ModelArtifact.load(artifact_dir).model.predict_proba(rows)
    response = httpx.post(f"{model_server.base_url}/predict-proba", json=_shapes(rows)[shape])
    assert response.status_code == 200
    data = response.json()["data"]
    assert list(range(len(rows))) == [item[0] for item in data]
    served = np.array([[o["output_feature_0"], o["output_feature_1"]] for _, o in data])
    np.testing.assert_allclose(expected, served, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", ["flat", "dataframe_records"])
def test_server_predict_returns_labels(
    model_server: ServerProcess, artifact_dir: Path, rows: np.ndarray, shape: str
) -> None:
    """/predict returns the class label only, as output_feature_0."""
    expected = ModelArtifact.load(artifact_dir).model.predict(rows).tolist()
    response = httpx.post(f"{model_server.base_url}/predict", json=_shapes(rows)[shape])
    assert response.status_code == 200
    outputs = [item[1] for item in response.json()["data"]]
    assert [{"output_feature_0": label} for label in expected] == outputs


def test_server_health_reports_artifact(model_server: ServerProcess) -> None:
    """/health names the model, its version and spec hash, and builtin is false."""
    health = httpx.get(f"{model_server.base_url}/health").json()
    assert health["model_name"] == "EVIDENCE_RISK_MODEL"
    assert health["model_version"] == "V2"
    assert health["feature_spec_hash"] == FEATURE_SPEC_HASH
    assert health["builtin"] is False


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        ({"data": [[0, 1.0, 2.0]]}, "row 0 has 2 feature values; expected 105"),
        ({"dataframe_records": [{"NOT_A_FEATURE": 1.0}]}, "unknown columns"),
        ({"data": [[0, *(["x"] * 105)]]}, f"column {FEATURE_NAMES[0]} of row 0 must be a number"),
        ({"dataframe_split": {"columns": ["A"], "data": [[1]]}}, "unknown columns"),
    ],
)
def test_server_rejects_bad_request(
    model_server: ServerProcess, payload: dict[str, object], pattern: str
) -> None:
    """Bad bodies get 400 with a message naming the column or row."""
    response = httpx.post(f"{model_server.base_url}/predict-proba", json=payload)
    assert response.status_code == 400
    assert pattern in response.json()["detail"]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_records": [{"CANARY_COLUMN_4711": 1.0}]},
        {"dataframe_split": {"columns": ["CANARY_COLUMN_4711"] * 2, "data": [[1, 2]]}},
    ],
)
def test_server_log_omits_request_columns(
    model_server: ServerProcess, payload: dict[str, object]
) -> None:
    """A rejected column name goes back to the caller but never into the server's log."""
    response = httpx.post(f"{model_server.base_url}/predict-proba", json=payload)
    httpx.get(f"{model_server.base_url}/health")  # a later line shows the log was written

    assert response.status_code == 400
    assert "CANARY_COLUMN_4711" in response.json()["detail"]
    log = model_server.log_path.read_text()
    assert "prediction request rejected" in log
    assert "CANARY_COLUMN_4711" not in log


def test_server_rejects_nan_token(model_server: ServerProcess) -> None:
    """A NaN token in the JSON body is a 400 naming the column, not a 500."""
    values = ["0"] * 105
    values[7] = "NaN"
    body = ('{"data": [[0, ' + ", ".join(values) + "]]}").encode()
    response = httpx.post(f"{model_server.base_url}/predict", content=body)
    assert response.status_code == 400
    assert f"column {FEATURE_NAMES[7]} of row 0 must be finite" in response.json()["detail"]


def test_server_rejects_invalid_json(model_server: ServerProcess) -> None:
    """A body that is not JSON is a 400."""
    response = httpx.post(f"{model_server.base_url}/predict-proba", content=b"{not json")
    assert response.status_code == 400


async def test_app_rejects_row_id_beyond_64_bits(tmp_path: Path) -> None:
    """A row id that the response cannot encode is a 400, not a 500."""
    app = create_app(ServerSettings(artifact_dir=tmp_path / "empty"))
    # The NaN in the ignored column makes orjson reject the body. Python's json parser, the
    # fallback, accepts it and also integers of any size.
    columns = json.dumps([*FEATURE_NAMES, "NOTE"])
    row = "[" + "0.0, " * len(FEATURE_NAMES) + "NaN]"
    body = (
        f'{{"dataframe_split": {{"index": [{2**70}], "columns": {columns}, "data": [{row}]}}, '
        '"extra_columns": ["NOTE"]}'
    ).encode()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model.test") as client:
            big_id = await client.post("/predict-proba", content=body)
            small_id = await client.post(
                "/predict-proba", content=body.replace(b"[" + str(2**70).encode(), b"[7")
            )
    assert big_id.status_code == 400
    assert "signed 64-bit range" in big_id.json()["detail"]
    assert small_id.status_code == 200
    assert small_id.json()["data"][0][0] == 7


def test_server_logs_no_feature_values(model_server: ServerProcess, rows: np.ndarray) -> None:
    """The server's JSON log lines carry counts and timings, never the feature values sent."""
    marker = 123.456789
    matrix = rows.copy()
    matrix[0, 0] = marker
    httpx.post(f"{model_server.base_url}/predict-proba", json=_shapes(matrix)["flat"])
    log = model_server.log_path.read_text()
    assert "prediction served" in log
    assert str(marker) not in log


def test_server_builtin_without_artifact(tmp_path: Path, rows: np.ndarray) -> None:
    """Without an artifact the server reports builtin in health and logs, and scores by rule."""
    server = start_server(tmp_path / "empty", tmp_path / "server.log")
    try:
        health = httpx.get(f"{server.base_url}/health").json()
        response = httpx.post(f"{server.base_url}/predict-proba", json=_shapes(rows)["flat"])
    finally:
        stop_server(server)
    assert health["builtin"] is True
    assert health["model_version"] == "BUILTIN"
    served = [o["output_feature_1"] for _, o in response.json()["data"]]
    np.testing.assert_allclose(rule_based_scores(rows), served)
    assert "serving the built-in rule-based scoring function" in server.log_path.read_text()


def test_server_sigterm_exits_0(tmp_path: Path) -> None:
    """SIGTERM stops a serving server with status 0, not killed by the signal uvicorn re-raises."""
    server = start_server(tmp_path / "empty", tmp_path / "server.log")
    server.process.send_signal(signal.SIGTERM)
    try:
        returncode = server.process.wait(timeout=30)
    finally:
        stop_server(server)

    assert returncode == 0, server.log_path.read_text()


def _run_server(artifact_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "MODEL_SERVER_ARTIFACT_DIR": str(artifact_dir),
        "MODEL_SERVER_PORT": "1",
        **env,
    }
    return subprocess.run(
        [str(SERVER_BIN)], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def test_server_refuses_spec_hash_mismatch(tmp_path: Path) -> None:
    """An artifact trained on another feature spec stops start-up with exit status 2."""
    train_artifact(tmp_path, spec_hash="0123456789abcdef")
    result = _run_server(tmp_path)
    assert result.returncode == 2
    assert "'0123456789abcdef'" in result.stderr
    assert "retrain the model" in result.stderr
    assert "spec_hash_mismatch" in result.stdout


def test_load_served_model_refuses_missing_artifact_without_builtin(tmp_path: Path) -> None:
    """With built-ins disallowed, an empty artifact directory stops start-up."""
    settings = ServerSettings(artifact_dir=tmp_path, allow_builtin=False)
    with pytest.raises(ArtifactError, match=r"no model artifact .* MODEL_SERVER_ALLOW_BUILTIN"):
        load_served_model(settings)


def test_load_served_model_refuses_invalid_artifact(tmp_path: Path) -> None:
    """A corrupt metadata file stops start-up instead of falling back to the built-in."""
    train_artifact(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    del metadata["feature_stats"]
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match=r"missing keys \['feature_stats'\]"):
        load_served_model(ServerSettings(artifact_dir=tmp_path))


async def test_app_lifespan_refuses_spec_hash_mismatch(tmp_path: Path) -> None:
    """An app built without a preloaded model checks the spec hash in its lifespan."""
    train_artifact(tmp_path, spec_hash="0123456789abcdef")
    app = create_app(ServerSettings(artifact_dir=tmp_path))
    with pytest.raises(SpecHashMismatchError):
        async with app.router.lifespan_context(app):
            pass


_CANARY_KEY = "CANARY_NAME_1970-01-01"


@pytest.mark.parametrize(
    "body",
    [
        {"data": [[0, *([0.0] * len(FEATURE_NAMES))]], "params": {_CANARY_KEY: 1}},
        {"data": [[0, *([0.0] * len(FEATURE_NAMES))]], _CANARY_KEY: 1},
        {
            "dataframe_split": {
                "columns": list(FEATURE_NAMES),
                "data": [[0.0] * len(FEATURE_NAMES)],
                _CANARY_KEY: 1,
            }
        },
        {
            "dataframe_records": [
                {**dict.fromkeys(FEATURE_NAMES, 0.0), _CANARY_KEY: 1},
            ]
        },
    ],
)
def test_server_logs_no_caller_keys(model_server: ServerProcess, body: dict[str, object]) -> None:
    """A rejected key is named to the caller, and only counted in the server's log."""
    response = httpx.post(f"{model_server.base_url}/predict-proba", json=body)

    assert response.status_code == 400
    assert _CANARY_KEY in response.json()["detail"]
    assert _CANARY_KEY not in model_server.log_path.read_text()


def test_server_logs_no_repeated_row_ids(model_server: ServerProcess) -> None:
    """Repeated row ids are named to the caller, and only counted in the server's log."""
    row = [0.0] * len(FEATURE_NAMES)
    body = {"data": [[987654321, *row], [987654321, *row]]}

    response = httpx.post(f"{model_server.base_url}/predict-proba", json=body)

    assert response.status_code == 400
    assert "987654321" in response.json()["detail"]
    assert "987654321" not in model_server.log_path.read_text()
