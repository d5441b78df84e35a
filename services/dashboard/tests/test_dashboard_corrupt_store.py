"""A store file with damaged table pages: every query reports SQLite's own message, never SQL.

The corrupt files are copies of the store that the real persistence worker wrote, with the root
B-tree pages of some tables and their indexes overwritten. The schema on page 1 stays intact, so
the file opens, the tables are found, and the first read of a damaged table fails with
"database disk image is malformed".
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from evidence_dashboard.config import get_settings
from evidence_dashboard.errors import StoreUnavailableError
from evidence_dashboard.store import schema
from evidence_dashboard.store.sqlite import SqliteStore
from streamlit.testing.v1 import AppTest

if TYPE_CHECKING:
    from .conftest import StoreFixture

FEATURES = schema.sqlite_table(schema.FEATURES_TABLE)
PREDICTIONS = schema.sqlite_table(schema.PREDICTIONS_TABLE)
MALFORMED = "database disk image is malformed"
LOOKUP_POLICY = "P-DASH-0007"
# Text of the queries that pandas quoted in its DatabaseError message.
SQL_FRAGMENTS = ("SELECT", "Execution failed", "WHERE", "julianday")


def corrupt_copy(source: Path, target: Path, tables: Sequence[str]) -> Path:
    """Copy ``source`` to ``target``, then overwrite the root pages of ``tables`` and indexes."""
    shutil.copyfile(source, target)
    connection = sqlite3.connect(target)
    try:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        placeholders = ", ".join("?" for _ in tables)
        roots = [
            row[0]
            for row in connection.execute(
                f"SELECT rootpage FROM sqlite_master WHERE tbl_name IN ({placeholders}) "  # noqa: S608
                "AND rootpage > 0",
                tuple(tables),
            )
        ]
    finally:
        connection.close()
    assert roots, f"no pages found for {tables}"
    with target.open("r+b") as handle:
        for page in roots:
            handle.seek((page - 1) * page_size)
            handle.write(b"\xff" * page_size)
    return target


def assert_clean_store_error(error: StoreUnavailableError, path: Path) -> None:
    """Check that the message is the store's own, with SQLite's reason and no SQL text."""
    message = str(error)
    assert message == f"query on store file {str(path)!r} failed: {MALFORMED}"
    for fragment in SQL_FRAGMENTS:
        assert fragment not in message
    assert LOOKUP_POLICY not in message
    assert isinstance(error.__cause__, sqlite3.DatabaseError)


@pytest.mark.parametrize(
    "tables",
    [(FEATURES,), (PREDICTIONS,), (FEATURES, PREDICTIONS)],
    ids=["features", "predictions", "both"],
)
def test_lookup_corrupt_tables_raise_store_error(
    filled_store: StoreFixture, tmp_path: Path, tables: tuple[str, ...]
) -> None:
    """A damaged features table, predictions table or both give SQLite's message, not SQL."""
    path = corrupt_copy(filled_store.store_path, tmp_path / "store.sqlite3", tables)
    store = SqliteStore(path, max_rows=1_000)

    with pytest.raises(StoreUnavailableError) as raised:
        store.lookup_policy(LOOKUP_POLICY)

    assert_clean_store_error(raised.value, path)


PANEL_QUERIES: dict[str, Callable[[SqliteStore], object]] = {
    "traffic": lambda store: store.traffic(None),
    "model_usage": lambda store: store.model_usage(None),
    "feature_warnings": lambda store: store.feature_warnings(None),
    "recent_features": lambda store: store.recent_features(None),
    "drift_features": lambda store: store.drift_features(None, max_rows=1_000),
}


@pytest.mark.parametrize("query", list(PANEL_QUERIES), ids=list(PANEL_QUERIES))
def test_panel_queries_match_count_error(
    filled_store: StoreFixture, tmp_path: Path, query: str
) -> None:
    """Every panel query on a damaged store raises the message that count_predictions raises."""
    path = corrupt_copy(
        filled_store.store_path, tmp_path / "store.sqlite3", (FEATURES, PREDICTIONS)
    )
    store = SqliteStore(path, max_rows=1_000)
    with pytest.raises(StoreUnavailableError) as counted:
        store.count_predictions()

    with pytest.raises(StoreUnavailableError) as raised:
        PANEL_QUERIES[query](store)

    assert str(counted.value) == str(raised.value)
    assert_clean_store_error(raised.value, path)


@pytest.mark.slow
def test_page_lookup_shows_monitor_error(
    monkeypatch: pytest.MonkeyPatch,
    filled_store: StoreFixture,
    tmp_path: Path,
    app_path: Path,
    unused_port: int,
) -> None:
    """On the page, the lookup tab shows the Monitor tab's store error and no SQL text."""
    path = corrupt_copy(
        filled_store.store_path, tmp_path / "store.sqlite3", (FEATURES, PREDICTIONS)
    )
    monkeypatch.setenv("DASHBOARD_STORE_PATH", str(path))
    monkeypatch.setenv("DASHBOARD_QUEUE_PATH", str(filled_store.queue_path))
    monkeypatch.setenv("DASHBOARD_ARTIFACT_DIR", str(filled_store.artifact_dir))
    monkeypatch.setenv("DASHBOARD_GATEWAY_URL", f"http://127.0.0.1:{unused_port}")
    get_settings.cache_clear()
    try:
        at = AppTest.from_file(str(app_path), default_timeout=60).run()
        assert not at.exception
        monitor_errors = [e.value for e in at.error if MALFORMED in e.value]
        at.text_input(key="lookup_policy").input(LOOKUP_POLICY).run()
    finally:
        get_settings.cache_clear()

    assert not at.exception
    expected = f"query on store file {str(path)!r} failed: {MALFORMED}"
    assert monitor_errors == [expected]
    errors = [e.value for e in at.error]
    assert errors.count(expected) == 2, errors
    for message in errors:
        for fragment in SQL_FRAGMENTS:
            assert fragment not in message, message
        assert "section failed" not in message, message
