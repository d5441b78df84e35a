"""Fixtures of the persistence tests; helpers live in ``persistence_testkit``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The child-process scripts beside this file import the test kit by name.
sys.path.insert(0, str(Path(__file__).parent))

from evidence_persistence import PredictionQueue, PredictionRecord
from evidence_persistence.config import get_settings
from persistence_testkit import build_record


@pytest.fixture
def make_record() -> Callable[..., PredictionRecord]:
    """Return the record factory ``build_record(index, **overrides)``."""
    return build_record


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[PredictionQueue]:
    """Return an empty queue file in the test's temporary directory."""
    created = PredictionQueue(tmp_path / "queue.sqlite3", max_depth=100_000)
    yield created
    created.close()


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove PERSISTENCE_* and SNOWFLAKE_* variables and clear the cached settings."""
    for name in list(os.environ):
        if name.startswith(("PERSISTENCE_", "SNOWFLAKE_")):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
