"""Read the model artifact's ``metadata.json`` for the training-time feature histograms.

The dashboard reads the JSON file directly rather than through the model client's loader, so it
needs neither the pickled model nor scikit-learn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from evidence_dashboard.drift import FeatureBins, parse_feature_stats
from evidence_dashboard.errors import ArtifactStatsError

__all__ = ["ArtifactSummary", "load_artifact_summary"]

METADATA_FILE = "metadata.json"


@dataclass(frozen=True, slots=True)
class ArtifactSummary:
    """Identity of the trained model and its per-feature training histograms."""

    model_name: str
    model_version: str
    created_at: str
    feature_spec_hash: str
    bins: dict[str, FeatureBins]


def load_artifact_summary(artifact_dir: Path) -> ArtifactSummary:
    """Load the model identity and feature histograms from ``artifact_dir/metadata.json``.

    Raises:
        ArtifactStatsError: the file is missing, is not JSON, or its ``feature_stats`` are
            missing or inconsistent.
    """
    path = artifact_dir / METADATA_FILE
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = (
            f"model metadata {str(path)!r} not found; train a model (evidence-train --out "
            f"{artifact_dir}) or set DASHBOARD_ARTIFACT_DIR"
        )
        raise ArtifactStatsError(msg) from exc
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"model metadata {str(path)!r} cannot be read as JSON: {exc}"
        raise ArtifactStatsError(msg) from exc
    if not isinstance(metadata, dict):
        msg = f"model metadata {str(path)!r} is not a JSON object"
        raise ArtifactStatsError(msg)
    raw_stats = metadata.get("feature_stats")
    if not isinstance(raw_stats, dict) or not raw_stats:
        msg = f"model metadata {str(path)!r} has no feature_stats; retrain to record them"
        raise ArtifactStatsError(msg)
    try:
        bins = parse_feature_stats(raw_stats)
    except ValueError as exc:
        msg = f"model metadata {str(path)!r}: {exc}"
        raise ArtifactStatsError(msg) from exc
    return ArtifactSummary(
        model_name=str(metadata.get("model_name", "")),
        model_version=str(metadata.get("model_version", "")),
        created_at=str(metadata.get("created_at", "")),
        feature_spec_hash=str(metadata.get("feature_spec_hash", "")),
        bins=bins,
    )
