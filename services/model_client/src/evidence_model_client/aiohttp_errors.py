"""Translation of aiohttp exceptions and error statuses into the package's exception family.

This module is the one place where aiohttp errors are mapped. ``AIOHTTP_ERROR_MAP`` lists every
``aiohttp.ClientError`` subclass that aiohttp exports, most specific first. A test fails when
aiohttp adds one that the table does not list.
"""

from __future__ import annotations

import aiohttp
from aiohttp.http_exceptions import ContentEncodingError

from evidence_model_client.errors import (
    InvalidModelResponseError,
    ModelClientError,
    ModelRequestRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
)

__all__ = [
    "AIOHTTP_ERROR_MAP",
    "REJECTED_REQUEST_STATUSES",
    "RETRYABLE_STATUSES",
    "error_for_status",
    "translate_aiohttp_error",
]

#: Statuses that a proxy or a restarting service returns and that a repeat may cure.
RETRYABLE_STATUSES = frozenset({502, 503, 504})
#: Statuses that reject this request's body (bad values, too large, unsupported, unprocessable)
#: while the service itself works. Other 4xx statuses, such as 401, 403 and 404 from a wrong
#: token or URL, or 408 and 429, fail every request alike and so count as an outage.
REJECTED_REQUEST_STATUSES = frozenset({400, 413, 415, 422})

# (aiohttp class, our class, retryable). Order matters: subclasses before their bases.
AIOHTTP_ERROR_MAP: tuple[tuple[type[Exception], type[ModelClientError], bool], ...] = (
    # aiohttp raises these only when one of its own timers fires. The session sets none, but
    # they are listed so that a timer added later still maps to a timeout.
    (aiohttp.ConnectionTimeoutError, ModelTimeoutError, False),
    (aiohttp.SocketTimeoutError, ModelTimeoutError, False),
    (aiohttp.ServerTimeoutError, ModelTimeoutError, False),
    # TLS and proxy failures repeat on every attempt, so a retry cannot help.
    (aiohttp.ClientConnectorCertificateError, ModelUnavailableError, False),
    (aiohttp.ClientConnectorSSLError, ModelUnavailableError, False),
    (aiohttp.ClientSSLError, ModelUnavailableError, False),
    (aiohttp.ClientProxyConnectionError, ModelUnavailableError, False),
    (aiohttp.ServerFingerprintMismatch, ModelUnavailableError, False),
    # Refused, reset or dropped before a complete response, so the request can be repeated.
    # A DNS failure is retried too, because a service name resolves again once it restarts.
    (aiohttp.ClientConnectorDNSError, ModelUnavailableError, True),
    (aiohttp.ClientConnectorError, ModelUnavailableError, True),
    (aiohttp.ClientConnectionResetError, ModelUnavailableError, True),
    (aiohttp.ServerDisconnectedError, ModelUnavailableError, True),
    (aiohttp.ServerConnectionError, ModelUnavailableError, True),
    (aiohttp.ClientOSError, ModelUnavailableError, True),
    (aiohttp.UploadAbortedError, ModelUnavailableError, True),
    (aiohttp.ClientConnectionError, ModelUnavailableError, True),
    # A body cut short by a dropped connection. translate_aiohttp_error handles a body that
    # fails to decompress (ContentEncodingError) before this row.
    (aiohttp.ClientPayloadError, ModelUnavailableError, True),
    # aiohttp raises these from response.json() and while following redirects. The client does
    # neither, so they are listed only so that nothing escapes untranslated.
    (aiohttp.ContentTypeError, InvalidModelResponseError, False),
    (aiohttp.TooManyRedirects, InvalidModelResponseError, False),
    (aiohttp.ClientHttpProxyError, ModelUnavailableError, False),
    (aiohttp.WSServerHandshakeError, ModelUnavailableError, False),
    # A malformed status line or header from the peer: aiohttp reports it with its parser's
    # code (400) as the status, so it must not go through error_for_status.
    (aiohttp.ClientResponseError, ModelUnavailableError, True),
    # Misconfiguration: an invalid or non-HTTP base URL, or a redirect, which is not followed.
    (aiohttp.InvalidUrlRedirectClientError, ModelUnavailableError, False),
    (aiohttp.InvalidUrlClientError, ModelUnavailableError, False),
    (aiohttp.InvalidURL, ModelUnavailableError, False),
    (aiohttp.NonHttpUrlRedirectClientError, ModelUnavailableError, False),
    (aiohttp.NonHttpUrlClientError, ModelUnavailableError, False),
    (aiohttp.RedirectClientError, ModelUnavailableError, False),
    (aiohttp.ClientError, ModelUnavailableError, False),
)


def translate_aiohttp_error(exc: Exception) -> ModelClientError:
    """Return the package error for an aiohttp exception (the caller chains it with ``from``).

    Raises:
        TypeError: ``exc`` is not an ``aiohttp.ClientError``, which is a bug in the caller.
    """
    detail = str(exc) or type(exc).__name__
    msg = f"model call failed with {type(exc).__name__}: {detail}"
    if isinstance(exc, aiohttp.ClientPayloadError) and isinstance(
        exc.__cause__, ContentEncodingError
    ):
        return InvalidModelResponseError(msg, retryable=False)
    for aiohttp_type, error_type, retryable in AIOHTTP_ERROR_MAP:
        if isinstance(exc, aiohttp_type):
            return error_type(msg, retryable=retryable)
    msg = f"not an aiohttp client exception: {type(exc).__name__}"
    raise TypeError(msg)


def error_for_status(status: int, content: bytes) -> ModelClientError:
    """Return the error for a non-200 response, quoting up to 200 bytes of its body.

    400, 413, 415 and 422 become ``ModelRequestRejectedError``: the service is up and rejected
    this request's body. Every other status becomes ``ModelUnavailableError``.
    """
    snippet = content[:200].decode("utf-8", errors="replace")
    msg = f"model service returned HTTP {status}: {snippet!r}"
    if status in REJECTED_REQUEST_STATUSES:
        return ModelRequestRejectedError(msg, status=status)
    return ModelUnavailableError(msg, retryable=status in RETRYABLE_STATUSES)
