"""Vectorised NumPy evaluator of fitted gradient-boosted tree classifiers, exact by construction.

scikit-learn's ``predict_proba`` makes one Cython call per tree and validates the input on every
call. For a model of 300 trees that costs about 1.7 ms even for one row (0.34 ms for the 40
trees that ``evidence-train`` fits by default), almost all of it per-call overhead. This
evaluator advances every tree in lockstep instead, with one NumPy gather per tree level for all
trees and rows at once. One row then costs about 0.05 ms (figures in docs/benchmarks.md, "Model
client and server").

It reproduces scikit-learn 1.9's arithmetic step for step, so the results are bit-identical:

- ``HistGradientBoostingClassifier``: a split sends a row left when ``x <= num_threshold`` in
  float64, and a NaN left when the node's ``missing_go_to_left`` is set (``_predictor.pyx``,
  ``_predict_one_from_raw_data``). The raw score starts at ``_baseline_prediction``.
- ``GradientBoostingClassifier``: the inputs are rounded to float32 first, as its
  ``decision_function`` does, and compared with the float64 threshold. The raw score starts at
  the prior's log-odds, and each leaf value is ``learning_rate * value``
  (``_gradient_boosting.pyx``).
- Both add the leaf values tree by tree in iteration order, which ``np.add.accumulate`` does left
  to right, and take the probabilities from the model's own loss object (``_loss.predict_proba``).

Per row it is slower than scikit-learn's compiled loop, and more so for deeper trees. The two
cost the same at 200-500 rows on the benchmark machine, so ``ServedModel`` sends larger batches
to ``predict_proba``.

``lockstep_sklearn.compile_forest`` builds the evaluator from a fitted model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LockstepForest", "UnsupportedModelError", "probe_rows"]


class UnsupportedModelError(ValueError):
    """The model cannot be evaluated in lockstep; the message names the reason."""


@dataclass(frozen=True, slots=True)
class LockstepForest:
    """All trees of one binary ``HistGradientBoostingClassifier`` as flat node arrays.

    Nodes are numbered breadth first within each tree, so a split node's right child is
    ``left + 1``. A leaf points to itself with an infinite threshold, so rows that reached a
    leaf stay there for the remaining levels.
    """

    feature: np.ndarray
    """Feature index tested at each node (0 at leaves), intp."""
    threshold: np.ndarray
    """Split threshold of each node (+inf at leaves), float64."""
    missing_go_to_left: np.ndarray
    """Whether NaN goes to the left child (True at leaves), bool."""
    left: np.ndarray
    """Global index of the left child (the node itself at leaves), intp."""
    value: np.ndarray
    """Leaf value of each node (0 at split nodes), float64."""
    roots: np.ndarray
    """Global index of each tree's root, in iteration order, intp."""
    depth: int
    """Levels to descend: the depth of the deepest leaf."""
    baseline: float
    """Raw score before the first tree (``_baseline_prediction``)."""
    n_features: int
    """Columns the model was fitted on."""
    loss: Any
    """The model's loss object, whose ``predict_proba`` turns raw scores into probabilities."""
    float32_input: bool = False
    """Whether the model compares float32 copies of the inputs, as GradientBoostingClassifier
    does. Such a model rejects NaN, infinity and values beyond the float32 range."""

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return int(self.roots.size)

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Return the (n, 2) class probabilities, equal bit for bit to the model's own.

        Raises:
            ValueError: the matrix is not two-dimensional with ``n_features`` columns, or, for a
                model with ``float32_input``, contains NaN, infinity or a value beyond float32.
        """
        values = np.ascontiguousarray(matrix, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_features:
            msg = f"expected a matrix of shape (n, {self.n_features}), got {values.shape}"
            raise ValueError(msg)
        if self.float32_input:
            with np.errstate(over="ignore"):
                values = values.astype(np.float32).astype(np.float64)
            if not np.isfinite(values).all():
                # The server's request parser rejects such values with a 400 before this.
                msg = "the matrix has NaN, infinity or a value beyond the float32 range"
                raise ValueError(msg)
        probabilities: np.ndarray = self.loss.predict_proba(self.raw_predict(values))
        return probabilities

    def raw_predict(self, values: np.ndarray) -> np.ndarray:
        """Return the raw score (log-odds) of each row of a C-ordered float64 matrix."""
        n_rows = values.shape[0]
        flat = values.ravel()
        has_nan = bool(np.isnan(flat).any())
        row_offsets = (np.arange(n_rows, dtype=np.intp) * values.shape[1])[:, np.newaxis]
        nodes = np.broadcast_to(self.roots, (n_rows, self.roots.size))
        for _ in range(self.depth):
            x = flat[row_offsets + self.feature[nodes]]
            go_left = x <= self.threshold[nodes]
            if has_nan:
                go_left |= np.isnan(x) & self.missing_go_to_left[nodes]
            nodes = self.left[nodes] + ~go_left
        # Column 0 is the baseline, then one column per tree in iteration order, so the running
        # sum adds the leaf values in the order scikit-learn adds them.
        terms = np.empty((n_rows, self.roots.size + 1), dtype=np.float64)
        terms[:, 0] = self.baseline
        terms[:, 1:] = self.value[nodes]
        raw: np.ndarray = np.add.accumulate(terms, axis=1)[:, -1]
        return raw


def probe_rows(forest: LockstepForest, *, seed: int = 0) -> np.ndarray:
    """Return rows that exercise the splits of the forest, for comparing it with the model.

    Row ``r`` of the first block sets each feature to its ``r``-th distinct split threshold
    (cycling through them), and the next blocks to the neighbouring floats, so that every
    threshold appears exactly and just beside it. Features without splits get random values.
    Further rows are random within the thresholds' range, and constant rows of zeros and of
    extreme values. For a float64 model the neighbour is the next float64 above, and NaN, ±1e300
    and ±infinity are added. For a model that compares float32 copies of the inputs, the
    thresholds also appear rounded to float32 with both float32 neighbours, and the extremes are
    ±1e30, because such a model rejects NaN and infinity.
    """
    rng = np.random.default_rng(seed)
    splits = forest.left != np.arange(forest.left.size)
    per_feature = [
        np.unique(forest.threshold[splits & (forest.feature == column)])
        for column in range(forest.n_features)
    ]
    low = np.array([values[0] if values.size else -1.0 for values in per_feature])
    high = np.array([values[-1] if values.size else 1.0 for values in per_feature])
    span = np.maximum(high - low, 1.0)
    # scikit-learn sums a float32 matrix to check it for NaN, and ±3e38 values would overflow it.
    limit = 1e30 if forest.float32_input else np.inf

    def random_rows(count: int) -> np.ndarray:
        # Thresholds near the float64 limits overflow the range arithmetic, so such cells become 0.
        with np.errstate(over="ignore", invalid="ignore"):
            rows = low - 0.1 * span + rng.random((count, forest.n_features)) * 1.2 * span
        finite_rows: np.ndarray = np.clip(np.where(np.isfinite(rows), rows, 0.0), -limit, limit)
        return finite_rows

    count = max((values.size for values in per_feature), default=0)
    at_threshold = random_rows(count)
    for column, values in enumerate(per_feature):
        if values.size:
            at_threshold[:, column] = np.resize(rng.permutation(values), count)
    if forest.float32_input:
        rounded = np.clip(at_threshold, -limit, limit).astype(np.float32)
        # The float64 thresholds themselves lie between two float32 values, so they show
        # whether the inputs are rounded to float32 before the comparison.
        beside = [
            at_threshold,
            rounded,
            np.nextafter(rounded, np.float32(np.inf)),
            np.nextafter(rounded, np.float32(-np.inf)),
        ]
        extremes = [0.0, limit, -limit]
    else:
        beside = [at_threshold, np.nextafter(at_threshold, np.inf)]
        extremes = [0.0, np.nan, 1e300, -1e300, np.inf, -np.inf]
    blocks = [block.astype(np.float64) for block in beside]
    blocks.append(random_rows(200))
    if not forest.float32_input:
        with_nan = random_rows(200)
        with_nan[rng.random(with_nan.shape) < 0.1] = np.nan
        blocks.append(with_nan)
    constant = np.array(extremes, dtype=np.float64)
    blocks.append(np.repeat(constant[:, np.newaxis], forest.n_features, axis=1))
    return np.vstack(blocks)
