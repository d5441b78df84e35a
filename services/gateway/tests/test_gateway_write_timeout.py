"""``WriteTimeoutProtocol`` against clients that stop reading, in-process.

Linux grows a loopback socket's send buffer to several MiB, which would hide the gateway's own
buffer. The server here shrinks the send buffer of each connection, and the client its receive
buffer. A response of a few hundred KiB then stays in asyncio's buffer, as it would for a
remote client on a slow link or under kernel memory pressure.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from evidence_gateway.write_timeout import WriteTimeoutProtocol
from prometheus_client import REGISTRY
from uvicorn.config import Config
from uvicorn.server import ServerState

TIMEOUT_SECONDS = 0.3
BODY_BYTES = 1_000_000
SMALL_BUFFER_BYTES = 4096
READ_CHUNK_BYTES = 32_768
SINGLE = b"GET /single HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
STREAMED = b"GET /streamed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
SMALL = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass
class Server:
    """An asyncio server speaking ``WriteTimeoutProtocol`` on 127.0.0.1."""

    port: int
    protocols: list[WriteTimeoutProtocol] = field(default_factory=list)
    app_finished: list[str] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    responded: asyncio.Event = field(default_factory=asyncio.Event)


class _SmallSendBuffer(WriteTimeoutProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER_BYTES)
        super().connection_made(transport)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """Serve one body of ``BODY_BYTES`` at ``/single``, the same in 20 parts at ``/streamed``."""
    finished: list[str] = []
    connected = asyncio.Event()
    responded = asyncio.Event()

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert callable(send)
        path = str(scope["path"])
        size = 2 if path == "/small" else BODY_BYTES
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(size).encode())],
            }
        )
        if path == "/streamed":
            part = BODY_BYTES // 20
            for index in range(20):
                await send(
                    {"type": "http.response.body", "body": b"x" * part, "more_body": index < 19}
                )
        else:
            await send({"type": "http.response.body", "body": b"x" * size})
        finished.append(path)
        responded.set()

    config = Config(app=app, log_config=None, lifespan="off", timeout_keep_alive=30)
    config.load()
    state = ServerState()
    protocols: list[WriteTimeoutProtocol] = []

    def create_protocol() -> WriteTimeoutProtocol:
        protocol = _SmallSendBuffer(
            config,
            state,
            {},
            header_timeout_seconds=10.0,
            max_header_bytes=65_536,
            write_timeout_seconds=TIMEOUT_SECONDS,
        )
        protocols.append(protocol)
        connected.set()
        return protocol

    loop = asyncio.get_running_loop()
    listener = await loop.create_server(create_protocol, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield Server(port, protocols, finished, connected, responded)
    finally:
        listener.close()
        for protocol in protocols:
            protocol.transport.abort()
        await listener.wait_closed()


def _write_timeouts() -> float:
    return REGISTRY.get_sample_value("evidence_gateway_write_timeouts_total") or 0.0


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER_BYTES)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock, limit=READ_CHUNK_BYTES)


async def _read_slowly(reader: asyncio.StreamReader, pause: float) -> int:
    """Read until the server closes, pausing ``pause`` seconds after each chunk."""
    received = 0
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout=10)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += len(chunk)
        if received >= BODY_BYTES:
            return received
        await asyncio.sleep(pause)


async def _wait_until_closed(protocol: WriteTimeoutProtocol, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if protocol.transport.is_closing():
            return True
        await asyncio.sleep(0.02)
    return protocol.transport.is_closing()


@pytest.mark.parametrize("request_line", [SINGLE, STREAMED])
async def test_client_never_reading_aborted(server: Server, request_line: bytes) -> None:
    """A client that takes no byte for the timeout loses its connection and its buffer."""
    before = _write_timeouts()
    reader, writer = await _connect(server.port)
    writer.write(request_line)

    closed = await _wait_until_closed_soon(server)
    received = await _read_slowly(reader, pause=0.0)
    writer.close()

    assert closed
    assert received < BODY_BYTES
    assert _write_timeouts() == before + 1
    assert server.protocols[0].transport.get_write_buffer_size() == 0


async def _wait_until_closed_soon(server: Server) -> bool:
    await asyncio.wait_for(server.connected.wait(), timeout=5)
    return await _wait_until_closed(server.protocols[0], TIMEOUT_SECONDS * 10)


@pytest.mark.parametrize("request_line", [SINGLE, STREAMED])
async def test_slow_steady_reader_served(server: Server, request_line: bytes) -> None:
    """A client that reads a little more often than the timeout gets the whole response.

    Reading takes several timeouts in all, so the timer must restart on each progress.
    """
    before = _write_timeouts()
    reader, writer = await _connect(server.port)
    writer.write(request_line)
    started = asyncio.get_running_loop().time()

    received = await _read_slowly(reader, pause=TIMEOUT_SECONDS / 6)
    elapsed = asyncio.get_running_loop().time() - started
    writer.close()

    assert received >= BODY_BYTES
    assert elapsed > 2 * TIMEOUT_SECONDS
    assert _write_timeouts() == before
    assert server.app_finished == [request_line.split()[1].decode()]


async def test_reader_that_stops_aborted(server: Server) -> None:
    """A client that reads part of a response and then stops is aborted as well."""
    before = _write_timeouts()
    reader, writer = await _connect(server.port)
    writer.write(SINGLE)
    first = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout=5)

    closed = await _wait_until_closed_soon(server)
    writer.close()

    assert first
    assert closed
    assert _write_timeouts() == before + 1


async def test_small_unread_response_kept(server: Server) -> None:
    """A response the socket takes whole leaves nothing buffered, so nothing is aborted."""
    before = _write_timeouts()
    reader, writer = await _connect(server.port)
    writer.write(SMALL)
    await asyncio.wait_for(server.responded.wait(), timeout=5)

    await asyncio.sleep(TIMEOUT_SECONDS * 3)
    still_open = not server.protocols[0].transport.is_closing()
    answer = await asyncio.wait_for(reader.read(4096), timeout=5)
    writer.close()

    assert still_open
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nxx")
    assert _write_timeouts() == before
