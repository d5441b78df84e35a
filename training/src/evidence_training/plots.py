"""PNG plots of a training run: ROC curves, calibration and feature importance.

Matplotlib runs on the non-interactive Agg backend through ``Figure`` objects, so plotting works
without a display and never touches pyplot's global state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from evidence_training.evaluate import CalibrationBin

__all__ = ["plot_calibration", "plot_feature_importance", "plot_roc"]

_DPI = 110


def plot_roc(
    labels: np.ndarray,
    curves: Mapping[str, np.ndarray],
    aucs: Mapping[str, float],
    path: Path,
) -> Path:
    """Draw one ROC curve per named score (model and rule-based fallback) into ``path``."""
    figure = Figure(figsize=(6, 5))
    axes = figure.add_subplot()
    for name, scores in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        axes.plot(fpr, tpr, label=f"{name} (AUC {aucs[name]:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC on the hold-out set")
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_calibration(bins: Mapping[str, Sequence[CalibrationBin]], path: Path) -> Path:
    """Draw observed positive rate against mean predicted risk per quantile bin."""
    figure = Figure(figsize=(6, 5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    for name, series in bins.items():
        axes.plot(
            [b.mean_predicted for b in series],
            [b.observed_rate for b in series],
            marker="o",
            label=name,
        )
    axes.set_xlabel("mean predicted risk")
    axes.set_ylabel("observed positive rate")
    axes.set_title("Calibration on the hold-out set (quantile bins)")
    axes.legend(loc="upper left")
    return _save(figure, path)


def plot_feature_importance(importances: Mapping[str, float], path: Path, *, top: int = 20) -> Path:
    """Draw the ``top`` features by importance as a horizontal bar chart."""
    ranked = sorted(importances.items(), key=lambda item: item[1], reverse=True)[:top]
    figure = Figure(figsize=(7, 0.3 * len(ranked) + 1.5))
    axes = figure.add_subplot()
    names = [name for name, _ in reversed(ranked)]
    values = [value for _, value in reversed(ranked)]
    axes.barh(names, values)
    axes.set_xlabel("share of ROC AUC drop when permuted")
    axes.set_title(f"Top {len(ranked)} features (permutation importance)")
    axes.tick_params(axis="y", labelsize=7)
    # Fixed margins in inches instead of tight_layout, which measured the text by rendering it
    # and cost about as much as drawing all three plots. The left margin fits the longest name
    # at 7 pt (upper-case letters are at most about 0.07 in wide).
    width, height = figure.get_size_inches()
    longest = max((len(name) for name in names), default=0)
    figure.subplots_adjust(
        left=min(0.6, (0.2 + 0.07 * longest) / width),
        right=1.0 - 0.3 / width,
        bottom=0.6 / height,
        top=1.0 - 0.4 / height,
    )
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=_DPI)
    return path
