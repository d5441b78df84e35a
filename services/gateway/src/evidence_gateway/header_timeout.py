"""Bounds that uvicorn lacks on what one connection sends: head time and size, trailers, pipelines.

uvicorn 0.55 times out only idle keep-alive connections, shutdown and worker health. A client
that opens a connection, or starts a request, and then sends its headers slowly or not at all
keeps the connection and a file descriptor open for as long as it likes. ``BodySizeLimitMiddleware``
cannot help, because the app receives a request only once uvicorn has parsed its headers.

``HeaderTimeoutProtocol`` is uvicorn's httptools protocol, which ``http="auto"`` picks when
httptools is installed (``uvicorn[standard]`` installs it), with one timer per connection. The
clock starts when the connection is made, and for each later request when its first bytes
arrive. It stops when the request's headers are complete, so the body falls under
``GATEWAY_BODY_TIMEOUT_SECONDS`` and the idle time between keep-alive requests under uvicorn's
keep-alive timeout. A pipelined request that begins while an earlier response is still due
starts its clock once that response is sent. When the clock reaches
``GATEWAY_HEADER_TIMEOUT_SECONDS``, the gateway sends a JSON 408 and closes the connection.

httptools buffers a request head of any size too, so the same class bounds it: a head larger
than ``GATEWAY_MAX_HEADER_BYTES`` gets a JSON 431 and the connection is closed. The request line
and headers count as httptools hands them over, and so do whole reads that arrive while a head
is incomplete. A read is checked only after httptools has parsed it, because it may complete
the head and carry body bytes, and the read in which a head begins is not counted. So one
head can make the gateway buffer at most the limit plus two reads (uvloop reads up to 256 KiB
at a time), even for one endless header line.

uvicorn queues every request that a client pipelines behind one whose response is still due,
and each response lets in another read: tiny requests sent without pause grew a worker by
1.6 GB over one connection. At most ``MAX_PIPELINED_REQUESTS`` wait per connection; beyond
them the connection is closed. A request that uvicorn's parser rejects as malformed gets a
JSON 400 in the gateway's error shape instead of uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any, cast

import structlog
from prometheus_client import Counter
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from evidence_gateway.config import get_settings
from evidence_gateway.handlers import error_body

__all__ = [
    "HEADER_TIMEOUTS",
    "LONG_PIPELINES",
    "MAX_PIPELINED_REQUESTS",
    "OVERSIZED_HEADS",
    "OVERSIZED_TRAILERS",
    "HeaderTimeoutProtocol",
]

HEADER_TIMEOUTS = Counter(
    "evidence_gateway_header_timeouts",
    "Connections closed because a request's headers did not arrive within "
    "GATEWAY_HEADER_TIMEOUT_SECONDS.",
)

OVERSIZED_HEADS = Counter(
    "evidence_gateway_oversized_heads",
    "Connections closed because a request head was larger than GATEWAY_MAX_HEADER_BYTES.",
)

LONG_PIPELINES = Counter(
    "evidence_gateway_long_pipelines",
    "Connections closed because more than MAX_PIPELINED_REQUESTS requests were pipelined "
    "behind a response still due.",
)

# Requests queued behind a response still due. Clients that pipeline send a few at a time.
MAX_PIPELINED_REQUESTS = 32

OVERSIZED_TRAILERS = Counter(
    "evidence_gateway_oversized_trailers",
    "Connections closed because a chunked body's trailers, or its chunk framing, passed "
    "GATEWAY_MAX_HEADER_BYTES.",
)

_log = structlog.get_logger("evidence_gateway.header_timeout")


class _LimitAwareLogger(logging.LoggerAdapter[logging.Logger]):
    """uvicorn's logger for one connection, without its parser warning after our own rejection.

    A head or trailer over the limit stops httptools with an error on purpose. uvicorn then logs
    "Invalid HTTP request received." before it calls ``send_400_response``, which sends a 431 or
    closes the connection and logs a line of its own. The uvicorn line would name a valid
    request invalid, so it is dropped for that connection only.
    """

    def __init__(self, logger: logging.Logger, protocol: HeaderTimeoutProtocol) -> None:
        super().__init__(logger, {})
        self._protocol = protocol

    @property
    def level(self) -> int:
        # uvicorn reads ``logger.level`` to decide whether to log at its TRACE level.
        return self.logger.level

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if self._protocol.rejected_by_limit:
            return
        super().warning(msg, *args, **kwargs)


# Bytes that a header line adds besides its name and value: ": " and CRLF.
_HEADER_LINE_OVERHEAD = 4


class _HeadTooLargeError(Exception):
    """Raised in a parser callback to stop httptools at a head over the size limit."""


class _PipelineTooLongError(Exception):
    """Raised in a parser callback to stop httptools at one pipelined request too many."""


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers.

    Args:
        config: uvicorn's configuration, as for the parent class.
        server_state: uvicorn's state shared by all connections.
        app_state: The lifespan state copied into each request's scope.
        _loop: The event loop; ``None`` for the current one, as in the parent class.
        header_timeout_seconds: The deadline; ``GATEWAY_HEADER_TIMEOUT_SECONDS`` when omitted.
        max_header_bytes: The largest head; ``GATEWAY_MAX_HEADER_BYTES`` when omitted.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout_seconds: float | None = None,
        max_header_bytes: int | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # The adapter has every logger method and attribute that uvicorn's protocol uses.
        self.logger = cast(logging.Logger, _LimitAwareLogger(self.logger, self))
        if header_timeout_seconds is None or max_header_bytes is None:
            settings = get_settings()
            if header_timeout_seconds is None:
                header_timeout_seconds = settings.header_timeout_seconds
            if max_header_bytes is None:
                max_header_bytes = settings.max_header_bytes
        self.header_timeout_seconds = header_timeout_seconds
        self.max_header_bytes = max_header_bytes
        # Two measures of the current head, each bounded by the limit: its request line and
        # headers as httptools hands them over, and the reads that arrived while it was
        # incomplete (see data_received). Adding them up would count bytes twice.
        self._head_size = 0
        self._head_read_bytes = 0
        self._head_too_large = False
        self._pipeline_too_long = False
        self._pipeline_rejected = False
        # Requests whose head has begun on this connection.
        self._heads_begun = 0
        # Between a request's complete head and the end of its body: body bytes handed to the
        # app, and the other bytes of that phase (chunk framing and trailers), each bounded.
        self._in_body_phase = False
        self._body_bytes = 0
        self._framing_bytes = 0
        self._trailer_bytes = 0
        self._trailers_too_large = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_clock_started = 0.0
        self._header_bytes = 0
        # A request line has begun and its headers are not complete yet.
        self._head_pending = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_clock()

    def data_received(self, data: bytes) -> None:
        # Bytes that arrive while no response is due start the next request, even when they
        # are only the blank lines that a parser skips before a request line. Without this, a
        # client could hold an idle connection by sending a CRLF now and then, because uvicorn
        # stops its keep-alive timer on any data.
        if self._between_requests():
            self._start_header_clock()
        head_was_pending = self._head_pending
        heads_begun = self._heads_begun
        in_body_phase = self._in_body_phase
        body_bytes = self._body_bytes
        super().data_received(data)
        # A read that began and ended inside one request's body phase carried body bytes and
        # otherwise only chunk framing and trailers, which httptools buffers while a trailer
        # line is incomplete. Those other bytes are bounded like a head, or by an eighth of
        # the body when that is more.
        same_request = self._heads_begun == heads_begun
        if (
            in_body_phase
            and self._in_body_phase
            and same_request
            and not self.transport.is_closing()
        ):
            self._framing_bytes += len(data) - (self._body_bytes - body_bytes)
            # A chunk's framing is a size line and two line ends, so a client that sends
            # chunks of 64 bytes or more stays below an eighth of its body however large it is.
            if self._framing_bytes > max(self.max_header_bytes, self._body_bytes // 8):
                self._reject_oversized_trailers()
        if self._header_timer is not None:
            self._header_bytes += len(data)
        # A head that was incomplete before this read, and still is after it with no other
        # request begun in between, received every byte of the read. httptools hands over a
        # header only once its value is complete, so this count is what bounds the buffering
        # of one endless header line.
        if head_was_pending and self._head_pending and self._heads_begun == heads_begun:
            self._head_read_bytes += len(data)
            if self._head_read_bytes > self.max_header_bytes and not self.transport.is_closing():
                self._head_too_large = True
                self._reject_oversized_head()

    def on_message_begin(self) -> None:
        self._head_pending = True
        self._heads_begun += 1
        self._head_size = 0
        self._head_read_bytes = 0
        if self._between_requests():
            self._start_header_clock()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_pending:
            self._count_head(len(name) + len(value) + _HEADER_LINE_OVERHEAD)
            super().on_header(name, value)
            return
        # httptools hands over a chunked body's trailers here too. uvicorn would append them
        # to the request's headers after the app has read those, so a trailer could pose as a
        # header such as the service-function batch id. They are counted and dropped.
        self._trailer_bytes += len(name) + len(value) + _HEADER_LINE_OVERHEAD
        if self._trailer_bytes > self.max_header_bytes:
            self._trailers_too_large = True
            raise _HeadTooLargeError

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body_phase = False
        super().on_message_complete()

    @property
    def rejected_by_limit(self) -> bool:
        """Whether this connection passed a head, trailer or pipeline limit and was rejected."""
        return self._head_too_large or self._trailers_too_large or self._pipeline_too_long

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for every parser error, including the ones that the limits raise
        # on purpose to stop the parser.
        if self._head_too_large:
            self._reject_oversized_head()
        elif self._trailers_too_large:
            self._reject_oversized_trailers()
        elif self._pipeline_too_long:
            self._reject_long_pipeline()
        else:
            self._reject_malformed_request()

    def on_headers_complete(self) -> None:
        cycle: Any = self.cycle
        if (
            cycle is not None
            and not cycle.response_complete
            and len(self.pipeline) >= MAX_PIPELINED_REQUESTS
        ):
            self._pipeline_too_long = True
            raise _PipelineTooLongError
        self._head_pending = False
        self._stop_header_clock()
        self._in_body_phase = True
        self._body_bytes = 0
        self._framing_bytes = 0
        self._trailer_bytes = 0
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request that began while earlier responses were due gets its full
        # period from now. Until now uvicorn may have stopped reading, or the 408 would have
        # landed inside a response, so the clock did not run.
        if self._head_pending and self._between_requests() and not self.transport.is_closing():
            self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        # ``cycle`` is the latest request whose headers are complete, so it is still due while
        # any request before it is. uvicorn types it as never None, but it is None until the
        # first request's headers are complete.
        cycle: Any = self.cycle
        return cycle is None or bool(cycle.response_complete)

    def _start_header_clock(self) -> None:
        if self._header_timer is not None:
            return
        self._header_clock_started = self.loop.time()
        self._header_bytes = 0
        self._header_timer = self.loop.call_later(
            self.header_timeout_seconds, self._on_header_timeout
        )

    def _stop_header_clock(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        # The clock runs only while no response is due, so nothing else is being written.
        self._header_timer = None
        if self.transport.is_closing():
            return

        request_id = str(uuid.uuid4())
        elapsed = self.loop.time() - self._header_clock_started
        HEADER_TIMEOUTS.inc()
        _log.info(
            "request headers timed out",
            request_id=request_id,
            bytes_in=self._header_bytes,
            duration_ms=round(elapsed * 1000.0, 3),
        )
        self.transport.write(self._timeout_response(request_id))
        self.transport.close()

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLargeError

    def _reject_oversized_head(self) -> None:
        self._stop_header_clock()
        request_id = str(uuid.uuid4())
        OVERSIZED_HEADS.inc()
        _log.info(
            "request head too large",
            request_id=request_id,
            bytes_in=max(self._head_size, self._head_read_bytes),
        )
        # Behind a pipelined request whose response is still due, a 431 would land inside that
        # response, so the connection is only closed.
        if self._between_requests():
            message = (
                f"the request head is larger than GATEWAY_MAX_HEADER_BYTES="
                f"{self.max_header_bytes} bytes; send fewer or shorter headers"
            )
            response = self._error_response(431, "headers_too_large", message, request_id)
            self.transport.write(response)
        self.transport.close()

    def _reject_long_pipeline(self) -> None:
        # The requests already queued are served, and the connection closes after the last of
        # them: closing now would lose responses of requests that still run, and may have
        # stored a prediction, so a client that retried would store it twice. The parser has
        # failed, so every later byte on this connection is read and dropped unparsed.
        if self._pipeline_rejected:
            return
        self._pipeline_rejected = True
        LONG_PIPELINES.inc()
        _log.info("too many pipelined requests", queued=len(self.pipeline))
        self._serve_due_then_close()

    def _serve_due_then_close(self) -> None:
        """Let the requests already parsed finish, and close after the last response.

        NOTE: bytes the client sends after that last response make Linux reset the
        connection at the close, which can discard responses the client has not read yet.
        """
        cycle: Any = self.cycle
        cycle.keep_alive = False
        # The rejected head never completes; without this its dropped bytes would count
        # against the head limit, whose 431 path closes the connection at once.
        self._head_pending = False
        self._in_body_phase = False

    def _reject_malformed_request(self) -> None:
        if self._between_requests():
            request_id = str(uuid.uuid4())
            message = (
                "the request is not valid HTTP/1.1 (request line, header syntax or message "
                "framing); send a well-formed request"
            )
            self.transport.write(
                self._error_response(400, "invalid_http_request", message, request_id)
            )
            self.transport.close()
            return
        if self._in_body_phase and not self.pipeline:
            # The malformed bytes are the framing of the body that the running request still
            # reads, so no earlier response is due, and that request can never finish.
            self.transport.close()
            return
        # A 400 written now would land inside a response still due. The requests before the
        # malformed one are served, as after a pipeline that is too long, and the connection
        # closes after the last of them.
        self._serve_due_then_close()

    def _reject_oversized_trailers(self) -> None:
        # The request is under way and its response may be too, so there is no status to send:
        # the connection is closed.
        OVERSIZED_TRAILERS.inc()
        _log.info(
            "request trailers too large",
            request_id=str(uuid.uuid4()),
            bytes_in=max(self._framing_bytes, self._trailer_bytes),
        )
        self.transport.close()

    def _timeout_response(self, request_id: str) -> bytes:
        message = (
            "the request headers did not arrive within GATEWAY_HEADER_TIMEOUT_SECONDS="
            f"{self.header_timeout_seconds:g} s; send the whole request head without pausing"
        )
        return self._error_response(408, "request_timeout", message, request_id)

    def _error_response(self, status: int, kind: str, message: str, request_id: str) -> bytes:
        body = json.dumps(error_body(kind, message)).encode("utf-8")
        head = [STATUS_LINE[status]]
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"x-request-id", request_id.encode("ascii")),
            (b"connection", b"close"),
        ]
        head.extend(name + b": " + value + b"\r\n" for name, value in headers)
        return b"".join([*head, b"\r\n", body])
