"""Request body limits on size and on time, enforced before and while the body is read.

Neither uvicorn nor FastAPI caps bodies by default, and ``await request.body()`` buffers all of
it. This middleware returns 413 from the ``Content-Length`` header alone when it is over the
limit, and otherwise counts bytes as the app receives them, so a chunked upload stops at the
limit instead of being buffered whole. Starlette's own ``RequestBodyLimitMiddleware`` does
the same counting but responds in plain text, which would break the JSON error contract.

uvicorn 0.55 has no body timeout either (its timeouts cover keep-alive, shutdown and worker
health), so a client that sends headers and then stalls would hold its connection, and a file
descriptor, for ever. A body that has not fully arrived ``body_timeout_seconds`` after the
request started gets 408, and the connection is closed.

The bodies of all requests in progress together may not pass ``max_inflight_body_bytes``:
bytes count as they arrive and stay counted until the response is sent, because the decoded
JSON and the parsed documents live that long. A request that would pass the limit gets 503
with ``Retry-After``, so a burst of large batches slows down instead of exhausting memory.

This middleware runs only once uvicorn has parsed the headers, so a client that stalls in the
middle of them is handled by ``header_timeout.HeaderTimeoutProtocol`` instead, which sends
408 after ``GATEWAY_HEADER_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BodyReadTimeoutError",
    "BodySizeLimitMiddleware",
    "BodyTooLargeError",
    "InflightBodiesFullError",
    "charge_decoded_body",
]

# Key in the request's scope["state"] of the function that counts a gunzipped body against the
# in-flight limit. uvicorn copies "state" for each request, so the function is per request.
_CHARGE_KEY = "evidence_gateway.charge_body_bytes"


class BodyTooLargeError(HTTPException):
    """Raised once the body passes the limit, and handled as a JSON 413.

    Args:
        max_body_bytes: The limit, ``GATEWAY_MAX_BODY_BYTES``.
        decompressed: The limit was passed while decompressing a gzip body, not while reading.
    """

    def __init__(self, max_body_bytes: int, *, decompressed: bool = False) -> None:
        body = "decompressed request body" if decompressed else "request body"
        super().__init__(
            status_code=413,
            detail=(
                f"{body} is larger than GATEWAY_MAX_BODY_BYTES={max_body_bytes} bytes; "
                "send fewer or smaller documents"
            ),
        )


class BodyReadTimeoutError(HTTPException):
    """Raised when the body has not fully arrived in time, and handled as a JSON 408.

    Args:
        timeout_seconds: The limit, ``GATEWAY_BODY_TIMEOUT_SECONDS``.
    """

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__(
            status_code=408,
            detail=(
                f"the request body did not arrive within GATEWAY_BODY_TIMEOUT_SECONDS="
                f"{timeout_seconds:g} s; send the whole body without pausing"
            ),
            headers={"connection": "close"},
        )


class InflightBodiesFullError(HTTPException):
    """Raised when a body would pass the in-flight limit, and handled as a JSON 503.

    Args:
        max_inflight_body_bytes: The limit, ``GATEWAY_MAX_INFLIGHT_BODY_BYTES``.
    """

    def __init__(self, max_inflight_body_bytes: int) -> None:
        super().__init__(
            status_code=503,
            detail=(
                "the gateway is holding GATEWAY_MAX_INFLIGHT_BODY_BYTES="
                f"{max_inflight_body_bytes} bytes of request bodies; retry after the "
                "Retry-After delay or send smaller batches"
            ),
            headers={"connection": "close", "retry-after": "1"},
        )


class BodySizeLimitMiddleware:
    """Reject request bodies larger than ``max_body_bytes`` (413) or slower than a timeout (408).

    Args:
        app: The wrapped ASGI app.
        max_body_bytes: Largest accepted body in bytes.
        body_timeout_seconds: Time from the start of the request until the body must be
            complete.
        max_inflight_body_bytes: Largest total of the bodies of the requests in progress;
            ``None`` for no limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        body_timeout_seconds: float = 30.0,
        max_inflight_body_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.max_inflight_body_bytes = max_inflight_body_bytes
        # One event loop runs every request of this worker, so a plain int needs no lock.
        self.inflight_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = Headers(scope=scope)
        declared = _content_length(headers)
        if declared is not None and declared > self.max_body_bytes:
            await _reject(send, BodyTooLargeError(self.max_body_bytes))
            return
        if declared is not None and self._over_inflight_limit(declared):
            await _reject(send, self._inflight_error())
            return

        received = 0
        charged = 0
        started = False
        # A request with no body is complete from the start. One that the app responds to
        # without reading its body (404, 415) gets "connection: close", because uvicorn would
        # otherwise read and discard the rest for as long as the client keeps sending it.
        complete = not declared and "chunked" not in headers.get("transfer-encoding", "").lower()
        deadline = asyncio.get_running_loop().time() + self.body_timeout_seconds

        async def receive_limited() -> Message:
            nonlocal received, complete
            if complete:
                # After the body, receive() only waits for the client to disconnect.
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError as exc:
                raise BodyReadTimeoutError(self.body_timeout_seconds) from exc
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                if received + size > self.max_body_bytes:
                    raise BodyTooLargeError(self.max_body_bytes)
                if self._over_inflight_limit(size):
                    raise self._inflight_error()
                received += size
                self.inflight_bytes += size
                complete = not message.get("more_body", False)
            return message

        def charge(size: int) -> None:
            nonlocal charged
            if self._over_inflight_limit(size):
                raise self._inflight_error()
            charged += size
            self.inflight_bytes += size

        scope.setdefault("state", {})[_CHARGE_KEY] = charge

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not complete:
                    MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        try:
            await self.app(scope, receive_limited, send_tracked)
        except (BodyTooLargeError, BodyReadTimeoutError, InflightBodiesFullError) as error:
            # Reached only when the app read the body outside a FastAPI route; routes turn the
            # error into a JSON 413, 408 or 503 through the exception handlers.
            if started:
                raise
            await _reject(send, error)
        finally:
            self.inflight_bytes -= received + charged

    def _over_inflight_limit(self, more: int) -> bool:
        limit = self.max_inflight_body_bytes
        return limit is not None and self.inflight_bytes + more > limit

    def _inflight_error(self) -> InflightBodiesFullError:
        return InflightBodiesFullError(self.max_inflight_body_bytes or 0)


def charge_decoded_body(scope: Scope, size: int) -> None:
    """Count ``size`` bytes decoded from the request's body against the in-flight limit.

    A gzip body counts at its compressed size as it arrives, so the gunzipped copy, up to
    ``GATEWAY_MAX_BODY_BYTES``, is counted here as well. Does nothing outside the middleware.

    Raises:
        InflightBodiesFullError: the bytes would pass ``GATEWAY_MAX_INFLIGHT_BODY_BYTES``.
    """
    charge = scope.get("state", {}).get(_CHARGE_KEY)
    if charge is not None:
        charge(size)


_ERROR_TYPES = {413: "payload_too_large", 408: "request_timeout", 503: "server_busy"}


async def _reject(send: Send, error: HTTPException) -> None:
    extra_headers = [
        (name.encode("ascii"), value.encode("ascii"))
        for name, value in (error.headers or {}).items()
        if name != "connection"
    ]
    body = json.dumps(
        {
            "error": {
                "type": _ERROR_TYPES[error.status_code],
                "message": error.detail,
                "document": None,
            }
        }
    ).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                *extra_headers,
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.isdigit():
        return None
    return int(value)
