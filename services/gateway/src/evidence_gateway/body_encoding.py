"""Content-Type and Content-Encoding rules shared by every route that takes a JSON body.

The ``/v1`` and ``/functions`` routes accept the same bodies:

* ``Content-Type`` must be ``application/json`` or an ``application/*+json`` type, with no
  charset or ``charset=utf-8``. Anything else, a missing header included, gets 415. A browser
  may send a cross-site POST with ``text/plain`` or without a type and without a CORS
  preflight, so accepting those would let any web page write predictions through the
  unauthenticated ``/functions`` routes.
* ``Content-Encoding`` may be absent, ``identity`` or ``gzip`` (``x-gzip``). Other codings get
  415 with ``Accept-Encoding: gzip``, as RFC 7694 describes. A gzip body is decompressed up to
  ``GATEWAY_MAX_BODY_BYTES``, the limit a plain body has, so a decompression bomb gets 413.
* A UTF-8 byte order mark before the JSON text is dropped by ``bodies.decode_json``.

Error messages name the header and the accepted values but never contain the body.
"""

from __future__ import annotations

import re
import zlib
from email.message import Message

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from evidence_gateway.limits import BodyTooLargeError

__all__ = ["check_content_type", "decompress_gzip", "request_content_coding"]

_GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
# zlib's window-bits value that reads exactly one gzip member: header, deflate data, trailer.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
# HTTP clients send one gzip member, and gzip(1) joins a few when files are concatenated. zlib
# copies the input left after each member, so a body of many tiny members costs time in the
# square of their count (700,000 empty members in 14 MB took over 3 minutes).
MAX_GZIP_MEMBERS = 16
# A header value is quoted in a message only when it looks like a list of HTTP tokens, so
# arbitrary client text never reaches the response.
_HEADER_VALUE_PATTERN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~/ ,;=-]{1,64}$")


def _quoted(value: str) -> str:
    return value if _HEADER_VALUE_PATTERN.match(value) else "with this value"


def _unsupported(message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status_code=415, detail=message, headers=headers)


def check_content_type(headers: Headers) -> None:
    """Raise 415 unless ``Content-Type`` declares JSON in UTF-8.

    Raises:
        HTTPException: 415 for a missing header, a non-JSON media type or another charset.
    """
    value = headers.get("content-type")
    if not value:
        msg = "Content-Type is missing; send the body as JSON with Content-Type: application/json"
        raise _unsupported(msg)
    # email.message parses media types as RFC 2045 does (case-insensitive, parameters split),
    # which is also how FastAPI recognises JSON. It reads an invalid type as text/plain, so
    # the message quotes the header itself.
    parsed = Message()
    parsed["content-type"] = value
    subtype = parsed.get_content_subtype()
    if parsed.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        media_type = value.split(";", 1)[0].strip()
        msg = (
            f"Content-Type {_quoted(media_type)} is not supported; send the body as JSON with "
            "Content-Type: application/json"
        )
        raise _unsupported(msg)
    charset = parsed.get_param("charset")
    if isinstance(charset, str) and charset.lower() not in {"utf-8", "utf8"}:
        msg = (
            f"charset {_quoted(charset.lower())} is not supported; JSON bodies must be UTF-8, "
            "so send Content-Type: application/json without a charset or with charset=utf-8"
        )
        raise _unsupported(msg)


def request_content_coding(headers: Headers) -> str | None:
    """Return ``"gzip"`` when the body must be decompressed, or None when it is plain.

    Raises:
        HTTPException: 415 naming ``Content-Encoding`` for a coding other than gzip or
            identity, or for more than one coding.
    """
    value = headers.get("content-encoding")
    if value is None:
        return None
    codings = [part.strip().lower() for part in value.split(",")]
    codings = [coding for coding in codings if coding and coding != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in _GZIP_CODINGS:
        return "gzip"
    msg = (
        f"Content-Encoding {_quoted(value.strip())} is not supported; send the body "
        "uncompressed or with Content-Encoding: gzip"
    )
    raise _unsupported(msg, headers={"Accept-Encoding": "gzip"})


def _invalid_gzip(problem: str) -> HTTPException:
    return HTTPException(
        status_code=400,
        detail=(
            f"the request body is not valid gzip data ({problem}), but its header says "
            "Content-Encoding gzip; compress the whole JSON body with gzip or drop the header"
        ),
    )


def decompress_gzip(data: bytes, *, max_bytes: int) -> bytes:
    """Decompress a gzip body of one or more members, stopping as soon as it passes ``max_bytes``.

    Each ``decompress`` call is capped at the bytes still allowed plus one, so a decompression
    bomb costs at most ``max_bytes + 1`` bytes of output before it is rejected. At most
    ``MAX_GZIP_MEMBERS`` members are read.

    Raises:
        BodyTooLargeError: the decompressed body is larger than ``max_bytes`` (413).
        HTTPException: 400 when ``data`` is not gzip, is truncated, has trailing bytes or has
            more than ``MAX_GZIP_MEMBERS`` members.
    """
    if not data:
        raise _invalid_gzip("the body is empty")
    output = bytearray()
    remaining = data
    for _ in range(MAX_GZIP_MEMBERS):
        decompressor = zlib.decompressobj(wbits=_GZIP_WBITS)
        try:
            output += decompressor.decompress(remaining, max_bytes - len(output) + 1)
        except zlib.error:
            raise _invalid_gzip("a gzip member is corrupt or is followed by other bytes") from None
        if len(output) > max_bytes:
            raise BodyTooLargeError(max_bytes, decompressed=True)
        if not decompressor.eof:
            # Output stayed within the cap, so the input ran out before the member ended.
            raise _invalid_gzip("the data ends inside a gzip member")
        remaining = decompressor.unused_data
        if not remaining:
            return bytes(output)
    raise _invalid_gzip(
        f"more than {MAX_GZIP_MEMBERS} gzip members; compress the body as one member"
    )
