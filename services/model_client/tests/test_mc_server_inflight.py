"""The real model server's limit on request body bytes held across concurrent requests.

A module-scoped server runs with a 100,000-byte body limit and a 200,000-byte in-flight limit,
and counts its 503 rejections in a log line every 0.3 s.
Requests that stop in the middle of their body (``_Holder``) keep their declared bytes
reserved, which fills the in-flight budget as concurrent large requests would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from evidence_model_client.busy_log import BusyLog
from evidence_model_client.errors import ModelUnavailableError
from evidence_model_client.inflight import InflightBodies
from evidence_model_client.scorer import RULE_BASED_VERSION
from prometheus_client import CollectorRegistry

from .conftest import (
    ServerProcess,
    make_scorer,
    padded_body,
    read_until_closed,
    request_head,
    roomy_client,
    server_address,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.slow

MAX_BODY = 100_000
MAX_INFLIGHT = 200_000
MAX_ROWS = 20
# Time for the server to parse a holder's headers and reserve its bytes. Nothing in the
# protocol reports that moment, so the tests wait for it.
SETTLE_SECONDS = 0.5
BUSY_LOG_INTERVAL = 0.3
BUSY_EVENT = "prediction request rejected, in-flight body limit reached"
BUSY_CONTINUED_EVENT = "prediction requests still rejected, in-flight body limit reached"
BUSY_ENDED_EVENT = "prediction requests no longer rejected for the in-flight body limit"
# Ids, sizes and counts only: a rejected body is never read, let alone logged.
_BUSY_LOG_KEYS = {
    "event", "level", "timestamp", "path", "status", "body_bytes", "inflight_bytes",
    "inflight_requests", "max_inflight_body_bytes", "interval_seconds",
}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The built-in model server with small body, in-flight and row limits."""
    directory = tmp_path_factory.mktemp("inflight")
    process = start_server(
        directory / "no-artifact",
        directory / "server.log",
        MODEL_SERVER_MAX_BODY_BYTES=str(MAX_BODY),
        MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES=str(MAX_INFLIGHT),
        MODEL_SERVER_MAX_ROWS=str(MAX_ROWS),
        MODEL_SERVER_BUSY_LOG_INTERVAL_SECONDS=str(BUSY_LOG_INTERVAL),
        # The largest body timeout, so that a holder keeps its bytes for the whole test even
        # on a loaded machine. test_mc_server_body_timeout.py covers the timeout itself.
        MODEL_SERVER_BODY_TIMEOUT_SECONDS="300",
    )
    yield process
    stop_server(process)


class _Holder:
    """A request that declares ``size`` body bytes, sends up to 10 of them and stalls."""

    def __init__(self, server: ServerProcess, size: int) -> None:
        self.sock = socket.create_connection(server_address(server), timeout=10)
        self.sock.sendall(request_head(size) + b'{"data": ['[: max(size - 1, 0)])

    def close(self) -> None:
        self.sock.close()


def _declare_only(server: ServerProcess, size: int) -> bytes:
    """Send only the head of a request declaring ``size`` bytes; return the whole response."""
    with socket.create_connection(server_address(server), timeout=10) as sock:
        sock.sendall(request_head(size))
        return read_until_closed(sock)


def _assert_busy(raw: bytes) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), head
    assert b"retry-after: 1" in head.lower()
    assert b"connection: close" in head.lower()
    detail = json.loads(body)["detail"]
    assert f"MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES={MAX_INFLIGHT}" in detail


def _busy_lines(server: ServerProcess, event: str = BUSY_EVENT) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
    return [line for line in lines if line.get("event") == event]


def _all_busy_lines(server: ServerProcess) -> list[dict[str, Any]]:
    events = {BUSY_EVENT, BUSY_CONTINUED_EVENT, BUSY_ENDED_EVENT}
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
    return [line for line in lines if line.get("event") in events]


def _wait_busy_episode_end(server: ServerProcess) -> None:
    """Wait until every overload episode that the server logged has logged its end."""
    deadline = time.monotonic() + 10 * BUSY_LOG_INTERVAL + 5.0
    while len(_busy_lines(server)) != len(_busy_lines(server, BUSY_ENDED_EVENT)):
        assert time.monotonic() < deadline, "the overload episode never logged its end"
        time.sleep(0.05)


def _assert_nothing_held(server: ServerProcess) -> None:
    """Check that no earlier request keeps bytes reserved: the budget fits two full bodies.

    A holder takes one full body. A full body sent next fits only if nothing else is held, so
    one leaked byte turns it into a 503. A release after a disconnect runs when the server
    notices the disconnect, so a 503 is retried for a few seconds.
    """
    holder = _Holder(server, MAX_BODY)
    try:
        time.sleep(SETTLE_SECONDS)
        deadline = time.monotonic() + 5.0
        while True:
            response = httpx.post(
                f"{server.base_url}/predict-proba",
                content=padded_body(MAX_BODY),
                headers={"content-type": "application/json"},
                timeout=30,
            )
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        holder.close()
    assert response.status_code == 200, response.text


def test_inflight_idle_server_accepts_full_budget(server: ServerProcess) -> None:
    """With no request in progress, two full bodies at once fit the budget exactly."""
    _assert_nothing_held(server)


def test_inflight_over_budget_rejected_small_served(server: ServerProcess) -> None:
    """While 160 KB are held, five 50 KB requests get 503 and a 1-row request gets 200."""
    _wait_busy_episode_end(server)
    holders = [_Holder(server, MAX_BODY), _Holder(server, 60_000)]
    logged_before = len(_all_busy_lines(server))
    try:
        time.sleep(SETTLE_SECONDS)
        with ThreadPoolExecutor(max_workers=5) as pool:
            answers = list(pool.map(lambda _: _declare_only(server, 50_000), range(5)))
        small = httpx.post(
            f"{server.base_url}/predict-proba",
            content=padded_body(),
            headers={"content-type": "application/json"},
            timeout=30,
        )
    finally:
        for holder in holders:
            holder.close()

    for raw in answers:
        _assert_busy(raw)
    assert small.status_code == 200, small.text
    assert len(small.json()["data"]) == 1
    _wait_busy_episode_end(server)
    lines = _all_busy_lines(server)[logged_before:]
    started = lines[0]
    assert started["event"] == BUSY_EVENT
    assert set(started) == _BUSY_LOG_KEYS
    assert started["status"] == 503
    assert started["body_bytes"] == 50_000
    assert started["inflight_bytes"] == 160_000
    assert started["inflight_requests"] == 2
    assert started["max_inflight_body_bytes"] == MAX_INFLIGHT
    assert lines[-1]["event"] == BUSY_ENDED_EVENT
    assert lines[-1]["rejected_total"] == 5
    assert 1 + sum(line["rejected"] for line in lines[1:]) == 5
    _assert_nothing_held(server)


def test_inflight_many_rejections_logged_as_counts(server: ServerProcess) -> None:
    """Hundreds of 503s log one warning, a count per interval and an end line, not one each."""
    _wait_busy_episode_end(server)
    holders = [_Holder(server, MAX_BODY), _Holder(server, MAX_BODY)]
    logged_before = len(_all_busy_lines(server))
    rejections = 300
    try:
        time.sleep(SETTLE_SECONDS)
        started = time.monotonic()
        answers = [_declare_only(server, 1_000) for _ in range(rejections)]
        elapsed = time.monotonic() - started
    finally:
        for holder in holders:
            holder.close()

    for raw in answers:
        _assert_busy(raw)
    _wait_busy_episode_end(server)
    lines = _all_busy_lines(server)[logged_before:]
    events = [line["event"] for line in lines]
    assert events[0] == BUSY_EVENT
    assert events[-1] == BUSY_ENDED_EVENT
    assert set(events[1:-1]) <= {BUSY_CONTINUED_EVENT}
    # A start line, a count at most once per interval while the 503s last, and the end.
    assert len(lines) <= 2 + int(elapsed / BUSY_LOG_INTERVAL) + 1
    assert len(lines) < rejections / 10
    assert lines[-1]["rejected_total"] == rejections
    assert 1 + sum(line["rejected"] for line in lines[1:]) == rejections
    for line in lines[1:-1]:
        assert line["rejected"] > 0


def test_inflight_one_rejection_logged_with_end(server: ServerProcess) -> None:
    """A single 503 logs its warning and, one quiet interval later, an end line with a count."""
    _wait_busy_episode_end(server)
    holders = [_Holder(server, MAX_BODY), _Holder(server, MAX_BODY)]
    logged_before = len(_all_busy_lines(server))
    try:
        time.sleep(SETTLE_SECONDS)
        raw = _declare_only(server, 1_000)
    finally:
        for holder in holders:
            holder.close()

    _assert_busy(raw)
    _wait_busy_episode_end(server)
    lines = _all_busy_lines(server)[logged_before:]
    assert [line["event"] for line in lines] == [BUSY_EVENT, BUSY_ENDED_EVENT]
    assert lines[1]["rejected"] == 0
    assert lines[1]["rejected_total"] == 1


def test_inflight_budget_boundary(server: ServerProcess) -> None:
    """With 100,001 bytes held, a full body is one byte over and gets 503; one byte less fits."""
    holders = [_Holder(server, MAX_BODY), _Holder(server, 1)]
    try:
        time.sleep(SETTLE_SECONDS)
        over = _declare_only(server, MAX_BODY)
        fitting = httpx.post(
            f"{server.base_url}/predict-proba",
            content=padded_body(MAX_BODY - 1),
            headers={"content-type": "application/json"},
            timeout=30,
        )
    finally:
        for holder in holders:
            holder.close()

    _assert_busy(over)
    assert fitting.status_code == 200, fitting.text


def test_inflight_chunked_body_counted_as_read(server: ServerProcess) -> None:
    """A chunked body declares no size, so it gets 503 once its chunks pass the budget."""
    holders = [_Holder(server, MAX_BODY), _Holder(server, 60_000)]
    try:
        time.sleep(SETTLE_SECONDS)
        with socket.create_connection(server_address(server), timeout=10) as sock:
            sock.sendall(
                request_head(None) + f"{50_000:x}\r\n".encode("ascii") + b" " * 50_000 + b"\r\n"
            )
            raw = read_until_closed(sock)
    finally:
        for holder in holders:
            holder.close()

    _assert_busy(raw)
    _assert_nothing_held(server)


def test_inflight_released_after_rejections(server: ServerProcess) -> None:
    """Requests rejected with 400 and 413 after their body was read hold nothing afterwards."""
    invalid = httpx.post(
        f"{server.base_url}/predict-proba",
        content=b"{" + b" " * (MAX_BODY - 1),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    too_many_rows = httpx.post(
        f"{server.base_url}/predict-proba",
        content=padded_body(MAX_BODY, rows=MAX_ROWS + 1),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    with socket.create_connection(server_address(server), timeout=10) as sock:
        sock.sendall(
            request_head(None) + f"{MAX_BODY + 1:x}\r\n".encode("ascii") + b" " * (MAX_BODY + 1)
        )
        too_large = read_until_closed(sock)

    assert invalid.status_code == 400
    assert too_many_rows.status_code == 413
    assert too_large.startswith(b"HTTP/1.1 413 "), too_large[:80]
    _assert_nothing_held(server)


def test_inflight_released_after_disconnects(server: ServerProcess) -> None:
    """Clients that give up in the middle of a body, or before the response, hold nothing."""
    stalled = [_Holder(server, 60_000) for _ in range(3)]
    time.sleep(SETTLE_SECONDS)
    for holder in stalled:
        holder.close()
    # A client that times out after sending its whole body closes before reading the answer.
    with socket.create_connection(server_address(server), timeout=10) as sock:
        sock.sendall(request_head(MAX_BODY) + padded_body(MAX_BODY))

    _assert_nothing_held(server)
    log = server.log_path.read_text()
    assert "Exception in ASGI application" not in log
    assert "client disconnected before sending the whole body" in log


async def test_inflight_503_makes_client_fall_back(server: ServerProcess) -> None:
    """The client reads the 503 as a retryable outage, and the scorer falls back."""
    holders = [_Holder(server, MAX_BODY), _Holder(server, MAX_BODY - 1_000)]
    rows = np.full((1, 105), 0.5)
    client = roomy_client(server.base_url, retry=None)
    scorer = make_scorer(server.base_url, CollectorRegistry())
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        with pytest.raises(ModelUnavailableError) as raised:
            await client.predict_proba(rows)
        scores = await scorer.score(rows)
    finally:
        for holder in holders:
            holder.close()
        await client.aclose()
        await scorer.aclose()

    assert raised.value.retryable is True
    assert "HTTP 503" in str(raised.value)
    assert [score.model_version for score in scores] == [RULE_BASED_VERSION]
    assert [score.fallback_reason for score in scores] == ["model_unavailable"]


def test_inflight_bodies_reservations() -> None:
    """Reservations add up to the limit, grow while they fit and release once."""
    inflight = InflightBodies(100)
    first = inflight.reserve(60)
    second = inflight.reserve(0)
    assert first is not None
    assert second is not None
    assert inflight.reserve(41) is None
    assert second.cover(40) is True
    assert second.cover(41) is False
    assert (inflight.reserved_bytes, inflight.requests) == (100, 2)

    first.release()
    first.release()
    assert (inflight.reserved_bytes, inflight.requests) == (40, 1)
    second.release()
    assert (inflight.reserved_bytes, inflight.requests) == (0, 0)


def test_inflight_bodies_rejects_zero_limit() -> None:
    """A limit below 1 byte is a usage error."""
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        InflightBodies(0)


def test_busy_log_rejects_non_positive_interval() -> None:
    """An interval of 0 or below raises, naming the value."""
    with pytest.raises(ValueError, match="interval_seconds must be greater than 0, got 0"):
        BusyLog(0)
