"""Probes and metrics: ``GET /health/live``, ``GET /health/ready`` and ``GET /metrics``."""

from __future__ import annotations

import asyncio

from evidence_persistence import PersistenceError
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from evidence_gateway import metrics
from evidence_gateway.dependencies import ReadinessDep, SettingsDep
from evidence_gateway.schemas import LivenessResponse, ReadinessResponse

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/health/live", response_model=LivenessResponse, summary="Liveness probe")
async def live() -> JSONResponse:
    """Return 200 while the process runs and its event loop responds; check nothing else."""
    return JSONResponse({"status": "ok"})


@router.get(
    "/health/ready",
    response_model=ReadinessResponse,
    responses={503: {"model": ReadinessResponse, "description": "Queue or feature spec failed."}},
    summary="Readiness probe",
)
async def ready(readiness: ReadinessDep) -> JSONResponse:
    """Return 200 when predictions can be scored and recorded, 503 otherwise.

    ``degraded`` (200) means the model service is unreachable or its circuit is open, so the
    rule-based fallback scores.
    """
    report = await readiness.check()
    status_code = 503 if report.status == "not_ready" else 200
    return JSONResponse(report.as_dict(), status_code=status_code)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE_LATEST: {}}}},
    summary="Prometheus metrics",
)
async def render(readiness: ReadinessDep, settings: SettingsDep) -> Response:
    """Return the Prometheus text exposition, aggregated over workers in multiprocess mode."""
    try:
        depth = float(await asyncio.to_thread(readiness.queue.depth))
    except PersistenceError:
        # A scrape must not fail because the queue file is busy or missing.
        depth = float("nan")
    body = metrics.render_metrics(settings.prometheus_multiproc_dir, queue_depth=depth)
    return Response(content=body, media_type=metrics.CONTENT_TYPE_LATEST)
