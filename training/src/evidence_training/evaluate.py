"""Hold-out evaluation: discrimination, probability quality and calibration of a risk score."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

__all__ = ["CalibrationBin", "ScoreMetrics", "calibration_bins", "score_metrics"]

# Scores of exactly 0 or 1 (the rule-based fallback produces them) would make log loss infinite.
_PROBABILITY_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """One quantile bin of predicted risk with the observed positive rate in it."""

    mean_predicted: float
    observed_rate: float
    rows: int


@dataclass(frozen=True, slots=True)
class ScoreMetrics:
    """Metrics of one score on one hold-out set."""

    roc_auc: float
    log_loss: float
    brier: float
    expected_calibration_error: float
    calibration: tuple[CalibrationBin, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the metrics as a JSON-ready dict."""
        return asdict(self)


def calibration_bins(
    labels: np.ndarray, scores: np.ndarray, *, n_bins: int = 10
) -> list[CalibrationBin]:
    """Group rows into up to ``n_bins`` quantile bins of the score and compare mean score to rate.

    Quantile bins keep every bin populated even when most scores are small. Tied scores stay in
    one bin, so a coarse score (such as the rule-based fallback) yields fewer bins.
    """
    edges = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1)))
    # Interior edges only: values below the second edge fall in bin 0, values at or above the
    # last interior edge in the last bin, so the top score is not left in a bin of its own.
    index = np.digitize(scores, edges[1:-1])
    bins: list[CalibrationBin] = []
    for b in range(edges.size - 1 if edges.size > 1 else 1):
        mask = index == b
        rows = int(mask.sum())
        if rows == 0:
            continue
        bins.append(
            CalibrationBin(
                mean_predicted=float(scores[mask].mean()),
                observed_rate=float(labels[mask].mean()),
                rows=rows,
            )
        )
    return bins


def score_metrics(labels: np.ndarray, scores: np.ndarray) -> ScoreMetrics:
    """Compute ROC AUC, log loss, Brier score and calibration of ``scores`` against ``labels``.

    The expected calibration error is the row-weighted mean of ``|mean_predicted - observed_rate|``
    over the quantile bins of :func:`calibration_bins`.

    Raises:
        ValueError: the arrays differ in length, hold fewer than two classes, or scores lie
            outside [0, 1].
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        msg = f"labels {labels.shape} and scores {scores.shape} must be 1-D of equal length"
        raise ValueError(msg)
    if np.unique(labels).size != 2:
        msg = "the hold-out set must contain both classes (0 and 1) to compute ROC AUC"
        raise ValueError(msg)
    if not np.isfinite(scores).all() or scores.min() < 0.0 or scores.max() > 1.0:
        msg = "scores must be finite probabilities in [0, 1]"
        raise ValueError(msg)
    bins = calibration_bins(labels, scores)
    total = sum(b.rows for b in bins)
    ece = sum(b.rows * abs(b.mean_predicted - b.observed_rate) for b in bins) / total
    clipped = np.clip(scores, _PROBABILITY_FLOOR, 1.0 - _PROBABILITY_FLOOR)
    return ScoreMetrics(
        roc_auc=float(roc_auc_score(labels, scores)),
        log_loss=float(log_loss(labels, clipped, labels=[0, 1])),
        brier=float(brier_score_loss(labels, scores)),
        expected_calibration_error=float(ece),
        calibration=tuple(bins),
    )
