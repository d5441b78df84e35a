"""The classifiers training can fit, built with fixed, documented hyperparameters."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

__all__ = ["ModelKind", "build_classifier"]


class ModelKind(StrEnum):
    """Model families selectable with ``evidence-train --model``."""

    GBM = "gbm"
    HIST_GBM = "hist-gbm"


def build_classifier(kind: ModelKind, *, seed: int) -> Any:
    """Return an unfitted binary classifier of the given family.

    ``gbm`` is scikit-learn's exact ``GradientBoostingClassifier``; ``hist-gbm`` bins features into
    at most 255 values and fits several times faster on tens of thousands of rows (figures in
    docs/training.md). Both use log loss, so their probabilities are comparable.

    Args:
        kind: the model family.
        seed: random state of subsampling and of the early-stopping split.
    """
    if kind is ModelKind.GBM:
        return GradientBoostingClassifier(
            n_estimators=200,
            learning_rate=0.1,
            max_depth=3,
            subsample=0.8,
            random_state=seed,
        )
    return HistGradientBoostingClassifier(
        learning_rate=0.08,
        max_iter=400,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        random_state=seed,
    )
