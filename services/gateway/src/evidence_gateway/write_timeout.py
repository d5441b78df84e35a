"""The gateway's HTTP protocol: the head limits plus a timeout on clients that stop reading.

uvicorn 0.55 has no write timeout. It hands a whole response body to the transport in one
write, and asyncio keeps what the socket does not take in memory until the client reads it.
A client that sends a request and never reads the response therefore keeps that memory and a
file descriptor for as long as it keeps the connection open, and closing the transport does
not help, because ``close()`` waits for the buffer to drain.

``WriteTimeoutProtocol`` watches a connection while asyncio holds bytes of a response for it.
Progress is the count of bytes the client's TCP stack has acknowledged, which the kernel
reports in ``TCP_INFO`` (``tcpi_bytes_acked``, Linux 4.1 and later). The size of asyncio's
buffer cannot serve: the kernel's own send buffer, several MiB on Linux, sits between it and
the client, so a client that reads steadily can leave asyncio's buffer unchanged for seconds.
If ``GATEWAY_WRITE_TIMEOUT_SECONDS`` pass without a single byte acknowledged, the connection
is reset, which frees asyncio's buffer and the kernel's. As with nginx's ``send_timeout``, a
client keeps its connection while it acknowledges anything within each timeout; one whose
receive buffer is full acknowledges again only after reading about one segment, so a very
slow reader is cut off. Where the kernel does not report the count, no connection is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

import structlog
from prometheus_client import Counter
from uvicorn.config import Config
from uvicorn.server import ServerState

from evidence_gateway.config import get_settings
from evidence_gateway.header_timeout import HeaderTimeoutProtocol

__all__ = ["WRITE_TIMEOUTS", "WriteTimeoutProtocol"]

WRITE_TIMEOUTS = Counter(
    "evidence_gateway_write_timeouts",
    "Connections reset because the client acknowledged no byte of a buffered response within "
    "GATEWAY_WRITE_TIMEOUT_SECONDS.",
)

_log = structlog.get_logger("evidence_gateway.write_timeout")

# Offset of tcpi_bytes_acked (u64) in Linux's struct tcp_info: 8 one-byte fields, 24 u32
# fields, then pacing_rate and max_pacing_rate (u64). The struct only grows at its end.
_BYTES_ACKED_OFFSET = 120
_TCP_INFO_BYTES = 256


def bytes_acknowledged(transport: asyncio.BaseTransport) -> int | None:
    """Return the bytes the peer has acknowledged on ``transport``'s TCP socket, or None.

    None when the transport has no TCP socket or the kernel does not report the count.
    """
    sock = transport.get_extra_info("socket")
    tcp_info = getattr(socket, "TCP_INFO", None)
    if sock is None or tcp_info is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, _TCP_INFO_BYTES)
    except OSError:
        return None
    if len(info) < _BYTES_ACKED_OFFSET + 8:
        return None
    acked: int = struct.unpack_from("=Q", info, _BYTES_ACKED_OFFSET)[0]
    return acked


class WriteTimeoutProtocol(HeaderTimeoutProtocol):
    """``HeaderTimeoutProtocol`` that also aborts connections whose client stopped reading.

    Args:
        config: uvicorn's configuration, as for the parent class.
        server_state: uvicorn's state shared by all connections.
        app_state: The lifespan state copied into each request's scope.
        _loop: The event loop; ``None`` for the current one, as in the parent class.
        header_timeout_seconds: Passed to ``HeaderTimeoutProtocol``.
        max_header_bytes: Passed to ``HeaderTimeoutProtocol``.
        write_timeout_seconds: Seconds the client may acknowledge no byte while bytes wait for
            it; ``GATEWAY_WRITE_TIMEOUT_SECONDS`` when omitted.
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
        write_timeout_seconds: float | None = None,
    ) -> None:
        super().__init__(
            config,
            server_state,
            app_state,
            _loop,
            header_timeout_seconds=header_timeout_seconds,
            max_header_bytes=max_header_bytes,
        )
        if write_timeout_seconds is None:
            write_timeout_seconds = get_settings().write_timeout_seconds
        self.write_timeout_seconds = write_timeout_seconds
        self._write_timer: asyncio.TimerHandle | None = None
        # Bytes the client had acknowledged when the timer started; more at the next check
        # means it read some. The count only grows, whatever the app writes meanwhile.
        self._watched_acked = 0
        self._running_cycle: Any = None

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_writes()

    def on_response_complete(self) -> None:
        # Before the parent, which returns early when the transport is already closing, as it
        # is after a response sent with "connection: close".
        self._watch_writes()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        self._disconnect_requests()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # uvicorn marks only the newest parsed request as disconnected when the connection is
        # lost. With requests pipelined, the one that runs is older, so it is remembered here
        # to be marked too.
        self._running_cycle = cycle
        super()._start_asgi_task(cycle, app)

    def _disconnect_requests(self) -> None:
        """Mark every request still running or waiting as disconnected, so it stops writing.

        A write to a closed transport raises under uvloop, which uvicorn logs as "Exception in
        ASGI application", whether the client or the gateway ended the connection.
        """
        waiting = [cycle for cycle, _ in self.pipeline]
        for cycle in (self._running_cycle, self.cycle, *waiting):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True

    def _watch_writes(self) -> None:
        """Start the timer if asyncio's buffer contains bytes for the client and none runs yet.

        Called when writing is paused and when a response is complete: until then the app
        is writing and the client has had no time to fall behind.
        """
        if self._write_timer is not None or self.transport is None:
            return
        if self.transport.get_write_buffer_size() == 0:
            return
        acked = bytes_acknowledged(self.transport)
        if acked is None:
            return
        self._watched_acked = acked
        self._write_timer = self.loop.call_later(
            self.write_timeout_seconds, self._check_write_progress
        )

    def _stop_watching(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _check_write_progress(self) -> None:
        self._write_timer = None
        pending = self.transport.get_write_buffer_size()
        if pending == 0:
            return
        acked = bytes_acknowledged(self.transport)
        if acked is None or acked > self._watched_acked:
            self._watch_writes()
            return
        WRITE_TIMEOUTS.inc()
        _log.info(
            "response write timed out",
            pending_bytes=pending,
            write_timeout_seconds=self.write_timeout_seconds,
        )
        self._abort()

    def _abort(self) -> None:
        """Drop the connection with a reset, freeing asyncio's and the kernel's buffers."""
        self._disconnect_requests()
        # close() would wait for the client to read the buffer. A plain abort() still leaves
        # the kernel's send buffer queued for the client. A zero linger time makes the close a
        # reset, which drops both.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()
