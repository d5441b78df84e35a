"""``WriteTimeoutProtocol`` against clients that stop reading and clients that read slowly.

Two set-ups. With small socket buffers on both ends, a response of 1 MB stays in asyncio's
buffer, as it would for a remote client on a slow link or under kernel memory pressure. There
a client that stops reading must be cut off. With the kernel's default buffers, Linux grows the
server's send buffer to several MiB, and a steady reader drains it while asyncio's buffer does
not shrink. There a slow reader must keep its connection.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop
from evidence_gateway.write_timeout import WriteTimeoutProtocol, bytes_acknowledged
from prometheus_client import REGISTRY
from uvicorn.config import Config
from uvicorn.server import ServerState

TIMEOUT_SECONDS = 0.3
BODY_BYTES = 1_000_000
# Larger than the 4 MiB that Linux lets a send buffer grow to (net.ipv4.tcp_wmem).
LARGE_BODY_BYTES = 8_000_000
SMALL_BUFFER_BYTES = 4096
READ_CHUNK_BYTES = 32_768
SINGLE = b"GET /single HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
STREAMED = b"GET /streamed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
SMALL = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
LARGE = b"GET /large HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# Over the two 4 KiB socket buffers and under asyncio's 64 KiB high-water mark: the response
# ends with a tail in asyncio's buffer and writing never paused.
MEDIUM = b"GET /medium HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
MEDIUM_BODY_BYTES = 30_000
_SIZES = {"/small": 2, "/medium": MEDIUM_BODY_BYTES, "/large": LARGE_BODY_BYTES}


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


async def _serve(protocol_class: type[WriteTimeoutProtocol]) -> AsyncIterator[Server]:
    """Serve ``BODY_BYTES`` at ``/single``, the same in 20 parts at ``/streamed``, 2 bytes at
    ``/small`` and ``LARGE_BODY_BYTES`` at ``/large``."""
    server = Server(port=0)

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert callable(send)
        path = str(scope["path"])
        size = _SIZES.get(path, BODY_BYTES)
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
        server.app_finished.append(path)
        server.responded.set()

    config = Config(app=app, log_config=None, lifespan="off", timeout_keep_alive=30)
    config.load()
    state = ServerState()

    def create_protocol() -> WriteTimeoutProtocol:
        protocol = protocol_class(
            config,
            state,
            {},
            header_timeout_seconds=10.0,
            max_header_bytes=65_536,
            write_timeout_seconds=TIMEOUT_SECONDS,
        )
        server.protocols.append(protocol)
        server.connected.set()
        return protocol

    loop = asyncio.get_running_loop()
    listener = await loop.create_server(create_protocol, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for protocol in server.protocols:
            protocol.transport.abort()
        await listener.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A server whose connections have a 4 KiB send buffer."""
    async for running in _serve(_SmallSendBuffer):
        yield running


@pytest.fixture
async def default_server() -> AsyncIterator[Server]:
    """A server whose connections keep the kernel's default buffers."""
    async for running in _serve(WriteTimeoutProtocol):
        yield running


def _write_timeouts() -> float:
    return REGISTRY.get_sample_value("evidence_gateway_write_timeouts_total") or 0.0


async def _connect(
    port: int, *, small_buffer: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if small_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER_BYTES)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock, limit=READ_CHUNK_BYTES)


async def _read_slowly(reader: asyncio.StreamReader, pause: float, expected: int) -> int:
    """Read until ``expected`` bytes or the end, pausing ``pause`` seconds after each chunk."""
    received = 0
    while received < expected:
        try:
            chunk = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout=10)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += len(chunk)
        await asyncio.sleep(pause)
    return received


async def _wait_until_closed(server: Server, seconds: float) -> bool:
    await asyncio.wait_for(server.connected.wait(), timeout=5)
    transport = server.protocols[0].transport
    for _ in range(int(seconds / 0.02)):
        if transport.is_closing():
            break
        await asyncio.sleep(0.02)
    return transport.is_closing()


async def test_bytes_acknowledged_counts(default_server: Server) -> None:
    """The kernel's count of acknowledged bytes grows by what the client received."""
    reader, writer = await _connect(default_server.port, small_buffer=False)
    writer.write(SMALL)
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\nxx"), timeout=5)
    acked = bytes_acknowledged(default_server.protocols[0].transport)
    writer.close()

    assert acked is not None
    assert acked > 2


@pytest.mark.parametrize("request_line", [SINGLE, STREAMED])
async def test_client_never_reading_aborted(server: Server, request_line: bytes) -> None:
    """A client that takes no byte for the timeout loses its connection and its buffer."""
    before = _write_timeouts()
    reader, writer = await _connect(server.port)
    writer.write(request_line)

    closed = await _wait_until_closed(server, TIMEOUT_SECONDS * 10)
    received = await _read_slowly(reader, pause=0.0, expected=BODY_BYTES)
    writer.close()

    assert closed
    assert received < BODY_BYTES
    assert _write_timeouts() == before + 1
    assert server.protocols[0].transport.get_write_buffer_size() == 0


@pytest.mark.parametrize("request_line", [SINGLE, STREAMED])
async def test_slow_steady_reader_served(server: Server, request_line: bytes) -> None:
    """A client that reads a little more often than the timeout gets the whole response.

    Reading takes several timeouts in all, so the timer must restart on each progress.
    """
    before = _write_timeouts()
    reader, writer = await _connect(server.port)
    writer.write(request_line)
    started = asyncio.get_running_loop().time()

    received = await _read_slowly(reader, pause=TIMEOUT_SECONDS / 6, expected=BODY_BYTES)
    elapsed = asyncio.get_running_loop().time() - started
    writer.close()

    assert received >= BODY_BYTES
    assert elapsed > 2 * TIMEOUT_SECONDS
    assert _write_timeouts() == before
    assert server.app_finished == [request_line.split()[1].decode()]


async def test_steady_reader_behind_kernel_buffer_served(default_server: Server) -> None:
    """A steady reader keeps its connection while it drains the kernel's large send buffer.

    asyncio's buffer does not shrink while the client reads what the kernel holds, which took
    several timeouts here; only the acknowledged bytes show the progress.
    """
    before = _write_timeouts()
    reader, writer = await _connect(default_server.port)
    writer.write(LARGE)

    received = await _read_slowly(reader, pause=0.01, expected=LARGE_BODY_BYTES)
    writer.close()

    assert received >= LARGE_BODY_BYTES
    assert _write_timeouts() == before


async def test_keep_alive_reader_served(server: Server) -> None:
    """A response's small tail, then a large response on the same connection, reach a reader.

    The first response ends with a tail in asyncio's buffer, which starts the timer. The
    second one is written while that timer runs, so the tail's size must not judge it.
    """
    before = _write_timeouts()
    reader, writer = await _connect(server.port)
    writer.write(MEDIUM)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    await asyncio.wait_for(reader.readexactly(MEDIUM_BODY_BYTES), timeout=5)
    writer.write(SINGLE)

    received = await _read_slowly(reader, pause=TIMEOUT_SECONDS / 6, expected=BODY_BYTES)
    writer.close()

    assert head.startswith(b"HTTP/1.1 200 ")
    assert received >= BODY_BYTES
    assert _write_timeouts() == before


async def test_reader_that_stops_aborted(server: Server) -> None:
    """A client that reads part of a response and then stops is aborted as well."""
    before = _write_timeouts()
    reader, writer = await _connect(server.port)
    writer.write(SINGLE)
    first = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout=5)

    closed = await _wait_until_closed(server, TIMEOUT_SECONDS * 10)
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


async def _read_to_end(reader: asyncio.StreamReader) -> None:
    while await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout=5):
        pass


async def test_abort_resets_connection(server: Server) -> None:
    """The abort is a reset: the client's next read fails instead of finding a clean end.

    A plain close would leave the kernel's send buffer queued for the client until it read it.
    """
    reader, writer = await _connect(server.port)
    writer.write(SINGLE)
    closed = await _wait_until_closed(server, TIMEOUT_SECONDS * 10)
    await asyncio.sleep(0.05)

    with pytest.raises(ConnectionResetError):
        await _read_to_end(reader)
    writer.close()

    assert closed


def _recording_app(errors: list[BaseException], pause: float) -> Any:
    """Return an app that streams ``BODY_BYTES`` in 20 parts and records what ``send`` raises."""

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert callable(send)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(BODY_BYTES).encode())],
                }
            )
            part = BODY_BYTES // 20
            for index in range(20):
                await asyncio.sleep(pause)
                await send(
                    {"type": "http.response.body", "body": b"x" * part, "more_body": index < 19}
                )
        except BaseException as exc:
            errors.append(exc)
            raise

    return app


async def _listen(
    app: Any, protocol_class: type[WriteTimeoutProtocol], write_timeout_seconds: float
) -> tuple[asyncio.Server, list[WriteTimeoutProtocol]]:
    """Serve ``app`` on a free port of 127.0.0.1 under the running loop; return its protocols."""
    config = Config(app=app, log_config=None, lifespan="off", timeout_keep_alive=30)
    config.load()
    protocols: list[WriteTimeoutProtocol] = []

    def create_protocol() -> WriteTimeoutProtocol:
        protocol = protocol_class(
            config,
            ServerState(),
            {},
            header_timeout_seconds=10.0,
            max_header_bytes=65_536,
            write_timeout_seconds=write_timeout_seconds,
        )
        protocols.append(protocol)
        return protocol

    listener = await asyncio.get_running_loop().create_server(create_protocol, "127.0.0.1", 0)
    return listener, protocols


def test_pipelined_abort_under_uvloop_quiet() -> None:
    """Aborting while pipelined requests wait leaves no request writing to the closed transport.

    uvicorn marks only the newest parsed request as disconnected. Under uvloop the running one
    raised RuntimeError on its next write.
    """
    errors: list[BaseException] = []

    async def scenario() -> bool:
        listener, protocols = await _listen(
            _recording_app(errors, pause=0.0), _SmallSendBuffer, TIMEOUT_SECONDS
        )
        _, writer = await _connect(listener.sockets[0].getsockname()[1])
        writer.write(STREAMED * 3)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if protocols and protocols[0].transport.is_closing():
                break
        await asyncio.sleep(0.2)
        closed = bool(protocols) and protocols[0].transport.is_closing()
        writer.close()
        listener.close()
        await listener.wait_closed()
        return closed

    closed = uvloop.run(scenario())

    assert closed
    assert errors == []


def test_client_reset_with_pipeline_quiet() -> None:
    """A client that resets a connection with requests pipelined leaves no request writing.

    The fix of the abort covers a reset by the client as well: under uvloop the running request
    raised RuntimeError on its next write in both cases.
    """
    errors: list[BaseException] = []

    async def scenario() -> None:
        listener, _ = await _listen(
            _recording_app(errors, pause=0.01), WriteTimeoutProtocol, write_timeout_seconds=30.0
        )
        reader, writer = await _connect(listener.sockets[0].getsockname()[1])
        writer.write(STREAMED * 2)
        await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout=5)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        await asyncio.sleep(0.5)
        listener.close()
        await listener.wait_closed()

    uvloop.run(scenario())

    assert errors == []
