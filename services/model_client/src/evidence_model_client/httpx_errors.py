"""Translation of httpx exceptions and error statuses into the package's exception family.

This module is the one place where httpx errors are caught and mapped. ``HTTPX_ERROR_MAP`` lists
every exception class httpx exports, most specific first; a test fails when httpx adds one that
the table does not list.
"""

from __future__ import annotations

import httpx

from evidence_model_client.errors import (
    InvalidModelResponseError,
    ModelClientError,
    ModelOverloadedError,
    ModelRequestRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
)

__all__ = [
    "HTTPX_ERROR_MAP",
    "REJECTED_REQUEST_STATUSES",
    "RETRYABLE_STATUSES",
    "error_for_status",
    "translate_httpx_error",
]

#: Statuses that a proxy or a restarting service returns and that a repeat may cure.
RETRYABLE_STATUSES = frozenset({502, 503, 504})
#: Statuses that reject this request's body (bad values, too large, unsupported, unprocessable)
#: while the service itself works. Other 4xx statuses, such as 401, 403 and 404 from a wrong
#: token or URL, or 408 and 429, fail every request alike and so count as an outage.
REJECTED_REQUEST_STATUSES = frozenset({400, 413, 415, 422})

# (httpx class, our class, retryable). Order matters: subclasses before their bases.
HTTPX_ERROR_MAP: tuple[tuple[type[Exception], type[ModelClientError], bool], ...] = (
    # The pool is local, so waiting for a free connection gives no information about the service.
    (httpx.PoolTimeout, ModelOverloadedError, False),
    (httpx.ConnectTimeout, ModelTimeoutError, False),
    (httpx.ReadTimeout, ModelTimeoutError, False),
    (httpx.WriteTimeout, ModelTimeoutError, False),
    (httpx.TimeoutException, ModelTimeoutError, False),
    # Refused, reset or dropped before a complete response, so the request can be repeated.
    (httpx.ConnectError, ModelUnavailableError, True),
    (httpx.ReadError, ModelUnavailableError, True),
    (httpx.WriteError, ModelUnavailableError, True),
    (httpx.CloseError, ModelUnavailableError, True),
    (httpx.NetworkError, ModelUnavailableError, True),
    (httpx.RemoteProtocolError, ModelUnavailableError, True),
    (httpx.LocalProtocolError, ModelUnavailableError, False),
    (httpx.ProtocolError, ModelUnavailableError, False),
    (httpx.ProxyError, ModelUnavailableError, False),
    (httpx.UnsupportedProtocol, ModelUnavailableError, False),
    (httpx.TransportError, ModelUnavailableError, False),
    (httpx.DecodingError, InvalidModelResponseError, False),
    (httpx.TooManyRedirects, InvalidModelResponseError, False),
    (httpx.RequestError, ModelUnavailableError, False),
    (httpx.HTTPStatusError, ModelUnavailableError, False),
    (httpx.HTTPError, ModelUnavailableError, False),
    # Misconfiguration and misuse of streams; listed so that nothing escapes untranslated.
    (httpx.InvalidURL, ModelUnavailableError, False),
    (httpx.CookieConflict, ModelUnavailableError, False),
    (httpx.StreamConsumed, ModelUnavailableError, False),
    (httpx.StreamClosed, ModelUnavailableError, False),
    (httpx.ResponseNotRead, ModelUnavailableError, False),
    (httpx.RequestNotRead, ModelUnavailableError, False),
    (httpx.StreamError, ModelUnavailableError, False),
)


def translate_httpx_error(exc: Exception) -> ModelClientError:
    """Return the package error for an httpx exception (the caller chains it with ``from``).

    Raises:
        TypeError: ``exc`` is not an httpx exception; that is a bug in the caller.
    """
    if isinstance(exc, httpx.HTTPStatusError):
        return error_for_status(exc.response.status_code, exc.response.content)
    for httpx_type, error_type, retryable in HTTPX_ERROR_MAP:
        if isinstance(exc, httpx_type):
            detail = str(exc) or type(exc).__name__
            msg = f"model call failed with {type(exc).__name__}: {detail}"
            return error_type(msg, retryable=retryable)
    msg = f"not an httpx exception: {type(exc).__name__}"
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
