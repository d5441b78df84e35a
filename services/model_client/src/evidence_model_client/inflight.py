"""The limit on the request body bytes of all requests that the model server has in progress.

``MODEL_SERVER_MAX_BODY_BYTES`` caps one body, but N concurrent requests would still keep N
bodies and their parsed arrays in memory at once. Each request reserves its bytes here before
its body is read: the declared ``Content-Length`` at once, or each chunk of a chunked body as
it arrives. The bytes stay reserved until the response is ready, because the parsed arrays
live that long. The server calls ``release`` in a ``finally`` block, so errors, body timeouts
and client disconnects return the bytes too.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BodyReservation", "InflightBodies"]


class InflightBodies:
    """The body bytes reserved by the requests in progress, against ``max_bytes``.

    Use from one event loop only: the counters are plain integers without a lock.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            msg = f"max_bytes must be at least 1, got {max_bytes!r}"
            raise ValueError(msg)
        self.max_bytes = max_bytes
        #: Bytes reserved by all requests in progress.
        self.reserved_bytes = 0
        #: Requests holding a reservation, including those holding 0 bytes so far.
        self.requests = 0

    def reserve(self, size: int) -> BodyReservation | None:
        """Reserve ``size`` bytes for a new request, or return None when they do not fit."""
        if not self.fits(size):
            return None
        self.reserved_bytes += size
        self.requests += 1
        return BodyReservation(self, size)

    def fits(self, size: int) -> bool:
        """Return whether ``size`` more bytes stay within ``max_bytes``."""
        return self.reserved_bytes + size <= self.max_bytes


@dataclass
class BodyReservation:
    """The bytes that one request has reserved in ``InflightBodies``, until ``release``."""

    owner: InflightBodies
    size: int
    released: bool = False

    def cover(self, total: int) -> bool:
        """Grow the reservation to ``total`` bytes read so far; return False if they do not fit.

        A request with a ``Content-Length`` reserved it whole, so this only grows a chunked
        body's reservation, or one whose body is longer than declared.
        """
        extra = total - self.size
        if extra <= 0:
            return True
        if not self.owner.fits(extra):
            return False
        self.owner.reserved_bytes += extra
        self.size = total
        return True

    def release(self) -> None:
        """Return the bytes to the owner; a second call does nothing."""
        if self.released:
            return
        self.released = True
        self.owner.reserved_bytes -= self.size
        self.owner.requests -= 1
