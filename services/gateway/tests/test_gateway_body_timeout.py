"""A request body that stalls gets 408 and its connection is closed, on every route."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from evidence_gateway.config import Settings
from evidence_gateway.testing import free_port, start_gateway
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from .raw_http import read_response, read_until_closed

pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 1.0
ROUTES = ["/v1/predict", "/v1/predict/batch", "/functions/predict", "/functions/health"]


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real gateway with a 1 s body timeout; no model server, which these tests never reach."""
    directory = tmp_path_factory.mktemp("body-timeout")
    unused_model_url = f"http://127.0.0.1:{free_port()}"
    gateway, url = start_gateway(
        directory,
        unused_model_url,
        directory / "no-model",
        GATEWAY_BODY_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
    )
    try:
        yield url
    finally:
        gateway.stop()


def _open(
    url: str,
    route: str,
    declared: int,
    first_part: bytes,
    content_type: str = "application/json",
) -> socket.socket:
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode("ascii") + first_part)
    return sock


@pytest.mark.parametrize("route", ROUTES)
def test_stalled_body_gets_408_and_close(gateway_url: str, route: str) -> None:
    """10 of 1,000 declared bytes, then nothing: a JSON 408 after about 1 s, then EOF."""
    started = time.monotonic()
    with _open(gateway_url, route, 1_000, b'{"policy_n') as sock:
        raw = read_until_closed(sock)
    elapsed = time.monotonic() - started

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["type"] == "request_timeout"
    assert "GATEWAY_BODY_TIMEOUT_SECONDS=1 s" in error["message"]
    assert TIMEOUT_SECONDS <= elapsed < TIMEOUT_SECONDS + 5


@pytest.mark.parametrize(
    ("route", "content_type", "status"),
    [("/v1/nothing", "application/json", b"404"), ("/v1/predict", "text/plain", b"415")],
)
def test_unread_body_closes_connection(
    gateway_url: str, route: str, content_type: str, status: bytes
) -> None:
    """A response sent before the body was read closes the connection at once.

    Otherwise uvicorn would keep reading and discarding the rest, one byte at a time if the
    client drips it, past any timeout.
    """
    started = time.monotonic()
    with _open(gateway_url, route, 16_000_000, b"x", content_type) as sock:
        raw = read_until_closed(sock)
    elapsed = time.monotonic() - started

    assert raw.startswith(b"HTTP/1.1 " + status)
    assert b"connection: close" in raw.lower()
    assert elapsed < TIMEOUT_SECONDS


def test_request_without_body_keeps_connection(gateway_url: str) -> None:
    """Requests without a body keep the connection open for the next one."""
    port = int(gateway_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            raw = read_response(sock)

            assert raw.startswith(b"HTTP/1.1 200 ")
            assert b"connection: close" not in raw.lower()


def test_slow_body_within_timeout_is_read(gateway_url: str) -> None:
    """A body sent in two parts 0.3 s apart is read whole and scored as usual."""
    body = json.dumps({"policy_number": "SLOW-1", "mib_xml": None, "rx_xml": None}).encode()
    with _open(gateway_url, "/v1/predict", len(body), body[:10]) as sock:
        time.sleep(0.3)
        sock.sendall(body[10:])
        raw = read_response(sock)

    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b'"policy_number":"SLOW-1"' in raw


def test_stalled_bodies_leave_probes_answered(gateway_url: str) -> None:
    """While 50 stalled requests wait, liveness returns 200; after the timeout all are closed."""
    sockets = [_open(gateway_url, "/v1/predict", 1_000, b"{") for _ in range(50)]
    try:
        live = httpx.get(f"{gateway_url}/health/live", timeout=5)
        time.sleep(TIMEOUT_SECONDS + 0.5)
        statuses = [read_until_closed(sock)[:12] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()

    assert live.status_code == 200
    assert statuses == [b"HTTP/1.1 408"] * 50


def test_timeout_setting_rejects_zero() -> None:
    """GATEWAY_BODY_TIMEOUT_SECONDS must be positive."""
    with pytest.raises(ValidationError, match="body_timeout_seconds"):
        Settings(body_timeout_seconds=0)


def _status_counts(url: str, route: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if (
                sample.name == "evidence_gateway_request_duration_seconds_count"
                and sample.labels["route"] == route
            ):
                counts[sample.labels["status"]] = sample.value
    return counts


@pytest.mark.parametrize("route", ROUTES)
def test_client_abort_counts_as_499(gateway_url: str, route: str) -> None:
    """A client that closes mid-body is counted as 499, not as a 422 or a 500."""
    before = _status_counts(gateway_url, route)
    sock = _open(gateway_url, route, 100_000, b'{"policy_number": "ABORT-1", "rx_xml": "<r')
    time.sleep(0.2)
    sock.close()

    deadline = time.monotonic() + 10
    after = _status_counts(gateway_url, route)
    while after.get("499", 0) == before.get("499", 0) and time.monotonic() < deadline:
        time.sleep(0.1)
        after = _status_counts(gateway_url, route)

    assert after.get("499", 0) == before.get("499", 0) + 1
    for status in ("422", "500"):
        assert after.get(status, 0) == before.get(status, 0), status


@pytest.fixture(scope="module")
def small_budget_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real gateway that keeps at most 1 MB of request bodies in progress."""
    directory = tmp_path_factory.mktemp("inflight")
    gateway, url = start_gateway(
        directory,
        f"http://127.0.0.1:{free_port()}",
        directory / "no-model",
        GATEWAY_MAX_INFLIGHT_BODY_BYTES="1000000",
        GATEWAY_MAX_BODY_BYTES="1000000",
        GATEWAY_MAX_DOCUMENT_BYTES="800000",
    )
    try:
        yield url
    finally:
        gateway.stop()


def _assert_busy(raw: bytes) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), head
    assert b"retry-after: 1" in head.lower()
    assert b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["type"] == "server_busy"
    assert "GATEWAY_MAX_INFLIGHT_BODY_BYTES=1000000" in error["message"]


@pytest.mark.parametrize("route", ["/v1/predict", "/functions/predict"])
def test_inflight_bodies_full_503(small_budget_url: str, route: str) -> None:
    """While one request uses 990 KB of a 1 MB budget, 20 KB more get 503; then they fit.

    The second requests are small enough that the gateway has read all they sent when it
    closes the connection. Unread bytes would make the kernel reset it before the test reads
    the response.
    """
    holder = _open(small_budget_url, route, 1_000_000, b'{"policy_number": "' + b"x" * 989_980)
    try:
        time.sleep(0.5)
        with _open(small_budget_url, route, 20_000, b"") as declared:
            _assert_busy(read_until_closed(declared))
        port = int(small_budget_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as chunked:
            chunked.sendall(
                f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                "\r\nTransfer-Encoding: chunked\r\n\r\n".encode("ascii")
                + f"{20_000:x}\r\n".encode("ascii")
                + b" " * 20_000
                + b"\r\n"
            )
            _assert_busy(read_until_closed(chunked))
    finally:
        holder.close()

    time.sleep(0.5)
    body: dict[str, object] = {
        "policy_number": "AFTER-1",
        "mib_xml": None,
        "rx_xml": "<r/>" + " " * 600_000,
    }
    if route == "/functions/predict":
        body = {"data": [[0, "AFTER-1", None, "<r/>" + " " * 600_000]]}
    response = httpx.post(f"{small_budget_url}{route}", json=body, timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("route", ["/v1/predict", "/functions/predict"])
def test_inflight_counts_gunzipped_bytes(small_budget_url: str, route: str) -> None:
    """A 2 KB gzip body that inflates to 600 KB counts at 600 KB against the 1 MB budget."""
    if route == "/functions/predict":
        document: dict[str, object] = {"data": [[0, "GZ-1", None, "<r/>" + " " * 600_000]]}
    else:
        document = {"policy_number": "GZ-1", "mib_xml": None, "rx_xml": "<r/>" + " " * 600_000}
    compressed = gzip.compress(json.dumps(document).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    assert len(compressed) < 5_000

    holder = _open(small_budget_url, route, 1_000_000, b'{"policy_number": "' + b"x" * 499_980)
    try:
        time.sleep(0.5)
        busy = httpx.post(
            f"{small_budget_url}{route}", content=compressed, headers=headers, timeout=30
        )
    finally:
        holder.close()
    time.sleep(0.5)
    alone = httpx.post(
        f"{small_budget_url}{route}", content=compressed, headers=headers, timeout=30
    )

    assert busy.status_code == 503, busy.text
    assert busy.json()["error"]["type"] == "server_busy"
    assert alone.status_code == 200, alone.text
