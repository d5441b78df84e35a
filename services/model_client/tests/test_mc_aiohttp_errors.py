"""Tests that every aiohttp client exception is translated into the package's exception family."""

from __future__ import annotations

import inspect
import ssl

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey, RequestInfo
from aiohttp.http_exceptions import ContentEncodingError, ContentLengthError
from evidence_model_client.aiohttp_errors import (
    AIOHTTP_ERROR_MAP,
    error_for_status,
    translate_aiohttp_error,
)
from evidence_model_client.errors import (
    InvalidModelResponseError,
    ModelClientError,
    ModelRequestRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

_URL = URL("http://127.0.0.1:1/predict-proba")
_REQUEST_INFO = RequestInfo(_URL, "POST", CIMultiDictProxy(CIMultiDict()), _URL)
_CONNECTION_KEY = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)

# Exceptions that aiohttp exports but that its HTTP client never raises from a request: warnings
# of the multipart parser, an end-of-stream marker and WebSocket errors. A new export outside
# ClientError fails test_aiohttp_every_exception_class_listed until it is sorted in here or
# into AIOHTTP_ERROR_MAP.
_NOT_RAISED_BY_REQUESTS = frozenset(
    {
        "BadContentDispositionHeader",
        "BadContentDispositionParam",
        "EofStream",
        "WSMessageTypeError",
        "WebSocketError",
    }
)


def _exported_exception_classes() -> list[type[BaseException]]:
    classes = (getattr(aiohttp, name) for name in aiohttp.__all__)
    return [cls for cls in classes if inspect.isclass(cls) and issubclass(cls, BaseException)]


def _client_error_classes() -> list[type[Exception]]:
    return [cls for cls in _exported_exception_classes() if issubclass(cls, aiohttp.ClientError)]


def _instance(cls: type[Exception]) -> Exception:
    """Build an instance with the constructor arguments that aiohttp itself passes."""
    if issubclass(cls, aiohttp.ClientConnectorCertificateError):
        return cls(_CONNECTION_KEY, ssl.SSLCertVerificationError("certificate expired"))
    if issubclass(cls, aiohttp.ClientConnectorError):
        return cls(_CONNECTION_KEY, OSError(111, "Connection refused"))
    if issubclass(cls, aiohttp.ClientResponseError):
        return cls(_REQUEST_INFO, (), status=400, message="Bad status line")
    if issubclass(cls, aiohttp.ServerFingerprintMismatch):
        return cls(b"expected", b"got", "127.0.0.1", 1)
    return cls("boom")


def test_aiohttp_every_exception_class_listed() -> None:
    """Each ClientError class aiohttp exports has its own row in AIOHTTP_ERROR_MAP."""
    listed = {aiohttp_type for aiohttp_type, _, _ in AIOHTTP_ERROR_MAP}
    unmapped = [cls.__name__ for cls in _client_error_classes() if cls not in listed]
    assert unmapped == []


def test_aiohttp_other_exports_known() -> None:
    """Every other exception class aiohttp exports is one that requests never raise."""
    others = {
        cls.__name__
        for cls in _exported_exception_classes()
        if not issubclass(cls, aiohttp.ClientError)
    }
    assert others == _NOT_RAISED_BY_REQUESTS


def test_aiohttp_map_lists_subclasses_first() -> None:
    """No row is shadowed by an earlier row for one of its base classes."""
    seen: list[type[Exception]] = []
    for aiohttp_type, _, _ in AIOHTTP_ERROR_MAP:
        shadowing = [base.__name__ for base in seen if issubclass(aiohttp_type, base)]
        assert shadowing == [], aiohttp_type.__name__
        seen.append(aiohttp_type)


@pytest.mark.parametrize("cls", _client_error_classes(), ids=lambda c: c.__name__)
def test_aiohttp_exception_translates(cls: type[Exception]) -> None:
    """Every aiohttp client exception becomes a ModelClientError that names the class."""
    translated = translate_aiohttp_error(_instance(cls))
    assert isinstance(translated, ModelClientError)
    assert f"model call failed with {cls.__name__}: " in str(translated)


@pytest.mark.parametrize(
    ("exc", "expected", "retryable"),
    [
        (_instance(aiohttp.ClientConnectorError), ModelUnavailableError, True),
        (_instance(aiohttp.ClientConnectorDNSError), ModelUnavailableError, True),
        (aiohttp.ClientConnectionResetError("reset"), ModelUnavailableError, True),
        (aiohttp.ServerDisconnectedError(), ModelUnavailableError, True),
        (aiohttp.ClientOSError(104, "reset by peer"), ModelUnavailableError, True),
        (aiohttp.ClientPayloadError("payload is not completed"), ModelUnavailableError, True),
        (_instance(aiohttp.ClientResponseError), ModelUnavailableError, True),
        (aiohttp.ConnectionTimeoutError("x"), ModelTimeoutError, False),
        (aiohttp.SocketTimeoutError("x"), ModelTimeoutError, False),
        (aiohttp.ServerTimeoutError("x"), ModelTimeoutError, False),
        (_instance(aiohttp.ClientConnectorCertificateError), ModelUnavailableError, False),
        (_instance(aiohttp.ContentTypeError), InvalidModelResponseError, False),
        (_instance(aiohttp.TooManyRedirects), InvalidModelResponseError, False),
        (aiohttp.InvalidUrlClientError("no-host"), ModelUnavailableError, False),
        (aiohttp.NonHttpUrlClientError("ftp://model"), ModelUnavailableError, False),
    ],
)
def test_aiohttp_specific_translation(
    exc: Exception, expected: type[ModelClientError], retryable: bool
) -> None:
    """Common transport errors map to the most specific class and retry flag."""
    translated = translate_aiohttp_error(exc)
    assert expected is type(translated)
    assert retryable is translated.retryable


def test_aiohttp_protocol_error_not_rejection() -> None:
    """A malformed response (aiohttp's parser reports status 400) is an outage, not a 400."""
    translated = translate_aiohttp_error(_instance(aiohttp.ClientResponseError))
    assert not isinstance(translated, ModelRequestRejectedError)
    assert translated.counts_as_outage


def test_aiohttp_undecodable_body_invalid_response() -> None:
    """A body that fails to decompress is an invalid response and is not retried."""
    exc = aiohttp.ClientPayloadError("Can not decode content-encoding: gzip")
    exc.__cause__ = ContentEncodingError("gzip")
    translated = translate_aiohttp_error(exc)
    assert type(translated) is InvalidModelResponseError
    assert translated.retryable is False


def test_aiohttp_truncated_body_retried() -> None:
    """A body cut short (ContentLengthError as the cause) stays a retryable outage."""
    exc = aiohttp.ClientPayloadError("Response payload is not completed")
    exc.__cause__ = ContentLengthError("received 3 of 100 bytes")
    translated = translate_aiohttp_error(exc)
    assert type(translated) is ModelUnavailableError
    assert translated.retryable is True


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [
        (500, ModelUnavailableError, False),
        (502, ModelUnavailableError, True),
        (503, ModelUnavailableError, True),
        (504, ModelUnavailableError, True),
        (401, ModelUnavailableError, False),
        (429, ModelUnavailableError, False),
        (400, ModelRequestRejectedError, False),
        (413, ModelRequestRejectedError, False),
        (415, ModelRequestRejectedError, False),
        (422, ModelRequestRejectedError, False),
    ],
)
def test_error_for_status_classes(
    status: int, expected: type[ModelClientError], retryable: bool
) -> None:
    """Statuses map to their class and retry flag, and the message quotes status and body."""
    translated = error_for_status(status, b"oops")
    assert expected is type(translated)
    assert retryable is translated.retryable
    assert f"HTTP {status}: 'oops'" in str(translated)


def test_aiohttp_translate_rejects_foreign_exception() -> None:
    """Passing a non-aiohttp exception is a caller bug and raises TypeError."""
    with pytest.raises(TypeError, match="not an aiohttp client exception: KeyError"):
        translate_aiohttp_error(KeyError("x"))
