"""The model the local server scores with: a trained artifact, or the built-in function."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import structlog
from evidence_features import FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION
from threadpoolctl import threadpool_limits

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
from evidence_model_client.lockstep import LockstepForest, UnsupportedModelError, probe_rows
from evidence_model_client.lockstep_sklearn import compile_forest

__all__ = [
    "BUILTIN_VERSION",
    "LOCKSTEP_MAX_ROWS",
    "BuiltinModel",
    "Method",
    "ServedModel",
    "compile_checked_forest",
    "load_served_model",
]

BUILTIN_VERSION = "BUILTIN"
Method = Literal["predict", "predict_proba"]
"""Model method behind an inference endpoint (``/predict``, ``/predict-proba``)."""
# Batches up to this size go to the lockstep evaluator, larger ones to scikit-learn. Measured on
# the benchmark machine (docs/benchmarks.md), the two cost the same at about 200-250 rows for
# the default model (40 trees, depth 13) and at 400-500 rows for 300 trees of depth 7. Per row,
# the lockstep evaluator costs more as the trees get deeper.
LOCKSTEP_MAX_ROWS = 200
# The lockstep path must match scikit-learn to this absolute difference on every probe row.
# It is exact by construction, so any difference means a scikit-learn change it does not follow.
LOCKSTEP_TOLERANCE = 1e-12
_log = structlog.get_logger("evidence_model_server")


class BuiltinModel:
    """Deterministic stand-in classifier: the rule-based fallback score as ``predict_proba``."""

    classes_ = np.array([0, 1])

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Return ``[[1 - s, s], ...]`` where ``s`` is the rule-based score of each row."""
        scores = rule_based_scores(matrix)
        return np.column_stack([1.0 - scores, scores])

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Return the class with the higher probability, class 0 on a tie (``np.argmax``)."""
        labels: np.ndarray = self.classes_[np.argmax(self.predict_proba(matrix), axis=1)]
        return labels


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
    forest: LockstepForest | None = None
    """Lockstep evaluator of ``model``, None when the model type is not supported."""
    accepts_missing: bool = True
    """Whether the model scores NaN (a null input) itself, as HistGradientBoostingClassifier
    does. GradientBoostingClassifier raises on NaN instead."""

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Return the (n, 2) class probabilities in ``classes_`` order ([0, 1])."""
        if self.forest is not None and matrix.shape[0] <= LOCKSTEP_MAX_ROWS:
            return self.forest.predict_proba(matrix)
        probabilities: np.ndarray = np.asarray(self.model.predict_proba(matrix), dtype=np.float64)
        return probabilities

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Return the class label of each row from the model's own ``predict``.

        The label is not derived from ``predict_proba``: at a raw score of exactly 0 (both
        probabilities 0.5) ``GradientBoostingClassifier.predict`` returns class 1 while
        ``argmax`` returns class 0, and a tiny positive raw score rounds both probabilities to
        0.5 for ``HistGradientBoostingClassifier``.
        """
        return np.asarray(self.model.predict(matrix))

    def uses_native_threads(self, n_rows: int, method: Method = "predict_proba") -> bool:
        """Return whether ``method`` on ``n_rows`` rows may start OpenMP or BLAS threads.

        The lockstep evaluator and the built-in function run single-threaded NumPy code, so the
        server skips the thread limit (about 8-15 µs) and the worker-thread hand-off for them.
        ``predict`` always calls scikit-learn for a trained model.
        """
        if self.builtin:
            return False
        if method == "predict":
            return True
        return self.forest is None or n_rows > LOCKSTEP_MAX_ROWS

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
        forest=compile_checked_forest(artifact.model),
        accepts_missing=model_accepts_missing(artifact.model),
    )


def model_accepts_missing(model: Any) -> bool:
    """Return whether scikit-learn's tags mark ``model`` as taking NaN inputs (``allow_nan``)."""
    tags = getattr(model, "__sklearn_tags__", None)
    if tags is None:
        return False
    return bool(tags().input_tags.allow_nan)


def compile_checked_forest(model: Any) -> LockstepForest | None:
    """Compile the lockstep evaluator and compare it with ``model.predict_proba`` on probe rows.

    Returns None, and logs one line with the reason, when the model type is not supported,
    compiling or checking raises, or the two paths differ by more than ``LOCKSTEP_TOLERANCE`` on
    any probe row. The server then scores every request with the model's own ``predict_proba``.
    """
    model_type = type(model).__name__
    started = time.perf_counter()
    try:
        forest = compile_forest(model)
        probes = probe_rows(forest)
        actual = forest.predict_proba(probes)
        # One OpenMP thread, as for requests, because more threads on a busy machine can take
        # seconds.
        with threadpool_limits(limits=1):
            expected = np.asarray(model.predict_proba(probes), dtype=np.float64)
    except UnsupportedModelError as exc:
        _log.info("lockstep evaluator not used", model_type=model_type, reason=str(exc))
        return None
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        # Another scikit-learn version may lay out the private attributes differently. The
        # evaluator is only an accelerator, so the server starts with predict_proba instead.
        reason = f"{type(exc).__name__} while compiling or checking: {exc}"
        _log.warning("lockstep evaluator not used", model_type=model_type, reason=reason)
        return None
    difference = (
        float(np.max(np.abs(actual - expected))) if actual.shape == expected.shape else np.inf
    )
    check_ms = round((time.perf_counter() - started) * 1000, 1)
    if not difference <= LOCKSTEP_TOLERANCE:
        _log.warning(
            "lockstep evaluator disagrees with predict_proba, not used",
            model_type=model_type,
            max_abs_difference=difference,
            probe_rows=len(probes),
            check_ms=check_ms,
        )
        return None
    _log.info(
        "lockstep evaluator checked",
        model_type=model_type,
        trees=forest.n_trees,
        nodes=int(forest.feature.size),
        depth=forest.depth,
        max_abs_difference=difference,
        probe_rows=len(probes),
        max_rows=LOCKSTEP_MAX_ROWS,
        check_ms=check_ms,
    )
    return forest
