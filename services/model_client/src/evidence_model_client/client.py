"""Async client of the Model Registry inference service (or the local model server).

One ``ModelClient`` per process and event loop: create it at start-up (for example in the FastAPI
lifespan) and close it with ``aclose()`` at shutdown. Each call sends one batch and is bounded by
a total deadline that covers the wait for a pooled connection, every attempt and the backoff
between attempts. Requests go through one pooled ``aiohttp.ClientSession``, chosen over httpx
because it used less than half of httpx's client CPU per call (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp
import numpy as np
import orjson
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_fixed

from evidence_model_client.aiohttp_errors import error_for_status, translate_aiohttp_error
from evidence_model_client.breaker import BreakerPolicy, CircuitBreaker, CircuitState
from evidence_model_client.config import ClientSettings
from evidence_model_client.deadline_errors import error_for_deadline
from evidence_model_client.errors import (
    InvalidModelInfoError,
    InvalidModelResponseError,
    ModelClientError,
    ModelTimeoutError,
)
from evidence_model_client.http_session import (
    HEALTH_CONNECTIONS,
    ConnectionLimits,
    close_connection,
    open_session,
    read_body,
)
from evidence_model_client.metrics import ModelMetrics
from evidence_model_client.model_info import model_name_error, model_version_error, spec_hash_error
from evidence_model_client.protocol import (
    PREDICT_PROBA_PATH,
    encode_dataframe_split,
    new_first_row_id,
    parse_probabilities,
    validate_matrix,
)

__all__ = ["HEALTH_PATH", "HealthProbe", "ModelClient", "RetryPolicy", "ServedModelInfo"]

HEALTH_PATH = "/health"
# Largest response bodies read. A prediction row is about 100 bytes of JSON, and the local
# server's /health body about 300 bytes, so real services stay far below these. A misdirected
# or broken service cannot fill the gateway's memory within a call's deadline.
_MAX_RESPONSE_BASE_BYTES = 64 * 1024
_MAX_RESPONSE_BYTES_PER_ROW = 4 * 1024
# An error body is quoted only in part (error_for_status), so no more of it is read.
_ERROR_BODY_BYTES = 200
_log = structlog.get_logger("evidence_model_client")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Extra attempts after a retryable failure, and the pause before each one."""

    max_retries: int = 1
    backoff_seconds: float = 0.001

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_seconds < 0:
            msg = f"max_retries and backoff_seconds must be >= 0, got {self!r}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class ServedModelInfo:
    """Name, version and spec hash of the served model, from the local server's ``/health``.

    Each value passed the format checks of ``model_info``.
    """

    model_name: str
    model_version: str
    feature_spec_hash: str | None
    builtin: bool


@dataclass(frozen=True, slots=True)
class HealthProbe:
    """Outcome of one ``GET /health`` request.

    Attributes:
        reachable: the service returned an HTTP response with a status below 500. A 404 counts,
            because a service without ``/health`` (such as the Snowflake inference service)
            still responded.
        info: the served model's facts, None unless the response was 200 with a valid
            ``model_version`` and no invalid fact.
        error_kind: the error kind (``model_timeout``, ``model_unavailable``, ...) when the
            service was not reachable, else None.
        info_error: why a 200 response's model facts are invalid (an
            ``InvalidModelInfoError`` message), else None.
    """

    reachable: bool
    info: ServedModelInfo | None
    error_kind: str | None
    info_error: str | None = None


class ModelClient:
    """Pooled async client that scores one batch per ``POST /predict-proba``.

    Example::

        async with ModelClient("http://127.0.0.1:5000", deadline_seconds=0.05) as client:
            probabilities = await client.predict_proba(matrix)  # shape (n,)

    Args:
        base_url: service root, such as ``http://127.0.0.1:5000``.
        deadline_seconds: total time budget of one call.
        retry: retries for idempotent failures, inside the deadline.
        breaker: circuit breaker; default ``CircuitBreaker(BreakerPolicy())``.
        limits: connection pool size and keep-alive expiry; at most ``max_connections`` calls
            run at once. ``GET /health`` requests use ``HEALTH_CONNECTIONS`` more connections.
        headers: extra request headers (such as ``Authorization``).
        metrics: where to record latency, pool wait and circuit state; None records nothing.

    The ``aiohttp.ClientSession`` is created here when a loop is running, else on first use,
    because aiohttp binds it to the running loop. The client then belongs to that loop, and a
    call from another loop raises ``RuntimeError``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        deadline_seconds: float = 0.05,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        limits: ConnectionLimits | None = None,
        headers: dict[str, str] | None = None,
        metrics: ModelMetrics | None = None,
    ) -> None:
        if deadline_seconds <= 0:
            msg = f"deadline_seconds must be > 0, got {deadline_seconds!r}"
            raise ValueError(msg)
        self.base_url = base_url.rstrip("/")
        self.deadline_seconds = deadline_seconds
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker(BreakerPolicy())
        self._metrics = metrics
        self._limits = limits or ConnectionLimits()
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._predict_url = self.base_url + PREDICT_PROBA_PATH
        self._health_url = self.base_url + HEALTH_PATH
        # Calls wait for a connection on this semaphore, not in aiohttp's connector, so that
        # the client knows how long each call waited. A wait that outlasts the deadline, or
        # leaves the request too little of it, raises ModelOverloadedError, which the breaker
        # ignores, rather than ModelTimeoutError (deadline_errors.py).
        self._slots = asyncio.Semaphore(self._limits.max_connections)
        # GET /health requests take one of the connector's HEALTH_CONNECTIONS extra connections
        # here, so that they never take one that a model call holding a slot waits for.
        self._health_slots = asyncio.Semaphore(HEALTH_CONNECTIONS)
        self._session: aiohttp.ClientSession | None = None
        # The loop the session was opened on. aiohttp binds the session and its connections
        # to it, so they fail on any other loop, and for ever once that loop is closed.
        self._loop: asyncio.AbstractEventLoop | None = None
        # When the last successful call ended (time.monotonic), for error_for_deadline. It
        # starts at creation, so a service that never responds opens the circuit after one
        # deadline, as one that stops answering does.
        self._last_success: float | None = time.monotonic()
        # Set by the first response numbered 0..n-1 instead of echoing the request's index, so
        # that the client logs once that the service renumbers rows (protocol.py).
        self._renumbering_logged = False
        self._closed = False
        if _loop_is_running():
            self._open_session()
        if metrics is not None:
            metrics.circuit_state.set(self.breaker.state.value)

    @classmethod
    def from_settings(
        cls,
        settings: ClientSettings,
        *,
        metrics: ModelMetrics | None = None,
    ) -> ModelClient:
        """Build a client from ``MODEL_CLIENT_*`` settings."""
        headers = {}
        if settings.auth_token is not None:
            token = settings.auth_token.get_secret_value()
            headers["Authorization"] = f'Snowflake Token="{token}"'
        on_change = None
        if metrics is not None:
            gauge = metrics.circuit_state

            def on_change(state: CircuitState) -> None:
                gauge.set(state.value)

        breaker = CircuitBreaker(
            BreakerPolicy(settings.breaker_failure_threshold, settings.breaker_cooldown_seconds),
            on_change=on_change,
        )
        return cls(
            str(settings.base_url),
            deadline_seconds=settings.deadline_ms / 1000.0,
            retry=RetryPolicy(settings.max_retries, settings.retry_backoff_ms / 1000.0),
            breaker=breaker,
            limits=ConnectionLimits(
                max_connections=settings.max_connections,
                keepalive_expiry_seconds=settings.keepalive_expiry_seconds,
            ),
            headers=headers,
            metrics=metrics,
        )

    async def predict_proba(
        self, matrix: np.ndarray, *, deadline_seconds: float | None = None
    ) -> np.ndarray:
        """Score a batch with one ``POST /predict-proba`` and return the positive-class column.

        Args:
            matrix: (n, 105) feature matrix in ``FEATURE_NAMES`` order, all values finite.
            deadline_seconds: total budget of this call; default ``self.deadline_seconds``.

        Returns:
            float64 array of shape (n,) with probabilities in [0, 1].

        Raises:
            ValueError: the matrix has the wrong shape or contains NaN or infinity.
            RuntimeError: the client was closed with ``aclose()``.
            CircuitOpenError: the circuit is open; no request was sent.
            ModelTimeoutError: the deadline passed.
            ModelOverloadedError: no pooled connection became free before the deadline, or
                one became free with less than half the deadline left and the request then
                timed out.
            ModelUnavailableError: the service refused or dropped the request, or returned a
                3xx, a 5xx or a 4xx other than those below (such as 401, 404, 408 or 429).
            ModelRequestRejectedError: the service returned 400, 413, 415 or 422, rejecting
                this request's body, for example for a value beyond the float32 range.
            InvalidModelResponseError: the 200 response is compressed or is not a valid
                prediction for the batch.
        """
        session = self._open_session()
        values = validate_matrix(matrix)
        probe = self.breaker.before_call()
        first_row_id = new_first_row_id()
        body = encode_dataframe_split(values, first_row_id)
        batch = _Batch(body, values.shape[0], first_row_id)
        deadline = self.deadline_seconds if deadline_seconds is None else deadline_seconds
        started = time.perf_counter()
        outcome = "ok"
        try:
            probabilities = await self._call_within_deadline(session, batch, deadline)
        except ModelClientError as exc:
            outcome = exc.kind
            # A local pool wait or a request the service rejected (4xx) gives no information
            # about whether the service is down.
            if exc.counts_as_outage:
                self.breaker.record_failure()
            else:
                self.breaker.record_ignored(probe)
            raise
        except BaseException:
            # Cancelled by the caller, so the outcome gives no information about the service.
            outcome = "cancelled"
            self.breaker.record_ignored(probe)
            raise
        else:
            self.breaker.record_success()
            self._last_success = time.monotonic()
        finally:
            if self._metrics is not None:
                elapsed = time.perf_counter() - started
                self._metrics.call_duration.labels(outcome=outcome).observe(elapsed)
        return probabilities

    async def fetch_model_info(self, *, timeout_seconds: float = 2.0) -> ServedModelInfo:
        """Read the served model's name, version and spec hash from ``GET /health``.

        Only the local model server has this endpoint; the Snowflake service does not.

        Raises:
            RuntimeError: the client was closed with ``aclose()``.
            InvalidModelInfoError: the response reports a fact in an invalid format.
            ModelClientError: the request failed or the response lacks ``model_version``.
        """
        session = self._open_session()
        try:
            async with asyncio.timeout(timeout_seconds):
                status, content = await self._get_health(session)
        except TimeoutError as exc:
            msg = f"GET {HEALTH_PATH} timed out after {timeout_seconds * 1000:.0f} ms"
            raise ModelTimeoutError(msg) from exc
        except aiohttp.ClientError as exc:
            raise translate_aiohttp_error(exc) from exc
        if status != 200:
            raise error_for_status(status, content)
        return _parse_model_info(content)

    async def probe_health(self, *, timeout_seconds: float = 0.5) -> HealthProbe:
        """Send one ``GET /health`` and report whether the service responded.

        A failed request is reported in the result, never raised. The circuit breaker neither
        gates nor counts this request, so a readiness probe sees the service's state even
        while the circuit is open.

        Raises:
            RuntimeError: the client was closed with ``aclose()``.
        """
        session = self._open_session()
        try:
            async with asyncio.timeout(timeout_seconds):
                status, content = await self._get_health(session)
        except TimeoutError:
            return HealthProbe(reachable=False, info=None, error_kind=ModelTimeoutError.kind)
        except aiohttp.ClientError as exc:
            kind = translate_aiohttp_error(exc).kind
            return HealthProbe(reachable=False, info=None, error_kind=kind)
        except InvalidModelResponseError:
            # The body was compressed or too large to read, but the service did respond.
            return HealthProbe(reachable=True, info=None, error_kind=None)
        if status >= 500:
            kind = error_for_status(status, content).kind
            return HealthProbe(reachable=False, info=None, error_kind=kind)
        if status != 200:
            return HealthProbe(reachable=True, info=None, error_kind=None)
        try:
            info = _parse_model_info(content)
        except InvalidModelInfoError as exc:
            return HealthProbe(reachable=True, info=None, error_kind=None, info_error=str(exc))
        except InvalidModelResponseError:
            return HealthProbe(reachable=True, info=None, error_kind=None)
        return HealthProbe(reachable=True, info=info, error_kind=None)

    async def aclose(self) -> None:
        """Close the pooled connections; later calls raise ``RuntimeError``.

        Raises:
            RuntimeError: called on another event loop than the one the client belongs to.
                The client stays open, so close it on its own loop.
        """
        if self._session is not None:
            self._check_loop()
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        self._open_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _open_session(self) -> aiohttp.ClientSession:
        """Return the session, creating it on first use inside the running loop."""
        if self._closed:
            msg = "ModelClient is closed; create a new client for this event loop"
            raise RuntimeError(msg)
        if self._session is None:
            self._session = open_session(self._limits, self._headers)
            self._loop = asyncio.get_running_loop()
            return self._session
        self._check_loop()
        return self._session

    def _check_loop(self) -> None:
        if asyncio.get_running_loop() is not self._loop:
            msg = (
                "ModelClient belongs to the event loop it was first used on, and this call "
                "runs on another loop; create one ModelClient per event loop (for example "
                "one per asyncio.run or per FastAPI lifespan)"
            )
            raise RuntimeError(msg)

    async def _get_health(self, session: aiohttp.ClientSession) -> tuple[int, bytes]:
        async with (
            self._health_slots,
            session.get(self._health_url, allow_redirects=False) as response,
        ):
            # Only a 200 body is parsed, so only its encoding and size are checked. A 503 with
            # a compressed body must still report the service as unreachable.
            if response.status != 200:
                return response.status, await response.content.read(_ERROR_BODY_BYTES)
            return response.status, await read_body(response, _MAX_RESPONSE_BASE_BYTES)

    async def _call_within_deadline(
        self, session: aiohttp.ClientSession, batch: _Batch, deadline: float
    ) -> np.ndarray:
        # None until the call has acquired one of the pool's slots.
        pool_wait: float | None = None
        wait_started = time.perf_counter()
        try:
            async with asyncio.timeout(deadline):
                await self._slots.acquire()
                pool_wait = time.perf_counter() - wait_started
                if self._metrics is not None:
                    self._metrics.pool_wait.observe(pool_wait)
                return await self._send_with_retries(session, batch)
        except TimeoutError as exc:
            if pool_wait is None and self._metrics is not None:
                # The deadline passed before a slot was free. These are the longest waits, so
                # leaving them out would hide a pool that is too small.
                self._metrics.pool_wait.observe(time.perf_counter() - wait_started)
            since_success = (
                None if self._last_success is None else time.monotonic() - self._last_success
            )
            raise error_for_deadline(deadline, pool_wait, since_success) from exc
        finally:
            if pool_wait is not None:
                self._slots.release()

    async def _send_with_retries(self, session: aiohttp.ClientSession, batch: _Batch) -> np.ndarray:
        # The first attempt runs without tenacity, because building its AsyncRetrying costs about
        # 11 µs per call and nearly every call succeeds at the first attempt.
        try:
            return await self._send_once(session, batch)
        except ModelClientError as exc:
            if self.retry.max_retries == 0 or not exc.retryable:
                raise
            _log.warning("model call retried", attempt=1, error_kind=exc.kind)
        await asyncio.sleep(self.retry.backoff_seconds)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.max_retries),
            wait=wait_fixed(self.retry.backoff_seconds),
            retry=retry_if_exception(_is_retryable),
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(session, batch)
        raise AssertionError  # pragma: no cover  # NOTE: reraise=True ends the loop by raising

    async def _send_once(self, session: aiohttp.ClientSession, batch: _Batch) -> np.ndarray:
        # The asyncio.timeout of _call_within_deadline bounds this request.
        try:
            async with session.post(
                self._predict_url, data=batch.body, allow_redirects=False
            ) as response:
                status = response.status
                if status != 200:
                    prefix = await response.content.read(_ERROR_BODY_BYTES)
                    raise error_for_status(status, prefix)
                limit = _MAX_RESPONSE_BASE_BYTES + batch.n_rows * _MAX_RESPONSE_BYTES_PER_ROW
                content = await read_body(response, limit)
        except aiohttp.ClientError as exc:
            raise translate_aiohttp_error(exc) from exc
        try:
            parsed = parse_probabilities(content, batch.n_rows, batch.first_row_id)
        except InvalidModelResponseError:
            # A 200 body that is not this request's response, such as a copy of an earlier
            # one, leaves the connection out of step. The request's own response may still
            # arrive on it, and the next request on that connection would read it.
            close_connection(response)
            raise
        if parsed.renumbered and not self._renumbering_logged:
            self._renumbering_logged = True
            _log.info(
                "model service renumbers response rows 0..n-1 instead of echoing the request "
                "index, so only their count and order are checked",
                rows=batch.n_rows,
            )
        return parsed.probabilities


@dataclass(slots=True)
class _Batch:
    """One call's request body, its row count and the first row id of its index."""

    body: bytes
    n_rows: int
    first_row_id: int


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _parse_model_info(content: bytes) -> ServedModelInfo:
    """Parse a ``/health`` body. An absent or null fact counts as not reported.

    Raises:
        InvalidModelResponseError: the body is not a JSON object with a ``model_version``, as
            from a service without the local server's ``/health``.
        InvalidModelInfoError: a reported fact fails its ``model_info`` check.
    """
    try:
        body: Any = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        msg = f"GET {HEALTH_PATH} response is not JSON: {exc!r:.80}"
        raise InvalidModelResponseError(msg) from exc
    if not isinstance(body, dict) or body.get("model_version") is None:
        msg = f"GET {HEALTH_PATH} response has no model_version"
        raise InvalidModelResponseError(msg)
    version = body["model_version"]
    name = body.get("model_name")
    spec_hash = body.get("feature_spec_hash")
    errors = [
        model_version_error(version),
        None if name is None else model_name_error(name),
        None if spec_hash is None else spec_hash_error(spec_hash),
    ]
    problems = [error for error in errors if error is not None]
    if problems:
        msg = f"GET {HEALTH_PATH} of the model service reports " + "; ".join(problems)
        raise InvalidModelInfoError(msg)
    return ServedModelInfo(
        model_name=name or "",
        model_version=version,
        feature_spec_hash=spec_hash,
        builtin=body.get("builtin") is True,
    )


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ModelClientError) and exc.retryable


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    kind = exc.kind if isinstance(exc, ModelClientError) else type(exc).__name__
    # Tenacity counts from the second attempt of the call, which ran outside it.
    _log.warning("model call retried", attempt=state.attempt_number + 1, error_kind=kind)
