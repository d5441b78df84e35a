"""Tests of permutation feature importances."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_training.importance import _roc_auc_rows, permutation_importances
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score


def test_permutation_importances_signal_column_ranks_first(
    signal_data: tuple[np.ndarray, np.ndarray], fitted_model: HistGradientBoostingClassifier
) -> None:
    """The one informative column gets most of the weight, and weights are >= 0 and sum to 1."""
    matrix, labels = signal_data

    importances = permutation_importances(fitted_model, matrix, labels, seed=0)

    assert list(FEATURE_NAMES) == list(importances)
    assert FEATURE_NAMES[0] == max(importances, key=importances.__getitem__)
    assert importances[FEATURE_NAMES[0]] > 0.5
    assert all(weight >= 0.0 for weight in importances.values())
    assert pytest.approx(sum(importances.values())) == 1.0


def test_permutation_importances_useless_model_all_zero() -> None:
    """A model that ignores every feature gets all-zero importances, not a division by zero."""
    rng = np.random.default_rng(1)
    matrix = np.zeros((200, len(FEATURE_NAMES)))
    labels = rng.integers(0, 2, size=200)
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(matrix, labels)

    importances = permutation_importances(model, matrix, labels, seed=0)

    assert {0.0} == set(importances.values())


def test_roc_auc_rows_equals_sklearn_with_ties() -> None:
    """The batched rank form matches roc_auc_score per row, including tied scores."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, size=50)
    scores = np.round(rng.uniform(size=(3, 50)), 1)  # one decimal: many ties

    batched = _roc_auc_rows(labels, scores)

    for row, auc in zip(scores, batched, strict=True):
        assert pytest.approx(roc_auc_score(labels, row), abs=1e-12) == auc


def test_roc_auc_rows_hand_computed() -> None:
    """Positives above all negatives give 1; one swapped pair of four gives 0.75."""
    labels = np.array([0, 0, 1, 1])

    batched = _roc_auc_rows(labels, np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.3, 0.2, 0.4]]))

    assert batched.tolist() == [1.0, 0.75]


def test_permutation_importances_batches_agree(
    signal_data: tuple[np.ndarray, np.ndarray], fitted_model: HistGradientBoostingClassifier
) -> None:
    """Scoring one permuted copy per call gives the same weights as the stacked calls."""
    matrix, labels = signal_data

    stacked = permutation_importances(fitted_model, matrix, labels, seed=4)
    with patch("evidence_training.importance._BATCH_ROWS", 1):
        one_by_one = permutation_importances(fitted_model, matrix, labels, seed=4)

    assert stacked == pytest.approx(one_by_one, abs=1e-12)


def test_permutation_importances_bad_input_raises(
    signal_data: tuple[np.ndarray, np.ndarray], fitted_model: HistGradientBoostingClassifier
) -> None:
    """Zero repeats and a single-class label set are rejected with a message."""
    matrix, labels = signal_data

    with pytest.raises(ValueError, match="n_repeats must be at least 1, got 0"):
        permutation_importances(fitted_model, matrix, labels, seed=0, n_repeats=0)
    with pytest.raises(ValueError, match="needs both classes"):
        permutation_importances(fitted_model, matrix, np.zeros_like(labels), seed=0)
