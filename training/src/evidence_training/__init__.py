"""Training, evaluation and Model Registry registration of the evidence risk model.

The command line is ``evidence-train`` (:mod:`evidence_training.cli`). In-warehouse feature
building lives in :mod:`evidence_training.snowpark_udf`, which callers import explicitly so that
importing this package does not import Snowpark.

The names below are imported on first use (PEP 562), because scikit-learn, matplotlib and pandas
take several CPU seconds to import and ``evidence-train --help`` needs none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evidence_training.dataset import TrainingSet, load_directory_set, make_synthetic_set
    from evidence_training.errors import (
        DatasetError,
        EvidenceTrainingError,
        RegistryError,
        TrainingError,
        WorkerError,
    )
    from evidence_training.evaluate import CalibrationBin, ScoreMetrics, score_metrics
    from evidence_training.models import ModelKind, build_classifier
    from evidence_training.options import TrainingOptions
    from evidence_training.pipeline import TrainingResult, run_training
    from evidence_training.registry import ServiceOptions, register_artifact

_MODULE_OF = {
    "CalibrationBin": "evaluate",
    "DatasetError": "errors",
    "EvidenceTrainingError": "errors",
    "ModelKind": "models",
    "RegistryError": "errors",
    "ScoreMetrics": "evaluate",
    "ServiceOptions": "registry",
    "TrainingError": "errors",
    "TrainingOptions": "options",
    "TrainingResult": "pipeline",
    "TrainingSet": "dataset",
    "WorkerError": "errors",
    "build_classifier": "models",
    "load_directory_set": "dataset",
    "make_synthetic_set": "dataset",
    "register_artifact": "registry",
    "run_training": "pipeline",
    "score_metrics": "evaluate",
}

__all__ = [
    "CalibrationBin",
    "DatasetError",
    "EvidenceTrainingError",
    "ModelKind",
    "RegistryError",
    "ScoreMetrics",
    "ServiceOptions",
    "TrainingError",
    "TrainingOptions",
    "TrainingResult",
    "TrainingSet",
    "WorkerError",
    "build_classifier",
    "load_directory_set",
    "make_synthetic_set",
    "register_artifact",
    "run_training",
    "score_metrics",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        msg = f"module 'evidence_training' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"evidence_training.{module}"), name)
