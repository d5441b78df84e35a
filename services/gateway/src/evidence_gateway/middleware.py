"""Per-request context: request id, one summary log line and the request-latency histogram."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evidence_gateway.metrics import REQUEST_SECONDS

__all__ = ["RequestContextMiddleware"]

_log = structlog.get_logger("evidence_gateway.request")
# A client-supplied request id is reused only when it has the shape of a generated id: a UUID
# or 16 to 64 hex digits (a W3C trace id has 32). Looser patterns let text such as "Jane.Doe"
# through, and the /functions routes take no token, so any caller could write it into the log.
# Any other value is replaced by a new UUID, which the response header returns.
_REQUEST_ID_PATTERN = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,64})$"
)
_QUIET_ROUTES = frozenset({"/health/live", "/health/ready", "/metrics"})
# The methods of RFC 9110 and PATCH (RFC 5789). Any other method is labelled "other", because a
# label value from the request would let a client add metric series. uvicorn's httptools
# parser already rejects most unknown methods, but the app may run under another server.
_LABELLED_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


class RequestContextMiddleware:
    """Bind ``request_id`` for the request's log lines and log one summary line at its end.

    Handlers add counts with ``structlog.contextvars.bind_contextvars``; they end up in the
    summary line because async handlers run in the middleware's task. Probes and scrapes are
    logged at debug level only.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        # The app's routes, to label requests that a middleware rejects before routing.
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = Headers(scope=scope)
        supplied = headers.get("x-request-id", "")
        request_id = supplied if _REQUEST_ID_PATTERN.match(supplied) else str(uuid.uuid4())
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        # The 500 handler runs outside this middleware, after the context is cleared, so it
        # reads the id from the request state instead.
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            route_path = _route_path(scope, self.routes)
            method = scope["method"] if scope["method"] in _LABELLED_METHODS else "other"
            REQUEST_SECONDS.labels(method, route_path, str(status)).observe(elapsed)
            # Probes and scrapes log at debug, except a client error such as a 413, which
            # shows that something other than a probe is calling. A 503 of a failing readiness
            # probe stays at debug, as probes repeat every few seconds.
            quiet = route_path in _QUIET_ROUTES and not 400 <= status < 500
            log = _log.debug if quiet else _log.info
            log(
                "request completed",
                method=method,
                route=route_path,
                status=status,
                duration_ms=round(elapsed * 1000.0, 3),
                bytes_in=_content_length(headers),
            )
            structlog.contextvars.clear_contextvars()


def _route_path(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """Return the path template of the request's route, or ``unmatched`` when it has none.

    A request that a middleware rejects before routing (413 from the body limit, 415, 408)
    has no route in its scope yet. It is matched against ``routes`` here, so that its status
    counts under its route and not with the 404s of unknown paths.
    """
    path = getattr(scope.get("route"), "path", None)
    if path:
        return str(path)
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None
