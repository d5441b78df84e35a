"""Closed-loop HTTP/1.1 load client that leaves the cores to the servers it measures.

The benchmarks run the load client on the same 2 cores as the gateway, the model server and
the worker. httpx spends about 1.2 ms of CPU on each 53 KB ``/v1/predict`` request, a third of
what the whole stack spends to respond, so a throughput figure taken with httpx measures
the client as much as the servers. This client writes one prebuilt request per connection,
waits for the response, and parses it with httptools, the parser uvicorn uses: about 0.06 ms
of CPU per request. It is the role that wrk or oha play elsewhere, kept in Python so the
benchmarks need nothing outside the lock file.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools
import orjson

__all__ = ["LeanLoadError", "LeanResult", "closed_loop"]


class LeanLoadError(RuntimeError):
    """The server closed a connection, sent a malformed response or timed out."""


@dataclass
class LeanResult:
    """Figures of one run.

    Attributes:
        latencies: Seconds from writing each request to the last byte of its response, in send order
            per connection.
        seconds: Wall time from the first request to the last response.
        statuses: Number of responses per HTTP status.
        model_versions: Number of 200 responses per ``model_version`` they carry.
    """

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    model_versions: Counter[str] = field(default_factory=Counter)

    @property
    def requests_per_second(self) -> float:
        """Return responses per second of wall time."""
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0


class _Connection(asyncio.Protocol):
    """One kept-alive connection that has at most one request in flight."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._response: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self._lost: LeanLoadError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(LeanLoadError(f"invalid HTTP response: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = LeanLoadError(f"server closed the connection: {exc or 'EOF'}")
        self._fail(self._lost)

    # httptools calls these by name.
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._response is not None and not self._response.done():
            self._response.set_result((self._parser.get_status_code(), b"".join(self._body)))

    def _fail(self, error: LeanLoadError) -> None:
        if self._response is not None and not self._response.done():
            self._response.set_exception(error)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request`` and return the status and body of its response."""
        if self._lost is not None:
            raise self._lost
        if self._transport is None or self._transport.is_closing():
            raise LeanLoadError("server closed the connection: transport closing")
        self._response = asyncio.get_running_loop().create_future()
        self._body = []
        self._transport.write(request)
        return await self._response

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _closed_loop(
    base_url: str, path: str, body: bytes, connections: int, calls: int, response_timeout: float
) -> LeanResult:
    parts = urlsplit(base_url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        msg = f"base_url must look like http://HOST:PORT, got {base_url!r}"
        raise ValueError(msg)
    host, port = parts.hostname, parts.port
    request = _request_bytes(host, port, path, body)
    loop = asyncio.get_running_loop()
    opened = [await loop.create_connection(_Connection, host, port) for _ in range(connections)]
    result = LeanResult()

    async def run(connection: _Connection) -> None:
        for _ in range(calls):
            started = time.perf_counter()
            status, content = await asyncio.wait_for(connection.exchange(request), response_timeout)
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] += 1
            if status == 200:
                version = orjson.loads(content).get("model_version")
                if isinstance(version, str):
                    result.model_versions[version] += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(run(protocol) for _, protocol in opened))
    except TimeoutError as error:
        msg = f"request to {base_url}{path} timed out: no response within {response_timeout} s"
        raise LeanLoadError(msg) from error
    finally:
        result.seconds = time.perf_counter() - started
        for _, protocol in opened:
            protocol.close()
    return result


def closed_loop(
    base_url: str,
    path: str,
    body: bytes,
    *,
    connections: int,
    calls_per_connection: int,
    timeout: float = 30.0,
) -> LeanResult:
    """POST ``body`` from ``connections`` kept-alive connections, each waiting for its response.

    Raises:
        LeanLoadError: A connection closed early, or a response was invalid or timed out.
        ValueError: ``base_url`` is not ``http://HOST:PORT``.
    """
    if connections < 1 or calls_per_connection < 1:
        msg = (
            f"connections and calls_per_connection must be at least 1, got {connections} "
            f"and {calls_per_connection}"
        )
        raise ValueError(msg)
    return asyncio.run(
        _closed_loop(base_url, path, body, connections, calls_per_connection, timeout)
    )
