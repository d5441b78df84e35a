"""Tests of permutation feature importances."""

from __future__ import annotations

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_training.importance import permutation_importances
from sklearn.ensemble import HistGradientBoostingClassifier


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
