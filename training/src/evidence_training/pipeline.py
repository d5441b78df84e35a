"""One training run: split, fit, evaluate against the fallback, then write artifact, plots, report.

The saved model is the one evaluated: it is fitted on the training split only and never refitted
on the hold-out rows, so the metrics in ``report.json`` and ``metadata.json`` describe exactly the
classifier in ``model.joblib``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from evidence_features import FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION
from evidence_model_client.artifact import ArtifactMetadata, ModelArtifact, compute_feature_stats
from evidence_model_client.fallback import rule_based_scores
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from evidence_training.dataset import TrainingSet
from evidence_training.errors import TrainingError
from evidence_training.evaluate import ScoreMetrics, score_metrics
from evidence_training.importance import permutation_importances
from evidence_training.models import ModelKind, build_classifier
from evidence_training.options import TrainingOptions
from evidence_training.plots import plot_calibration, plot_feature_importance, plot_roc

__all__ = [
    "CALIBRATION_PLOT",
    "IMPORTANCE_PLOT",
    "REPORT_FILE",
    "ROC_PLOT",
    "TrainingOptions",
    "TrainingResult",
    "run_training",
]

REPORT_FILE = "report.json"
ROC_PLOT = "roc.png"
CALIBRATION_PLOT = "calibration.png"
IMPORTANCE_PLOT = "feature_importance.png"
_MIN_ROWS_PER_CLASS = 5


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """Outcome of a run: the saved artifact, both evaluations and the report's location."""

    artifact: ModelArtifact
    model_metrics: ScoreMetrics
    fallback_metrics: ScoreMetrics
    fit_seconds: float
    train_rows: int
    test_rows: int
    report_path: Path


def run_training(
    training_set: TrainingSet, out_dir: str | Path, options: TrainingOptions
) -> TrainingResult:
    """Train, evaluate and save a model artifact with its report and plots into ``out_dir``.

    Steps: stratified hold-out split (``options.test_fraction``), fit, and scores of the hold-out
    set from the model and from ``rule_based_scores``. Permutation importances then run in a
    second thread while this one draws the ROC and calibration plots and computes the
    training-split feature statistics. Last come the importance plot, ``model.joblib`` +
    ``metadata.json`` (through ``ModelArtifact``) and ``report.json``.

    Raises:
        TrainingError: a class has fewer than 5 rows, ``test_fraction`` is outside (0, 0.5],
            the training split has fewer rows than twice the model's ``min_samples_leaf``, the
            fitted model gives every hold-out row the same score (no file is written then), or
            ``out_dir`` cannot be created as a directory.
        ArtifactError: the artifact fails its own validation (from ``evidence_model_client``).
    """
    _check_trainable(training_set, options)
    # scikit-learn's OpenMP loops (HistGradientBoosting fit and predict) ran 16 to 30 times
    # slower when their threads competed with other busy processes for the cores (measured in
    # docs/training.md), so the thread count is explicit and defaults to 1.
    with threadpool_limits(limits=options.threads):
        return _run(training_set, Path(out_dir), options)


def _run(training_set: TrainingSet, out: Path, options: TrainingOptions) -> TrainingResult:
    x_train, x_test, y_train, y_test = train_test_split(
        training_set.matrix,
        training_set.labels,
        test_size=options.test_fraction,
        stratify=training_set.labels,
        random_state=options.seed,
    )
    model = build_classifier(options.model_kind, seed=options.seed)
    _check_leaf_rows(model, len(y_train), len(training_set.labels), options)
    _make_out_directory(out)
    # disable=None: no bar when stderr is no terminal, such as the stack's log file.
    steps = tqdm(total=5, desc="training", unit="step", disable=None if options.progress else True)

    steps.set_postfix_str(f"fit {options.model_kind.value}")
    started = time.perf_counter()
    model.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    steps.update()

    steps.set_postfix_str("evaluate")
    model_scores = np.asarray(model.predict_proba(x_test)[:, 1], dtype=np.float64)
    _check_scores_vary(model, model_scores, len(y_train), options)
    fallback_scores = rule_based_scores(x_test)
    model_metrics = score_metrics(y_test, model_scores)
    fallback_metrics = score_metrics(y_test, fallback_scores)
    steps.update()

    steps.set_postfix_str("importance and plots")
    # The importance predictions run in a thread while this thread draws the ROC and calibration
    # plots. HistGradientBoosting's predict loop releases the GIL, so on two cores the two steps
    # overlap instead of adding up.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="importance") as pool:
        pending = pool.submit(_importances_in_thread, model, x_test, y_test, options)
        plots = _write_score_plots(
            out, y_test, model_scores, fallback_scores, model_metrics, fallback_metrics
        )
        feature_stats = compute_feature_stats(x_train)
        importances = pending.result()
    plot_feature_importance(importances, out / IMPORTANCE_PLOT)
    plots["feature_importance"] = IMPORTANCE_PLOT
    steps.update()

    steps.set_postfix_str("artifact")
    summary = _training_summary(training_set, y_train, len(y_test), options, fit_seconds)
    metadata = ArtifactMetadata(
        model_version=options.version,
        metrics=_flat_metrics(model_metrics, fallback_metrics, len(y_test)),
        feature_stats=feature_stats,
        feature_importances=importances,
        training_summary=summary,
    )
    artifact = ModelArtifact(model=model, metadata=metadata)
    artifact.save(out)
    steps.update()

    steps.set_postfix_str("report")
    report_path = out / REPORT_FILE
    report = {
        "model_name": metadata.model_name,
        "model_version": metadata.model_version,
        "created_at": metadata.created_at.isoformat(),
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "feature_spec_hash": FEATURE_SPEC_HASH,
        "training_summary": summary,
        "model": model_metrics.to_json(),
        "fallback": fallback_metrics.to_json(),
        "roc_auc_margin_over_fallback": model_metrics.roc_auc - fallback_metrics.roc_auc,
        "top_features": sorted(importances.items(), key=lambda item: item[1], reverse=True)[:20],
        "plots": plots,
    }
    report_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    steps.update()
    steps.close()
    return TrainingResult(
        artifact=artifact,
        model_metrics=model_metrics,
        fallback_metrics=fallback_metrics,
        fit_seconds=fit_seconds,
        train_rows=len(y_train),
        test_rows=len(y_test),
        report_path=report_path,
    )


def _make_out_directory(out: Path) -> None:
    # Created before the fit, so a path that cannot be a directory fails in seconds, not after
    # the whole run. evidence-train checks the path before it builds the data as well.
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = (
            f"cannot create the artifact directory {str(out)!r}: {exc.strerror or exc}; pass a "
            "directory path whose existing parts are all directories you can write to"
        )
        raise TrainingError(msg) from exc


def _importances_in_thread(
    model: Any, matrix: np.ndarray, labels: np.ndarray, options: TrainingOptions
) -> dict[str, float]:
    # OpenMP keeps the thread count per calling thread, so the limit set in run_training does
    # not reach a new thread. Without this one, a 2,000-row run used 24 CPU seconds instead of 8.
    with threadpool_limits(limits=options.threads):
        return permutation_importances(model, matrix, labels, seed=options.seed)


def _check_trainable(training_set: TrainingSet, options: TrainingOptions) -> None:
    if not 0.0 < options.test_fraction <= 0.5:
        msg = f"test fraction {options.test_fraction!r} must be in (0, 0.5]"
        raise TrainingError(msg)
    counts = np.bincount(training_set.labels, minlength=2)
    if counts.size != 2 or counts.min() < _MIN_ROWS_PER_CLASS:
        msg = (
            f"the training set has {int(counts[0])} rows labelled 0 and {int(counts[1:].sum())} "
            f"labelled 1; a stratified split needs at least {_MIN_ROWS_PER_CLASS} of each, so "
            "add data or generate more synthetic rows"
        )
        raise TrainingError(msg)


def _check_leaf_rows(
    model: Any, train_rows: int, total_rows: int, options: TrainingOptions
) -> None:
    # A tree splits a node only into two leaves of at least min_samples_leaf rows each, so a
    # smaller training split gives a model without splits that scores every applicant alike.
    leaf_rows = int(model.min_samples_leaf)
    if train_rows >= 2 * leaf_rows:
        return
    needed = _rows_for_training_split(2 * leaf_rows, options.test_fraction)
    msg = (
        f"the training split has {train_rows} of {total_rows} rows, fewer than the "
        f"{2 * leaf_rows} that {options.model_kind.value} needs to split a node (two leaves of at "
        f"least {leaf_rows} rows, its min_samples_leaf), so the model would give every applicant "
        f"the same score; train on at least {needed} rows at --test-fraction "
        f"{options.test_fraction:g}{_smaller_leaf_hint(options)}"
    )
    raise TrainingError(msg)


def _check_scores_vary(
    model: Any, scores: np.ndarray, train_rows: int, options: TrainingOptions
) -> None:
    # Equal hold-out scores mean that no tree split a node in a way that separates these rows,
    # so ROC AUC would be 0.5 and the artifact would score every applicant alike.
    if scores.size == 0 or np.ptp(scores) > 0.0:
        return
    leaf_rows = int(model.min_samples_leaf)
    msg = (
        f"the fitted {options.model_kind.value} model gives all {scores.size} hold-out rows the "
        f"same score ({float(scores[0]):.3f}), so it cannot rank applicants, and no artifact "
        f"was written. Its trees split a node only into two leaves of at least {leaf_rows} "
        f"training rows (min_samples_leaf) that differ in a feature, and the training split has "
        f"{train_rows} rows; train on more rows with varied evidence"
        f"{_smaller_leaf_hint(options)}"
    )
    raise TrainingError(msg)


def _smaller_leaf_hint(options: TrainingOptions) -> str:
    if options.model_kind is ModelKind.GBM:
        return ""
    return ", or pass --model gbm, whose leaves may hold 1 row"


def _rows_for_training_split(train_rows: int, test_fraction: float) -> int:
    """Return the smallest row count whose training split has at least ``train_rows`` rows."""
    total = train_rows
    # train_test_split holds out ceil(test_fraction * rows) rows (scikit-learn 1.9).
    while total - math.ceil(test_fraction * total) < train_rows:
        total += 1
    return total


def _training_summary(
    training_set: TrainingSet,
    y_train: np.ndarray,
    test_rows: int,
    options: TrainingOptions,
    fit_seconds: float,
) -> dict[str, Any]:
    return {
        "rows": len(y_train),
        "positive_rate": float(y_train.mean()),
        "test_rows": test_rows,
        "test_fraction": options.test_fraction,
        "source": training_set.source,
        "model_kind": options.model_kind.value,
        "seed": options.seed,
        "fit_seconds": round(fit_seconds, 3),
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
        # Counted over the whole set, before the hold-out split.
        **training_set.parse_errors.to_json(),
    }


def _flat_metrics(
    model: ScoreMetrics, fallback: ScoreMetrics, test_rows: int
) -> dict[str, float | int]:
    return {
        "roc_auc": model.roc_auc,
        "log_loss": model.log_loss,
        "brier": model.brier,
        "expected_calibration_error": model.expected_calibration_error,
        "fallback_roc_auc": fallback.roc_auc,
        "fallback_brier": fallback.brier,
        "test_rows": test_rows,
    }


def _write_score_plots(
    out: Path,
    labels: np.ndarray,
    model_scores: np.ndarray,
    fallback_scores: np.ndarray,
    model_metrics: ScoreMetrics,
    fallback_metrics: ScoreMetrics,
) -> dict[str, str]:
    curves = {"model": model_scores, "rule-based fallback": fallback_scores}
    aucs = {"model": model_metrics.roc_auc, "rule-based fallback": fallback_metrics.roc_auc}
    calibration = {
        "model": model_metrics.calibration,
        "rule-based fallback": fallback_metrics.calibration,
    }
    plot_roc(labels, curves, aucs, out / ROC_PLOT)
    plot_calibration(calibration, out / CALIBRATION_PLOT)
    return {"roc": ROC_PLOT, "calibration": CALIBRATION_PLOT}
