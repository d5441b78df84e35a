"""Dead letters on the dashboard show the error type only, never the stored error text.

The worker stores a dead letter's error as ``"Type: message"``, and the message can quote the
record's values. The page test lets the real ``evidence-persistence worker --once`` move an
undecodable record to the dead letters, adds rows whose error text quotes a canary value, and
checks that the canary appears nowhere on the rendered page.
"""

from __future__ import annotations

import json
import sqlite3
import time
from array import array
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from evidence_dashboard.config import get_settings
from evidence_dashboard.queue_status import UNKNOWN_ERROR_TYPE, error_type_of, read_queue_status
from evidence_features import FEATURE_NAMES
from evidence_persistence import PredictionQueue
from streamlit.testing.v1 import AppTest

CANARY = "CANARY-JOHN-DOE-1970-01-01-METFORMIN-HCL"


def make_queue(path: Path) -> None:
    """Create an empty queue file with the persistence package's own schema."""
    queue = PredictionQueue(path, max_depth=10_000)
    try:
        # The queue opens its file on first use.
        assert queue.depth() == 0
    finally:
        queue.close()


def insert_dead_letter(path: Path, prediction_id: str, failed_at: float, error: str) -> None:
    """Insert one dead-letter row directly, with the error text given."""
    connection = sqlite3.connect(path)
    try:
        connection.execute(
            "INSERT INTO dead_letters (prediction_id, enqueued_at, failed_at, attempts, error, "
            "payload, features) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (prediction_id, failed_at - 60.0, failed_at, 5, error, b"{}", b""),
        )
        connection.commit()
    finally:
        connection.close()


def queue_record_quoting_canary(path: Path, prediction_id: str) -> None:
    """Queue a record whose policy number and timestamp are the canary.

    The timestamp is not ISO 8601, so the worker fails to decode the record and moves it to the
    dead letters with a ``RecordDecodeError: ...`` text.
    """
    payload = {
        "p": CANARY,
        "v": "1.0.0",
        "s": 0.5,
        "l": "MEDIUM",
        "mn": "EVIDENCE_RISK_MODEL",
        "mv": "V1",
        "src": "API",
        "ms": 1.0,
        "t": CANARY,
        "fr": None,
        "w": [],
    }
    features = array("d", [0.0] * len(FEATURE_NAMES)).tobytes()
    connection = sqlite3.connect(path)
    try:
        connection.execute(
            "INSERT INTO queue_items (prediction_id, enqueued_at, payload, features) "
            "VALUES (?, ?, ?, ?)",
            (prediction_id, time.time(), json.dumps(payload).encode("utf-8"), features),
        )
        connection.commit()
    finally:
        connection.close()


def stored_errors(path: Path) -> list[str]:
    """Return the full error texts of the dead letters, oldest first."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT error FROM dead_letters ORDER BY failed_at").fetchall()
    finally:
        connection.close()
    return [str(row[0]) for row in rows]


def page_text(at: AppTest) -> str:
    """Return every element's protobuf text and every dataframe's cells as one string."""
    parts = []
    for node in at._tree:
        # The root of the tree has no proto of its own.
        parts.append(str(getattr(node, "proto", "")))
    # A dataframe's cells travel as Arrow bytes, not as protobuf text, so each table is added
    # as CSV. at.dataframe finds the tables at any depth of the element tree.
    frames = list(at.dataframe)
    assert frames, "the page shows no table, so the check below would read no cells"
    for element in frames:
        frame: pd.DataFrame = element.value
        parts.append(frame.to_csv())
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("ProgrammingError: statement failed for policy 'JOHN-DOE'", "ProgrammingError"),
        (
            "snowflake.connector.errors.ProgrammingError: 100038: bad value 'X'",
            "snowflake.connector.errors.ProgrammingError",
        ),
        ("LeaseExpired: claimed 5 times", "LeaseExpired"),
        ("statement failed for policy 'JOHN-DOE'", UNKNOWN_ERROR_TYPE),
        ("JOHN-DOE-1970-01-01: no type first", UNKNOWN_ERROR_TYPE),
        ("ProgrammingError:no space after the colon", UNKNOWN_ERROR_TYPE),
        ("", UNKNOWN_ERROR_TYPE),
        (None, UNKNOWN_ERROR_TYPE),
        (42, UNKNOWN_ERROR_TYPE),
    ],
)
def test_error_type_of_cases(error: object, expected: str) -> None:
    """Only a leading ``Type: `` is kept, and anything else becomes the placeholder."""
    assert error_type_of(error) == expected


def test_queue_status_no_dead_letters(tmp_path: Path) -> None:
    """An empty dead-letter table gives a count of 0 and an empty table with the type column."""
    queue_path = tmp_path / "queue.sqlite3"
    make_queue(queue_path)

    status = read_queue_status(queue_path)

    assert status.dead_letters == 0
    assert status.recent_dead_letters.empty
    assert list(status.recent_dead_letters.columns) == [
        "prediction_id",
        "failed_at",
        "attempts",
        "error_type",
    ]


def test_queue_status_one_dead_letter(tmp_path: Path) -> None:
    """One dead letter keeps its type and loses the message that quotes the canary."""
    queue_path = tmp_path / "queue.sqlite3"
    make_queue(queue_path)
    insert_dead_letter(queue_path, "pid-1", 1_700_000_000.0, f"ProgrammingError: {CANARY}")

    status = read_queue_status(queue_path)
    frame = status.recent_dead_letters

    assert status.dead_letters == 1
    assert "error" not in frame.columns
    assert list(frame["prediction_id"]) == ["pid-1"]
    assert list(frame["error_type"]) == ["ProgrammingError"]
    assert CANARY not in frame.to_csv()


def test_queue_status_many_dead_letters(tmp_path: Path) -> None:
    """Each of 25 dead letters is reduced to its type, and only the latest 20 are returned."""
    queue_path = tmp_path / "queue.sqlite3"
    make_queue(queue_path)
    errors = [
        f"ProgrammingError: policy {CANARY}",
        f"RecordDecodeError: queued record cannot be decoded: {CANARY}",
        f"older format quoting {CANARY}",
    ]
    for index in range(25):
        insert_dead_letter(
            queue_path, f"pid-{index:02d}", 1_700_000_000.0 + index, errors[index % 3]
        )

    status = read_queue_status(queue_path)
    frame = status.recent_dead_letters

    assert status.dead_letters == 25
    assert list(frame["prediction_id"]) == [f"pid-{index:02d}" for index in range(24, 4, -1)]
    expected_types = ["ProgrammingError", "RecordDecodeError", UNKNOWN_ERROR_TYPE]
    assert list(frame["error_type"]) == [expected_types[index % 3] for index in range(24, 4, -1)]
    assert CANARY not in frame.to_csv()


@pytest.mark.slow
def test_page_hides_dead_letter_text(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    app_path: Path,
    unused_port: int,
    drain_queue: Callable[[Path, Path], None],
) -> None:
    """Dead letters whose stored text quotes the canary show only their error type."""
    queue_path, store_path = tmp_path / "queue.sqlite3", tmp_path / "store.sqlite3"
    make_queue(queue_path)
    queue_record_quoting_canary(queue_path, "dl-decode")
    drain_queue(queue_path, store_path)
    now = time.time()
    # The form the worker stores for a sink error on one record: f"{type(exc).__name__}: {exc}".
    insert_dead_letter(
        queue_path, "dl-sink", now + 1.0, f"ProgrammingError: statement failed for {CANARY}"
    )
    insert_dead_letter(queue_path, "dl-untyped", now + 2.0, f"older format quoting {CANARY}")
    errors = stored_errors(queue_path)
    assert len(errors) == 3
    assert errors[0].startswith("RecordDecodeError: ")
    # The precondition: the stored texts do quote the canary, so the page could leak it.
    assert CANARY in errors[1]
    assert CANARY in errors[2]

    monkeypatch.setenv("DASHBOARD_STORE_PATH", str(store_path))
    monkeypatch.setenv("DASHBOARD_QUEUE_PATH", str(queue_path))
    monkeypatch.setenv("DASHBOARD_ARTIFACT_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("DASHBOARD_GATEWAY_URL", f"http://127.0.0.1:{unused_port}")
    get_settings.cache_clear()
    try:
        at = AppTest.from_file(str(app_path), default_timeout=60).run()
    finally:
        get_settings.cache_clear()

    assert not at.exception
    assert [m.value for m in at.metric if m.label == "Dead letters"] == ["3"]
    tables = [e.value for e in at.dataframe if "prediction_id" in e.value.columns]
    assert len(tables) == 1
    assert list(tables[0].columns) == ["prediction_id", "failed_at", "attempts", "error_type"]
    assert list(tables[0]["prediction_id"]) == ["dl-untyped", "dl-sink", "dl-decode"]
    assert list(tables[0]["error_type"]) == [
        UNKNOWN_ERROR_TYPE,
        "ProgrammingError",
        "RecordDecodeError",
    ]
    text = page_text(at)
    # The table's cells are part of the text, so the canary check covers them.
    assert "dl-untyped" in text
    assert CANARY not in text
