"""Settings of one training run, kept free of scikit-learn so the command line imports fast."""

from __future__ import annotations

import re
from dataclasses import dataclass

from evidence_training.models import ModelKind

__all__ = ["TrainingOptions"]

_VERSION_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass(frozen=True, slots=True)
class TrainingOptions:
    """Settings of one training run, all taken from the command line."""

    model_kind: ModelKind = ModelKind.HIST_GBM
    version: str = "V2"
    test_fraction: float = 0.2
    seed: int = 0
    threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        # The version becomes part of "REGISTRY_<VERSION>" and of Snowflake object names, and
        # the artifact writer rejects it only after training, so it is checked up front.
        if not _VERSION_PATTERN.fullmatch(self.version):
            msg = f"model version {self.version!r} must be 1-64 letters, digits or underscores"
            raise ValueError(msg)
