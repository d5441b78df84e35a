"""Shared inputs for the feature-extraction benchmarks (invented data only)."""

from __future__ import annotations

import random
import sys
from datetime import date
from pathlib import Path

import pytest

_FEATURE_TESTS = Path(__file__).resolve().parents[2] / "libs" / "features" / "tests"
if str(_FEATURE_TESTS) not in sys.path:
    sys.path.insert(0, str(_FEATURE_TESTS))

from features_utils.documents import (  # noqa: E402 - needs the path above
    acord_mib,
    intelrx,
    random_fills,
    random_mib_records,
)

AS_OF = date(2024, 3, 16)


@pytest.fixture(scope="session")
def typical_pair() -> tuple[bytes, bytes]:
    """An ACORD MIB reply with 10 records and an IntelRX report with 50 fills."""
    rng = random.Random(20240316)
    mib = acord_mib(random_mib_records(rng, 10, as_of=AS_OF))
    rx = intelrx(random_fills(rng, 50, as_of=AS_OF))
    return mib, rx


def make_rx(fills: int, seed: int = 7) -> bytes:
    """An IntelRX report with `fills` random fills."""
    return intelrx(random_fills(random.Random(seed), fills, as_of=AS_OF))
