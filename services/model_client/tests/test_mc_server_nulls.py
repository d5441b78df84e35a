"""Null inputs (SQL NULL) on the real local model server, for models with and without NaN support.

Snowflake's inference server reads the feature columns as nullable DOUBLE, so a null reaches the
model as NaN. HistGradientBoostingClassifier scores NaN itself; GradientBoostingClassifier
cannot, and the local server then returns 400 naming the value's place.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.artifact import ModelArtifact
from evidence_model_client.served_model import LOCKSTEP_MAX_ROWS
from sklearn.ensemble import HistGradientBoostingClassifier

from .conftest import ServerProcess, make_training_data, start_server, stop_server, train_artifact

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hist_artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifact of a small HistGradientBoostingClassifier, which scores NaN natively."""
    directory = tmp_path_factory.mktemp("hist-artifact")
    train_artifact(
        directory, model=HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0)
    )
    return directory


@pytest.fixture(scope="module")
def hist_server(
    hist_artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The real model server serving the HistGradientBoostingClassifier artifact."""
    server = start_server(hist_artifact_dir, tmp_path_factory.mktemp("hist-log") / "server.log")
    try:
        yield server
    finally:
        stop_server(server)


def _with_nulls(n_rows: int) -> np.ndarray:
    """Rows like the training data with NaN in a pattern: none, one, several and all columns."""
    matrix, _ = make_training_data(n_rows=n_rows, seed=13)
    matrix[1, 4] = np.nan
    matrix[2, ::7] = np.nan
    matrix[3, :] = np.nan
    return matrix


def _json_rows(matrix: np.ndarray) -> list[list[float | None]]:
    """Return the rows as JSON values, with null where the matrix contains NaN."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in matrix]


def _flat_body(matrix: np.ndarray) -> dict[str, object]:
    return {"data": [[index, *row] for index, row in enumerate(_json_rows(matrix))]}


def _probabilities(response: httpx.Response) -> np.ndarray:
    data = response.json()["data"]
    return np.array([[out["output_feature_0"], out["output_feature_1"]] for _, out in data])


@pytest.mark.parametrize("n_rows", [5, LOCKSTEP_MAX_ROWS + 50])
def test_nulls_scored_as_missing(
    hist_server: ServerProcess, hist_artifact_dir: Path, n_rows: int
) -> None:
    """Nulls score as NaN does in the model itself, on the lockstep and scikit-learn paths."""
    matrix = _with_nulls(n_rows)
    expected = ModelArtifact.load(hist_artifact_dir).model.predict_proba(matrix)

    response = httpx.post(f"{hist_server.base_url}/predict-proba", json=_flat_body(matrix))

    assert response.status_code == 200
    np.testing.assert_allclose(expected, _probabilities(response), rtol=0, atol=1e-12)
    assert [row[0] for row in response.json()["data"]] == list(range(n_rows))


def test_null_labels_from_model(hist_server: ServerProcess, hist_artifact_dir: Path) -> None:
    """/predict with nulls returns the model's own labels."""
    matrix = _with_nulls(5)
    expected = ModelArtifact.load(hist_artifact_dir).model.predict(matrix).tolist()

    response = httpx.post(f"{hist_server.base_url}/predict", json=_flat_body(matrix))

    assert response.status_code == 200
    assert [out["output_feature_0"] for _, out in response.json()["data"]] == expected


def test_null_records_shape_scored(hist_server: ServerProcess, hist_artifact_dir: Path) -> None:
    """A null in a dataframe_records body is a missing value as well."""
    matrix = _with_nulls(5)
    expected = ModelArtifact.load(hist_artifact_dir).model.predict_proba(matrix)
    records = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in _json_rows(matrix)]

    response = httpx.post(
        f"{hist_server.base_url}/predict-proba", json={"dataframe_records": records}
    )

    assert response.status_code == 200
    np.testing.assert_allclose(expected, _probabilities(response), rtol=0, atol=1e-12)


def test_null_rejected_without_nan_support(model_server: ServerProcess) -> None:
    """A model that cannot score NaN gets a 400 naming the first null, never a 500."""
    matrix = _with_nulls(5)
    matrix[1, 4] = 1.0  # the first null is then row 2, column 0

    response = httpx.post(f"{model_server.base_url}/predict-proba", json=_flat_body(matrix))

    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"column {FEATURE_NAMES[0]} of row 2 is null, and the served model "
        "(GradientBoostingClassifier) cannot score missing values; send a number"
    )


def test_no_null_still_scored_without_nan_support(
    model_server: ServerProcess, artifact_dir: Path
) -> None:
    """The check for nulls leaves rows without any untouched."""
    matrix, _ = make_training_data(n_rows=3, seed=17)
    expected = ModelArtifact.load(artifact_dir).model.predict_proba(matrix)

    response = httpx.post(f"{model_server.base_url}/predict-proba", json=_flat_body(matrix))

    assert response.status_code == 200
    np.testing.assert_allclose(expected, _probabilities(response), rtol=0, atol=1e-12)
