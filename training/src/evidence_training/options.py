"""Settings of one training run, kept free of scikit-learn so the command line imports fast."""

from __future__ import annotations

import re
from dataclasses import dataclass

from evidence_training.models import ModelKind

__all__ = ["MAX_SEED", "TrainingOptions", "seed_range_error"]

_VERSION_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")

# The seed goes to NumPy's SeedSequence and default_rng, which take any non-negative integer,
# and to random_state of train_test_split and the classifiers, which scikit-learn 1.9 validates
# as an int in [0, 2**32 - 1], the seed range of numpy.random.RandomState.
MAX_SEED = 2**32 - 1


def seed_range_error(seed: int) -> str | None:
    """Return why ``seed`` is invalid, or None when every seed consumer accepts it."""
    if 0 <= seed <= MAX_SEED:
        return None
    return (
        f"seed {seed} is not in the range 0 to {MAX_SEED} (2**32 - 1) that NumPy and "
        "scikit-learn accept; pass a seed in that range"
    )


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
        seed_error = seed_range_error(self.seed)
        if seed_error is not None:
            raise ValueError(seed_error)
