"""The classifiers training can fit, built with fixed, documented hyperparameters."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = ["ModelKind", "build_classifier"]


class ModelKind(StrEnum):
    """Model families selectable with ``evidence-train --model``."""

    GBM = "gbm"
    HIST_GBM = "hist-gbm"


def build_classifier(kind: ModelKind, *, seed: int) -> Any:
    """Return an unfitted binary classifier of the given family.

    ``gbm`` is scikit-learn's exact ``GradientBoostingClassifier``. ``hist-gbm`` bins features into
    at most 255 values and fits several times faster on tens of thousands of rows (figures in
    docs/training.md). Both use log loss, so their probabilities are comparable.

    Args:
        kind: the model family.
        seed: random state of the row subsampling (``gbm``) and of tie-breaking.
    """
    # Imported here so that the command line can use ModelKind without importing scikit-learn.
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    if kind is ModelKind.GBM:
        return GradientBoostingClassifier(
            n_estimators=200,
            learning_rate=0.1,
            max_depth=3,
            subsample=0.8,
            random_state=seed,
        )
    # Chosen on 20,000 generated rows (docs/training.md): a slow learning rate with small trees
    # and a fixed iteration count beat early-stopped variants slightly in ROC AUC and log loss,
    # and a fixed count makes the fit time independent of the validation split.
    return HistGradientBoostingClassifier(
        learning_rate=0.03,
        max_iter=300,
        max_leaf_nodes=8,
        min_samples_leaf=80,
        early_stopping=False,
        random_state=seed,
    )
