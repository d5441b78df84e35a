"""Tests of the status and dead-letters commands, run in process on a real queue file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence.cli import app
from evidence_persistence.config import get_settings
from persistence_testkit import build_record
from typer.testing import CliRunner


@pytest.fixture
def queue_with_dead_letters(
    clean_settings: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> PredictionQueue:
    """Return a queue of three records, two of which are dead letters, named by the settings."""
    path = tmp_path / "queue.sqlite3"
    monkeypatch.setenv("PERSISTENCE_QUEUE_PATH", str(path))
    get_settings.cache_clear()
    queue = PredictionQueue(path)
    queue.append_many(build_record(i) for i in range(3))
    consumer = QueueConsumer(queue, owner="test", max_attempts=1)
    first, second = consumer.claim(2)
    consumer.fail(
        first, "ValueError: rejected POL-SECRET-1 <Rx>CANARYZOLAMIDE</Rx>", delay_seconds=0
    )
    consumer.fail(second, "rejected POL-SECRET-2 in an older error format", delay_seconds=0)
    return queue


def test_cli_status_reports_counts(queue_with_dead_letters: PredictionQueue) -> None:
    """status prints depth 1 and two dead letters as JSON."""
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["depth"], report["dead_letters"]) == (1, 2)


def test_cli_dead_letters_list_json(queue_with_dead_letters: PredictionQueue) -> None:
    """dead-letters list --json prints one object per dead letter with the error type only."""
    result = CliRunner().invoke(app, ["dead-letters", "list", "--json"])
    assert result.exit_code == 0, result.output
    letters = [json.loads(line) for line in result.stdout.splitlines()]
    assert [letter["prediction_id"] for letter in letters] == ["pred-000000", "pred-000001"]
    assert letters[0]["error"] == "ValueError"
    assert letters[1]["error"] == "(error type unknown; use --show-errors)"
    assert letters[0]["attempts"] == 1
    assert "POL-SECRET" not in result.stdout
    assert "CANARYZOLAMIDE" not in result.stdout


def test_cli_dead_letters_show_errors_full(queue_with_dead_letters: PredictionQueue) -> None:
    """--show-errors prints the stored messages, values included."""
    result = CliRunner().invoke(app, ["dead-letters", "list", "--json", "--show-errors"])
    assert result.exit_code == 0, result.output
    letters = [json.loads(line) for line in result.stdout.splitlines()]
    assert letters[0]["error"] == "ValueError: rejected POL-SECRET-1 <Rx>CANARYZOLAMIDE</Rx>"
    assert letters[1]["error"] == "rejected POL-SECRET-2 in an older error format"


def test_cli_dead_letters_list_text(queue_with_dead_letters: PredictionQueue) -> None:
    """The text listing has tab-separated lines and a count on stderr."""
    result = CliRunner().invoke(app, ["dead-letters", "list", "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("pred-000000\tattempts=1\t")
    assert result.stdout.rstrip("\n").endswith("\tValueError")
    assert len(result.stdout.splitlines()) == 1
    assert "1 dead letter(s)" in result.stderr


def test_cli_replay_one_then_all(queue_with_dead_letters: PredictionQueue) -> None:
    """replay ID moves one record back; replay --all moves the rest."""
    queue = queue_with_dead_letters
    single = CliRunner().invoke(app, ["dead-letters", "replay", "pred-000001"])
    assert single.stdout.strip() == "replayed 1 record(s): pred-000001"
    assert (queue.depth(), queue.dead_letter_count()) == (2, 1)
    rest = CliRunner().invoke(app, ["dead-letters", "replay", "--all"])
    assert rest.stdout.strip() == "replayed 1 record(s)"
    assert (queue.depth(), queue.dead_letter_count()) == (3, 0)


@pytest.mark.parametrize("arguments", [[], ["pred-000001", "--all"]])
def test_cli_replay_needs_ids_or_all(
    queue_with_dead_letters: PredictionQueue, arguments: list[str]
) -> None:
    """replay with neither ids nor --all, or with both, exits 2 and changes nothing."""
    result = CliRunner().invoke(app, ["dead-letters", "replay", *arguments])
    assert result.exit_code == 2
    assert "pass prediction ids or --all" in result.stderr
    assert queue_with_dead_letters.dead_letter_count() == 2


def test_cli_status_unreadable_queue_exits_1(
    clean_settings: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """status on a queue path under a regular file exits 1 naming the path."""
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("PERSISTENCE_QUEUE_PATH", str(tmp_path / "file" / "queue.sqlite3"))
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 1
    assert f"no queue file at '{tmp_path}/file/queue.sqlite3'" in result.stderr
