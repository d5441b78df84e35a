"""Fit-time benchmark of the two model families, and of permutation importance, on generated rows.

Run with ``pytest benchmarks/training --benchmark-only``. The gates compare timings measured in the
same run, never an absolute time.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from evidence_training.dataset import TrainingSet, make_synthetic_set
from evidence_training.importance import permutation_importances
from evidence_training.models import ModelKind, build_classifier
from sklearn.inspection import permutation_importance
from threadpoolctl import threadpool_limits

_ROWS = 5000
_IMPORTANCE_ROWS = 200


@pytest.fixture(scope="module")
def bench_set() -> TrainingSet:
    """Return 5,000 generated rows with their features."""
    return make_synthetic_set(_ROWS, seed=4, jobs=2, progress=False)


def _fit_seconds(kind: ModelKind, matrix: np.ndarray, labels: np.ndarray) -> float:
    # CPU seconds of this process: on one thread they do not grow when other processes compete
    # for the cores, unlike wall time.
    model: Any = build_classifier(kind, seed=0)
    with threadpool_limits(limits=1):
        started = time.process_time()
        model.fit(matrix, labels)
        return time.process_time() - started


@pytest.mark.parametrize("kind", list(ModelKind), ids=lambda kind: kind.value)
def test_bench_fit(benchmark: Any, bench_set: TrainingSet, kind: ModelKind) -> None:
    """Fit one model family on one OpenMP thread."""
    benchmark.pedantic(
        _fit_seconds, args=(kind, bench_set.matrix, bench_set.labels), rounds=1, iterations=1
    )


@pytest.mark.benchmark_gate
def test_bench_hist_gbm_faster_than_gbm(bench_set: TrainingSet) -> None:
    """The default hist-gbm fits in less than half the time of the gbm baseline."""
    gbm = _fit_seconds(ModelKind.GBM, bench_set.matrix, bench_set.labels)
    hist = _fit_seconds(ModelKind.HIST_GBM, bench_set.matrix, bench_set.labels)

    assert hist < 0.5 * gbm, f"hist-gbm {hist:.2f} s, gbm {gbm:.2f} s"


def _importance_seconds(batched: bool, model: Any, matrix: np.ndarray, labels: np.ndarray) -> float:
    with threadpool_limits(limits=1):
        started = time.process_time()
        if batched:
            permutation_importances(model, matrix, labels, seed=0)
        else:
            permutation_importance(
                model, matrix, labels, scoring="roc_auc", n_repeats=2, random_state=0, n_jobs=1
            )
        return time.process_time() - started


@pytest.mark.benchmark_gate
def test_bench_batched_importance_faster(bench_set: TrainingSet) -> None:
    """Stacked permutation importance beats one predict_proba call per copy on 200 rows.

    200 hold-out rows is the size of a 1,000-row training run, where the per-call cost of
    scikit-learn's scorer and of the 300-tree model dominates.
    """
    train_rows = _ROWS - _IMPORTANCE_ROWS
    model: Any = build_classifier(ModelKind.HIST_GBM, seed=0)
    with threadpool_limits(limits=1):
        model.fit(bench_set.matrix[:train_rows], bench_set.labels[:train_rows])
    matrix, labels = bench_set.matrix[train_rows:], bench_set.labels[train_rows:]

    per_call = _importance_seconds(False, model, matrix, labels)
    batched = _importance_seconds(True, model, matrix, labels)

    assert batched < 0.7 * per_call, f"batched {batched:.2f} s, per call {per_call:.2f} s"
