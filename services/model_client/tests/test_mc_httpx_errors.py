"""Tests that every httpx exception is translated into the package's exception family."""

from __future__ import annotations

import inspect

import httpx
import pytest
from evidence_model_client.errors import (
    InvalidModelResponseError,
    ModelClientError,
    ModelOverloadedError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from evidence_model_client.httpx_errors import HTTPX_ERROR_MAP, translate_httpx_error

_REQUEST = httpx.Request("POST", "http://127.0.0.1:1/predict-proba")


def _httpx_exception_classes() -> list[type[Exception]]:
    return [
        obj
        for _, obj in inspect.getmembers(httpx, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__.startswith("httpx")
    ]


def _instance(cls: type[Exception]) -> Exception:
    if cls is httpx.HTTPStatusError:
        response = httpx.Response(503, request=_REQUEST, content=b"busy")
        return httpx.HTTPStatusError("503", request=_REQUEST, response=response)
    if issubclass(cls, httpx.StreamError):
        return cls.__new__(cls)
    return cls("boom")


def test_httpx_every_exception_class_listed() -> None:
    """Each exception class httpx defines has its own row in HTTPX_ERROR_MAP."""
    listed = {httpx_type for httpx_type, _, _ in HTTPX_ERROR_MAP}
    unmapped = [cls.__name__ for cls in _httpx_exception_classes() if cls not in listed]
    assert unmapped == []


def test_httpx_map_lists_subclasses_first() -> None:
    """No row is shadowed by an earlier row for one of its base classes."""
    seen: list[type[Exception]] = []
    for httpx_type, _, _ in HTTPX_ERROR_MAP:
        shadowing = [base.__name__ for base in seen if issubclass(httpx_type, base)]
        assert shadowing == [], httpx_type.__name__
        seen.append(httpx_type)


@pytest.mark.parametrize("cls", _httpx_exception_classes(), ids=lambda c: c.__name__)
def test_httpx_exception_translates(cls: type[Exception]) -> None:
    """Every httpx exception instance becomes a ModelClientError."""
    assert isinstance(translate_httpx_error(_instance(cls)), ModelClientError)


@pytest.mark.parametrize(
    ("exc", "expected", "retryable"),
    [
        (httpx.PoolTimeout("x"), ModelOverloadedError, False),
        (httpx.ReadTimeout("x"), ModelTimeoutError, False),
        (httpx.ConnectTimeout("x"), ModelTimeoutError, False),
        (httpx.ConnectError("x"), ModelUnavailableError, True),
        (httpx.RemoteProtocolError("x"), ModelUnavailableError, True),
        (httpx.ReadError("x"), ModelUnavailableError, True),
        (httpx.DecodingError("x"), InvalidModelResponseError, False),
        (httpx.UnsupportedProtocol("x"), ModelUnavailableError, False),
    ],
)
def test_httpx_specific_translation(
    exc: Exception, expected: type[ModelClientError], retryable: bool
) -> None:
    """Common transport errors map to the most specific class and retry flag."""
    translated = translate_httpx_error(exc)
    assert expected is type(translated)
    assert retryable is translated.retryable


@pytest.mark.parametrize(("status", "retryable"), [(500, False), (502, True), (503, True)])
def test_httpx_status_error_retry_flag(status: int, retryable: bool) -> None:
    """Only proxy and overload statuses are retried; the message quotes the status."""
    response = httpx.Response(status, request=_REQUEST, content=b"oops")
    exc = httpx.HTTPStatusError("x", request=_REQUEST, response=response)
    translated = translate_httpx_error(exc)
    assert retryable is translated.retryable
    assert f"HTTP {status}: 'oops'" in str(translated)


def test_httpx_translate_rejects_foreign_exception() -> None:
    """Passing a non-httpx exception is a caller bug and raises TypeError."""
    with pytest.raises(TypeError, match="not an httpx exception: KeyError"):
        translate_httpx_error(KeyError("x"))
