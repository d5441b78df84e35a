"""Protocol tests of the model server: row ids, bad indexes, labels and the body size limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION
from evidence_model_client.artifact import ModelArtifact
from evidence_model_client.config import ServerSettings
from evidence_model_client.fallback import rule_based_scores
from evidence_model_client.served_model import BuiltinModel, ServedModel, compile_checked_forest
from evidence_model_client.server import create_app
from sklearn.ensemble import GradientBoostingClassifier

from .conftest import ServerProcess, make_training_data


def _split_body(matrix: np.ndarray, index: object) -> dict[str, object]:
    return {
        "dataframe_split": {
            "index": index,
            "columns": list(FEATURE_NAMES),
            "data": matrix.tolist(),
        }
    }


@pytest.mark.slow
@pytest.mark.parametrize("index", [[7], [30, 10, 20, -4, 9_223_372_036_854_775_807]])
def test_server_split_index_echoed(
    model_server: ServerProcess, artifact_dir: Path, index: list[int]
) -> None:
    """Each response row starts with the request's index entry, in request order."""
    matrix, _ = make_training_data(n_rows=len(index), seed=3)
    expected = ModelArtifact.load(artifact_dir).model.predict_proba(matrix)

    response = httpx.post(f"{model_server.base_url}/predict-proba", json=_split_body(matrix, index))

    assert response.status_code == 200
    data = response.json()["data"]
    assert index == [row_id for row_id, _ in data]
    served = np.array([[o["output_feature_0"], o["output_feature_1"]] for _, o in data])
    np.testing.assert_allclose(expected, served, rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("index", "n_rows", "problem"),
    [
        ([True], 1, "entry 0 must be an integer row id; got a boolean"),
        ([None], 1, "entry 0 must be an integer row id; got null"),
        (["P-1"], 1, "entry 0 must be an integer row id; got a string"),
        ([0, 1.5], 2, "entry 1 must be an integer row id; got a float"),
        ([{"id": 1}], 1, "entry 0 must be an integer row id; got an object"),
        ([2**64 - 1], 1, "entry 0 must be an integer row id; got an integer beyond"),
        ([2**70], 1, "entry 0 must be an integer row id; got a number beyond"),
        ([3, 3], 2, "contains repeated row ids [3]"),
        ([0], 2, "has 1 row ids for 2 data rows"),
        ("0", 1, "must be a list of 1 integer row ids"),
    ],
)
def test_server_bad_index_is_400(
    model_server: ServerProcess, index: object, n_rows: int, problem: str
) -> None:
    """A bad dataframe_split.index gets a 400 naming the field and the problem."""
    matrix, _ = make_training_data(n_rows=n_rows, seed=3)
    body = _split_body(matrix, index)

    response = httpx.post(f"{model_server.base_url}/predict-proba", json=body)

    assert response.status_code == 400
    assert f"dataframe_split.index {problem}" in response.json()["detail"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "body",
    [
        {"data": []},
        {"dataframe_split": {"index": [], "columns": list(FEATURE_NAMES), "data": []}},
        {"dataframe_records": []},
    ],
)
def test_server_zero_rows_is_400(model_server: ServerProcess, body: dict[str, object]) -> None:
    """A body with no rows gets a 400 in every shape."""
    response = httpx.post(f"{model_server.base_url}/predict-proba", json=body)
    assert response.status_code == 400
    assert "must be a non-empty list of rows" in response.json()["detail"]


@pytest.mark.slow
def test_server_mixed_flat_wide_is_400(model_server: ServerProcess) -> None:
    """Row 0 decides flat or wide, and a later row of the other form is a 400 naming it."""
    values = [0.0] * len(FEATURE_NAMES)
    record = dict(zip(FEATURE_NAMES, values, strict=True))
    flat_first = {"data": [[0, *values], [1, record]]}
    wide_first = {"data": [[0, record], [1, *values]]}

    flat_response = httpx.post(f"{model_server.base_url}/predict-proba", json=flat_first)
    wide_response = httpx.post(f"{model_server.base_url}/predict-proba", json=wide_first)

    assert flat_response.status_code == 400
    assert flat_response.json()["detail"] == (
        "data row 1 is [row_id, {column: value}] but row 0 is [row_id, values...]; "
        "send every row in the same shape"
    )
    assert wide_response.status_code == 400
    assert (
        "data row 1 must be [row_id, {column: value}] like row 0"
        in (wide_response.json()["detail"])
    )


def _tie_model() -> GradientBoostingClassifier:
    """A model whose raw score is exactly 0 for every row: both probabilities are 0.5."""
    matrix, _ = make_training_data(n_rows=40, seed=5)
    labels = np.tile([0, 1], 20)
    return GradientBoostingClassifier(n_estimators=3, learning_rate=0.0, random_state=0).fit(
        matrix, labels
    )


async def test_app_predict_label_matches_sklearn_at_tie(tmp_path: Path) -> None:
    """/predict returns the model's own predict (class 1 at a tie), not argmax (class 0)."""
    model = _tie_model()
    forest = compile_checked_forest(model)
    assert forest is not None
    served = ServedModel(
        model=model,
        model_name="EVIDENCE_RISK_MODEL",
        model_version="V2",
        feature_spec_hash=FEATURE_SPEC_HASH,
        feature_spec_version=FEATURE_SPEC_VERSION,
        created_at=None,
        builtin=False,
        forest=forest,
    )
    matrix, _ = make_training_data(n_rows=3, seed=6)
    app = create_app(ServerSettings(artifact_dir=tmp_path), served=served)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model.test") as client:
            labels = await client.post("/predict", json=_split_body(matrix, [0, 1, 2]))
            probabilities = await client.post("/predict-proba", json=_split_body(matrix, [0, 1, 2]))

    assert [1, 1, 1] == model.predict(matrix).tolist()
    assert labels.status_code == 200
    assert [[i, {"output_feature_0": 1}] for i in range(3)] == labels.json()["data"]
    expected = {"output_feature_0": 0.5, "output_feature_1": 0.5}
    assert [[i, expected] for i in range(3)] == probabilities.json()["data"]


async def test_app_chunked_body_stops_at_limit(tmp_path: Path) -> None:
    """A chunked body without Content-Length is cut off once it passes max_body_bytes."""
    chunk = b" " * 1024
    sent: list[int] = []

    async def endless_body() -> AsyncIterator[bytes]:
        for _ in range(2000):
            sent.append(len(chunk))
            yield chunk

    settings = ServerSettings(artifact_dir=tmp_path / "empty", max_body_bytes=4096)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model.test") as client:
            response = await client.post("/predict-proba", content=endless_body())

    assert response.status_code == 413
    assert "request body exceeds 4096 bytes" in response.json()["detail"]
    # Five chunks of 1 KiB pass the limit; reading all 2,000 would buffer 2 MB.
    assert len(sent) <= 6


async def test_app_chunked_body_within_limit_scored(tmp_path: Path) -> None:
    """A chunked body below the limit is read whole and scored."""
    body = json.dumps({"data": [[5, *([0.0] * len(FEATURE_NAMES))]]}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    app = create_app(ServerSettings(artifact_dir=tmp_path / "empty"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model.test") as client:
            response = await client.post("/predict-proba", content=chunks())

    assert response.status_code == 200
    assert 5 == response.json()["data"][0][0]


async def test_app_builtin_predict_labels(tmp_path: Path) -> None:
    """Without an artifact, /predict labels a row 1 exactly when its rule-based score is > 0.5."""
    matrix = np.zeros((3, len(FEATURE_NAMES)))
    matrix[1, FEATURE_NAMES.index("RX_MAX_CLASS_SEVERITY")] = 10.0
    matrix[1, FEATURE_NAMES.index("MIB_MAX_SEVERITY")] = 3.0
    matrix[2, FEATURE_NAMES.index("MIB_HAS_HIT")] = 1.0
    scores = rule_based_scores(matrix)
    assert scores[0] == 0.0
    assert scores[1] > 0.5
    assert 0.0 < scores[2] < 0.5
    app = create_app(ServerSettings(artifact_dir=tmp_path / "empty"))

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model.test") as client:
            response = await client.post("/predict", json=_split_body(matrix, [8, 9, 10]))

    assert response.status_code == 200
    labels = [
        [8, {"output_feature_0": 0}],
        [9, {"output_feature_0": 1}],
        [10, {"output_feature_0": 0}],
    ]
    assert labels == response.json()["data"]


def test_served_model_predict_uses_native_threads() -> None:
    """/predict on a trained model always runs under the thread limit, on the built-in never."""
    model = _tie_model()
    trained = ServedModel(
        model=model,
        model_name="EVIDENCE_RISK_MODEL",
        model_version="V2",
        feature_spec_hash=FEATURE_SPEC_HASH,
        feature_spec_version=FEATURE_SPEC_VERSION,
        created_at=None,
        builtin=False,
        forest=compile_checked_forest(model),
    )
    builtin = ServedModel(
        model=BuiltinModel(),
        model_name="EVIDENCE_RISK_MODEL",
        model_version="BUILTIN",
        feature_spec_hash=FEATURE_SPEC_HASH,
        feature_spec_version=FEATURE_SPEC_VERSION,
        created_at=None,
        builtin=True,
    )
    assert trained.uses_native_threads(1, "predict") is True
    assert trained.uses_native_threads(1, "predict_proba") is False
    assert builtin.uses_native_threads(1, "predict") is False
