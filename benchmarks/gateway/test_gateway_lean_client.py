"""Checks of the lean load client, so the throughput figures it produces can be trusted."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from evidence_gateway.testing import ServerProcess, free_port

from .lean_client import LeanLoadError, LeanResult, closed_loop


@pytest.fixture(scope="module")
def target_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn process serving ``lean_target_app``."""
    port = free_port()
    server = ServerProcess(
        [
            sys.executable, "-m", "uvicorn", "lean_target_app:app",
            "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log",
        ],
        ready_url=f"http://127.0.0.1:{port}/health",
        log_path=tmp_path_factory.mktemp("lean") / "target.log",
    ).start()  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_every_request_arrives_counted(target_url: str) -> None:
    """3 connections of 4 calls: 12 responses, and the server decoded 12 intact bodies."""
    before = len(httpx.get(f"{target_url}/received").json())
    body = orjson.dumps({"policy_number": "LEAN-1", "rx_xml": "<r>é</r>" * 500})

    result = closed_loop(target_url, "/score", body, connections=3, calls_per_connection=4)

    assert len(result.latencies) == 12
    assert all(latency > 0 for latency in result.latencies)
    assert result.statuses == {200: 12}
    assert result.model_versions == {"REGISTRY_TEST": 12}
    assert result.requests_per_second == pytest.approx(12 / result.seconds)
    received = httpx.get(f"{target_url}/received").json()[before:]
    assert received == [orjson.loads(body)] * 12


def test_one_connection_one_call(target_url: str) -> None:
    """The smallest run: one response."""
    result = closed_loop(target_url, "/score", b"{}", connections=1, calls_per_connection=1)

    assert result.statuses == {200: 1}
    assert len(result.latencies) == 1


def test_error_status_counted_without_version(target_url: str) -> None:
    """A 404 response counts under its status and adds no model version."""
    result = closed_loop(target_url, "/missing", b"{}", connections=2, calls_per_connection=3)

    assert result.statuses == {404: 6}
    assert result.model_versions == {}


def test_late_response_raises(target_url: str) -> None:
    """A response later than the timeout raises instead of hanging the benchmark."""
    with pytest.raises(LeanLoadError, match=r"within 0\.2 s"):
        closed_loop(target_url, "/slow", b"{}", connections=1, calls_per_connection=1, timeout=0.2)


def test_closed_connection_raises() -> None:
    """A server that accepts and closes at once makes the run fail with a clear message."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def close_at_once() -> None:
        with listener:
            connection, _ = listener.accept()
            connection.close()

    thread = threading.Thread(target=close_at_once)
    thread.start()
    try:
        with pytest.raises(LeanLoadError, match="closed the connection"):
            closed_loop(
                f"http://127.0.0.1:{port}", "/score", b"{}", connections=1,
                calls_per_connection=2, timeout=5,
            )  # fmt: skip
    finally:
        thread.join(5)


@pytest.mark.parametrize(
    ("url", "connections", "calls", "message"),
    [
        ("https://127.0.0.1:1", 1, 1, "http://HOST:PORT"),
        ("http://127.0.0.1", 1, 1, "http://HOST:PORT"),
        ("http://127.0.0.1:1", 0, 1, "at least 1"),
        ("http://127.0.0.1:1", 1, 0, "at least 1"),
    ],
)
def test_bad_arguments_raise(url: str, connections: int, calls: int, message: str) -> None:
    """A URL without scheme http and a port, or a count below 1, raises before sending."""
    with pytest.raises(ValueError, match=message):
        closed_loop(url, "/score", b"{}", connections=connections, calls_per_connection=calls)


def test_empty_result_has_zero_rate() -> None:
    """No responses and no time give a rate of 0, not a division error."""
    assert LeanResult().requests_per_second == 0.0
