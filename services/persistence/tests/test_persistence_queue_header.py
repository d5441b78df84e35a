"""Tests of an overwritten queue file header, which an idle worker's connection does not re-read.

SQLite keeps page 1, which contains the header, in a connection's page cache while no other
connection commits. A worker whose connection is open goes on claiming from that cache after
the first bytes of the file were overwritten, while every new connection fails with
SQLITE_NOTADB. These tests overwrite the 16 bytes of ``SQLite format 3\\0`` and restore them.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from evidence_persistence import PredictionQueue, QueueUnavailableError
from evidence_persistence._consumer import QueueConsumer
from persistence_testkit import (
    PREDICTIONS_TABLE,
    build_record,
    child_environment,
    cli_argv,
    log_events,
    queue_held_records,
    stored_values,
    wait_for,
)

HEADER_BYTES = 16
FAST_WORKER = {
    "batch_size": "10",
    "poll_interval_seconds": "0.05",
    "retry_backoff_max_seconds": "0.2",
}
# Records held back by available_at become claimable this long after they are queued, while
# the header is overwritten, so an old worker claims them from its page cache.
HOLD_SECONDS = 2.0


def _overwrite_header(path: Path) -> bytes:
    """Overwrite the file's magic string with zeros; return the original bytes."""
    with path.open("r+b") as file:
        original = file.read(HEADER_BYTES)
        file.seek(0)
        file.write(b"\0" * HEADER_BYTES)
    assert original == b"SQLite format 3\0"
    return original


def _restore_header(path: Path, original: bytes) -> None:
    with path.open("r+b") as file:
        file.write(original)


def _named(events: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [event for event in events if event["event"] == name]


def _persisted(events: list[dict[str, object]]) -> int:
    """Return the records of batches written in full; the log filter drops ``persisted``."""
    batches = _named(events, "batch processed")
    assert {event["outcome"] for event in batches} <= {"written"}
    return sum(int(str(event["claimed"])) for event in batches)


def _queue_up(port: object) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    line = next(line for line in text.splitlines() if line.startswith("evidence_persistence_q"))
    assert line.startswith("evidence_persistence_queue_up ")
    return float(line.split()[1])


def _empty_wal(path: Path) -> None:
    """Copy the WAL into the file and empty it, so new connections read page 1 from the file."""
    connection = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        connection.close()
    assert busy == 0


@pytest.mark.slow
def test_worker_logs_overwritten_header(tmp_path: Path) -> None:
    """A running worker logs the damage each cycle, claims nothing, then drains after repair."""
    queue_path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(queue_path)
    queue.append_many(build_record(i) for i in range(30))
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            cli_argv("worker", "--metrics-port", "0"),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_environment(tmp_path, **FAST_WORKER),
        )
    try:
        wait_for(lambda: _persisted(log_events(log)) == 30, 60, "the first 30 records")
        port = _named(log_events(log), "metrics endpoint started")[0]["port"]
        assert _queue_up(port) == 1

        queue_held_records(queue, range(30, 40), time.time() + HOLD_SECONDS)
        queue.close()
        _empty_wal(queue_path)
        time.sleep(0.3)  # the worker polls and caches page 1 again
        damaged_at = len(log_events(log))
        original = _overwrite_header(queue_path)

        wait_for(
            lambda: len(_named(log_events(log)[damaged_at:], "queue unavailable")) >= 3,
            30,
            "three `queue unavailable` lines after the header was overwritten",
        )
        # The held records become claimable while the header stays damaged.
        time.sleep(HOLD_SECONDS + 0.5)
        assert _queue_up(port) == 0
        during = log_events(log)[damaged_at:]
        _restore_header(queue_path, original)

        assert _named(during, "batch processed") == []
        failures = _named(during, "queue unavailable")
        assert {event["error_type"] for event in failures} == {"QueueUnavailableError"}
        assert {event["error_code"] for event in failures} == {"SQLITE_NOTADB"}
        outages = [event["outages_in_a_row"] for event in failures]
        assert outages == list(range(1, len(outages) + 1))

        # The worker logs the recovery after the batch that the first claim of it processes.
        wait_for(
            lambda: (
                _persisted(log_events(log)) == 40
                and bool(_named(log_events(log), "queue available again"))
            ),
            60,
            "the 10 held records and the recovery line",
        )
        after = log_events(log)[damaged_at + len(during) :]
        assert len(_named(after, "queue available again")) == 1
        # Damage marks the process until it restarts, as for damaged pages.
        assert _queue_up(port) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    assert code == 0

    ids = stored_values(tmp_path / "store.sqlite3", PREDICTIONS_TABLE, "PREDICTION_ID")
    assert sorted(ids) == sorted(build_record(i).prediction_id for i in range(40))
    assert _persisted(log_events(log)) == 40
    reopened = PredictionQueue(queue_path)
    assert reopened.depth() == 0
    assert reopened.dead_letter_count() == 0
    output_text = log.read_text(encoding="utf-8")
    for index in range(40):
        assert build_record(index).policy_number not in output_text


def _queue_with_page_one_in_file(path: Path) -> PredictionQueue:
    """Return a queue of 5 records whose connection is open and whose WAL is empty."""
    queue = PredictionQueue(path)
    queue.append_many(build_record(i) for i in range(5))
    queue.close()  # the last connection to close copies the WAL into the file
    assert queue.depth() == 5
    return queue


def test_check_header_finds_overwritten_header(tmp_path: Path) -> None:
    """The open connection still reads; check_header raises SQLITE_NOTADB until repaired."""
    path = tmp_path / "queue.sqlite3"
    queue = _queue_with_page_one_in_file(path)
    queue.check_header()
    original = _overwrite_header(path)

    assert queue.depth() == 5  # served from this connection's page cache
    with pytest.raises(QueueUnavailableError) as info:
        queue.check_header()
    assert getattr(info.value.__cause__, "sqlite_errorname", None) == "SQLITE_NOTADB"
    assert "the file is damaged; stop every process that uses it" in str(info.value)
    assert queue.corruption == "SQLITE_NOTADB"

    _restore_header(path, original)
    queue.check_header()
    assert queue.depth() == 5


def test_check_header_creates_new_queue(tmp_path: Path) -> None:
    """Before the first call the file is created, as by any other call of the queue."""
    queue = PredictionQueue(tmp_path / "new" / "queue.sqlite3")
    queue.check_header()
    assert queue.depth() == 0
    assert queue.corruption is None


def test_check_header_file_deleted(tmp_path: Path) -> None:
    """A file deleted under an open connection raises SQLITE_CANTOPEN and is not recreated."""
    queue = _queue_with_page_one_in_file(tmp_path / "queue.sqlite3")
    queue.path.unlink()

    with pytest.raises(QueueUnavailableError) as info:
        queue.check_header()

    assert getattr(info.value.__cause__, "sqlite_errorname", None) == "SQLITE_CANTOPEN"
    assert not queue.path.exists()
    assert queue.corruption is None


def test_check_header_skips_lock_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLITE_BUSY on the new connection does not indicate damage, so the check passes."""
    queue = _queue_with_page_one_in_file(tmp_path / "queue.sqlite3")

    # NOTE: a real held lock cannot be set up here. In WAL mode an exclusive lock needs every
    # other connection closed, and the check opens this process's connection first.
    def locked(*_args: object, **_kwargs: object) -> sqlite3.Connection:
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = 5  # SQLITE_BUSY
        raise error

    monkeypatch.setattr(sqlite3, "connect", locked)
    queue.check_header()
    assert queue.corruption is None


def test_claim_refused_on_overwritten_header(tmp_path: Path) -> None:
    """A claim checks the header first, so it takes no record from the page cache."""
    path = tmp_path / "queue.sqlite3"
    queue = _queue_with_page_one_in_file(path)
    consumer = QueueConsumer(queue, owner="test")
    original = _overwrite_header(path)

    with pytest.raises(QueueUnavailableError):
        consumer.claim(10)

    _restore_header(path, original)
    claimed = consumer.claim(10)
    assert [item.prediction_id for item in claimed] == [
        build_record(i).prediction_id for i in range(5)
    ]
    assert [item.attempts for item in claimed] == [1] * 5
