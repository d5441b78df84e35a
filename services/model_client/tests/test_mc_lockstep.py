"""Tests of the lockstep tree evaluator: bit-identical to scikit-learn, or not used at all."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION
from evidence_model_client.artifact import ArtifactMetadata, ModelArtifact, compute_feature_stats
from evidence_model_client.config import ServerSettings
from evidence_model_client.lockstep import LockstepForest, UnsupportedModelError, probe_rows
from evidence_model_client.lockstep_sklearn import compile_forest
from evidence_model_client.protocol import encode_dataframe_split
from evidence_model_client.served_model import (
    LOCKSTEP_MAX_ROWS,
    ServedModel,
    compile_checked_forest,
)
from evidence_model_client.server import INLINE_MAX_BODY_BYTES, create_app
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from structlog.testing import capture_logs
from threadpoolctl import threadpool_limits

from .conftest import make_training_data, start_server, stop_server

N = len(FEATURE_NAMES)


def _with_missing(matrix: np.ndarray, seed: int) -> np.ndarray:
    """Copy of ``matrix`` with 15 % NaN, so fitted splits send NaN both left and right."""
    rng = np.random.default_rng(seed)
    result = matrix.copy()
    result[rng.random(result.shape) < 0.15] = np.nan
    return result


@pytest.fixture(scope="module")
def hist_model() -> HistGradientBoostingClassifier:
    """A small HistGradientBoostingClassifier fitted on data with missing values."""
    matrix, labels = make_training_data(n_rows=600, seed=5)
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=8, random_state=0)
    with threadpool_limits(limits=1):
        model.fit(_with_missing(matrix, seed=6), labels)
    return model


def _sklearn_proba(model: Any, matrix: np.ndarray) -> np.ndarray:
    with threadpool_limits(limits=1):
        probabilities: np.ndarray = model.predict_proba(matrix)
    return probabilities


def test_lockstep_equals_sklearn_on_probes(hist_model: HistGradientBoostingClassifier) -> None:
    """Probe rows (thresholds, next floats, NaN, zeros, ±inf) score bit for bit the same."""
    forest = compile_forest(hist_model)
    probes = probe_rows(forest)

    np.testing.assert_array_equal(forest.predict_proba(probes), _sklearn_proba(hist_model, probes))


@pytest.mark.parametrize("n_rows", [1, 2, 7, 256, 1000])
def test_lockstep_equals_sklearn_by_batch_size(
    hist_model: HistGradientBoostingClassifier, n_rows: int
) -> None:
    """Batches of 1 to 1,000 rows, a fifth of them with NaN, score bit for bit the same."""
    matrix, _ = make_training_data(n_rows=n_rows, seed=n_rows)
    matrix[::5] = _with_missing(matrix[::5], seed=n_rows)

    actual = compile_forest(hist_model).predict_proba(matrix)

    assert actual.shape == (n_rows, 2)
    np.testing.assert_array_equal(actual, _sklearn_proba(hist_model, matrix))


def test_lockstep_forest_layout(hist_model: HistGradientBoostingClassifier) -> None:
    """Each iteration has one root, and leaves point to themselves with an infinite threshold."""
    forest = compile_forest(hist_model)
    leaves = ~np.isfinite(forest.threshold)

    assert forest.n_trees == 40
    assert forest.n_features == N
    np.testing.assert_array_equal(forest.left[leaves], np.flatnonzero(leaves))
    assert forest.value[~leaves].tolist() == [0.0] * int((~leaves).sum())
    assert 1 <= forest.depth <= 7


def test_lockstep_rejects_wrong_width(hist_model: HistGradientBoostingClassifier) -> None:
    """A matrix without one column per feature raises ValueError."""
    with pytest.raises(ValueError, match=rf"shape \(n, {N}\), got \(1, {N - 1}\)"):
        compile_forest(hist_model).predict_proba(np.zeros((1, N - 1)))


def test_lockstep_single_leaf_trees() -> None:
    """A model whose trees are single leaves (no split allowed) still scores exactly."""
    matrix, labels = make_training_data(n_rows=200, seed=9)
    model = HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=150, random_state=0)
    with threadpool_limits(limits=1):
        model.fit(matrix, labels)
    forest = compile_forest(model)

    assert forest.depth == 0
    np.testing.assert_array_equal(
        forest.predict_proba(matrix[:3]), _sklearn_proba(model, matrix[:3])
    )


@pytest.fixture(scope="module", params=["prior", "zero"])
def gbm_model(request: pytest.FixtureRequest) -> GradientBoostingClassifier:
    """A GradientBoostingClassifier with row subsampling and the default or the zero init."""
    matrix, labels = make_training_data(n_rows=600, seed=8)
    init = None if request.param == "prior" else "zero"
    model = GradientBoostingClassifier(n_estimators=30, subsample=0.8, init=init, random_state=0)
    return model.fit(matrix, labels)


def test_lockstep_gbm_equals_sklearn(gbm_model: GradientBoostingClassifier) -> None:
    """GradientBoostingClassifier scores bit for bit the same on probes and on a batch."""
    forest = compile_forest(gbm_model)
    probes = probe_rows(forest)
    matrix, _ = make_training_data(n_rows=300, seed=13)

    assert forest.float32_input is True
    np.testing.assert_array_equal(forest.predict_proba(probes), gbm_model.predict_proba(probes))
    np.testing.assert_array_equal(forest.predict_proba(matrix), gbm_model.predict_proba(matrix))


def test_lockstep_gbm_probes_need_float32_cast(gbm_model: GradientBoostingClassifier) -> None:
    """Without the float32 cast some probe rows take the other branch of a split."""
    forest = compile_forest(gbm_model)
    probes = probe_rows(forest)
    uncast = dataclasses.replace(forest, float32_input=False)

    differing = (uncast.predict_proba(probes) != gbm_model.predict_proba(probes)).any(axis=1)

    assert differing.sum() > 0


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39])
def test_lockstep_gbm_rejects_non_float32(
    gbm_model: GradientBoostingClassifier, value: float
) -> None:
    """NaN, infinity and values beyond float32 raise ValueError, as scikit-learn's check does."""
    row = np.zeros((1, N))
    row[0, 4] = value

    with pytest.raises(ValueError, match="beyond the float32 range"):
        compile_forest(gbm_model).predict_proba(row)
    with np.errstate(over="ignore"), pytest.raises(ValueError, match=r"NaN|infinity"):
        gbm_model.predict_proba(row)


# scikit-learn ships no type information, so mypy treats the base class as Any.
class _Subclass(HistGradientBoostingClassifier):  # type: ignore[misc]
    """A subclass may override predict_proba, so it is not compiled."""


def _unsupported_models() -> dict[str, Any]:
    matrix, labels = make_training_data(n_rows=300, seed=3)
    categorical = matrix.copy()
    categorical[:, 0] = np.floor(categorical[:, 0])
    three_classes = labels + (matrix[:, 2] > 2.0)
    with threadpool_limits(limits=1):
        return {
            "forest": RandomForestClassifier(n_estimators=2).fit(matrix, labels),
            "exponential": GradientBoostingClassifier(n_estimators=3, loss="exponential").fit(
                matrix, labels
            ),
            "uniform_init": GradientBoostingClassifier(
                n_estimators=3, init=DummyClassifier(strategy="uniform")
            ).fit(matrix, labels),
            "subclass": _Subclass(max_iter=3).fit(matrix, labels),
            "categorical": HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]).fit(
                categorical, labels
            ),
            "multiclass": HistGradientBoostingClassifier(max_iter=3).fit(matrix, three_classes),
        }


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("forest", "RandomForestClassifier is not HistGradientBoostingClassifier"),
        ("exponential", "only binary classification with the log loss"),
        ("uniform_init", "only the default init or init='zero'"),
        ("subclass", "_Subclass is not HistGradientBoostingClassifier"),
        ("categorical", "categorical"),
        ("multiclass", "only binary classification"),
    ],
)
def test_compile_rejects_unsupported(kind: str, pattern: str) -> None:
    """Other types, subclasses, losses, init estimators, categories and classes are rejected."""
    with pytest.raises(UnsupportedModelError, match=pattern):
        compile_forest(_unsupported_models()[kind])


def test_checked_forest_logs_unsupported_type() -> None:
    """An unsupported model logs one line with its type and the reason, and gets no forest."""
    model = _unsupported_models()["forest"]

    with capture_logs() as logs:
        forest = compile_checked_forest(model)

    assert forest is None
    assert len(logs) == 1
    assert logs[0]["event"] == "lockstep evaluator not used"
    assert logs[0]["model_type"] == "RandomForestClassifier"
    assert "is not HistGradientBoostingClassifier" in logs[0]["reason"]


def test_checked_forest_logs_success(hist_model: HistGradientBoostingClassifier) -> None:
    """A supported model passes the probe check with no difference at all."""
    with capture_logs() as logs:
        forest = compile_checked_forest(hist_model)

    assert forest is not None
    assert [entry["event"] for entry in logs] == ["lockstep evaluator checked"]
    assert logs[0]["max_abs_difference"] == 0.0
    assert logs[0]["trees"] == 40
    assert logs[0]["probe_rows"] > 400


def test_checked_forest_survives_changed_internals() -> None:
    """Private attributes of an unexpected form disable the evaluator instead of failing."""
    matrix, labels = make_training_data(n_rows=200, seed=4)
    with threadpool_limits(limits=1):
        model = HistGradientBoostingClassifier(max_iter=3).fit(matrix, labels)
    model._predictors = [[object()]]

    with capture_logs() as logs:
        forest = compile_checked_forest(model)

    assert forest is None
    assert logs[0]["event"] == "lockstep evaluator not used"
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["reason"].startswith("AttributeError while compiling or checking")


@pytest.mark.parametrize("mutation", ["strict_less_than", "nan_direction"])
def test_checked_forest_rejects_disagreement(
    hist_model: HistGradientBoostingClassifier, monkeypatch: pytest.MonkeyPatch, mutation: str
) -> None:
    """A forest that splits with ``<`` or sends NaN the other way fails the check at load."""

    def broken_compile(model: Any) -> LockstepForest:
        forest = compile_forest(model)
        splits = np.isfinite(forest.threshold)
        if mutation == "strict_less_than":
            threshold = np.where(splits, np.nextafter(forest.threshold, -np.inf), np.inf)
            return dataclasses.replace(forest, threshold=threshold)
        missing_go_to_left = np.where(splits, ~forest.missing_go_to_left, True)
        return dataclasses.replace(forest, missing_go_to_left=missing_go_to_left)

    monkeypatch.setattr("evidence_model_client.served_model.compile_forest", broken_compile)

    with capture_logs() as logs:
        forest = compile_checked_forest(hist_model)

    assert forest is None
    assert logs[0]["event"] == "lockstep evaluator disagrees with predict_proba, not used"
    assert logs[0]["max_abs_difference"] > 1e-6
    assert logs[0]["log_level"] == "warning"


class _ConstantForest:
    """Stands in for a forest; returns 0.9 for every row so the chosen path is visible."""

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return np.tile([0.1, 0.9], (len(matrix), 1))


class _ConstantModel:
    classes_ = np.array([0, 1])

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return np.tile([0.8, 0.2], (len(matrix), 1))


def _served(forest: Any) -> ServedModel:
    return ServedModel(
        model=_ConstantModel(),
        model_name="EVIDENCE_RISK_MODEL",
        model_version="V2",
        feature_spec_hash=FEATURE_SPEC_HASH,
        feature_spec_version=FEATURE_SPEC_VERSION,
        created_at=None,
        builtin=False,
        forest=forest,
    )


def test_served_model_routes_by_batch_size() -> None:
    """Up to LOCKSTEP_MAX_ROWS rows go to the forest, larger batches to predict_proba."""
    served = _served(_ConstantForest())

    small = served.predict_proba(np.zeros((LOCKSTEP_MAX_ROWS, N)))
    large = served.predict_proba(np.zeros((LOCKSTEP_MAX_ROWS + 1, N)))

    assert set(small[:, 1].tolist()) == {0.9}
    assert set(large[:, 1].tolist()) == {0.2}
    assert served.uses_native_threads(LOCKSTEP_MAX_ROWS) is False
    assert served.uses_native_threads(LOCKSTEP_MAX_ROWS + 1) is True


def test_served_model_without_forest_uses_model() -> None:
    """Without a forest every batch goes to predict_proba under the thread limit."""
    served = _served(None)

    assert served.predict_proba(np.zeros((1, N)))[:, 1].tolist() == [0.2]
    assert served.uses_native_threads(1) is True


def _save_hist_artifact(directory: Path, model: HistGradientBoostingClassifier) -> None:
    matrix, labels = make_training_data(n_rows=600, seed=5)
    metadata = ArtifactMetadata(
        model_version="V2",
        metrics={},
        feature_stats=compute_feature_stats(matrix),
        feature_importances=dict.fromkeys(FEATURE_NAMES, 1.0 / N),
        training_summary={"rows": 600, "positive_rate": float(labels.mean())},
    )
    ModelArtifact(model=model, metadata=metadata).save(directory)


def _served_probabilities(base_url: str, matrix: np.ndarray) -> np.ndarray:
    response = httpx.post(
        f"{base_url}/predict-proba", content=encode_dataframe_split(matrix), timeout=30
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert [item[0] for item in data] == list(range(len(matrix)))
    return np.array([[o["output_feature_0"], o["output_feature_1"]] for _, o in data])


@pytest.mark.slow
def test_server_hist_model_exact(
    tmp_path: Path, hist_model: HistGradientBoostingClassifier
) -> None:
    """The real server returns scikit-learn's probabilities exactly, inline and in a thread."""
    _save_hist_artifact(tmp_path / "artifact", hist_model)
    matrix, _ = make_training_data(n_rows=LOCKSTEP_MAX_ROWS + 44, seed=12)
    server = start_server(tmp_path / "artifact", tmp_path / "server.log")
    try:
        one_row = _served_probabilities(server.base_url, matrix[:1])
        forty_rows = _served_probabilities(server.base_url, matrix[:40])
        all_rows = _served_probabilities(server.base_url, matrix)
    finally:
        stop_server(server)

    np.testing.assert_array_equal(one_row, _sklearn_proba(hist_model, matrix[:1]))
    np.testing.assert_array_equal(forty_rows, _sklearn_proba(hist_model, matrix[:40]))
    np.testing.assert_array_equal(all_rows, _sklearn_proba(hist_model, matrix))
    events = [
        json.loads(line)["event"]
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert "lockstep evaluator checked" in events


class _ThreadRecorder:
    """Records the name of the thread of each call, and scores 0.5 for every row."""

    classes_ = np.array([0, 1])

    def __init__(self) -> None:
        self.threads: list[str] = []

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return np.tile([0.5, 0.5], (len(matrix), 1))


@pytest.mark.parametrize(
    ("n_rows", "expected"),
    [(1, ["forest on loop"]), (LOCKSTEP_MAX_ROWS + 1, ["model in worker"])],
)
async def test_app_scores_small_body_by_rows(
    tmp_path: Path, n_rows: int, expected: list[str]
) -> None:
    """A small body goes to the forest on the event loop, unless it has too many rows for it.

    Rows of zeros keep 201 rows under the 64 KiB inline limit, so only the row count decides.
    """
    forest = _ThreadRecorder()
    model = _ThreadRecorder()
    served = dataclasses.replace(_served(forest), model=model)
    app = create_app(ServerSettings(artifact_dir=tmp_path), served=served)
    body = json.dumps({"data": [[i, *([0] * N)] for i in range(n_rows)]}).encode()
    assert len(body) <= INLINE_MAX_BODY_BYTES
    loop_thread = threading.current_thread().name

    async with app.router.lifespan_context(app):
        forest.threads.clear()
        model.threads.clear()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model.test") as client:
            response = await client.post("/predict-proba", content=body)

    assert response.status_code == 200
    assert len(response.json()["data"]) == n_rows
    calls = [
        f"forest {'on loop' if name == loop_thread else 'in worker'}" for name in forest.threads
    ]
    calls += [
        f"model {'on loop' if name == loop_thread else 'in worker'}" for name in model.threads
    ]
    assert calls == expected
