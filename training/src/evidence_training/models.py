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
    # 40 trees of up to 16 leaves. On 20,000 generated rows (3 splits) their hold-out ROC AUC was
    # 0.002 below that of 300 trees of 8 leaves at rate 0.03 (at most 0.003), and on 2,000 rows
    # (10 splits) 0.008 above it (docs/training.md). The fit takes a quarter of the CPU time, and
    # a 200-row batch scores about 6 times faster, because the cost of prediction grows with the
    # tree count times the depth. The fixed count keeps the fit time independent of a
    # validation split.
    return HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=40,
        max_leaf_nodes=16,
        min_samples_leaf=80,
        early_stopping=False,
        random_state=seed,
    )
