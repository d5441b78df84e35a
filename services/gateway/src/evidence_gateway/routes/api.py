"""JSON API: ``POST /v1/predict`` and ``POST /v1/predict/batch``."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Depends

from evidence_gateway.bodies import JSONBodyRoute
from evidence_gateway.dependencies import PipelineDep, SettingsDep
from evidence_gateway.errors import BatchTooLargeError, RowError
from evidence_gateway.handlers import error_body
from evidence_gateway.ids import new_prediction_id
from evidence_gateway.pipeline import EvidenceRow, RowFailure
from evidence_gateway.responses import FastJSONResponse
from evidence_gateway.schemas import (
    BatchPredictionRequest,
    BatchPredictionResponse,
    ErrorBody,
    EvidenceInput,
    PredictionRequest,
    PredictionResponse,
)
from evidence_gateway.security import require_api_token

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "Content-Encoding is gzip, but the body is not valid gzip data.",
    },
    401: {"model": ErrorBody, "description": "The bearer token is missing or wrong."},
    413: {"model": ErrorBody, "description": "Body, document or batch larger than the limits."},
    415: {
        "model": ErrorBody,
        "description": "Content-Type is not JSON, or Content-Encoding is not gzip or identity.",
    },
    422: {"model": ErrorBody, "description": "Invalid body, or a document that cannot be parsed."},
    503: {"model": ErrorBody, "description": "The prediction could not be recorded; retry."},
}

router = APIRouter(
    prefix="/v1",
    tags=["predictions"],
    dependencies=[Depends(require_api_token)],
    route_class=JSONBodyRoute,
)


def _row(item: EvidenceInput) -> EvidenceRow:
    return EvidenceRow(
        policy_number=item.policy_number,
        mib_xml=item.mib_xml,
        rx_xml=item.rx_xml,
        as_of=item.as_of,
        prediction_id=new_prediction_id(),
    )


@router.post(
    "/predict",
    response_model=PredictionResponse,
    responses=_ERRORS,
    summary="Score one applicant",
)
async def predict(body: PredictionRequest, pipeline: PipelineDep) -> FastJSONResponse:
    """Score one applicant's MIB and Rx reports and queue the prediction for persistence.

    Risk levels: LOW below 0.30, MEDIUM from 0.30, HIGH from 0.70.
    """
    [outcome] = await pipeline.score_rows(
        [_row(body)], source="API", include_features=body.include_features
    )
    if isinstance(outcome, RowFailure):
        raise RowError(outcome.kind, outcome.message, outcome.document)
    structlog.contextvars.bind_contextvars(
        rows=1, model_version=outcome.model_version, prediction_ids=[outcome.prediction_id]
    )
    return FastJSONResponse(outcome.as_dict())


@router.post(
    "/predict/batch",
    response_model=BatchPredictionResponse,
    responses=_ERRORS,
    summary="Score several applicants with one model call",
)
async def predict_batch(
    body: BatchPredictionRequest, pipeline: PipelineDep, settings: SettingsDep
) -> FastJSONResponse:
    """Score each item; an item that cannot be parsed gets an error entry, the rest are scored."""
    if len(body.items) > settings.max_batch_rows:
        raise BatchTooLargeError(len(body.items), settings.max_batch_rows)
    rows = [_row(item) for item in body.items]
    outcomes = await pipeline.score_rows(rows, source="API", include_features=body.include_features)
    results: list[dict[str, Any]] = []
    failed = 0
    for index, (row, outcome) in enumerate(zip(rows, outcomes, strict=True)):
        if isinstance(outcome, RowFailure):
            failed += 1
            item_error = error_body(outcome.kind, outcome.message, document=outcome.document)
            results.append({"index": index, "policy_number": row.policy_number, **item_error})
        else:
            results.append(outcome.as_dict())
    structlog.contextvars.bind_contextvars(rows=len(rows), scored=len(rows) - failed, failed=failed)
    return FastJSONResponse({"results": results, "scored": len(rows) - failed, "failed": failed})
