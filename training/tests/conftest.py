"""Shared fixtures of the training tests: small fitted models and artifacts on random data."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.artifact import ArtifactMetadata, ModelArtifact, compute_feature_stats
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _one_openmp_thread() -> Iterator[None]:
    """Run scikit-learn's OpenMP loops on one thread, as training does by default.

    Other test processes share the cores, and competing OpenMP threads made HistGradientBoosting
    predictions about 30 times slower.
    """
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def signal_data() -> tuple[np.ndarray, np.ndarray]:
    """Return 300 rows of 105 random features where only column 0 decides the label."""
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(300, len(FEATURE_NAMES)))
    labels = (matrix[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(np.int64)
    return matrix, labels


@pytest.fixture(scope="session")
def fitted_model(signal_data: tuple[np.ndarray, np.ndarray]) -> HistGradientBoostingClassifier:
    """Return a classifier fitted on ``signal_data`` as a NumPy matrix."""
    matrix, labels = signal_data
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    model.fit(matrix, labels)
    return model


@pytest.fixture
def small_artifact(
    signal_data: tuple[np.ndarray, np.ndarray], fitted_model: HistGradientBoostingClassifier
) -> ModelArtifact:
    """Return an in-memory artifact of ``fitted_model`` with real feature stats."""
    matrix, labels = signal_data
    metadata = ArtifactMetadata(
        model_version="V2",
        metrics={"roc_auc": 0.9, "fallback_roc_auc": 0.6},
        feature_stats=compute_feature_stats(matrix),
        feature_importances={name: 1.0 / len(FEATURE_NAMES) for name in FEATURE_NAMES},
        training_summary={"rows": int(labels.size), "positive_rate": float(labels.mean())},
    )
    return ModelArtifact(model=fitted_model, metadata=metadata)
