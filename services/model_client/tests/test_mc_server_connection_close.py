"""The real model server closes the connection after rejecting a request whose body is unread.

uvicorn 0.55 would otherwise keep the connection and read and drop the rest of the body, so a
client that keeps sending it keeps the connection busy for as long as it sends. Each test reads
the rejection over a raw socket, keeps sending body bytes and expects the server to close.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
from collections.abc import Iterator

import pytest

from .conftest import ServerProcess, request_head, server_address, start_server, stop_server

MAX_BODY = 4096
DECLARED = 10_000_000
# How long the client keeps sending after the rejection. The server closes within a few
# milliseconds. Without Connection: close it never does, because each arriving byte restarts
# uvicorn's 5 s keep-alive timer.
SEND_SECONDS = 3.0
CHUNK = b" " * 16384


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The built-in model server with a 4096-byte body limit."""
    directory = tmp_path_factory.mktemp("connection-close")
    process = start_server(
        directory / "no-artifact",
        directory / "server.log",
        MODEL_SERVER_MAX_BODY_BYTES=str(MAX_BODY),
    )
    yield process
    stop_server(process)


def _closed_while_sending(sock: socket.socket, seconds: float) -> bool:
    """Send body bytes for up to ``seconds``, and return True once the server closes the socket."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            readable, _, _ = select.select([sock], [], [], 0.02)
            if readable and sock.recv(65536) == b"":
                return True
            sock.sendall(CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            return True
    return False


def _reject_and_keep_sending(
    server: ServerProcess, first_bytes: bytes
) -> tuple[http.client.HTTPResponse, bytes, bool]:
    """Send ``first_bytes``, read the response and keep sending, and report whether it closed."""
    with socket.create_connection(server_address(server), timeout=10) as sock:
        sock.sendall(first_bytes)
        response, body = _read_response(sock)
        closed = _closed_while_sending(sock, SEND_SECONDS)
    return response, body, closed


def _read_response(sock: socket.socket) -> tuple[http.client.HTTPResponse, bytes]:
    """Read one response with its body, leaving the socket open for more requests or bytes."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response, response.read()


def test_declared_length_413_closes(server: ServerProcess) -> None:
    """A Content-Length over the limit: 413 with Connection: close, then the server closes."""
    response, body, closed = _reject_and_keep_sending(server, request_head(DECLARED) + CHUNK)

    assert response.status == 413
    assert response.getheader("connection") == "close"
    assert json.loads(body)["detail"] == f"request body exceeds {MAX_BODY} bytes"
    assert closed, f"the server kept the connection open for {SEND_SECONDS} s of body bytes"


def test_chunked_413_closes(server: ServerProcess) -> None:
    """A chunked body that passes the limit while read: 413, Connection: close, then close."""
    chunk_header = f"{DECLARED:x}\r\n".encode("ascii")

    response, body, closed = _reject_and_keep_sending(
        server, request_head(None) + chunk_header + CHUNK
    )

    assert response.status == 413
    assert response.getheader("connection") == "close"
    assert json.loads(body)["detail"] == f"request body exceeds {MAX_BODY} bytes"
    assert closed, f"the server kept the connection open for {SEND_SECONDS} s of body bytes"


@pytest.mark.parametrize(
    ("request_line", "status"),
    [(b"POST /predict-probability", 404), (b"PUT /predict-proba", 405)],
    ids=["unknown-path", "wrong-method"],
)
def test_route_rejection_with_body_closes(
    server: ServerProcess, request_line: bytes, status: int
) -> None:
    """A body sent to an unknown path or with the wrong method: the rejection closes too."""
    first_bytes = request_head(DECLARED).replace(b"POST /predict-proba", request_line, 1)

    response, _, closed = _reject_and_keep_sending(server, first_bytes + CHUNK)

    assert response.status == status
    assert response.getheader("connection") == "close"
    assert closed, f"the server kept the connection open for {SEND_SECONDS} s of body bytes"


def test_route_rejection_without_body_keeps_alive(server: ServerProcess) -> None:
    """A GET to an unknown path has no body to drop, so the connection stays open for reuse."""
    with socket.create_connection(server_address(server), timeout=10) as sock:
        sock.sendall(b"GET /predict-probability HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        unknown, _ = _read_response(sock)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        health, _ = _read_response(sock)

    assert unknown.status == 404
    assert unknown.getheader("connection") is None
    assert health.status == 200
