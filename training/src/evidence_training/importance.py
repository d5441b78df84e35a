"""Model-agnostic feature importances for the artifact, from permutation on the hold-out set."""

from __future__ import annotations

from typing import Any

import numpy as np
from evidence_features import FEATURE_NAMES

# scipy ships no type stubs, and the root mypy configuration lists no override for it.
from scipy.stats import rankdata  # type: ignore[import-untyped]

__all__ = ["permutation_importances"]

_MAX_ROWS = 1000
# Rows per predict_proba call. Each call on a fitted HistGradientBoostingClassifier has a fixed
# cost per tree, so permuted copies are stacked up to this size. Larger batches were slower per
# row again (about 16 us per row at 600 to 6,000 rows, 51 us at 60,000, one thread), presumably
# because the matrix no longer fits in the CPU cache.
_BATCH_ROWS = 4_000


def permutation_importances(
    model: Any,
    matrix: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    n_repeats: int = 2,
) -> dict[str, float]:
    """Measure how much hold-out ROC AUC drops when each feature is shuffled.

    This is the method of ``sklearn.inspection.permutation_importance`` with
    ``scoring="roc_auc"``: the mean over ``n_repeats`` shuffles of the baseline ROC AUC minus the
    ROC AUC with one column permuted. The permuted copies are stacked and scored in a few large
    ``predict_proba`` calls instead of one call per feature and repeat. The same method serves
    every model family, so ``gbm`` and ``hist-gbm`` artifacts carry comparable numbers
    (``HistGradientBoostingClassifier`` has no impurity importances). Drops below zero are noise
    and are clipped to 0, and the rest are scaled to sum to 1. At most 1,000 hold-out rows are
    used, sampled with ``seed``.

    Returns:
        ``{feature_name: importance}`` for every feature, each >= 0, summing to 1 unless no
        feature matters at all (then all are 0).

    Raises:
        ValueError: ``labels`` does not contain both classes, or ``n_repeats`` is below 1.
    """
    if n_repeats < 1:
        msg = f"n_repeats must be at least 1, got {n_repeats}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    rows = matrix.shape[0]
    if rows > _MAX_ROWS:
        chosen = rng.choice(rows, size=_MAX_ROWS, replace=False)
        matrix, labels = matrix[chosen], labels[chosen]
        rows = _MAX_ROWS
    labels = np.asarray(labels, dtype=np.int64)
    if np.unique(labels).size != 2:
        msg = "permutation importance needs both classes (0 and 1) among the hold-out labels"
        raise ValueError(msg)

    baseline = _roc_auc_rows(labels, _positive_scores(model, matrix)[np.newaxis, :])[0]
    # One task per (feature, repeat), feature-major, each with its own row permutation.
    tasks = [
        (column, rng.permutation(rows))
        for column in range(matrix.shape[1])
        for _ in range(n_repeats)
    ]
    per_call = max(1, _BATCH_ROWS // rows)
    aucs: list[np.ndarray] = []
    for start in range(0, len(tasks), per_call):
        batch = tasks[start : start + per_call]
        stacked = np.tile(matrix, (len(batch), 1))
        for offset, (column, order) in enumerate(batch):
            stacked[offset * rows : (offset + 1) * rows, column] = matrix[order, column]
        scores = _positive_scores(model, stacked).reshape(len(batch), rows)
        aucs.append(_roc_auc_rows(labels, scores))
    permuted = np.concatenate(aucs).reshape(matrix.shape[1], n_repeats)

    drops = np.clip(baseline - permuted.mean(axis=1), 0.0, None)
    total = float(drops.sum())
    weights = drops / total if total > 0 else drops
    return {name: float(w) for name, w in zip(FEATURE_NAMES, weights, strict=True)}


def _positive_scores(model: Any, matrix: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(matrix)[:, 1], dtype=np.float64)


def _roc_auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Compute ROC AUC of every row of ``scores`` (shape (k, n)) against ``labels`` (shape (n,)).

    The Mann-Whitney form with average ranks for ties, which equals
    ``sklearn.metrics.roc_auc_score`` (tested against it).
    """
    positives = labels == 1
    n_pos = int(positives.sum())
    n_neg = labels.size - n_pos
    ranks = rankdata(scores, axis=1)
    rank_sum = ranks[:, positives].sum(axis=1)
    return np.asarray((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg), dtype=np.float64)
