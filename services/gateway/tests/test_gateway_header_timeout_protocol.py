"""``HeaderTimeoutProtocol`` with pipelined requests, malformed ones and closed connections.

A small ASGI app whose ``/slow`` route waits for an event lets a test hold a response while
the next pipelined request arrives, which the gateway's own routes cannot do on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from evidence_gateway.header_timeout import MAX_PIPELINED_REQUESTS, HeaderTimeoutProtocol
from prometheus_client import REGISTRY
from uvicorn.config import Config
from uvicorn.server import ServerState

TIMEOUT_SECONDS = 0.2
# The gateway's default head limit; these tests are about the clock.
MAX_HEADER_BYTES = 65_536
SLOW = b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
FAST = b"GET /fast HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PARTIAL_HEAD = b"GET /fast HTTP/1.1\r\nHo"


@dataclass
class Server:
    """An asyncio server speaking ``HeaderTimeoutProtocol`` on 127.0.0.1."""

    port: int
    release_slow: asyncio.Event
    protocols: list[HeaderTimeoutProtocol] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """Serve an app whose ``/slow`` route responds only once ``release_slow`` is set."""
    release_slow = asyncio.Event()

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert callable(send)
        if scope["path"] == "/slow":
            await release_slow.wait()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    config = Config(app=app, log_config=None, lifespan="off", timeout_keep_alive=30)
    config.load()
    state = ServerState()
    protocols: list[HeaderTimeoutProtocol] = []

    def create_protocol() -> HeaderTimeoutProtocol:
        protocol = HeaderTimeoutProtocol(
            config,
            state,
            {},
            header_timeout_seconds=TIMEOUT_SECONDS,
            max_header_bytes=MAX_HEADER_BYTES,
        )
        protocols.append(protocol)
        return protocol

    loop = asyncio.get_running_loop()
    listener = await loop.create_server(create_protocol, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield Server(port, release_slow, protocols)
    finally:
        release_slow.set()
        listener.close()
        for protocol in protocols:
            protocol.transport.close()
        await listener.wait_closed()


def _timeouts() -> float:
    return REGISTRY.get_sample_value("evidence_gateway_header_timeouts_total") or 0.0


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout=5)


def _split_responses(raw: bytes) -> list[bytes]:
    return [b"HTTP/1.1 " + part for part in raw.split(b"HTTP/1.1 ")[1:]]


async def test_clock_waits_for_due_response(server: Server) -> None:
    """A pipelined head that stalls while a response is due gets 408 only after that response.

    A 408 written while the response is due would land inside it.
    """
    before = _timeouts()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(SLOW + PARTIAL_HEAD)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), timeout=TIMEOUT_SECONDS * 3)
    timeouts_while_due = _timeouts()
    server.release_slow.set()
    released = asyncio.get_running_loop().time()
    raw = await _read_until_closed(reader)
    elapsed = asyncio.get_running_loop().time() - released
    writer.close()

    assert timeouts_while_due == before
    responses = _split_responses(raw)
    assert len(responses) == 2, raw
    assert responses[0].startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" not in responses[0].lower()
    assert responses[1].startswith(b"HTTP/1.1 408 ")
    assert elapsed >= TIMEOUT_SECONDS - 0.02
    assert _timeouts() == before + 1


async def test_clock_waits_for_queued_requests(server: Server) -> None:
    """While uvicorn queues a pipelined request it reads nothing, so the clock waits.

    Once both earlier requests have their responses, the third head, still incomplete, gets 408.
    """
    before = _timeouts()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(SLOW + FAST + PARTIAL_HEAD)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), timeout=TIMEOUT_SECONDS * 3)
    timeouts_while_queued = _timeouts()
    server.release_slow.set()
    raw = await _read_until_closed(reader)
    writer.close()

    assert timeouts_while_queued == before
    responses = _split_responses(raw)
    assert len(responses) == 3, raw
    assert responses[0].startswith(b"HTTP/1.1 200 ")
    assert responses[1].startswith(b"HTTP/1.1 200 ")
    assert responses[2].startswith(b"HTTP/1.1 408 ")
    assert _timeouts() == before + 1


async def test_timer_cancelled_when_client_leaves(server: Server) -> None:
    """A client that closes in the middle of its head leaves no timer behind."""
    before = _timeouts()
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(PARTIAL_HEAD)
    await writer.drain()
    await asyncio.sleep(0.05)
    armed = server.protocols[0]._header_timer is not None
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.05)

    assert armed
    assert server.protocols[0]._header_timer is None
    await asyncio.sleep(TIMEOUT_SECONDS * 2)
    assert _timeouts() == before


async def test_timer_cancelled_when_headers_complete(server: Server) -> None:
    """The clock runs from the connection until the headers are complete, not while idle."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await asyncio.sleep(0.05)
    armed = server.protocols[0]._header_timer is not None
    writer.write(FAST)
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), timeout=5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), timeout=TIMEOUT_SECONDS * 2)
    writer.close()

    assert armed
    assert response.startswith(b"HTTP/1.1 200 ")
    assert server.protocols[0]._header_timer is None


def _long_pipelines() -> float:
    return REGISTRY.get_sample_value("evidence_gateway_long_pipelines_total") or 0.0


async def test_pipeline_at_limit_served(server: Server) -> None:
    """MAX_PIPELINED_REQUESTS requests queued behind a held response all get responses."""
    before = _long_pipelines()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(SLOW + FAST * MAX_PIPELINED_REQUESTS)
    await asyncio.sleep(0.1)
    server.release_slow.set()
    raw = b""
    while raw.count(b"HTTP/1.1 200 ") < MAX_PIPELINED_REQUESTS + 1:
        chunk = await asyncio.wait_for(reader.read(65_536), timeout=5)
        assert chunk, raw[-200:]
        raw += chunk
    writer.close()

    assert len(_split_responses(raw)) == MAX_PIPELINED_REQUESTS + 1
    assert _long_pipelines() == before


async def test_pipeline_past_limit_served_then_closed(server: Server) -> None:
    """One request past the limit gets no response; those queued before it are all served.

    Then the connection closes. Closing at once would lose the responses of requests that may
    already have stored a prediction.
    """
    before = _long_pipelines()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(SLOW + FAST * (MAX_PIPELINED_REQUESTS + 1))
    await asyncio.sleep(0.1)
    rejected = _long_pipelines()
    server.release_slow.set()

    raw = await _read_until_closed(reader)
    writer.close()

    responses = _split_responses(raw)
    assert rejected == before + 1
    assert len(responses) == MAX_PIPELINED_REQUESTS + 1
    assert all(response.startswith(b"HTTP/1.1 200 ") for response in responses)
    assert b"connection: close" in responses[-1].lower()
    assert len(server.protocols[0].pipeline) == 0


async def test_pipeline_flood_bounded(server: Server) -> None:
    """Thousands of pipelined requests queue no more than the limit, and the connection ends."""
    before = _long_pipelines()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(SLOW + FAST * (MAX_PIPELINED_REQUESTS + 5_000))
    await asyncio.sleep(0.1)
    queued = len(server.protocols[0].pipeline)
    server.release_slow.set()

    # The server closes with dropped requests still unread, so the kernel may reset.
    with contextlib.suppress(ConnectionResetError):
        await _read_until_closed(reader)
    writer.close()

    assert queued == MAX_PIPELINED_REQUESTS
    assert _long_pipelines() == before + 1


async def test_malformed_request_gets_json_400(server: Server) -> None:
    """A request uvicorn cannot parse gets the gateway's JSON error, then the connection closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /fast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    )
    raw = await _read_until_closed(reader)
    writer.close()

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), raw[:200]
    assert b"content-type: application/json" in head.lower()
    assert b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_http_request"
    assert error["message"].endswith("send a well-formed request")


async def test_malformed_request_behind_due_response_closed(server: Server) -> None:
    """A malformed request behind a response still due gets no 400; the due one is served.

    A 400 written then would land inside the earlier response, and dropping that response
    would lose the response to a request that has already run. The connection closes after it.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(SLOW + b"NOT A REQUEST LINE\r\n\r\n")
    await asyncio.sleep(0.1)
    server.release_slow.set()

    raw = await _read_until_closed(reader)
    writer.close()

    responses = _split_responses(raw)
    assert len(responses) == 1, raw
    assert responses[0].startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in responses[0].lower()
