"""Fixtures of the persistence tests; helpers live in ``persistence_testkit``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

# The child-process scripts beside this file import the test kit by name.
sys.path.insert(0, str(Path(__file__).parent))

from evidence_persistence import PredictionQueue, PredictionRecord, _stop_drain, _worker
from evidence_persistence.config import get_settings
from persistence_testkit import build_record


@pytest.fixture
def worker_logs(monkeypatch: pytest.MonkeyPatch) -> list[MutableMapping[str, Any]]:
    """Capture the drain loop's log lines with processors of their own.

    ``capture_logs`` swaps structlog's global configuration. That misses a module logger that an
    earlier test in the same xdist worker cached under another configuration. A thread left
    behind by such a test can also configure structlog again while this test runs.
    """
    capture = LogCapture()
    logger = structlog.wrap_logger(
        None,
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    monkeypatch.setattr(_worker, "_log", logger)
    monkeypatch.setattr(_stop_drain, "_log", logger)
    return capture.entries


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


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Return the path of a store file that the first write creates."""
    return tmp_path / "store.sqlite3"


@pytest.fixture(scope="module")
def local_session() -> Iterator[Any]:
    """Return one Snowpark local-testing session for the module."""
    pytest.importorskip("snowflake.snowpark")
    from snowflake_testkit import open_local_session

    created = open_local_session()
    yield created
    created.close()


@pytest.fixture
def local_snowflake_sink(local_session: Any) -> Any:
    """Return a Snowflake sink that stores raw evidence, over empty local-testing tables."""
    from evidence_persistence.sinks.snowflake import SnowflakeSink
    from snowflake_testkit import create_empty_tables, stage_with_dataframe

    create_empty_tables(local_session)
    return SnowflakeSink(
        lambda: local_session, store_raw_evidence=True, stage_rows=stage_with_dataframe
    )
