"""The aiohttp session that ``ModelClient`` sends its requests through, and its pool limits.

The session sends no cookies, follows no redirects (each request passes
``allow_redirects=False``), reads no proxy settings from the environment and starts no timers
of its own: the caller's ``asyncio.timeout`` is the one deadline of a call. It requests
uncompressed responses and rejects compressed ones unread, because aiohttp 3.14 decompresses
on the event loop. There a gzip body of zeros, about a thousandth of its decompressed size,
blocks every coroutine and the call's deadline until it is decompressed (about 230 ms for
64 MiB, measured with ``read()`` on the 2-vCPU development VM).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from evidence_model_client.errors import InvalidModelResponseError

__all__ = [
    "HEALTH_CONNECTIONS",
    "ConnectionLimits",
    "close_connection",
    "open_session",
    "read_body",
]

# Connections the connector allows beyond max_connections, for GET /health. Model calls hold
# at most max_connections (ModelClient's semaphore), so a readiness probe never waits behind
# slow model calls in a full pool. ModelClient runs at most this many /health requests at once.
HEALTH_CONNECTIONS = 2

# The one Content-Encoding that read_body accepts, and the one Accept-Encoding the session sends.
_IDENTITY_ENCODING = "identity"
# No aiohttp timers: ModelClient wraps every call in asyncio.timeout, which covers the wait for
# a connection, every attempt and the backoff. A second timer per request would only cost CPU.
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Size of the connection pool and how long an idle pooled connection may be reused.

    Attributes:
        max_connections: maximum connections that model calls hold at once. Calls beyond
            this wait for a free one. ``GET /health`` requests have ``HEALTH_CONNECTIONS``
            more of their own.
        keepalive_expiry_seconds: idle time after which a pooled connection is closed instead
            of reused. Keep it below the server's keep-alive timeout (5 s in uvicorn 0.55).
    """

    max_connections: int = 32
    keepalive_expiry_seconds: float = 4.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            msg = f"max_connections must be >= 1, got {self.max_connections!r}"
            raise ValueError(msg)
        if self.keepalive_expiry_seconds <= 0:
            msg = f"keepalive_expiry_seconds must be > 0, got {self.keepalive_expiry_seconds!r}"
            raise ValueError(msg)


def open_session(limits: ConnectionLimits, headers: Mapping[str, str]) -> aiohttp.ClientSession:
    """Create the pooled session that sends ``headers`` with every request.

    ``Accept-Encoding`` is always ``identity``, replacing any value in ``headers``, because
    the session does not decompress responses. Call it from a coroutine, because aiohttp binds
    the session to the running loop.
    """
    connector = aiohttp.TCPConnector(
        limit=limits.max_connections + HEALTH_CONNECTIONS,
        keepalive_timeout=limits.keepalive_expiry_seconds,
    )
    session_headers = {
        name: value for name, value in headers.items() if name.lower() != "accept-encoding"
    }
    session_headers["Accept-Encoding"] = _IDENTITY_ENCODING
    # NOTE: aiohttp 3.14 reads interim 1xx responses in a loop that does not yield while more
    # are already buffered, and sets no limit on their number. A service that streams
    # "100 Continue" without end held the event loop for over a second per call, past the
    # deadline, in an outside review. The Snowflake inference server is not such a service.
    session = aiohttp.ClientSession(
        connector=connector,
        headers=session_headers,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=_NO_TIMEOUT,
        trust_env=False,
        raise_for_status=False,
        auto_decompress=False,
    )
    # aiohttp sends a GET again, once, when its connection fails before a response, and
    # offers no public switch for that. The client's own retry policy decides instead, so
    # that a readiness probe sends exactly one request. aiohttp's test client sets the same
    # attribute.
    session._retry_connection = False
    return session


async def read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read the whole body of ``response``, or raise once it is larger than ``limit`` bytes.

    A compressed body, or a declared ``Content-Length`` over the limit, fails before any byte
    is read. Without a declared length, the body is read in chunks and fails at the chunk that
    passes the limit, so a broken or hostile service cannot make the client hold an unbounded
    body in memory.

    Raises:
        InvalidModelResponseError: the body has a ``Content-Encoding`` other than identity, or
            is larger than ``limit``.
    """
    _check_identity_encoding(response)
    declared = response.content_length
    if declared is not None and declared <= limit:
        return await response.read()
    if declared is not None:
        raise _too_large(declared, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def close_connection(response: aiohttp.ClientResponse) -> None:
    """Close the connection that carried ``response``, even after it went back to the pool.

    aiohttp returns a connection to the pool as soon as a response body has arrived, so
    ``response.connection`` is None by the time the body has been checked, and
    ``response.close()`` no longer reaches the connection. The connection's protocol is kept
    in the private ``_protocol`` attribute (aiohttp 3.14). Once its transport is closed, the
    pool drops the connection instead of handing it out again. A request that already took it
    from the pool loses it and fails as for any dropped connection (not covered by a test).
    """
    # NOTE: without this private attribute (a future aiohttp), nothing is closed, and the
    # connection-count checks in test_mc_row_ids.py fail.
    protocol = getattr(response, "_protocol", None)
    if protocol is not None:
        protocol.close()


def _check_identity_encoding(response: aiohttp.ClientResponse) -> None:
    encoding = response.headers.get("Content-Encoding", "").strip()
    if encoding and encoding.lower() != _IDENTITY_ENCODING:
        msg = (
            f"model service response has Content-Encoding {encoding!r}, but the client sent "
            "Accept-Encoding: identity and reads only uncompressed bodies; configure the "
            "service or proxy at MODEL_CLIENT_BASE_URL to send uncompressed responses"
        )
        raise InvalidModelResponseError(msg)


def _too_large(size: int, limit: int) -> InvalidModelResponseError:
    msg = (
        f"model service response body has at least {size} bytes, over the {limit} bytes "
        "expected at most for this request; check that MODEL_CLIENT_BASE_URL points at the "
        "model service"
    )
    return InvalidModelResponseError(msg)
