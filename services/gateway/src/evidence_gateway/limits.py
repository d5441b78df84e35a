"""Request body size limit, enforced before and while the body is read.

Neither uvicorn nor FastAPI caps bodies by default, and ``await request.body()`` buffers all of
it. This middleware returns 413 from the ``Content-Length`` header alone when it is over the
limit, and otherwise counts bytes as the app receives them, so a chunked upload stops at the
limit instead of being buffered whole. Starlette's own ``RequestBodyLimitMiddleware`` does
the same counting but responds in plain text, which would break the JSON error contract.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimitMiddleware", "BodyTooLargeError"]


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


class BodySizeLimitMiddleware:
    """Reject request bodies larger than ``max_body_bytes`` with 413.

    Args:
        app: The wrapped ASGI app.
        max_body_bytes: Largest accepted body in bytes.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = _content_length(Headers(scope=scope))
        if declared is not None and declared > self.max_body_bytes:
            await self._reject(send)
            return

        received = 0
        started = False

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLargeError(self.max_body_bytes)
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_limited, send_tracked)
        except BodyTooLargeError:
            # Reached only when the app read the body outside a FastAPI route; routes turn the
            # error into a JSON 413 through the exception handlers.
            if started:
                raise
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        error = BodyTooLargeError(self.max_body_bytes)
        body = json.dumps(
            {"error": {"type": "payload_too_large", "message": error.detail, "document": None}}
        ).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode("ascii")),
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
