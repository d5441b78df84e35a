"""CLI commands that read the queue create none, and replay reports each id once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence.cli import app
from evidence_persistence.config import get_settings
from persistence_testkit import build_record
from typer.testing import CliRunner

READ_COMMANDS = [["status"], ["dead-letters", "list"], ["dead-letters", "replay", "--all"]]


@pytest.fixture
def queue_path(clean_settings: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return a queue path named by PERSISTENCE_QUEUE_PATH; no file exists there yet."""
    path = tmp_path / "queue.sqlite3"
    monkeypatch.setenv("PERSISTENCE_QUEUE_PATH", str(path))
    get_settings.cache_clear()
    return path


@pytest.fixture
def dead_letter_queue(queue_path: Path) -> PredictionQueue:
    """Return a queue at ``queue_path`` whose three records are all dead letters."""
    queue = PredictionQueue(queue_path)
    queue.append_many(build_record(i) for i in range(3))
    consumer = QueueConsumer(queue, owner="test", max_attempts=1)
    for claimed in consumer.claim(3):
        consumer.fail(claimed, "ValueError: rejected", delay_seconds=0)
    return queue


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_cli_missing_queue_creates_nothing(queue_path: Path, command: list[str]) -> None:
    """A missing queue file exits 1 naming the path and the setting, and stays missing."""
    result = CliRunner().invoke(app, command)

    assert result.exit_code == 1
    assert f"no queue file at '{queue_path}'" in result.stderr
    assert "PERSISTENCE_QUEUE_PATH" in result.stderr
    assert not queue_path.exists()
    assert list(queue_path.parent.iterdir()) == []


def test_cli_relative_queue_names_directory(
    clean_settings: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default relative path is resolved against the current directory in the message."""
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(app, ["status"])

    assert result.exit_code == 1
    assert f"no queue file at '{tmp_path}/var/queue.sqlite3'" in result.stderr
    assert f"relative to the current directory '{tmp_path}'" in result.stderr
    assert not (tmp_path / "var").exists()


def test_cli_status_rejects_other_sqlite_file(queue_path: Path) -> None:
    """An SQLite file without the queue tables is reported and left without them."""
    connection = sqlite3.connect(queue_path)
    connection.execute("CREATE TABLE unrelated (x INTEGER)")
    connection.commit()
    connection.close()

    result = CliRunner().invoke(app, ["status"])

    assert result.exit_code == 1
    assert "is not a prediction queue" in result.stderr
    connection = sqlite3.connect(queue_path)
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert tables == {"unrelated"}


def test_cli_status_rejects_non_sqlite_file(queue_path: Path) -> None:
    """A file that is not SQLite is reported as unreadable, naming the setting."""
    queue_path.write_text("not a database, just text that is long enough for a header")

    result = CliRunner().invoke(app, ["status"])

    assert result.exit_code == 1
    assert "as an SQLite file" in result.stderr
    assert "PERSISTENCE_QUEUE_PATH" in result.stderr


def test_cli_replay_repeated_id_once(dead_letter_queue: PredictionQueue) -> None:
    """An id given twice is replayed and counted once."""
    result = CliRunner().invoke(app, ["dead-letters", "replay", "pred-000001", "pred-000001"])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "replayed 1 record(s): pred-000001"
    assert dead_letter_queue.depth() == 1
    assert dead_letter_queue.dead_letter_count() == 2


def test_cli_replay_unknown_id_exits_1(dead_letter_queue: PredictionQueue) -> None:
    """An unknown id is named on stderr with exit 1; the known ids are still replayed."""
    result = CliRunner().invoke(
        app, ["dead-letters", "replay", "pred-000000", "no-such-id", "pred-000002"]
    )

    assert result.exit_code == 1
    assert result.stdout.strip() == "replayed 2 record(s): pred-000000 pred-000002"
    assert "not found among the dead letters: no-such-id" in result.stderr
    assert dead_letter_queue.depth() == 2
    assert dead_letter_queue.dead_letter_count() == 1


def test_cli_replay_only_unknown_ids(dead_letter_queue: PredictionQueue) -> None:
    """Only unknown ids: nothing moves, each unknown id is listed once, exit 1."""
    result = CliRunner().invoke(app, ["dead-letters", "replay", "nope-1", "nope-2", "nope-1"])

    assert result.exit_code == 1
    assert result.stdout.strip() == "replayed 0 record(s)"
    assert "not found among the dead letters: nope-1 nope-2" in result.stderr
    assert dead_letter_queue.dead_letter_count() == 3
