"""The gateway's HTTP protocol: the head limits plus a timeout on clients that stop reading.

uvicorn 0.55 has no write timeout. It hands a whole response body to the transport in one
write, and asyncio keeps what the socket does not take in memory until the client reads it.
A client that sends a request and never reads the response therefore holds that memory and a
file descriptor for as long as it keeps the connection open, and closing the transport does
not help, because ``close()`` waits for the buffer to drain.

``WriteTimeoutProtocol`` watches the write buffer whenever the client is the one holding it
up: while asyncio has paused writing (the buffer is over its high-water mark) and once a
response is complete with bytes still buffered. If ``GATEWAY_WRITE_TIMEOUT_SECONDS`` pass
without the client taking a single byte, the connection is aborted and its buffer freed. A
client that keeps reading, however slowly, keeps its connection, as with nginx's
``send_timeout``.
"""

from __future__ import annotations

import asyncio
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
    "Connections aborted because the client took no byte of a buffered response within "
    "GATEWAY_WRITE_TIMEOUT_SECONDS.",
)

_log = structlog.get_logger("evidence_gateway.write_timeout")


class WriteTimeoutProtocol(HeaderTimeoutProtocol):
    """``HeaderTimeoutProtocol`` that also aborts connections whose client stopped reading.

    Args:
        config: uvicorn's configuration, as for the parent class.
        server_state: uvicorn's state shared by all connections.
        app_state: The lifespan state copied into each request's scope.
        _loop: The event loop; ``None`` for the current one, as in the parent class.
        header_timeout_seconds: Passed to ``HeaderTimeoutProtocol``.
        max_header_bytes: Passed to ``HeaderTimeoutProtocol``.
        write_timeout_seconds: Longest wait for the client to take any byte of a buffered
            response; ``GATEWAY_WRITE_TIMEOUT_SECONDS`` when omitted.
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
        # Buffered bytes when the timer was armed. While it runs no new bytes are added (see
        # _watch_writes), so a smaller buffer at the next check means the client read some.
        self._watched_bytes = 0

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_writes()

    def resume_writing(self) -> None:
        super().resume_writing()
        # The app may write again now, which would make the buffer sizes incomparable. A
        # finished response writes nothing more, so its tail stays watched.
        if not self._response_complete():
            self._stop_watching()

    def on_response_complete(self) -> None:
        # Before the parent, which returns early when the transport is already closing, as it
        # is after a response sent with "connection: close".
        self._watch_writes()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        super().connection_lost(exc)

    def _response_complete(self) -> bool:
        return self.cycle is not None and self.cycle.response_complete

    def _watch_writes(self) -> None:
        """Start the timer if bytes wait for the client and no timer runs yet.

        Called when writing is paused, so that uvicorn lets the app write no more until the
        buffer drains, and when a response is complete. In neither state is anything added to
        the buffer.
        """
        if self._write_timer is not None or self.transport is None:
            return
        pending = self.transport.get_write_buffer_size()
        if pending == 0:
            return
        self._watched_bytes = pending
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
        if pending < self._watched_bytes:
            self._watch_writes()
            return
        WRITE_TIMEOUTS.inc()
        _log.info(
            "response write timed out",
            pending_bytes=pending,
            write_timeout_seconds=self.write_timeout_seconds,
        )
        # close() would wait for the client to read the buffer; abort() drops it.
        self.transport.abort()
