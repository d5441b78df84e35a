"""Fit-time benchmark of the two model families on the same generated training matrix.

Run with ``pytest benchmarks/training --benchmark-only``. The gate compares the two fits measured
in the same run, never an absolute time.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from evidence_training.dataset import TrainingSet, make_synthetic_set
from evidence_training.models import ModelKind, build_classifier
from threadpoolctl import threadpool_limits

_ROWS = 5000


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
