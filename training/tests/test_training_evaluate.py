"""Tests of hold-out metrics and calibration bins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evidence_training.evaluate import calibration_bins, score_metrics


def test_score_metrics_hand_computed_values() -> None:
    """ROC AUC, Brier score and log loss match values computed by hand on four rows."""
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])

    metrics = score_metrics(labels, scores)

    # Of the four (positive, negative) pairs, only (0.35, 0.4) is ordered wrongly.
    assert pytest.approx(metrics.roc_auc) == 0.75
    assert pytest.approx(metrics.brier) == (0.01 + 0.16 + 0.4225 + 0.04) / 4
    expected_log_loss = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert expected_log_loss == pytest.approx(metrics.log_loss)


def test_calibration_bins_two_quantile_bins() -> None:
    """Two quantile bins split low and high scores and report their observed rates."""
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.8, 0.9])

    bins = calibration_bins(labels, scores, n_bins=2)

    assert len(bins) == 2
    assert pytest.approx(bins[0].mean_predicted) == 0.15
    assert bins[0].observed_rate == 0.0
    assert pytest.approx(bins[1].mean_predicted) == 0.85
    assert bins[1].observed_rate == 1.0
    assert [b.rows for b in bins] == [2, 2]


def test_score_metrics_expected_calibration_error() -> None:
    """The calibration error is the row-weighted gap between mean score and observed rate."""
    labels = np.array([0, 0, 1, 1] * 5)
    scores = np.array([0.1, 0.2, 0.8, 0.9] * 5)

    metrics = score_metrics(labels, scores)

    assert pytest.approx(metrics.expected_calibration_error) == 0.15
    assert sum(b.rows for b in metrics.calibration) == 20


def test_calibration_bins_constant_score_one_bin() -> None:
    """A constant score, such as a fallback that fires on nothing, gives a single bin."""
    labels = np.array([0, 1, 0, 1, 1])
    scores = np.zeros(5)

    bins = calibration_bins(labels, scores)

    assert len(bins) == 1
    assert pytest.approx(bins[0].observed_rate) == 0.6
    assert bins[0].rows == 5


def test_score_metrics_zero_scores_finite_log_loss() -> None:
    """Scores of exactly 0 and 1 are clipped, so log loss stays finite."""
    labels = np.array([0, 1, 1, 0])
    scores = np.array([0.0, 1.0, 0.0, 1.0])

    metrics = score_metrics(labels, scores)

    assert math.isfinite(metrics.log_loss)
    assert pytest.approx(metrics.brier) == 0.5


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "both classes"),
        ([0, 1], [0.1, 0.2, 0.3], "equal length"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, 1], [0.1, float("nan")], r"\[0, 1\]"),
    ],
)
def test_score_metrics_bad_input_raises(
    labels: list[int], scores: list[float], message: str
) -> None:
    """Mismatched, single-class or out-of-range input raises ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        score_metrics(np.array(labels), np.array(scores))
