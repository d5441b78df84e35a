"""The local model artifact: a fitted classifier plus the metadata that serving and monitoring need.

Layout of an artifact directory (training writes it; the local model server, the scorer's reason
profile and the dashboard read it)::

    model.joblib     a fitted scikit-learn compatible binary classifier with predict_proba
    metadata.json    model_name, model_version, feature_names, feature_spec_hash,
                     feature_spec_version, created_at (ISO 8601, UTC), metrics,
                     feature_stats, feature_importances, training_summary

``feature_stats`` maps every feature name to ``{"mean", "std", "min", "max", "bin_edges",
"bin_fractions"}``: ``bin_edges`` is ascending and has one more entry than ``bin_fractions``,
which contains the share of training rows per bin (``numpy.histogram`` semantics, last bin closed).
A column with a single training value has ``bin_edges == [v, v]`` and ``bin_fractions == [1.0]``.

``model.joblib`` is a pickle: load artifacts only from directories you trust.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION

from evidence_model_client.errors import ArtifactError, SpecHashMismatchError

__all__ = [
    "DEFAULT_MODEL_NAME",
    "METADATA_FILE",
    "MODEL_FILE",
    "ArtifactMetadata",
    "FeatureStats",
    "ModelArtifact",
    "check_spec_hash",
    "compute_feature_stats",
]

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
DEFAULT_MODEL_NAME = "EVIDENCE_RISK_MODEL"

# The version becomes part of "REGISTRY_<VERSION>" and of Snowflake object names.
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_REQUIRED_KEYS = (
    "model_name",
    "model_version",
    "feature_names",
    "feature_spec_hash",
    "feature_spec_version",
    "created_at",
    "metrics",
    "feature_stats",
    "feature_importances",
    "training_summary",
)


@dataclass(frozen=True, slots=True)
class FeatureStats:
    """Training-set summary of one feature, kept for reasons and drift (PSI) monitoring."""

    mean: float
    std: float
    min: float
    max: float
    bin_edges: tuple[float, ...]
    bin_fractions: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object stored under ``feature_stats[name]``."""
        return {
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "bin_edges": list(self.bin_edges),
            "bin_fractions": list(self.bin_fractions),
        }

    @classmethod
    def from_json(cls, name: str, raw: object) -> FeatureStats:
        """Build and validate the stats of feature ``name`` from its JSON object.

        Raises:
            ArtifactError: a key is missing, a value is not a finite number, or the bins are
                inconsistent.
        """
        where = f"feature_stats[{name!r}]"
        if not isinstance(raw, Mapping):
            msg = f"{where} must be a JSON object, got {type(raw).__name__}"
            raise ArtifactError(msg)
        scalars = {key: _finite_number(raw.get(key), f"{where}.{key}") for key in _STAT_SCALARS}
        edges = tuple(_finite_list(raw.get("bin_edges"), f"{where}.bin_edges"))
        fractions = tuple(_finite_list(raw.get("bin_fractions"), f"{where}.bin_fractions"))
        if len(edges) != len(fractions) + 1 or not fractions:
            msg = (
                f"{where} has {len(edges)} bin_edges and {len(fractions)} bin_fractions; "
                "expected at least one bin and exactly one more edge than fractions"
            )
            raise ArtifactError(msg)
        if any(b < a for a, b in itertools.pairwise(edges)):
            msg = f"{where}.bin_edges must be ascending, got {list(edges)[:12]!r}"
            raise ArtifactError(msg)
        if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
            msg = (
                f"{where}.bin_fractions must be non-negative and sum to 1, got sum {sum(fractions)}"
            )
            raise ArtifactError(msg)
        if scalars["std"] < 0:
            msg = f"{where}.std must be >= 0, got {scalars['std']!r}"
            raise ArtifactError(msg)
        return cls(bin_edges=edges, bin_fractions=fractions, **scalars)


_STAT_SCALARS = ("mean", "std", "min", "max")


def compute_feature_stats(matrix: np.ndarray, *, n_bins: int = 10) -> dict[str, FeatureStats]:
    """Summarise each column of a training matrix for the artifact's ``feature_stats``.

    Bin edges are the distinct quantiles at ``n_bins`` equal steps, so zero-inflated columns get
    fewer, wider bins rather than empty ones.

    Args:
        matrix: float array of shape (n_rows, 105) in ``FEATURE_NAMES`` order, all finite.
        n_bins: the number of quantile steps (at most this many bins per column).

    Returns:
        ``{feature_name: FeatureStats}`` for every name in ``FEATURE_NAMES``.

    Raises:
        ValueError: the matrix is empty, has the wrong width or contains NaN or infinity.
    """
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(FEATURE_NAMES) or values.shape[0] == 0:
        msg = f"expected a non-empty (n, {len(FEATURE_NAMES)}) matrix, got shape {values.shape}"
        raise ValueError(msg)
    if not np.isfinite(values).all():
        column = FEATURE_NAMES[int(np.argwhere(~np.isfinite(values))[0][1])]
        msg = f"column {column} contains NaN or infinity; impute before computing feature stats"
        raise ValueError(msg)
    stats: dict[str, FeatureStats] = {}
    quantile_steps = np.linspace(0.0, 1.0, n_bins + 1)
    for index, name in enumerate(FEATURE_NAMES):
        column_values = values[:, index]
        edges = np.unique(np.quantile(column_values, quantile_steps))
        if edges.size == 1:
            bin_edges: tuple[float, ...] = (float(edges[0]), float(edges[0]))
            bin_fractions: tuple[float, ...] = (1.0,)
        else:
            counts, _ = np.histogram(column_values, bins=edges)
            bin_edges = tuple(float(e) for e in edges)
            bin_fractions = tuple(float(c) / column_values.size for c in counts)
        stats[name] = FeatureStats(
            mean=float(column_values.mean()),
            std=float(column_values.std()),
            min=float(column_values.min()),
            max=float(column_values.max()),
            bin_edges=bin_edges,
            bin_fractions=bin_fractions,
        )
    return stats


@dataclass(frozen=True, slots=True)
class ArtifactMetadata:
    """Everything in ``metadata.json``; readable without unpickling the model."""

    model_version: str
    metrics: Mapping[str, Any]
    feature_stats: Mapping[str, FeatureStats]
    feature_importances: Mapping[str, float]
    training_summary: Mapping[str, Any]
    model_name: str = DEFAULT_MODEL_NAME
    feature_names: tuple[str, ...] = FEATURE_NAMES
    feature_spec_hash: str = FEATURE_SPEC_HASH
    feature_spec_version: str = FEATURE_SPEC_VERSION
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def registry_version(self) -> str:
        """The ``model_version`` of scores from this model, such as ``REGISTRY_V2``."""
        return f"REGISTRY_{self.model_version}"

    def to_json(self) -> dict[str, Any]:
        """Return the ``metadata.json`` object."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "feature_names": list(self.feature_names),
            "feature_spec_hash": self.feature_spec_hash,
            "feature_spec_version": self.feature_spec_version,
            "created_at": self.created_at.isoformat(),
            "metrics": dict(self.metrics),
            "feature_stats": {name: s.to_json() for name, s in self.feature_stats.items()},
            "feature_importances": dict(self.feature_importances),
            "training_summary": dict(self.training_summary),
        }

    @classmethod
    def from_json(cls, raw: object) -> ArtifactMetadata:
        """Validate a parsed ``metadata.json`` object.

        Raises:
            ArtifactError: a key is missing or a value has the wrong type or shape; the message
                names the key.
        """
        if not isinstance(raw, Mapping):
            msg = f"metadata.json must hold a JSON object, got {type(raw).__name__}"
            raise ArtifactError(msg)
        missing = [key for key in _REQUIRED_KEYS if key not in raw]
        if missing:
            msg = f"metadata.json is missing keys {missing}; re-run training to rewrite it"
            raise ArtifactError(msg)
        names = _feature_names(raw["feature_names"])
        return cls(
            model_name=_non_empty_str(raw["model_name"], "model_name"),
            model_version=_model_version(raw["model_version"]),
            feature_names=names,
            feature_spec_hash=_non_empty_str(raw["feature_spec_hash"], "feature_spec_hash"),
            feature_spec_version=_non_empty_str(
                raw["feature_spec_version"], "feature_spec_version"
            ),
            created_at=_created_at(raw["created_at"]),
            metrics=_json_object(raw["metrics"], "metrics"),
            feature_stats=_feature_stats(raw["feature_stats"], names),
            feature_importances=_feature_importances(raw["feature_importances"], names),
            training_summary=_training_summary(raw["training_summary"]),
        )

    def validate(self) -> None:
        """Check the metadata the same way loading does.

        Raises:
            ArtifactError: a value is invalid; the message names it.
        """
        ArtifactMetadata.from_json(json.loads(self.to_json_text()))

    def to_json_text(self) -> str:
        """Return the text of ``metadata.json``.

        Raises:
            ArtifactError: a value is NaN, infinite or not JSON-serialisable (such as a numpy
                float32 in ``metrics``).
        """
        try:
            return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:
            msg = f"metadata.json cannot be written: {exc}; convert values to finite Python floats"
            raise ArtifactError(msg) from exc

    @classmethod
    def load(cls, directory: str | Path) -> ArtifactMetadata:
        """Read and validate ``metadata.json`` from an artifact directory.

        Raises:
            ArtifactError: the file is missing, not JSON, or invalid.
        """
        path = Path(directory) / METADATA_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            msg = f"no {METADATA_FILE} in {Path(directory)}; train a model first (evidence-train)"
            raise ArtifactError(msg) from exc
        except OSError as exc:
            msg = f"cannot read {path}: {exc.strerror}"
            raise ArtifactError(msg) from exc
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            raise ArtifactError(msg) from exc
        return cls.from_json(raw)


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """A fitted binary classifier with its metadata, saved to and loaded from a directory.

    Example::

        artifact = ModelArtifact(model=classifier, metadata=ArtifactMetadata(model_version="V2",
            metrics={"roc_auc": 0.81}, feature_stats=compute_feature_stats(x_train),
            feature_importances=dict(zip(FEATURE_NAMES, classifier.feature_importances_)),
            training_summary={"rows": 20000, "positive_rate": 0.18}))
        artifact.save("var/model")
    """

    model: Any
    metadata: ArtifactMetadata

    def save(self, directory: str | Path) -> Path:
        """Validate, then write ``model.joblib`` and ``metadata.json`` into ``directory``.

        Both files are written to temporary names first and renamed, so a reader never sees
        half a file.

        Returns:
            The directory path.

        Raises:
            ArtifactError: the model or metadata is invalid.
        """
        _check_model(self.model, self.metadata.feature_names)
        self.metadata.validate()
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        model_tmp = target / f".{MODEL_FILE}.tmp"
        metadata_tmp = target / f".{METADATA_FILE}.tmp"
        joblib.dump(self.model, model_tmp)
        metadata_tmp.write_text(self.metadata.to_json_text(), encoding="utf-8")
        model_tmp.replace(target / MODEL_FILE)
        metadata_tmp.replace(target / METADATA_FILE)
        return target

    @classmethod
    def load(cls, directory: str | Path) -> ModelArtifact:
        """Load and validate an artifact directory (the spec hash is checked separately).

        Raises:
            ArtifactError: a file is missing or unreadable, or the metadata or model is invalid.
        """
        metadata = ArtifactMetadata.load(directory)
        path = Path(directory) / MODEL_FILE
        if not path.is_file():
            msg = f"no {MODEL_FILE} in {Path(directory)}; train a model first (evidence-train)"
            raise ArtifactError(msg)
        try:
            model = joblib.load(path)
        except Exception as exc:  # unpickling can raise almost anything
            msg = f"cannot load {path} ({type(exc).__name__}); retrain or reinstall the model"
            raise ArtifactError(msg) from exc
        _check_model(model, metadata.feature_names)
        return cls(model=model, metadata=metadata)


def check_spec_hash(
    metadata: ArtifactMetadata,
    *,
    expected_hash: str = FEATURE_SPEC_HASH,
    expected_names: Sequence[str] = FEATURE_NAMES,
) -> None:
    """Check that an artifact was trained on the installed feature spec.

    Raises:
        SpecHashMismatchError: the hashes or the column lists differ.
    """
    if metadata.feature_spec_hash != expected_hash:
        msg = (
            f"model {metadata.model_name} {metadata.model_version} was trained on feature spec "
            f"hash {metadata.feature_spec_hash!r} (version {metadata.feature_spec_version!r}) "
            f"but the installed feature library has {expected_hash!r}; retrain the model "
            "(evidence-train) or install the matching evidence-features"
        )
        raise SpecHashMismatchError(msg)
    if tuple(metadata.feature_names) != tuple(expected_names):
        msg = (
            f"model {metadata.model_name} {metadata.model_version} lists other feature names "
            "than the installed feature library despite an equal spec hash; retrain the model"
        )
        raise SpecHashMismatchError(msg)


def _check_model(model: object, feature_names: Sequence[str]) -> None:
    if not callable(getattr(model, "predict_proba", None)):
        msg = f"the model ({type(model).__name__}) has no predict_proba method"
        raise ArtifactError(msg)
    n_features = getattr(model, "n_features_in_", None)
    if n_features is not None and int(n_features) != len(feature_names):
        msg = (
            f"the model was fitted on {n_features} features but metadata lists "
            f"{len(feature_names)} feature_names"
        )
        raise ArtifactError(msg)
    classes = getattr(model, "classes_", None)
    if classes is not None and [int(c) for c in np.asarray(classes).tolist()] != [0, 1]:
        msg = f"the model must be a binary classifier with classes [0, 1], got {classes!r}"
        raise ArtifactError(msg)


def _non_empty_str(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        msg = f"metadata.json {key} must be a non-empty string, got {value!r}"
        raise ArtifactError(msg)
    return value


def _model_version(value: object) -> str:
    version = _non_empty_str(value, "model_version")
    if not _VERSION_PATTERN.fullmatch(version):
        msg = f"metadata.json model_version must match [A-Za-z0-9_]{{1,64}}, got {version!r}"
        raise ArtifactError(msg)
    return version


def _created_at(value: object) -> datetime:
    text = _non_empty_str(value, "created_at")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        msg = f"metadata.json created_at must be an ISO 8601 timestamp, got {text!r}"
        raise ArtifactError(msg) from exc
    if moment.tzinfo is None:
        msg = f"metadata.json created_at must carry a UTC offset, got {text!r}"
        raise ArtifactError(msg)
    return moment


def _feature_names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        msg = "metadata.json feature_names must be a list of non-empty strings"
        raise ArtifactError(msg)
    if len(set(value)) != len(value):
        msg = "metadata.json feature_names contains duplicates"
        raise ArtifactError(msg)
    return tuple(value)


def _json_object(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        msg = f"metadata.json {key} must be a JSON object, got {type(value).__name__}"
        raise ArtifactError(msg)
    return dict(value)


def _feature_stats(value: object, names: tuple[str, ...]) -> dict[str, FeatureStats]:
    raw = _json_object(value, "feature_stats")
    _check_same_names(raw, names, "feature_stats")
    return {name: FeatureStats.from_json(name, raw[name]) for name in names}


def _feature_importances(value: object, names: tuple[str, ...]) -> dict[str, float]:
    raw = _json_object(value, "feature_importances")
    _check_same_names(raw, names, "feature_importances")
    importances = {
        name: _finite_number(raw[name], f"feature_importances[{name!r}]") for name in names
    }
    negative = [name for name, weight in importances.items() if weight < 0]
    if negative:
        msg = f"metadata.json feature_importances must be >= 0; negative for {negative[:5]}"
        raise ArtifactError(msg)
    return importances


def _training_summary(value: object) -> dict[str, Any]:
    summary = _json_object(value, "training_summary")
    rows = summary.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows <= 0:
        msg = f"metadata.json training_summary.rows must be a positive integer, got {rows!r}"
        raise ArtifactError(msg)
    rate = _finite_number(summary.get("positive_rate"), "training_summary.positive_rate")
    if not 0.0 <= rate <= 1.0:
        msg = f"metadata.json training_summary.positive_rate must be in [0, 1], got {rate!r}"
        raise ArtifactError(msg)
    return summary


def _check_same_names(raw: Mapping[str, Any], names: tuple[str, ...], key: str) -> None:
    missing = [n for n in names if n not in raw]
    unknown = [n for n in raw if n not in set(names)]
    if missing or unknown:
        msg = (
            f"metadata.json {key} must have one entry per feature name; "
            f"missing {missing[:5]} ({len(missing)}), unknown {unknown[:5]} ({len(unknown)})"
        )
        raise ArtifactError(msg)


def _finite_number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"metadata.json {where} must be a finite number, got {value!r}"
        raise ArtifactError(msg)
    return float(value)


def _finite_list(value: object, where: str) -> list[float]:
    if not isinstance(value, list):
        msg = f"metadata.json {where} must be a list of numbers, got {type(value).__name__}"
        raise ArtifactError(msg)
    return [_finite_number(item, f"{where}[{i}]") for i, item in enumerate(value)]
