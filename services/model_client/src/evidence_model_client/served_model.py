"""The model the local server scores with: a trained artifact, or the built-in function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from evidence_features import FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION

from evidence_model_client.artifact import (
    DEFAULT_MODEL_NAME,
    METADATA_FILE,
    MODEL_FILE,
    ModelArtifact,
    check_spec_hash,
)
from evidence_model_client.config import ServerSettings
from evidence_model_client.errors import ArtifactError
from evidence_model_client.fallback import rule_based_scores

__all__ = ["BUILTIN_VERSION", "BuiltinModel", "ServedModel", "load_served_model"]

BUILTIN_VERSION = "BUILTIN"
_log = structlog.get_logger("evidence_model_server")


class BuiltinModel:
    """Deterministic stand-in classifier: the rule-based fallback score as ``predict_proba``."""

    classes_ = np.array([0, 1])

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Return ``[[1 - s, s], ...]`` where ``s`` is the rule-based score of each row."""
        scores = rule_based_scores(matrix)
        return np.column_stack([1.0 - scores, scores])


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A loaded classifier and the facts ``/health`` reports about it."""

    model: Any
    model_name: str
    model_version: str
    feature_spec_hash: str
    feature_spec_version: str
    created_at: str | None
    builtin: bool

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Return the (n, 2) class probabilities in ``classes_`` order ([0, 1])."""
        probabilities: np.ndarray = np.asarray(self.model.predict_proba(matrix), dtype=np.float64)
        return probabilities

    def health(self) -> dict[str, Any]:
        """Return the JSON body of ``GET /health``."""
        return {
            "status": "ok",
            "model_name": self.model_name,
            "model_version": self.model_version,
            "feature_spec_hash": self.feature_spec_hash,
            "feature_spec_version": self.feature_spec_version,
            "created_at": self.created_at,
            "builtin": self.builtin,
        }


def load_served_model(settings: ServerSettings) -> ServedModel:
    """Load the artifact named by the settings, or the built-in model when there is none.

    Raises:
        ArtifactError: the artifact is invalid, or absent while ``allow_builtin`` is false.
        SpecHashMismatchError: the artifact was trained on another feature spec.
    """
    directory = settings.artifact_dir
    has_files = (directory / MODEL_FILE).exists() or (directory / METADATA_FILE).exists()
    if not has_files:
        if not settings.allow_builtin:
            msg = (
                f"no model artifact in {directory} and MODEL_SERVER_ALLOW_BUILTIN is false; "
                "train one with evidence-train or set MODEL_SERVER_ARTIFACT_DIR"
            )
            raise ArtifactError(msg)
        _log.warning(
            "no model artifact, serving the built-in rule-based scoring function",
            artifact_dir=str(directory),
            model_version=BUILTIN_VERSION,
        )
        return ServedModel(
            model=BuiltinModel(),
            model_name=DEFAULT_MODEL_NAME,
            model_version=BUILTIN_VERSION,
            feature_spec_hash=FEATURE_SPEC_HASH,
            feature_spec_version=FEATURE_SPEC_VERSION,
            created_at=None,
            builtin=True,
        )
    artifact = ModelArtifact.load(directory)
    check_spec_hash(artifact.metadata)
    metadata = artifact.metadata
    _log.info(
        "model artifact loaded",
        artifact_dir=str(directory),
        model_name=metadata.model_name,
        model_version=metadata.model_version,
        feature_spec_hash=metadata.feature_spec_hash,
    )
    return ServedModel(
        model=artifact.model,
        model_name=metadata.model_name,
        model_version=metadata.model_version,
        feature_spec_hash=metadata.feature_spec_hash,
        feature_spec_version=metadata.feature_spec_version,
        created_at=metadata.created_at.isoformat(),
        builtin=False,
    )
