"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from evidence_features import FEATURE_SPEC_VERSION, ParseLimits
from evidence_model_client.config import ClientSettings
from evidence_persistence import PredictionQueue
from fastapi import FastAPI

from evidence_gateway import metrics
from evidence_gateway.append_status import QueueAppendStatus
from evidence_gateway.append_status_file import AppendStatusFile, append_status_path
from evidence_gateway.config import Settings, get_settings
from evidence_gateway.extraction import FeatureExtractor
from evidence_gateway.handlers import install_exception_handlers
from evidence_gateway.limits import BodySizeLimitMiddleware
from evidence_gateway.logs import configure_logging
from evidence_gateway.middleware import RequestContextMiddleware
from evidence_gateway.pipeline import ScoringPipeline
from evidence_gateway.readiness import ReadinessProbe
from evidence_gateway.routes import api, functions, health
from evidence_gateway.scoring import ScorerAdapter, build_scorer
from evidence_gateway.worker_process import stop_with_parent_process

__all__ = ["create_app"]

_log = structlog.get_logger("evidence_gateway.app")

_DESCRIPTION = """
Scores life-insurance underwriting evidence (an MIB report and a prescription-history report
per applicant) and records every prediction for lineage and monitoring.

* `/v1/*`: JSON API for applications (bearer token `GATEWAY_API_TOKEN`; optional only with
  `GATEWAY_LOCAL_MODE=true`).
* `/functions/*`: Snowflake service-function protocol, called by `FN_API_PREDICT` and
  `FN_HEALTH`.
* `/health/*`, `/metrics`: probes and Prometheus metrics.

Risk levels: LOW below 0.30, MEDIUM from 0.30, HIGH from 0.70 (lower bounds inclusive).
"""


def create_app(
    settings: Settings | None = None, *, model_client_settings: ClientSettings | None = None
) -> FastAPI:
    """Build the gateway app; the scorer, queue and extraction pool are created in its lifespan.

    Args:
        settings: Gateway configuration; ``get_settings()`` (the environment) when omitted.
        model_client_settings: Model client configuration; ``MODEL_CLIENT_*`` when omitted.
    """
    resolved = settings if settings is not None else get_settings()
    configure_logging(resolved.log_format, resolved.log_level)
    # uvicorn calls this factory inside each worker process it spawns.
    stop_with_parent_process()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every resource is closed when a later start-up step raises, not only at shutdown.
        # Otherwise a failed start in this process would keep the shared file's slot owned for
        # the rest of the process. The stack closes them in reverse order of opening.
        async with AsyncExitStack() as resources:
            await _start_resources(app, resolved, model_client_settings, resources)
            yield
        _log.info("gateway stopped")

    app = FastAPI(
        title="Evidence risk gateway",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = resolved
    install_exception_handlers(app)
    # The middleware added last runs first: the request id is bound before the size check.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=resolved.max_body_bytes,
        body_timeout_seconds=resolved.body_timeout_seconds,
        max_inflight_body_bytes=resolved.max_inflight_body_bytes,
    )
    app.add_middleware(
        RequestContextMiddleware,
        routes=[*api.router.routes, *functions.router.routes, *health.router.routes],
    )
    app.include_router(api.router)
    app.include_router(functions.router)
    app.include_router(health.router)
    return app


def _attach_append_status_file(settings: Settings) -> AppendStatusFile:
    """Attach this worker to the status file that evidence-gateway chose, or derive its path.

    Raises:
        OSError: After logging one error line that names the file and the error, because
            uvicorn's own start-up failure message carries neither.
    """
    path = settings.append_status_file
    if path is None:
        path = append_status_path(settings.append_status_dir, settings.queue_path)
    try:
        return AppendStatusFile.attach(path, workers=settings.workers)
    except OSError as exc:
        _log.error(
            "append status file attach failed, so this worker does not start; set "
            "GATEWAY_APPEND_STATUS_DIR to a directory that this user can write, and remove "
            "anything at the path that is not a regular file",
            path=str(path),
            exception_type=type(exc).__name__,
            error=str(exc),
        )
        raise


async def _start_resources(
    app: FastAPI,
    resolved: Settings,
    model_client_settings: ClientSettings | None,
    resources: AsyncExitStack,
) -> None:
    """Start the scorer, queue and extraction pool, and register how to close each of them."""
    # With several workers a probe reaches one of them, so they share their append outcomes
    # through a file that belongs to this gateway's queue. Attached first, so that a failure to
    # attach leaves nothing else started.
    shared_file = None
    if resolved.workers > 1:
        shared_file = _attach_append_status_file(resolved)
    append_status = QueueAppendStatus(shared_file=shared_file)
    resources.callback(append_status.close)

    # Registered before the other resources so that it runs after they are closed.
    resources.callback(metrics.mark_worker_dead, resolved.prometheus_multiproc_dir)

    # Process-wide, so the interval in force before is restored when the app stops, for
    # callers such as tests that run the app inside their own process.
    resources.callback(sys.setswitchinterval, sys.getswitchinterval())
    sys.setswitchinterval(resolved.gil_switch_interval_ms / 1000)

    queue = PredictionQueue(
        resolved.queue_path,
        max_depth=resolved.queue_max_depth,
        synchronous=resolved.queue_synchronous,
    )
    resources.callback(queue.close)

    extractor = FeatureExtractor(
        resolved.extraction_executor,
        resolved.extraction_workers,
        ParseLimits(max_bytes=resolved.max_document_bytes),
        inline_max_bytes=resolved.inline_extraction_max_bytes,
        recycle_bytes=resolved.extraction_recycle_bytes,
    )
    resources.callback(extractor.shutdown)
    extractor.warm_up()

    scorer: ScorerAdapter = build_scorer(model_client_settings)
    resources.push_async_callback(scorer.aclose)
    await scorer.start()

    app.state.settings = resolved
    app.state.pipeline = ScoringPipeline(
        extractor=extractor,
        scorer=scorer,
        queue=queue,
        max_document_bytes=resolved.max_document_bytes,
        model_name=scorer.model_name,
        store_raw_evidence=resolved.store_raw_evidence,
        max_batch_rows=resolved.max_batch_rows,
        append_status=append_status,
    )
    app.state.readiness = ReadinessProbe(
        model=scorer,
        queue=queue,
        max_depth=resolved.queue_max_depth,
        append_status=append_status,
    )
    _log.info(
        "gateway started",
        executor=resolved.extraction_executor,
        workers=resolved.extraction_workers,
        gil_switch_interval_ms=resolved.gil_switch_interval_ms,
        queue_synchronous=resolved.queue_synchronous,
        feature_spec_version=FEATURE_SPEC_VERSION,
    )
