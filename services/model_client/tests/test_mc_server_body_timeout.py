"""The real model server's body timeout: a stalled body gets 408 and releases its bytes.

A module-scoped server runs with a 0.5 s body timeout and a body limit equal to its in-flight
limit, so a request of the largest size fits only while no other request has bytes reserved.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from evidence_model_client.config import ServerSettings
from pydantic import ValidationError

from .conftest import (
    ServerProcess,
    padded_body,
    read_until_closed,
    request_head,
    server_address,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 0.5
# Time beyond the timeout that a 408 may take to arrive: the timer runs on the server's event
# loop, which a loaded 2-core machine may not run at once.
MARGIN_SECONDS = 3.0
# uvloop's timers count whole milliseconds, so one may fire up to a millisecond early.
TIMER_SLACK_SECONDS = 0.005
MAX_BODY = 200_000
# Time for the server to parse the stalled requests' heads and reserve their bytes, well
# below the timeout. Nothing in the protocol reports that moment, so the test waits for it.
SETTLE_SECONDS = 0.1
TIMED_OUT_EVENT = "request body timed out"
# Ids, sizes and durations only: the body is never logged.
_TIMED_OUT_LOG_KEYS = {
    "event", "level", "timestamp", "path", "status", "content_length", "body_bytes",
    "duration_ms", "timeout_seconds",
}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The built-in model server with a 0.5 s body timeout and a 200,000-byte budget."""
    directory = tmp_path_factory.mktemp("body-timeout")
    process = start_server(
        directory / "no-artifact",
        directory / "server.log",
        MODEL_SERVER_BODY_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
        MODEL_SERVER_MAX_BODY_BYTES=str(MAX_BODY),
        MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES=str(MAX_BODY),
    )
    yield process
    stop_server(process)


def _stall(server: ServerProcess, content_length: int | None, part: bytes) -> socket.socket:
    """Open a request that sends its head and ``part`` of its body, then nothing more.

    The socket's timeout fails the test if no response and close arrive within the margin.
    """
    sock = socket.create_connection(
        server_address(server), timeout=TIMEOUT_SECONDS + MARGIN_SECONDS
    )
    sock.sendall(request_head(content_length) + part)
    return sock


def _timed_out_lines(server: ServerProcess) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
    return [line for line in lines if line.get("event") == TIMED_OUT_EVENT]


def _assert_timed_out(raw: bytes) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"connection: close" in head.lower()
    assert b"content-type: application/json" in head.lower()
    detail = json.loads(body)["detail"]
    assert f"MODEL_SERVER_BODY_TIMEOUT_SECONDS={TIMEOUT_SECONDS:g} s" in detail


def _post_full_body(server: ServerProcess) -> httpx.Response:
    """Send a valid body of the largest size, which fits only if no bytes are held."""
    return httpx.post(
        f"{server.base_url}/predict-proba",
        content=padded_body(MAX_BODY),
        headers={"content-type": "application/json"},
        timeout=30,
    )


def test_body_timeout_half_body_gets_408(server: ServerProcess) -> None:
    """Half of a declared body, then a stall: a JSON 408 within the timeout, then EOF."""
    body = padded_body(10_000)
    logged_before = len(_timed_out_lines(server))
    started = time.monotonic()
    with _stall(server, len(body), body[:5_000]) as sock:
        raw = read_until_closed(sock)
    elapsed = time.monotonic() - started

    _assert_timed_out(raw)
    assert elapsed >= TIMEOUT_SECONDS - TIMER_SLACK_SECONDS
    assert elapsed < TIMEOUT_SECONDS + MARGIN_SECONDS
    lines = _timed_out_lines(server)[logged_before:]
    assert 1 == len(lines)
    line = lines[0]
    assert _TIMED_OUT_LOG_KEYS == set(line)
    assert "info" == line["level"]
    assert "/predict-proba" == line["path"]
    assert 408 == line["status"]
    assert 10_000 == line["content_length"]
    assert 5_000 == line["body_bytes"]
    assert TIMEOUT_SECONDS == line["timeout_seconds"]
    assert (TIMEOUT_SECONDS - TIMER_SLACK_SECONDS) * 1000 <= line["duration_ms"]
    assert "Exception in ASGI application" not in server.log_path.read_text()


def test_body_timeout_dripping_body_closed(server: ServerProcess) -> None:
    """A byte every 0.05 s does not restart the clock: the connection ends after the timeout."""
    body = padded_body(10_000)
    logged_before = len(_timed_out_lines(server))
    started = time.monotonic()
    with _stall(server, len(body), b"") as sock:
        closed = _drip_until_closed(sock, body, TIMEOUT_SECONDS + MARGIN_SECONDS)
    elapsed = time.monotonic() - started

    assert closed
    assert elapsed >= TIMEOUT_SECONDS - TIMER_SLACK_SECONDS
    lines = _timed_out_lines(server)[logged_before:]
    assert 1 == len(lines)
    assert 0 < lines[0]["body_bytes"] < len(body)


def _drip_until_closed(sock: socket.socket, body: bytes, limit_seconds: float) -> bool:
    """Send ``body`` a byte per 0.05 s; return whether the server closed within the limit.

    The server closes with dripped bytes unread, so the kernel may reset the connection
    before the 408 is read. A reset therefore counts as a close, as does EOF.
    """
    sock.settimeout(0.05)
    deadline = time.monotonic() + limit_seconds
    for offset in range(len(body)):
        if time.monotonic() > deadline:
            return False
        try:
            sock.sendall(body[offset : offset + 1])
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return True
        if not data:
            return True
        # Part of the response arrived, and the close follows it.
        sock.settimeout(limit_seconds)
        try:
            read_until_closed(sock)
        except TimeoutError:
            return False
        except OSError:
            return True
        return True
    return False


def test_body_timeout_chunked_body_gets_408(server: ServerProcess) -> None:
    """A chunked body that stalls after one chunk gets 408 too; its log has no length."""
    logged_before = len(_timed_out_lines(server))
    with _stall(server, None, b"5\r\n" + b'{"dat' + b"\r\n") as sock:
        raw = read_until_closed(sock)

    _assert_timed_out(raw)
    lines = _timed_out_lines(server)[logged_before:]
    assert 1 == len(lines)
    assert lines[0]["content_length"] is None
    assert 5 == lines[0]["body_bytes"]


def test_body_timeout_releases_inflight_budget(server: ServerProcess) -> None:
    """Four stalled requests fill the budget and get 503 for others, until they time out."""
    stalled = [_stall(server, MAX_BODY // 4, b'{"data": [') for _ in range(4)]
    try:
        time.sleep(SETTLE_SECONDS)
        # A full body needs the whole budget, so it gets 503 while any stalled request
        # still holds its bytes. Only its head is sent, as a 503 leaves the body unread.
        with socket.create_connection(server_address(server), timeout=10) as probe:
            probe.sendall(request_head(MAX_BODY))
            while_held = read_until_closed(probe)
        answers = [read_until_closed(sock) for sock in stalled]
    finally:
        for sock in stalled:
            sock.close()
    after = _post_full_body(server)

    assert while_held.startswith(b"HTTP/1.1 503 "), while_held[:80]
    for raw in answers:
        _assert_timed_out(raw)
    assert 200 == after.status_code, after.text
    assert 1 == len(after.json()["data"])


def test_body_timeout_slow_steady_body_served(server: ServerProcess) -> None:
    """A body sent in four parts 0.05 s apart arrives within the timeout and is scored.

    The response keeps the connection open for a next request, as for any request in time.
    """
    body = padded_body(20_000)

    def parts() -> Iterator[bytes]:
        for offset in range(0, len(body), 5_000):
            time.sleep(0.05)
            yield body[offset : offset + 5_000]

    with httpx.Client(timeout=10) as client:
        response = client.post(
            f"{server.base_url}/predict-proba",
            # With a Content-Length, httpx sends the parts as they come, without chunking.
            content=parts(),
            headers={"content-type": "application/json", "content-length": str(len(body))},
        )

    assert 200 == response.status_code, response.text
    assert "connection" not in response.headers
    assert 1 == len(response.json()["data"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "greater than 0"),
        (-1, "greater than 0"),
        (301, "less than or equal to 300"),
        ("soon", "valid number"),
    ],
)
def test_body_timeout_setting_invalid(value: object, message: str) -> None:
    """A timeout that is not a number in (0, 300] names the field and the bound."""
    with pytest.raises(ValidationError, match="body_timeout_seconds") as raised:
        ServerSettings.model_validate({"body_timeout_seconds": value})

    assert message in str(raised.value)


def test_body_timeout_setting_default() -> None:
    """The default leaves a body of the largest size seconds to arrive."""
    assert 10.0 == ServerSettings.model_fields["body_timeout_seconds"].default
