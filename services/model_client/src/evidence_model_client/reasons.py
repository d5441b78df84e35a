"""Reasons: the features that contributed most to one score.

The Snowflake inference service returns only probabilities, so reasons for model scores are an
approximation computed on the client from a small reason profile taken from the artifact::

    contribution_j = importance_j * clip((x_j - mean_j) / std_j, -10, 10)

``importance_j`` is the model's global feature importance and ``mean_j``/``std_j`` are the
training mean and standard deviation. A feature with ``std_j == 0`` contributes 0. The result
ranks features that are both important to the model and unusual for this applicant. It is not a
per-prediction attribution such as SHAP. Its sign means "above/below the training mean", not
"raised/lowered this score". Reasons are ranked by absolute contribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from evidence_features import FEATURE_NAMES

from evidence_model_client.artifact import ArtifactMetadata

__all__ = ["Z_SCORE_CAP", "Reason", "ReasonProfile", "top_reasons"]

#: Bound on the standardized deviation, so a near-constant training column cannot dominate.
Z_SCORE_CAP = 10.0


@dataclass(frozen=True, slots=True)
class Reason:
    """One feature's share in a score: its name, the applicant's value and its contribution."""

    feature: str
    value: float
    contribution: float


@dataclass(frozen=True, slots=True)
class ReasonProfile:
    """Per-feature importance, training mean and standard deviation in ``FEATURE_NAMES`` order."""

    importances: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    @classmethod
    def from_metadata(cls, metadata: ArtifactMetadata) -> ReasonProfile:
        """Build the profile from artifact metadata whose feature names match the library's.

        Raises:
            ValueError: the metadata lists other feature names than ``FEATURE_NAMES``.
        """
        if tuple(metadata.feature_names) != FEATURE_NAMES:
            msg = (
                f"reason profile of model {metadata.model_version} lists other feature names "
                "than the installed feature library; retrain the model"
            )
            raise ValueError(msg)
        return cls(
            importances=np.array([metadata.feature_importances[n] for n in FEATURE_NAMES]),
            means=np.array([metadata.feature_stats[n].mean for n in FEATURE_NAMES]),
            stds=np.array([metadata.feature_stats[n].std for n in FEATURE_NAMES]),
        )

    @classmethod
    def load(cls, directory: str | Path) -> ReasonProfile:
        """Read the profile from ``metadata.json`` in an artifact directory, without the model.

        Raises:
            ArtifactError: the metadata file is missing or invalid.
            ValueError: the metadata lists other feature names than ``FEATURE_NAMES``.
        """
        return cls.from_metadata(ArtifactMetadata.load(directory))

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Return the (n, 105) contribution matrix for a (n, 105) feature matrix."""
        safe_std = np.where(self.stds > 0, self.stds, 1.0)
        z_scores = np.clip((matrix - self.means) / safe_std, -Z_SCORE_CAP, Z_SCORE_CAP)
        z_scores = np.where(self.stds > 0, z_scores, 0.0)
        result: np.ndarray = self.importances * z_scores
        return result

    def explain(self, matrix: np.ndarray, *, top_k: int = 5) -> list[list[Reason]]:
        """Return the ``top_k`` reasons of each row of a (n, 105) feature matrix."""
        return top_reasons(matrix, self.contributions(matrix), top_k=top_k)


def top_reasons(
    matrix: np.ndarray,
    contributions: np.ndarray,
    *,
    top_k: int,
    names: Sequence[str] = FEATURE_NAMES,
) -> list[list[Reason]]:
    """Pick each row's ``top_k`` non-zero contributions by absolute size, largest first."""
    reasons: list[list[Reason]] = []
    for row_values, row_contributions in zip(matrix, contributions, strict=True):
        # A stable sort keeps FEATURE_NAMES order among equal contributions.
        order = np.argsort(-np.abs(row_contributions), kind="stable")[:top_k]
        reasons.append(
            [
                Reason(
                    feature=names[j],
                    value=float(row_values[j]),
                    contribution=float(row_contributions[j]),
                )
                for j in order
                if row_contributions[j] != 0.0
            ]
        )
    return reasons
