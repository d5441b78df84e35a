"""Exceptions raised by the training package.

Every error the package raises on purpose derives from one base::

    EvidenceTrainingError
    ├── DatasetError          a training data directory or its labels file is missing or invalid
    ├── TrainingError         the data cannot train or evaluate a model (too few rows of a class)
    ├── WorkerError           a worker process that builds the training set died
    └── RegistryError         registration in the Snowflake Model Registry was refused

Errors from the feature library, the artifact writer and the Snowflake libraries are chained as
the cause where this package translates them.
"""

from __future__ import annotations

__all__ = [
    "DatasetError",
    "EvidenceTrainingError",
    "RegistryError",
    "TrainingError",
    "WorkerError",
]


class EvidenceTrainingError(Exception):
    """Base of every error raised by ``evidence_training``."""


class DatasetError(EvidenceTrainingError):
    """A training data directory, an evidence file or the labels file is missing or invalid."""


class TrainingError(EvidenceTrainingError):
    """The training set cannot produce a model or an evaluation."""


class WorkerError(EvidenceTrainingError):
    """A worker process died before it returned its chunk, for example by SIGKILL."""


class RegistryError(EvidenceTrainingError):
    """The artifact cannot be registered or deployed in the Snowflake Model Registry."""
