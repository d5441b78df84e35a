"""Local model server: the Snowflake Model Registry inference protocol over a local artifact.

Endpoints (paths as the Snowflake inference service names them)::

    POST /predict-proba   {"data": [[row, {"output_feature_0": p0, "output_feature_1": p1}], ...]}
    POST /predict         {"data": [[row, {"output_feature_0": label}], ...]}
    GET  /health          model name, version, spec hash, created_at, and whether the
                          deterministic built-in function is served because no artifact exists

Request bodies are parsed by ``payloads.parse_payload`` and scored with one ``predict_proba``
(or ``predict``) call per request. Small requests (body up to ``INLINE_MAX_BODY_BYTES``) run
on the event loop when the lockstep evaluator or the built-in function scores them: parsing and
scoring a few rows that way takes well under a millisecond, less than handing them to a worker
thread and back. Other requests, including ``/predict`` on a trained model (which calls
scikit-learn's own ``predict``), run in a worker thread, so the event loop stays free. There
each scikit-learn call runs under ``ScoringThreads`` (``MODEL_SERVER_SCORING_THREADS`` OpenMP
and BLAS threads, default 1).

``MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES`` caps the body bytes of all requests in progress
together (``inflight.py``). A request that would pass it gets 503 with ``Retry-After: 1``,
before its body is read when it declares a Content-Length.

uvicorn 0.55 has no body timeout, so a client that sent its headers and then stalled would hold
its connection and its in-flight bytes until it disconnected, and a few such clients would
make every later request get 503. A body that has not fully arrived
``MODEL_SERVER_BODY_TIMEOUT_SECONDS`` after the request started gets 408 with
``Connection: close``, and its bytes are released.

Every response sent before the body is read whole (408, 413 for a body over
``MODEL_SERVER_MAX_BODY_BYTES``, 503 for the in-flight limit, 404 and 405 for a request with a
body) carries ``Connection: close``. Otherwise uvicorn 0.55 keeps the connection and reads and
drops the rest of the body, so a client that keeps sending it keeps the connection busy.

NOTE: only the body is timed. A client that stalls before its headers are complete holds its
connection (but no in-flight bytes) until it disconnects, because uvicorn 0.55 does not time
the headers.

Start-up loads the model, then scores one row of the feature defaults through the parse, predict
and encode steps of a request before uvicorn accepts connections. scikit-learn's first
``predict_proba`` in a process pays for imports and first-call set-up: about 20 ms at load
average 3-5 and over a second under heavier load (benchmarks/model_client). Without this
warm-up the first caller after a deployment waits for it, while ``/health`` already returns 200.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio.to_thread
import numpy as np
import orjson
import structlog
from evidence_features import FEATURE_NAMES, FEATURE_SPEC
from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from evidence_model_client.busy_log import BusyLog
from evidence_model_client.config import ServerSettings, get_server_settings
from evidence_model_client.inflight import BodyReservation, InflightBodies
from evidence_model_client.payloads import InvalidPayloadError, ParsedPayload, parse_payload
from evidence_model_client.protocol import encode_dataframe_split
from evidence_model_client.served_model import Method, ServedModel, load_served_model
from evidence_model_client.threads import ScoringThreads

__all__ = ["create_app"]

_log = structlog.get_logger("evidence_model_server")
# nginx's status for a request whose client closed the connection. The client never reads it.
_CLIENT_CLOSED_REQUEST = 499


# Bodies up to this size are parsed and scored on the event loop when no native threads are
# involved. A one-row dataframe_split body is about 4.4 KB, so this covers about 14 rows, which
# parse and score in roughly 0.3 ms. A hand-off to a worker thread and back costs 0.1-0.3 ms.
INLINE_MAX_BODY_BYTES = 64 * 1024


def create_app(
    settings: ServerSettings | None = None, *, served: ServedModel | None = None
) -> FastAPI:
    """Build the FastAPI app; the model is loaded in the lifespan unless ``served`` is given.

    Raises (at start-up, through the lifespan):
        ArtifactError: the artifact is invalid or missing while built-ins are disallowed.
        SpecHashMismatchError: the artifact was trained on another feature spec.
    """
    config = settings or get_server_settings()
    inflight = InflightBodies(config.max_inflight_body_bytes)
    busy_log = BusyLog(config.busy_log_interval_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = served or load_served_model(config)
        threads = ScoringThreads(config.scoring_threads)
        warm_up_ms = await _warm_up(model, threads)
        app.state.served = model
        app.state.threads = threads
        _log.info(
            "model server started",
            builtin=model.builtin,
            warm_up_ms=round(warm_up_ms, 3),
            scoring_threads=threads.max_threads,
            thread_limited_libraries=threads.libraries(),
        )
        yield
        busy_log.close()
        _log.info("model server stopped")

    app = FastAPI(title="Evidence local model server", lifespan=lifespan)
    app.add_exception_handler(StarletteHTTPException, _reject_route)

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        """Report the served model and whether it is the built-in function."""
        model: ServedModel = request.app.state.served
        return model.health()

    @app.post("/predict-proba")
    async def predict_proba(request: Request) -> Response:
        """Return both class probabilities of each row."""
        return await _handle(request, config, inflight, busy_log, "predict_proba")

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        """Return the predicted class label of each row."""
        return await _handle(request, config, inflight, busy_log, "predict")

    return app


async def _handle(
    request: Request,
    config: ServerSettings,
    inflight: InflightBodies,
    busy_log: BusyLog,
    method: Method,
) -> Response:
    started = asyncio.get_running_loop().time()
    path = request.url.path
    header = request.headers.get("content-length")
    declared = int(header) if header is not None and header.isdigit() else None
    if declared is not None and declared > config.max_body_bytes:
        return _reject_too_large(path, config.max_body_bytes, declared)
    reservation = inflight.reserve(declared or 0)
    if reservation is None:
        return _reject_busy(path, inflight, busy_log, declared)
    deadline = started + config.body_timeout_seconds
    try:
        return await _read_and_score(
            request, config, inflight, busy_log, reservation, method, deadline
        )
    except _BodyReadTimeoutError as exc:
        elapsed = asyncio.get_running_loop().time() - started
        return _reject_timed_out(path, config.body_timeout_seconds, declared, exc, elapsed)
    except ClientDisconnect:
        # Without this, uvicorn logs an error with a traceback for a client that gave up,
        # which is the client's timeout at work rather than a fault of this server.
        _log.info("client disconnected before sending the whole body", path=path)
        return Response(status_code=_CLIENT_CLOSED_REQUEST)
    finally:
        # Reached on success, on every rejection and error, and when the client disconnects
        # (request.stream() raises ClientDisconnect) or the task is cancelled.
        reservation.release()


async def _read_and_score(
    request: Request,
    config: ServerSettings,
    inflight: InflightBodies,
    busy_log: BusyLog,
    reservation: BodyReservation,
    method: Method,
    deadline: float,
) -> Response:
    started = time.perf_counter()
    path = request.url.path
    body = await _read_body(request, config.max_body_bytes, reservation, deadline)
    if isinstance(body, _BodyOverLimit):
        if body is _BodyOverLimit.INFLIGHT:
            return _reject_busy(path, inflight, busy_log, None)
        return _reject_too_large(path, config.max_body_bytes, None)
    model: ServedModel = request.app.state.served
    threads: ScoringThreads = request.app.state.threads
    try:
        content, rows = await _run_scoring(body, model, threads, method, config.max_rows)
    except InvalidPayloadError as exc:
        return _reject(path, str(exc), exc.status, log_message=exc.log_message)
    _log.info(
        "prediction served",
        path=path,
        rows=rows,
        body_bytes=len(body),
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    return Response(content=content, media_type="application/json")


class _BodyOverLimit(enum.Enum):
    """The limit that a body passed while it was read."""

    BODY = "max_body_bytes"
    INFLIGHT = "max_inflight_body_bytes"


class _BodyReadTimeoutError(Exception):
    """Raised when the body has not fully arrived by the deadline.

    Args:
        received_bytes: Body bytes read before the deadline.
    """

    def __init__(self, received_bytes: int) -> None:
        super().__init__(f"request body incomplete after {received_bytes} bytes")
        self.received_bytes = received_bytes


async def _read_body(
    request: Request, max_bytes: int, reservation: BodyReservation, deadline: float
) -> bytes | _BodyOverLimit:
    """Read the request body, or stop as soon as it passes ``max_bytes`` or the in-flight limit.

    A chunked body carries no Content-Length, so the size is checked while reading and the
    rest of an oversized body is never read into memory.

    Raises:
        _BodyReadTimeoutError: the body is incomplete at ``deadline`` (event loop time).
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    return _BodyOverLimit.BODY
                if not reservation.cover(size):
                    return _BodyOverLimit.INFLIGHT
                chunks.append(chunk)
    except TimeoutError as exc:
        raise _BodyReadTimeoutError(size) from exc
    return b"".join(chunks)


async def _warm_up(model: ServedModel, threads: ScoringThreads) -> float:
    """Score one row of feature defaults in a worker thread; return the time taken in ms."""
    defaults = np.array([[spec.default for spec in FEATURE_SPEC]], dtype=np.float64)
    body = encode_dataframe_split(defaults)
    started = time.perf_counter()
    await anyio.to_thread.run_sync(_score, body, model, threads, "predict_proba", 1)
    return (time.perf_counter() - started) * 1000


async def _run_scoring(
    body: bytes, model: ServedModel, threads: ScoringThreads, method: Method, max_rows: int
) -> tuple[bytes, int]:
    if len(body) > INLINE_MAX_BODY_BYTES or model.uses_native_threads(1, method):
        return await anyio.to_thread.run_sync(_score, body, model, threads, method, max_rows)
    parsed = parse_payload(body, max_rows=max_rows)
    # A small body may still hold more rows than the lockstep evaluator takes (short numbers).
    if model.uses_native_threads(len(parsed.row_ids), method):
        return await anyio.to_thread.run_sync(_score_parsed, parsed, model, threads, method)
    return _score_parsed(parsed, model, threads, method)


def _score(
    body: bytes, model: ServedModel, threads: ScoringThreads, method: Method, max_rows: int
) -> tuple[bytes, int]:
    return _score_parsed(parse_payload(body, max_rows=max_rows), model, threads, method)


def _score_parsed(
    parsed: ParsedPayload, model: ServedModel, threads: ScoringThreads, method: Method
) -> tuple[bytes, int]:
    if not model.accepts_missing:
        _reject_missing(parsed.matrix, type(model.model).__name__)
    outputs = _OUTPUTS[method]
    if model.uses_native_threads(len(parsed.row_ids), method):
        with threads.limit():
            results = outputs(model, parsed.matrix)
    else:
        results = outputs(model, parsed.matrix)
    # parse_payload admits only row ids in the signed 64-bit range, which orjson can encode.
    rows = [[row_id, output] for row_id, output in zip(parsed.row_ids, results, strict=True)]
    return orjson.dumps({"data": rows}), len(rows)


def _reject_missing(matrix: np.ndarray, model_type: str) -> None:
    """Raise a 400 naming the first null input, for a model that cannot score NaN.

    The request parser turned each null into NaN and let no other NaN through.
    """
    missing = np.isnan(matrix)
    if not missing.any():
        return
    position, column = (int(i) for i in np.argwhere(missing)[0])
    msg = (
        f"column {FEATURE_NAMES[column]} of row {position} is null, and the served model "
        f"({model_type}) cannot score missing values; send a number"
    )
    raise InvalidPayloadError(msg)


def _proba_outputs(model: ServedModel, matrix: np.ndarray) -> list[dict[str, Any]]:
    probabilities = model.predict_proba(matrix)
    return [
        {"output_feature_0": float(p0), "output_feature_1": float(p1)}
        for p0, p1 in probabilities.tolist()
    ]


def _label_outputs(model: ServedModel, matrix: np.ndarray) -> list[dict[str, Any]]:
    return [{"output_feature_0": int(label)} for label in model.predict(matrix).tolist()]


_OUTPUTS: dict[Method, Callable[[ServedModel, np.ndarray], list[dict[str, Any]]]] = {
    "predict_proba": _proba_outputs,
    "predict": _label_outputs,
}


def _reject(
    path: str, message: str, status: int, *, log_message: str | None = None
) -> JSONResponse:
    error = message if log_message is None else log_message
    _log.info("prediction request rejected", path=path, status=status, error=error)
    return JSONResponse({"detail": message}, status_code=status)


async def _reject_route(request: Request, raised: Exception) -> Response:
    """Return FastAPI's error response, such as 404 for an unknown path or 405 for a method.

    Routing rejects these before any body is read, so a request that declares a body gets
    ``Connection: close``.
    """
    response = await http_exception_handler(request, cast(StarletteHTTPException, raised))
    headers = request.headers
    if "transfer-encoding" in headers or headers.get("content-length", "0") != "0":
        response.headers["connection"] = "close"
    return response


def _reject_too_large(path: str, max_bytes: int, declared: int | None) -> JSONResponse:
    """Return 413 for a body over ``max_bytes``, closing the connection.

    The rest of the body is unread, by its declared Content-Length or in the middle of a chunked
    body, and ``Connection: close`` stops uvicorn from reading it.
    """
    message = f"request body exceeds {max_bytes} bytes"
    _log.info(
        "prediction request rejected", path=path, status=413, content_length=declared, error=message
    )
    return JSONResponse({"detail": message}, status_code=413, headers={"connection": "close"})


def _reject_timed_out(
    path: str,
    timeout_seconds: float,
    declared: int | None,
    error: _BodyReadTimeoutError,
    elapsed_seconds: float,
) -> JSONResponse:
    """Return 408 for a body that did not arrive in time, closing the connection.

    ``Connection: close`` makes uvicorn close the connection once the response is sent, so the
    client cannot hold it either. The caller releases the reservation.
    """
    _log.info(
        "request body timed out",
        path=path,
        status=408,
        content_length=declared,
        body_bytes=error.received_bytes,
        duration_ms=round(elapsed_seconds * 1000, 3),
        timeout_seconds=timeout_seconds,
    )
    message = (
        "the request body did not arrive within MODEL_SERVER_BODY_TIMEOUT_SECONDS="
        f"{timeout_seconds:g} s; send the whole body without pausing"
    )
    return JSONResponse({"detail": message}, status_code=408, headers={"connection": "close"})


def _reject_busy(
    path: str, inflight: InflightBodies, busy_log: BusyLog, body_bytes: int | None
) -> JSONResponse:
    """Return 503 for a request whose body would pass the in-flight limit.

    503 is a status that Snowflake retries and that the model client retries and then scores
    with the fallback. ``Connection: close`` stops uvicorn from reading the unread body.
    """
    # Only the first rejection of an overload is logged with these fields. Later ones are
    # counted, because clients retrying under overload would flood the log.
    busy_log.rejected(
        path=path,
        status=503,
        body_bytes=body_bytes,
        inflight_bytes=inflight.reserved_bytes,
        inflight_requests=inflight.requests,
        max_inflight_body_bytes=inflight.max_bytes,
    )
    message = (
        f"the model server is holding MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES={inflight.max_bytes} "
        "bytes of request bodies; retry after the Retry-After delay or send smaller batches"
    )
    return JSONResponse(
        {"detail": message},
        status_code=503,
        headers={"retry-after": "1", "connection": "close"},
    )
