"""The one place where gateway and framework errors become HTTP responses.

Every JSON API error body has the shape of ``schemas.ErrorBody``. Validation errors keep only
``type``, ``loc`` and ``msg`` of each pydantic error: the default handler also returns
``input`` and ``ctx``, which would echo the submitted XML back to the caller and its proxies.
"""

from __future__ import annotations

import sys
from functools import cache
from http import HTTPStatus
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from evidence_gateway.errors import (
    BatchTooLargeError,
    ExtractionUnavailableError,
    PersistenceUnavailableError,
    RowError,
)
from evidence_gateway.schemas import (
    BatchPredictionRequest,
    PredictionRequest,
    ServiceFunctionRequest,
)

__all__ = ["error_body", "install_exception_handlers", "row_error_status"]

_log = structlog.get_logger("evidence_gateway.errors")
_ROW_ERROR_STATUS = {"document_too_large": 413}
_STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "server_busy",
}


def error_body(
    kind: str,
    message: str,
    *,
    document: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the JSON API's error body."""
    body: dict[str, Any] = {"error": {"type": kind, "message": message, "document": document}}
    if details is not None:
        body["details"] = details
    return body


def row_error_status(kind: str) -> int:
    """HTTP status of a single-applicant request whose row failed with ``kind``."""
    return _ROW_ERROR_STATUS.get(kind, 422)


# Parts of an error location that may be shown: where the value came from and the request
# models' own field names. An unknown key is the caller's text, which may hold a name or a
# whole XML document, so it is replaced before it reaches the response or the log.
_LOCATION_ROOTS = frozenset({"body", "query", "path", "header", "cookie"})
_REQUEST_MODELS = (PredictionRequest, BatchPredictionRequest, ServiceFunctionRequest)
UNKNOWN_KEY = "<unknown key>"


@cache
def _known_location_names() -> frozenset[str]:
    names = set(_LOCATION_ROOTS)
    for model in _REQUEST_MODELS:
        for name, field in model.model_fields.items():
            names.add(name)
            if field.alias:
                names.add(field.alias)
    return frozenset(names)


def _safe_location(loc: Any) -> list[int | str]:
    known = _known_location_names()
    safe: list[int | str] = []
    for part in loc:
        if isinstance(part, int):
            safe.append(part)
        elif str(part) in known:
            safe.append(str(part))
        else:
            safe.append(UNKNOWN_KEY)
    return safe


def _validation_issues(exc: RequestValidationError) -> list[dict[str, Any]]:
    issues = []
    for error in exc.errors():
        loc = _safe_location(error.get("loc", ()))
        issues.append(
            {"type": str(error.get("type", "")), "loc": loc, "msg": str(error.get("msg"))}
        )
    return issues


async def _on_validation_error(request: Request, raised: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, raised)
    issues = _validation_issues(exc)
    _log.info(
        "request rejected",
        error_type="validation_error",
        field_paths=[".".join(map(str, issue["loc"])) for issue in issues[:20]],
    )
    return JSONResponse(
        error_body(
            "validation_error",
            f"the request body is invalid in {len(issues)} place(s); see details",
            details=issues,
        ),
        status_code=422,
    )


def _undecodable_body_message(cause: BaseException) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "the request body is not valid UTF-8; send JSON encoded as UTF-8"
    if isinstance(cause, RecursionError):
        return "the JSON body is nested deeper than the JSON decoder allows; send a flat object"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return (
            f"an integer in the JSON body has more than {sys.get_int_max_str_digits()} digits, "
            "which the JSON decoder does not read; send shorter numbers"
        )
    return "the request body cannot be decoded as JSON; send a JSON object"


# nginx's code for a request whose client closed the connection before the response: no
# response reaches anyone, but the request log and the latency metric need a status.
CLIENT_CLOSED_REQUEST = 499


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    _log.info("client disconnected", error_type="client_disconnected")
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _on_http_exception(request: Request, raised: Exception) -> Response:
    exc = cast(StarletteHTTPException, raised)
    status = exc.status_code
    cause = exc.__cause__
    if isinstance(cause, ClientDisconnect):
        # FastAPI 0.165 turns a body read cut off by the client into a 400 parsing error.
        return await _on_client_disconnect(request, cause)
    if status == 400 and cause is not None and not isinstance(cause, StarletteHTTPException):
        # FastAPI 0.165 raises a bare 400 "There was an error parsing the body" from the
        # decoding error when json.loads fails with anything but JSONDecodeError, such as
        # invalid UTF-8 or RecursionError on deep nesting. Return the usual 422 instead.
        message = _undecodable_body_message(cause)
        _log.info(
            "request rejected",
            error_type="validation_error",
            exception_type=type(cause).__name__,
        )
        return JSONResponse(
            error_body(
                "validation_error",
                message,
                details=[{"type": "json_invalid", "loc": ["body"], "msg": message}],
            ),
            status_code=422,
        )
    message = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
    return JSONResponse(
        error_body(_STATUS_TYPES.get(status, "http_error"), message),
        status_code=status,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _on_row_error(request: Request, raised: Exception) -> JSONResponse:
    exc = cast(RowError, raised)
    _log.info("request rejected", error_type=exc.kind, document=exc.document)
    return JSONResponse(
        error_body(exc.kind, exc.message, document=exc.document),
        status_code=row_error_status(exc.kind),
    )


async def _on_batch_too_large(request: Request, raised: Exception) -> JSONResponse:
    exc = cast(BatchTooLargeError, raised)
    _log.info("request rejected", error_type="batch_too_large", rows=exc.rows)
    return JSONResponse(error_body("batch_too_large", str(exc)), status_code=413)


async def _on_persistence_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # 503 with Retry-After: Snowflake retries a service-function batch on 503, and the
    # deterministic prediction ids make that retry safe.
    return JSONResponse(
        error_body("persistence_unavailable", str(exc)),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _on_extraction_unavailable(request: Request, exc: Exception) -> JSONResponse:
    _log.error(
        "request failed",
        error_type="extraction_unavailable",
        request_id=request.scope.get("state", {}).get("request_id"),
    )
    return JSONResponse(
        error_body("extraction_unavailable", str(exc)),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.error(
        "request failed",
        error_type="internal_error",
        exception_type=type(exc).__name__,
        request_id=request.scope.get("state", {}).get("request_id"),
    )
    # Starlette re-raises the exception after this response and uvicorn then closes the
    # connection, so a client must not reuse it for its next request.
    return JSONResponse(
        error_body(
            "internal_error", "the gateway failed unexpectedly; the request id is in the log"
        ),
        status_code=500,
        headers={"connection": "close"},
    )


def install_exception_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RowError, _on_row_error)
    app.add_exception_handler(BatchTooLargeError, _on_batch_too_large)
    app.add_exception_handler(PersistenceUnavailableError, _on_persistence_unavailable)
    app.add_exception_handler(ExtractionUnavailableError, _on_extraction_unavailable)
    app.add_exception_handler(ClientDisconnect, _on_client_disconnect)
    app.add_exception_handler(Exception, _on_unexpected)
