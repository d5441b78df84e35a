"""Shared generated pairs, built once per test session because generation takes seconds."""

from __future__ import annotations

import pytest
from evidence_synthetic import EvidencePair, generate_pairs


@pytest.fixture(scope="session")
def population() -> list[EvidencePair]:
    """Two thousand pairs at the default edge-case rate, seed 101."""
    return generate_pairs(2000, seed=101)
