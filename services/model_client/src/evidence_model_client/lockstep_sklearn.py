"""Build a ``LockstepForest`` from a fitted scikit-learn gradient-boosting classifier.

NOTE: this reads private attributes of scikit-learn 1.9 (``_predictors``, ``_baseline_prediction``,
``_loss``, ``_preprocessor``, ``_raw_predict_init``). ``compile_forest`` rejects any model whose
attributes do not have the expected form, and the server compares the two paths on probe rows
before it uses the evaluator (``served_model.compile_checked_forest``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evidence_model_client.lockstep import LockstepForest, UnsupportedModelError

__all__ = ["compile_forest"]


@dataclass(frozen=True, slots=True)
class _Tree:
    """One fitted tree as parallel node arrays, in the tree's own node numbering."""

    is_leaf: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_go_to_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray


def compile_forest(model: Any) -> LockstepForest:
    """Build the lockstep evaluator of a fitted binary gradient-boosting classifier.

    Supported are ``HistGradientBoostingClassifier`` and ``GradientBoostingClassifier`` with the
    log loss and the default ``init`` (class prior) or ``init="zero"``.

    Raises:
        UnsupportedModelError: the model is of another type (subclasses included), has more than
            two classes, categorical splits, a preprocessing step, another loss or another
            ``init`` estimator.
    """
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    model_type = type(model)
    if model_type not in (HistGradientBoostingClassifier, GradientBoostingClassifier):
        msg = (
            f"model type {model_type.__name__} is not HistGradientBoostingClassifier or "
            "GradientBoostingClassifier"
        )
        raise UnsupportedModelError(msg)
    binary = getattr(model, "n_trees_per_iteration_", 0) == 1
    if type(getattr(model, "_loss", None)).__name__ != "HalfBinomialLoss" or not binary:
        msg = "only binary classification with the log loss is supported"
        raise UnsupportedModelError(msg)
    if model_type is HistGradientBoostingClassifier:
        return _compile_hist_gbm(model)
    return _compile_gbm(model)


def _compile_hist_gbm(model: Any) -> LockstepForest:
    if getattr(model, "_preprocessor", None) is not None:
        msg = "models with a categorical preprocessing step are not supported"
        raise UnsupportedModelError(msg)
    baseline = np.asarray(getattr(model, "_baseline_prediction", None), dtype=np.float64)
    if baseline.shape != (1, 1):
        msg = f"expected a (1, 1) baseline prediction, got shape {baseline.shape}"
        raise UnsupportedModelError(msg)
    predictors = getattr(model, "_predictors", None)
    if not predictors or any(len(per_iteration) != 1 for per_iteration in predictors):
        msg = "expected one tree per boosting iteration"
        raise UnsupportedModelError(msg)
    trees = []
    for per_iteration in predictors:
        nodes = per_iteration[0].nodes
        if nodes["is_categorical"].any():
            msg = "models with categorical splits are not supported"
            raise UnsupportedModelError(msg)
        trees.append(
            _Tree(
                is_leaf=nodes["is_leaf"].astype(bool),
                feature=nodes["feature_idx"],
                threshold=nodes["num_threshold"],
                missing_go_to_left=nodes["missing_go_to_left"].astype(bool),
                left=nodes["left"],
                right=nodes["right"],
                value=nodes["value"],
            )
        )
    return _flatten(trees, model, float(baseline[0, 0]), float32_input=False)


def _compile_gbm(model: Any) -> LockstepForest:
    # GradientBoostingClassifier.decision_function casts X to float32 and rejects NaN; each
    # stage adds learning_rate * leaf value (sklearn/ensemble/_gradient_boosting.pyx).
    from sklearn.dummy import DummyClassifier

    init = getattr(model, "init_", None)
    prior = type(init) is DummyClassifier and getattr(init, "strategy", None) == "prior"
    if not (prior or init == "zero"):
        msg = f"only the default init or init='zero' is supported, got {type(init).__name__}"
        raise UnsupportedModelError(msg)
    estimators = getattr(model, "estimators_", None)
    if estimators is None or estimators.ndim != 2 or estimators.shape[1] != 1:
        msg = "expected one regression tree per boosting stage"
        raise UnsupportedModelError(msg)
    # The prior does not depend on X, so the raw score of one row of zeros is every row's start.
    start = model._raw_predict_init(np.zeros((1, model.n_features_in_), dtype=np.float32))
    scale = float(model.learning_rate)
    trees = []
    for estimator in estimators[:, 0]:
        tree = estimator.tree_
        is_leaf = tree.children_left == -1
        trees.append(
            _Tree(
                is_leaf=is_leaf,
                feature=tree.feature,
                threshold=tree.threshold,
                missing_go_to_left=np.zeros(is_leaf.size, dtype=bool),
                left=tree.children_left,
                right=tree.children_right,
                value=scale * tree.value[:, 0, 0],
            )
        )
    return _flatten(trees, model, float(start[0, 0]), float32_input=True)


def _flatten(
    trees: list[_Tree], model: Any, baseline: float, *, float32_input: bool
) -> LockstepForest:
    feature: list[int] = []
    threshold: list[float] = []
    missing_go_to_left: list[bool] = []
    left: list[int] = []
    value: list[float] = []
    roots: list[int] = []
    depth = 0
    for tree in trees:
        offset = len(feature)
        roots.append(offset)
        order, levels = _breadth_first(tree)
        position = {old: new for new, old in enumerate(order)}
        for new, old in enumerate(order):
            if tree.is_leaf[old]:
                depth = max(depth, levels[new])
                feature.append(0)
                threshold.append(np.inf)
                missing_go_to_left.append(True)
                left.append(offset + new)
                value.append(float(tree.value[old]))
                continue
            feature.append(int(tree.feature[old]))
            threshold.append(float(tree.threshold[old]))
            missing_go_to_left.append(bool(tree.missing_go_to_left[old]))
            left.append(offset + position[int(tree.left[old])])
            value.append(0.0)
    return LockstepForest(
        feature=np.array(feature, dtype=np.intp),
        threshold=np.array(threshold, dtype=np.float64),
        missing_go_to_left=np.array(missing_go_to_left, dtype=bool),
        left=np.array(left, dtype=np.intp),
        value=np.array(value, dtype=np.float64),
        roots=np.array(roots, dtype=np.intp),
        depth=depth,
        baseline=baseline,
        n_features=int(model.n_features_in_),
        loss=model._loss,
        float32_input=float32_input,
    )


def _breadth_first(tree: _Tree) -> tuple[list[int], list[int]]:
    """Return one tree's node indices in breadth-first order (left child first) and levels."""
    order = [0]
    levels = [0]
    for index, old in enumerate(order):
        if not tree.is_leaf[old]:
            order.extend((int(tree.left[old]), int(tree.right[old])))
            levels.extend((levels[index] + 1, levels[index] + 1))
    return order, levels
