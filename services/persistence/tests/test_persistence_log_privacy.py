"""Real worker processes over a record with canary values: failures never print the values.

Each test queues one record whose policy number and XML hold made-up health data, lets a real
``evidence-persistence worker`` process fail on it in a way whose error message quotes those
values, and then searches everything the process printed for them. Each test also checks that
the values did reach the error text stored in the queue file, so a sink that stopped quoting
them cannot make the test pass by accident.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from persistence_testkit import build_record, child_environment, cli_argv

HERE = Path(__file__).parent
FAILING_WORKER = HERE / "persistence_failing_worker.py"

CANARY_POLICY = "POL-CANARY-7731"
CANARY_DRUG = "CANARYZOLAMIDE"
CANARY_BIRTH_DATE = "1937-07-13"
CANARY_MIB_CODE = "9ZQX"
CANARY_NAME = "QUILLFEATHERSTONE"
CANARIES = (CANARY_POLICY, CANARY_DRUG, CANARY_BIRTH_DATE, CANARY_MIB_CODE, CANARY_NAME)
CANARY_MIB = (
    f"<MIBResponse><LastName>{CANARY_NAME}</LastName><BirthDate>{CANARY_BIRTH_DATE}</BirthDate>"
    f"<Code>{CANARY_MIB_CODE}</Code></MIBResponse>"
)
CANARY_RX = f"<IntelRXResponse><DrugGenericName>{CANARY_DRUG}</DrugGenericName></IntelRXResponse>"
FAST_WORKER = {
    "poll_interval_seconds": "0.05",
    "retry_backoff_max_seconds": "0.2",
    "store_raw_evidence": "true",
}


def _queue_canary_record(directory: Path) -> PredictionQueue:
    queue = PredictionQueue(directory / "queue.sqlite3")
    queue.append(build_record(1, policy_number=CANARY_POLICY, mib_xml=CANARY_MIB, rx_xml=CANARY_RX))
    return queue


def _run_worker(
    argv: list[str], directory: Path, stop_after: str | None, **settings: str
) -> tuple[int, str]:
    """Run a worker; stop it with SIGTERM once it logged ``stop_after`` twice, if given.

    Returns its exit code and everything it printed on stdout and stderr.
    """
    log = directory / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            argv,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_environment(directory, **{**FAST_WORKER, **settings}),
            cwd=HERE,
        )
        try:
            if stop_after is not None:
                deadline = time.monotonic() + 60
                while log.read_text(encoding="utf-8").count(stop_after) < 2:
                    assert worker.poll() is None, log.read_text(encoding="utf-8")
                    assert time.monotonic() < deadline, f"no {stop_after!r} within 60 s"
                    time.sleep(0.05)
                worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return code, log.read_text(encoding="utf-8")


def _events(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _assert_no_canary(output: str) -> None:
    for canary in CANARIES:
        assert canary not in output, f"{canary!r} was printed by the worker"


def _stored_errors(queue_path: Path) -> str:
    connection = sqlite3.connect(queue_path)
    try:
        rows = connection.execute(
            "SELECT last_error FROM queue_items UNION ALL SELECT error FROM dead_letters"
        ).fetchall()
    finally:
        connection.close()
    return " ".join(str(row[0]) for row in rows)


@pytest.mark.slow
def test_worker_sink_outage_quoting_values_not_logged(tmp_path: Path) -> None:
    """A SinkUnavailableError quoting the values: the log keeps its type, the queue the record."""
    queue = _queue_canary_record(tmp_path)

    code, output = _run_worker(
        [sys.executable, str(FAILING_WORKER), "unavailable"],
        tmp_path,
        stop_after="sink unavailable, batch released",
    )

    assert code == 0, output
    _assert_no_canary(output)
    unavailable = [e for e in _events(output) if e["event"] == "sink unavailable, batch released"]
    assert unavailable, output
    assert unavailable[0]["error_type"] == "SinkUnavailableError"
    assert CANARY_POLICY in _stored_errors(queue.path)
    assert queue.depth() == 1


@pytest.mark.slow
def test_worker_data_error_quoting_values_not_logged(tmp_path: Path) -> None:
    """A sink ValueError quoting the values dead-letters the record; no log line quotes them."""
    queue = _queue_canary_record(tmp_path)

    code, output = _run_worker(
        [sys.executable, str(FAILING_WORKER), "data-error", "--once"],
        tmp_path,
        stop_after=None,
        max_attempts="2",
    )

    assert code == 0, output
    _assert_no_canary(output)
    events = _events(output)
    names = [event["event"] for event in events]
    assert "record failed, will retry" in names
    assert "record moved to dead letters" in names
    dead = next(e for e in events if e["event"] == "record moved to dead letters")
    assert dead["error_type"] == "ValueError"
    assert dead["prediction_id"] == "pred-000001"
    library = next(e for e in events if e.get("logger") == "snowflake.connector.cursor")
    assert library["event"] == "statement failed for %s"
    stored = _stored_errors(queue.path)
    assert CANARY_POLICY in stored
    assert CANARY_DRUG in stored
    assert queue.dead_letter_count() == 1


@pytest.mark.slow
def test_worker_crash_quoting_values_not_printed(tmp_path: Path) -> None:
    """An exception escaping the drain loop exits 1 with a typed log line and no traceback."""
    _queue_canary_record(tmp_path)

    code, output = _run_worker(
        [sys.executable, str(FAILING_WORKER), "crash"], tmp_path, stop_after=None
    )

    assert code == 1, output
    _assert_no_canary(output)
    failed = next(e for e in _events(output) if e["event"] == "worker failed")
    assert failed["exception_type"] == "RuntimeError"
    frames = failed["frames"]
    assert isinstance(frames, list)
    assert any("online_features" in frame for frame in frames)
    assert "Traceback" not in output


def test_dead_letter_cli_hides_quoted_values(tmp_path: Path) -> None:
    """dead-letters list in a process prints the error type; --show-errors prints the values."""
    queue = _queue_canary_record(tmp_path)
    consumer = QueueConsumer(queue, owner="test", max_attempts=1)
    (item,) = consumer.claim(1)
    consumer.fail(item, f"ValueError: store rejected {CANARY_POLICY} {CANARY_RX}", delay_seconds=0)
    environment = child_environment(tmp_path)

    hidden = subprocess.run(
        cli_argv("dead-letters", "list"),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    shown = subprocess.run(
        cli_argv("dead-letters", "list", "--show-errors"),
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert hidden.returncode == 0, hidden.stderr
    assert hidden.stdout.rstrip("\n").endswith("\tValueError")
    _assert_no_canary(hidden.stdout + hidden.stderr)
    assert CANARY_POLICY in shown.stdout
