"""Snowflake service-function endpoints: ``POST /functions/predict`` and ``/functions/health``.

Wire protocol: the request is ``{"data": [[row, arg1, ...], ...]}`` with the 0-based row number
first. The response has exactly one ``[row, value]`` per input row, in input order. A row that
cannot be scored gets ``{"error": ..., "error_type": ..., "document": ...}`` in its
own row, so one bad document never fails the SQL statement.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import partial
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from evidence_gateway import metrics
from evidence_gateway.bodies import JSONBodyRoute, openapi_json_body, parse_json_body
from evidence_gateway.dependencies import PipelineDep, ReadinessDep, SettingsDep
from evidence_gateway.errors import BatchTooLargeError
from evidence_gateway.handlers import error_body
from evidence_gateway.ids import new_prediction_id, service_function_prediction_id
from evidence_gateway.pipeline import EvidenceRow, RowFailure
from evidence_gateway.readiness import ReadinessReport
from evidence_gateway.responses import FastJSONResponse
from evidence_gateway.schemas import (
    POLICY_NUMBER_MAX_LENGTH,
    ErrorBody,
    ServiceFunctionRequest,
    ServiceFunctionResponse,
)
from evidence_gateway.snowflake_headers import (
    QUERY_BATCH_ID_HEADER,
    QUERY_ID_HEADER,
    AmbiguousHeaderError,
    header_value,
    loggable_id,
)

__all__ = ["QUERY_BATCH_ID_HEADER", "QUERY_ID_HEADER", "router"]

_ARGUMENTS = ("policy_number", "mib_xml", "rx_xml")
# Control and format characters and line and paragraph separators: they can rewrite terminals
# and log viewers or hide the difference between two ids.
_REJECTED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})

_log = structlog.get_logger("evidence_gateway.functions")

router = APIRouter(
    prefix="/functions", tags=["snowflake service functions"], route_class=JSONBodyRoute
)


_UNSUPPORTED_BODY: dict[str, Any] = {
    "model": ErrorBody,
    "description": "Content-Type is not JSON, or Content-Encoding is not gzip or identity.",
}
_BAD_ENVELOPE: dict[str, Any] = {
    "model": ErrorBody,
    "description": (
        "The envelope has a row that is not a list or has no usable row number, a "
        "sf-external-function-* header repeated with different values, or the body is "
        "declared gzip but is not valid gzip data."
    ),
}
_INVALID_BODY: dict[str, Any] = {
    "model": ErrorBody,
    "description": 'The body is not JSON, or not an object with a "data" list of rows.',
}


class _EnvelopeError(ValueError):
    """The envelope itself is invalid, so no per-row response can be built."""


# Snowflake sends row numbers as NUMBER values that fit a signed 64-bit integer, and the JSON
# encoder of the response cannot write larger ones.
_MIN_ROW_NUMBER = -(2**63)
_MAX_ROW_NUMBER = 2**63 - 1


def _out_of_range_message(position: int) -> str:
    return (
        f"data[{position}][0] is outside the signed 64-bit range of Snowflake row numbers; "
        "send the row's 0-based position"
    )


_JSON_TYPE_NAMES = {bool: "boolean", int: "number", float: "number", str: "string", dict: "object"}


def _row_numbers(data: list[Any]) -> list[int]:
    """Return each row's row number, checking that all are distinct signed 64-bit integers.

    A JSON ``true`` or ``false`` decodes to a Python bool, which is an int subclass, so bools
    are rejected by name. So are floats such as ``1.0``, strings and nulls. After this check
    every row is a list.

    Raises:
        _EnvelopeError: a row is not a list, has no integer row number, one outside the signed
            64-bit range, or one that an earlier row already has.
    """
    numbers: list[int] = []
    first_position: dict[int, int] = {}
    for position, raw in enumerate(data):
        if not isinstance(raw, list):
            # Only the JSON type is named: the value may be a document or a name.
            kind = _JSON_TYPE_NAMES.get(type(raw), "null")
            msg = (
                f"data[{position}] is a JSON {kind}, not a row; send each row as a list "
                "that starts with its row number"
            )
            raise _EnvelopeError(msg)
        number = raw[0] if raw else None
        if isinstance(number, float) and number.is_integer() and abs(number) >= 2**63:
            # orjson (3.13) decodes an integer literal beyond 64 bits as a float, so such a row
            # number arrives here as one. Rounding can make it exactly -2**63, hence ">=".
            raise _EnvelopeError(_out_of_range_message(position))
        if isinstance(number, bool) or not isinstance(number, int):
            msg = f"data[{position}] does not start with an integer row number"
            raise _EnvelopeError(msg)
        if not _MIN_ROW_NUMBER <= number <= _MAX_ROW_NUMBER:
            raise _EnvelopeError(_out_of_range_message(position))
        if number in first_position:
            msg = (
                f"data[{first_position[number]}] and data[{position}] both have row number "
                f"{number}; each row number must be unique in a batch"
            )
            raise _EnvelopeError(msg)
        first_position[number] = position
        numbers.append(number)
    return numbers


def _invalid_envelope(error: _EnvelopeError) -> JSONResponse:
    return JSONResponse(error_body("invalid_envelope", str(error)), status_code=400)


def _check_policy_number(value: str) -> RowFailure | None:
    """Reject an over-long policy number or one with invisible characters, never echoing it.

    A VARCHAR from the caller's table may hold spaces, quotes or SQL, so the /v1 pattern is not
    applied here. Those values are bound as parameters and stored unchanged.
    """
    if len(value) > POLICY_NUMBER_MAX_LENGTH:
        return RowFailure(
            "invalid_policy_number",
            f"policy_number has {len(value)} characters; at most {POLICY_NUMBER_MAX_LENGTH} "
            "are allowed",
        )
    for index, character in enumerate(value):
        category = unicodedata.category(character)
        if category == "Cs":
            # A JSON escape such as "\\ud800" decodes to a lone surrogate, which cannot be
            # stored as UTF-8 or sent back in the response.
            return RowFailure(
                "invalid_policy_number",
                f"policy_number contains a lone UTF-16 surrogate U+{ord(character):04X} at "
                f"index {index}; send the policy number as valid Unicode text",
            )
        if category in _REJECTED_CATEGORIES:
            return RowFailure(
                "invalid_policy_number",
                f"policy_number contains U+{ord(character):04X} (Unicode category {category}) "
                f"at index {index}; remove control, format and separator characters",
            )
    return None


def _parse_row(raw: list[Any], prediction_id: Callable[[], str]) -> EvidenceRow | RowFailure:
    # The id is derived only once the arguments are known to be strings or nulls: hashing an
    # argument nested 1,000 levels deep would raise RecursionError and fail the whole batch.
    if len(raw) != 1 + len(_ARGUMENTS):
        return RowFailure(
            "invalid_arguments",
            f"row has {len(raw) - 1} arguments; expected {len(_ARGUMENTS)}: "
            "policy_number, mib_xml, rx_xml",
        )
    for name, value in zip(_ARGUMENTS, raw[1:], strict=True):
        if value is not None and not isinstance(value, str):
            return RowFailure(
                "invalid_arguments",
                f"{name} is a JSON {type(value).__name__}; expected a string (VARCHAR) or null",
            )
    policy_number, mib_xml, rx_xml = raw[1:]
    if policy_number is not None:
        failure = _check_policy_number(policy_number)
        if failure is not None:
            return failure
    return EvidenceRow(
        policy_number=policy_number,
        mib_xml=mib_xml,
        rx_xml=rx_xml,
        as_of=None,
        prediction_id=prediction_id(),
    )


def _failure_value(failure: RowFailure) -> dict[str, Any]:
    return {"error": failure.message, "error_type": failure.kind, "document": failure.document}


@router.post(
    "/predict",
    response_model=ServiceFunctionResponse,
    responses={
        400: _BAD_ENVELOPE,
        413: {"model": ErrorBody, "description": "More rows than GATEWAY_MAX_BATCH_ROWS."},
        415: _UNSUPPORTED_BODY,
        422: _INVALID_BODY,
        503: {"model": ErrorBody, "description": "Not recorded; Snowflake retries the batch."},
    },
    summary="Score a service-function batch (FN_API_PREDICT)",
    openapi_extra=openapi_json_body(ServiceFunctionRequest),
)
async def predict_rows(
    request: Request, pipeline: PipelineDep, settings: SettingsDep
) -> JSONResponse:
    """Score every row of the batch with one model call and respond row by row.

    With the ``sf-external-function-query-batch-id`` header, each row's ``prediction_id`` is
    derived from the batch id and the row number, so a batch Snowflake retries is stored once.
    """
    body = await parse_json_body(request, ServiceFunctionRequest)
    if len(body.data) > settings.max_batch_rows:
        raise BatchTooLargeError(len(body.data), settings.max_batch_rows)
    try:
        numbers = _row_numbers(body.data)
    except _EnvelopeError as exc:
        return _invalid_envelope(exc)

    # The whole value goes into the prediction ids, whatever its length, because a retried
    # batch must map to the same ids. The id derivation hashes it, so length costs nothing.
    # Two different values would make the ids depend on which one wins, so they are rejected.
    try:
        batch_id = header_value(request, QUERY_BATCH_ID_HEADER)
        query_id = header_value(request, QUERY_ID_HEADER)
    except AmbiguousHeaderError as exc:
        return _invalid_envelope(_EnvelopeError(str(exc)))
    structlog.contextvars.bind_contextvars(
        **loggable_id("query_batch_id", batch_id),
        **loggable_id("query_id", query_id),
        rows=len(numbers),
    )
    if batch_id is None:
        _warn_missing_batch_id()
    parsed = [
        _parse_row(
            raw,
            partial(service_function_prediction_id, batch_id, number, raw[1:])
            if batch_id is not None
            else new_prediction_id,
        )
        for number, raw in zip(numbers, body.data, strict=True)
    ]
    rows = [item for item in parsed if isinstance(item, EvidenceRow)]
    scored = iter(await pipeline.score_rows(rows, source="SQL"))

    output: list[list[Any]] = []
    failed = 0
    for number, item in zip(numbers, parsed, strict=True):
        outcome = item if isinstance(item, RowFailure) else next(scored)
        if isinstance(outcome, RowFailure):
            failed += 1
            output.append([number, _failure_value(outcome)])
        else:
            output.append([number, outcome.as_dict()])
    structlog.contextvars.bind_contextvars(scored=len(numbers) - failed, failed=failed)
    return FastJSONResponse({"data": output})


def _warn_missing_batch_id() -> None:
    # The ids stay random, because two batches with identical rows can be two real scorings,
    # so their content alone must not make them one.
    metrics.FUNCTION_BATCHES_WITHOUT_BATCH_ID.inc()
    _log.warning(
        "service-function batch has no sf-external-function-query-batch-id header, so its "
        "rows get random prediction ids and a retry of this batch is stored twice"
    )


@router.post(
    "/health",
    response_model=ServiceFunctionResponse,
    responses={
        400: _BAD_ENVELOPE,
        413: {"model": ErrorBody, "description": "More rows than GATEWAY_MAX_BATCH_ROWS."},
        415: _UNSUPPORTED_BODY,
        422: _INVALID_BODY,
    },
    summary="Health as a service function (FN_HEALTH)",
)
async def health_rows(
    body: ServiceFunctionRequest, readiness: ReadinessDep, settings: SettingsDep
) -> JSONResponse:
    """Return the gateway's readiness summary for every row.

    Row numbers are checked as ``/functions/predict`` checks them, so a row number that is not
    a JSON integer gets 400 instead of a response row under another number. The row limit
    applies too: every row gets a copy of the summary, so a body of short rows would otherwise
    request a response about a hundred times its size.
    """
    if len(body.data) > settings.max_batch_rows:
        raise BatchTooLargeError(len(body.data), settings.max_batch_rows)
    try:
        numbers = _row_numbers(body.data)
    except _EnvelopeError as exc:
        return _invalid_envelope(exc)
    summary = _health_summary(await readiness.check())
    return JSONResponse({"data": [[number, summary] for number in numbers]})


def _health_summary(report: ReadinessReport) -> dict[str, Any]:
    """Return the ``FN_HEALTH`` value: the readiness report without per-check details.

    Both feature spec hashes and the ``error`` of each failed check are kept, so that a SQL
    caller reads a hash mismatch with its fix, the queue's error name, or the model's error kind
    and circuit state, without the container log. They contain ids, counts, error names and
    fixed text, never evidence.
    """
    spec_detail = report.checks["feature_spec"].detail if "feature_spec" in report.checks else {}
    return {
        "status": {"ready": "healthy", "degraded": "degraded"}.get(report.status, "unhealthy"),
        "checks": {name: check.ok for name, check in report.checks.items()},
        "errors": {
            name: check.detail["error"]
            for name, check in report.checks.items()
            if not check.ok and "error" in check.detail
        },
        "feature_spec_version": report.feature_spec_version,
        "feature_spec_hash": report.feature_spec_hash,
        "model_feature_spec_hash": spec_detail.get("model_hash"),
        "model_version": report.model_version,
    }
