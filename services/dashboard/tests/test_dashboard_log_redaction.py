"""Health data never reaches the dashboard's logs, even when a section fails.

A canary value plays a policy number, drug name and MIB code. It is in a broken
store file (as the policy number and as the unparseable CREATED_AT of a prediction) and in the
test form, and a faulty gateway on 127.0.0.1 echoes it back as a non-numeric risk score.
The page is driven by ``AppTest`` in a child process, so the test reads everything that
process wrote to stdout and stderr, including Streamlit's own console handlers.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from evidence_dashboard.store import schema

pytestmark = pytest.mark.slow

CANARY = "CANARY-OXYCODONE-311C-P9931"
CHILD = Path(__file__).with_name("canary_page_run.py")
APP_PATH = Path(__file__).resolve().parents[1] / "src" / "evidence_dashboard" / "app.py"


class _EchoingGateway(BaseHTTPRequestHandler):
    """Faulty gateway whose readiness and prediction responses echo the canary."""

    def do_GET(self) -> None:
        self._send({"status": CANARY, "checks": {"model": {"ok": False, "detail": CANARY}}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        self._send({"risk_score": request.get("policy_number"), "reasons": []})

    def _send(self, body: dict[str, object]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test server quiet."""


@pytest.fixture(scope="module")
def echoing_gateway() -> Iterator[str]:
    """Base URL of the faulty gateway, served from a thread on a free port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class CanaryRun:
    """What the child process printed and what its page showed."""

    returncode: int
    stdout: str
    stderr: str
    page: dict[str, list[str]]


@pytest.fixture(scope="module")
def canary_run(tmp_path_factory: pytest.TempPathFactory, echoing_gateway: str) -> CanaryRun:
    """Run the page once in a child process against the broken store and the faulty gateway."""
    directory = tmp_path_factory.mktemp("dashboard_canary")
    store_path = directory / "store.sqlite3"
    _write_broken_store(store_path)
    result_path = directory / "page.json"
    env = {
        **os.environ,
        "DASHBOARD_STORE_PATH": str(store_path),
        "DASHBOARD_QUEUE_PATH": str(directory / "queue.sqlite3"),
        "DASHBOARD_ARTIFACT_DIR": str(directory / "model"),
        "DASHBOARD_GATEWAY_URL": echoing_gateway,
    }
    completed = subprocess.run(
        [sys.executable, str(CHILD), str(APP_PATH), CANARY, str(result_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    page = json.loads(result_path.read_text("utf-8")) if result_path.exists() else {}
    return CanaryRun(completed.returncode, completed.stdout, completed.stderr, page)


def _write_broken_store(path: Path) -> None:
    """Write a predictions table with one row whose POLICY_NUMBER and CREATED_AT are the canary."""
    table = schema.sqlite_table(schema.PREDICTIONS_TABLE)
    columns = (
        schema.PREDICTION_ID,
        schema.POLICY_NUMBER,
        schema.CREATED_AT,
        schema.SOURCE,
        schema.INFERENCE_MS,
        schema.MODEL_NAME,
        schema.MODEL_VERSION,
        schema.RISK_SCORE,
        schema.RISK_LEVEL,
        schema.FALLBACK_REASON,
        schema.WARNINGS,
    )
    row = (
        "pred-1",
        CANARY,
        CANARY,
        "API",
        1.5,
        "EVIDENCE_RISK_MODEL",
        "V2",
        0.4,
        "MEDIUM",
        None,
        "[]",
    )
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
        placeholders = ", ".join("?" * len(columns))
        connection.execute(f"INSERT INTO {table} VALUES ({placeholders})", row)  # noqa: S608
        connection.commit()
    finally:
        connection.close()


def test_canary_never_reaches_logs(canary_run: CanaryRun) -> None:
    logs = canary_run.stdout + canary_run.stderr

    assert canary_run.returncode == 0, logs[-3000:]
    assert CANARY not in logs
    assert canary_run.page["exceptions"] == []


def test_failing_sections_show_errors_on_page(canary_run: CanaryRun) -> None:
    assert canary_run.returncode == 0, canary_run.stderr[-3000:]
    failed = [message.split(":")[0] for message in canary_run.page["errors"]]

    assert "The Monitor section failed" in failed
    assert "The Policy lookup section failed" in failed
    assert "The Test prediction section failed" in failed
    # The page may show the canary to its users. Only the logs must not contain it.
    assert any(CANARY in message for message in canary_run.page["errors"])


def test_section_failures_logged_by_type(canary_run: CanaryRun) -> None:
    assert canary_run.returncode == 0, canary_run.stderr[-3000:]
    lines = [json.loads(line) for line in canary_run.stderr.splitlines() if line.startswith("{")]
    failures = [line for line in lines if line["event"] == "page section failed"]

    assert {line["section"] for line in failures} == {"Monitor", "Policy lookup", "Test prediction"}
    assert {line["exception_type"] for line in failures} == {"ValueError"}


def test_failures_outside_sections_logged_by_type(canary_run: CanaryRun) -> None:
    assert canary_run.returncode == 0, canary_run.stderr[-3000:]
    lines = [json.loads(line) for line in canary_run.stderr.splitlines() if line.startswith("{")]

    stray = next(line for line in lines if line["event"] == "lookup failed")
    assert stray["dropped_keys"] == ["policy_number"]
    assert stray["exception_type"] == "ValueError"
    other_library = next(line for line in lines if line["event"] == "request failed")
    assert other_library["exception_type"] == "ValueError"
    assert "Uncaught app execution (ValueError, message removed)" in canary_run.stderr
