"""Tests of the PNG plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from evidence_features import FEATURE_NAMES
from evidence_training.evaluate import calibration_bins
from evidence_training.plots import plot_calibration, plot_feature_importance, plot_roc

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_write_png_files(tmp_path: Path) -> None:
    """Each plot function writes a non-trivial PNG file at the given path."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=200)
    model = np.clip(labels * 0.5 + rng.uniform(0, 0.5, size=200), 0, 1)
    fallback = rng.uniform(size=200)
    importances = {name: float(i) for i, name in enumerate(FEATURE_NAMES)}

    paths = [
        plot_roc(
            labels,
            {"model": model, "fallback": fallback},
            {"model": 0.9, "fallback": 0.5},
            tmp_path / "roc.png",
        ),
        plot_calibration({"model": calibration_bins(labels, model)}, tmp_path / "cal.png"),
        plot_feature_importance(importances, tmp_path / "imp.png"),
    ]

    for path in paths:
        data = path.read_bytes()
        assert data[:8] == _PNG_MAGIC, path.name
        assert len(data) > 5_000, path.name
