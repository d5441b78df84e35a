"""Tests for the reason approximation of model scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.errors import ArtifactError
from evidence_model_client.reasons import Z_SCORE_CAP, ReasonProfile

N = len(FEATURE_NAMES)


def _profile() -> ReasonProfile:
    importances = np.zeros(N)
    importances[:3] = [0.5, 0.3, 0.2]
    means = np.zeros(N)
    means[:3] = [1.0, 10.0, 0.0]
    stds = np.zeros(N)
    stds[:3] = [2.0, 5.0, 0.0]
    return ReasonProfile(importances=importances, means=means, stds=stds)


def test_reason_contribution_hand_computed() -> None:
    """Contribution is importance times the standardized deviation from the training mean."""
    row = np.zeros(N)
    row[:3] = [5.0, 0.0, 7.0]
    contributions = _profile().contributions(row[None, :])[0]
    assert contributions[0] == pytest.approx(0.5 * (5 - 1) / 2)
    assert contributions[1] == pytest.approx(0.3 * (0 - 10) / 5)
    # A constant training column (std 0) contributes nothing.
    assert contributions[2] == 0.0


def test_reason_ranked_by_absolute_contribution() -> None:
    """Reasons are ordered by absolute size and keep their sign."""
    row = np.zeros(N)
    row[:2] = [5.0, 0.0]
    reasons = _profile().explain(row[None, :], top_k=5)[0]
    ranked: list[tuple[str, float, object]] = [
        (r.feature, r.value, pytest.approx(r.contribution)) for r in reasons
    ]
    assert ranked == [
        ("MIB_TOTAL_RECORDS", 5.0, 1.0),
        ("MIB_HIT_COUNT", 0.0, -0.6),
    ]


def test_reason_z_score_capped() -> None:
    """A huge deviation counts as Z_SCORE_CAP standard deviations."""
    row = np.zeros(N)
    row[0] = 1e9
    assert _profile().contributions(row[None, :])[0, 0] == pytest.approx(0.5 * Z_SCORE_CAP)


def test_reason_profile_loads_from_artifact(artifact_dir: Path) -> None:
    """The profile reads importances and means from metadata.json."""
    profile = ReasonProfile.load(artifact_dir)
    assert profile.importances.shape == (N,)
    assert profile.importances.sum() == pytest.approx(1.0)


def test_reason_profile_missing_directory(tmp_path: Path) -> None:
    """A directory without metadata raises ArtifactError."""
    with pytest.raises(ArtifactError, match=r"no metadata\.json"):
        ReasonProfile.load(tmp_path)
