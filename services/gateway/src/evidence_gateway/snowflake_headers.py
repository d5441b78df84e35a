"""The Snowflake service-function headers the gateway reads, and how their ids reach the log.

The ``/functions`` routes take no token, so any caller can put any text in these headers,
such as an applicant's name. A value is logged as it is only when it has the shape of a
Snowflake query id (``01b2c3d4-0000-1234-0000-00012345abcd``) or query batch id (the query id
followed by up to eight ``:<number>`` parts, such as ``<query-id>:1:1:0:0``). Any other value is
logged as a 12-hex-digit keyed digest and its length.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from starlette.requests import Request

__all__ = [
    "QUERY_BATCH_ID_HEADER",
    "QUERY_ID_HEADER",
    "AmbiguousHeaderError",
    "header_value",
    "loggable_id",
]

QUERY_BATCH_ID_HEADER = "sf-external-function-query-batch-id"
QUERY_ID_HEADER = "sf-external-function-current-query-id"

_SNOWFLAKE_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"(?::[0-9]{1,10}){0,8}"
)
# A plain SHA-256 of a short text such as a name can be reversed by hashing likely names, so
# the digest is keyed. The key is new in every process. Two log lines of one process with the
# same digest carry the same value, and nothing outside the process can recompute the digest.
_DIGEST_KEY = secrets.token_bytes(32)


class AmbiguousHeaderError(ValueError):
    """The request repeats a header with different values, so no single value can apply."""


def header_value(request: Request, name: str) -> str | None:
    """Return the header's value, or None when it is absent or empty.

    HTTP clients merge a repeated header, but a raw request can send one twice. Identical
    copies count as one value.

    Raises:
        AmbiguousHeaderError: the header occurs with two or more different values, an empty
            one included. The message names the header but none of its values, which are the
            caller's text.
    """
    values = set(request.headers.getlist(name))
    if len(values) > 1:
        msg = (
            f"the {name} header occurs with {len(values)} different values; send it once, "
            "because the gateway uses one value for the whole batch"
        )
        raise AmbiguousHeaderError(msg)
    return next(iter(values), None) or None


def loggable_id(key: str, value: str | None) -> dict[str, Any]:
    """Return the log fields for one header id under ``key``, never arbitrary text.

    A Snowflake-shaped id becomes ``{key: value}``. Any other value becomes
    ``{key + "_digest": <12 hex digits>, key + "_length": <characters>}``.
    """
    if value is None:
        return {key: None}
    if _SNOWFLAKE_ID.fullmatch(value):
        return {key: value}
    # Starlette decodes header bytes as Latin-1, so encoding back gives the bytes as sent.
    digest = hmac.new(_DIGEST_KEY, value.encode("latin-1"), hashlib.sha256).hexdigest()
    return {f"{key}_digest": digest[:12], f"{key}_length": len(value)}
