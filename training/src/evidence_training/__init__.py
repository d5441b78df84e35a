"""Training, evaluation and Model Registry registration of the evidence risk model.

The command line is ``evidence-train`` (:mod:`evidence_training.cli`). In-warehouse feature
building lives in :mod:`evidence_training.snowpark_udf`, which callers import explicitly so that
importing this package does not import Snowpark.
"""

from evidence_training.dataset import TrainingSet, load_directory_set, make_synthetic_set
from evidence_training.errors import (
    DatasetError,
    EvidenceTrainingError,
    RegistryError,
    TrainingError,
)
from evidence_training.evaluate import CalibrationBin, ScoreMetrics, score_metrics
from evidence_training.models import ModelKind, build_classifier
from evidence_training.pipeline import TrainingOptions, TrainingResult, run_training
from evidence_training.registry import ServiceOptions, register_artifact

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
    "build_classifier",
    "load_directory_set",
    "make_synthetic_set",
    "register_artifact",
    "run_training",
    "score_metrics",
]
