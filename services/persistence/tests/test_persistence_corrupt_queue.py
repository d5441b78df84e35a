"""Tests of a damaged queue file: the metric, the status command and the error message."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue, QueueUnavailableError
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.cli import app
from evidence_persistence.config import get_settings
from evidence_persistence.metrics import QueueCollector
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import build_record
from structlog.testing import capture_logs
from typer.testing import CliRunner

PAGE_SIZE = 4096


def _corrupt_queue(path: Path, records: int = 300) -> None:
    """Write ``records`` records to a new queue at ``path``, then overwrite three of its pages.

    Pages 11 to 13 hold queue rows, so a claim fails on them, while the page of the depth
    counter stays intact and ``depth()`` still succeeds. On SQLite 3.40 this damage also stops
    ``PRAGMA quick_check`` with SQLITE_CORRUPT before it lists pages.
    """
    queue = PredictionQueue(path)
    queue.append_many(build_record(i) for i in range(records))
    queue.close()  # the last connection to close copies the WAL into the file
    with path.open("r+b") as file:
        file.seek(PAGE_SIZE * 10)
        file.write(b"\xa5" * PAGE_SIZE * 3)


def _gauges(queue: PredictionQueue) -> dict[str, float]:
    return {family.name: family.samples[0].value for family in QueueCollector(queue).collect()}


@pytest.mark.parametrize("records", [0, 1, 300])
def test_intact_queue_reports_no_problems(tmp_path: Path, records: int) -> None:
    """quick_check of an intact queue of 0, 1 or many records finds nothing."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(records))
    assert queue.integrity_problems() == []
    assert queue.corruption is None
    assert _gauges(queue)["evidence_persistence_queue_up"] == 1


def test_corrupt_queue_problems_found(tmp_path: Path) -> None:
    """Damaged pages stop quick_check, which is reported as one SQLITE_CORRUPT problem."""
    path = tmp_path / "queue.sqlite3"
    _corrupt_queue(path)
    queue = PredictionQueue(path)
    problems = queue.integrity_problems()
    assert problems == ["SQLITE_CORRUPT: database disk image is malformed"]
    assert queue.corruption == "quick_check"


@pytest.mark.parametrize("bad_rows", [1, 3])
def test_constraint_damage_listed(tmp_path: Path, bad_rows: int) -> None:
    """Rows that break a CHECK constraint are listed one line each, the banner dropped."""
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append(build_record(1))
    connection = sqlite3.connect(queue.path, isolation_level=None)
    connection.execute("PRAGMA ignore_check_constraints = ON")
    for row_id in range(2, 2 + bad_rows):
        connection.execute("INSERT INTO queue_depth (id, depth) VALUES (?, 0)", (row_id,))
    connection.close()
    problems = queue.integrity_problems()
    assert problems == ["CHECK constraint failed in queue_depth"] * bad_rows
    assert queue.corruption == "quick_check"


def test_collector_down_after_corrupt_claim(tmp_path: Path) -> None:
    """queue_up turns 0 once a claim met the damage, though the depth is still readable."""
    path = tmp_path / "queue.sqlite3"
    _corrupt_queue(path)
    queue = PredictionQueue(path)
    consumer = QueueConsumer(queue, owner="test")
    # NOTE: a scrape reads only the depth counter and the first row, so it cannot see damage
    # elsewhere in the file until an operation of this process reads it.
    assert _gauges(queue)["evidence_persistence_queue_up"] == 1

    with pytest.raises(QueueUnavailableError) as info:
        consumer.claim(500)

    assert queue.corruption == "SQLITE_CORRUPT"
    gauges = _gauges(queue)
    assert gauges["evidence_persistence_queue_up"] == 0
    assert gauges["evidence_persistence_queue_depth"] == 300
    assert "the file is damaged; stop every process that uses it" in str(info.value)
    assert "disk has space" not in str(info.value)


def test_drainer_logs_corrupt_queue(tmp_path: Path) -> None:
    """The worker loop logs the damage as `queue unavailable` with error_code SQLITE_CORRUPT."""
    path = tmp_path / "queue.sqlite3"
    _corrupt_queue(path)
    queue = PredictionQueue(path)
    consumer = QueueConsumer(queue, owner="test")
    drainer = QueueDrainer(
        consumer,
        SqliteSink(tmp_path / "store.sqlite3"),
        poll_interval_seconds=0.001,
        retry_backoff_max_seconds=0.01,
    )
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    with capture_logs() as logs:
        drainer.run(stop)
    timer.cancel()
    errors = [entry for entry in logs if entry["event"] == "queue unavailable"]
    assert errors
    assert {entry["error_code"] for entry in errors} == {"SQLITE_CORRUPT"}
    assert _gauges(queue)["evidence_persistence_queue_up"] == 0


@pytest.fixture
def settings_for(clean_settings: None, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Return a function that points PERSISTENCE_QUEUE_PATH at a file."""

    def point_at(path: Path) -> None:
        monkeypatch.setenv("PERSISTENCE_QUEUE_PATH", str(path))
        get_settings.cache_clear()

    return point_at


def test_status_reports_corrupt_queue(tmp_path: Path, settings_for: Callable[[Path], None]) -> None:
    """status prints integrity "corrupt" with the depth, names the problem and exits with 1."""
    path = tmp_path / "queue.sqlite3"
    _corrupt_queue(path)
    settings_for(path)

    result = CliRunner().invoke(app, ["status"])

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["integrity"] == "corrupt"
    assert report["depth"] == 300
    assert result.stderr == (
        f"error: queue file {str(path.resolve())!r} is corrupt: PRAGMA quick_check found 1 "
        "problem(s), the first being 'SQLITE_CORRUPT: database disk image is malformed'; stop "
        "the gateway and the worker, then recover the file as docs/persistence.md, section "
        "Corrupt SQLite file, describes\n"
    )


@pytest.mark.parametrize("records", [0, 1, 300])
def test_status_reports_intact_queue(
    tmp_path: Path, settings_for: Callable[[Path], None], records: int
) -> None:
    """status prints integrity "ok" and exits with 0 for an intact queue."""
    path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(path)
    queue.append_many(build_record(i) for i in range(records))
    queue.check_writable()
    settings_for(path)

    result = CliRunner().invoke(app, ["status"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["integrity"], report["depth"]) == ("ok", records)
