"""Tests of ModelClient against the real model server and against faulty servers."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.artifact import ModelArtifact
from evidence_model_client.breaker import BreakerPolicy, CircuitBreaker, CircuitState
from evidence_model_client.client import ModelClient, RetryPolicy
from evidence_model_client.errors import (
    CircuitOpenError,
    InvalidModelResponseError,
    ModelClientError,
    ModelOverloadedError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from evidence_model_client.http_session import ConnectionLimits
from evidence_model_client.metrics import ModelMetrics
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from .conftest import SLACK, FaultyServer, ServerProcess, current_state, roomy_client

DEADLINE = 0.05


@pytest.mark.slow
async def test_client_real_server_matches_model(
    model_server: ServerProcess, artifact_dir: Path, rows: np.ndarray
) -> None:
    """Probabilities from the real server equal the artifact model's positive column."""
    expected = ModelArtifact.load(artifact_dir).model.predict_proba(rows)[:, 1]
    async with roomy_client(model_server.base_url) as client:
        probabilities = await client.predict_proba(rows)
        info = await client.fetch_model_info()
    np.testing.assert_allclose(expected, probabilities, rtol=0, atol=1e-12)
    assert info.model_version == "V2"
    assert info.builtin is False


async def test_client_one_request_per_batch(faulty_server: FaultyServer) -> None:
    """A batch of 200 rows is one dataframe_split request with FEATURE_NAMES columns."""
    matrix = np.ones((200, len(FEATURE_NAMES)))
    async with roomy_client(faulty_server.base_url) as client:
        probabilities = await client.predict_proba(matrix)
    assert probabilities.tolist() == [0.25] * 200
    assert faulty_server.predict_calls == 1
    body = json.loads(faulty_server.requests[0][1])
    assert list(FEATURE_NAMES) == body["dataframe_split"]["columns"]
    assert len(body["dataframe_split"]["data"]) == 200


async def test_client_refused_connection(refused_url: str, rows: np.ndarray) -> None:
    """A refused connection raises ModelUnavailableError after the allowed retry."""
    async with roomy_client(refused_url) as client:
        with pytest.raises(ModelUnavailableError, match="ClientConnectorError"):
            await client.predict_proba(rows)


async def test_client_hang_honours_deadline(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """A server that never responds costs the deadline, then ModelTimeoutError."""
    faulty_server.mode = "hang"
    async with roomy_client(faulty_server.base_url, deadline_seconds=DEADLINE) as client:
        started = time.perf_counter()
        with pytest.raises(ModelTimeoutError, match="50 ms deadline"):
            await client.predict_proba(rows)
        elapsed = time.perf_counter() - started
    assert elapsed + 0.005 >= DEADLINE
    assert elapsed < DEADLINE + SLACK


async def test_client_slow_within_deadline(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """A response slower than usual but inside the deadline is accepted."""
    faulty_server.mode = "slow"
    faulty_server.delay = 0.01
    async with roomy_client(faulty_server.base_url) as client:
        assert [0.25] * len(rows) == (await client.predict_proba(rows)).tolist()


async def test_client_slow_beyond_deadline(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """A response after the deadline is a timeout."""
    faulty_server.mode = "slow"
    faulty_server.delay = 0.2
    async with roomy_client(faulty_server.base_url, deadline_seconds=DEADLINE) as client:
        with pytest.raises(ModelTimeoutError):
            await client.predict_proba(rows)


async def test_client_500_not_retried(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """HTTP 500 fails at once: one request, ModelUnavailableError quoting the status."""
    faulty_server.mode = "status"
    faulty_server.status = 500
    async with roomy_client(faulty_server.base_url) as client:
        with pytest.raises(ModelUnavailableError, match="HTTP 500: 'model failed'"):
            await client.predict_proba(rows)
    assert faulty_server.predict_calls == 1


async def test_client_503_retried_once(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """HTTP 503 is retried once within the deadline: two requests."""
    faulty_server.mode = "status"
    faulty_server.status = 503
    async with roomy_client(faulty_server.base_url, retry=RetryPolicy(1, 0.0)) as client:
        with pytest.raises(ModelUnavailableError, match="HTTP 503"):
            await client.predict_proba(rows)
    assert faulty_server.predict_calls == 2


async def test_client_retries_logged_by_attempt(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """Each retry logs its attempt number: 1 for the first request, then 2, until they run out."""
    faulty_server.mode = "status"
    faulty_server.status = 503
    async with roomy_client(faulty_server.base_url, retry=RetryPolicy(3, 0.0)) as client:
        with capture_logs() as logs, pytest.raises(ModelUnavailableError, match="HTTP 503"):
            await client.predict_proba(rows)
    retried = [entry for entry in logs if entry["event"] == "model call retried"]
    assert [entry["attempt"] for entry in retried] == [1, 2, 3]
    assert {entry["error_kind"] for entry in retried} == {"model_unavailable"}
    assert faulty_server.predict_calls == 4


async def test_client_dropped_connection_retried(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A connection closed without a response is retried, then reported as unavailable."""
    faulty_server.mode = "drop"
    async with roomy_client(faulty_server.base_url, retry=RetryPolicy(2, 0.0)) as client:
        with pytest.raises(ModelUnavailableError, match="ServerDisconnectedError"):
            await client.predict_proba(rows)
    assert faulty_server.predict_calls == 3


@pytest.mark.parametrize(
    ("mode", "pattern"),
    [
        ("garbage", "not JSON"),
        ("wrong_rows", "returned 4 rows for a batch of 5"),
        ("bad_probability", r"not in \[0, 1\]"),
    ],
)
async def test_client_invalid_answers(
    faulty_server: FaultyServer, rows: np.ndarray, mode: str, pattern: str
) -> None:
    """Garbage, a wrong row count or an impossible probability raise InvalidModelResponseError."""
    faulty_server.mode = mode
    async with roomy_client(faulty_server.base_url) as client:
        with pytest.raises(InvalidModelResponseError, match=pattern):
            await client.predict_proba(rows)


async def test_client_rejects_nan_before_sending(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A NaN in the matrix raises ValueError and sends nothing."""
    rows[1, 3] = np.nan
    async with roomy_client(faulty_server.base_url) as client:
        with pytest.raises(ValueError, match=f"feature {FEATURE_NAMES[3]} of row 1"):
            await client.predict_proba(rows)
    assert faulty_server.predict_calls == 0


async def test_client_breaker_opens_and_closes(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """Failures open the circuit, open calls send nothing, a probe after cooldown closes it."""
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=2, cooldown_seconds=0.2))
    faulty_server.mode = "status"
    async with roomy_client(faulty_server.base_url, breaker=breaker) as client:
        for _ in range(2):
            with pytest.raises(ModelUnavailableError):
                await client.predict_proba(rows)
        assert current_state(breaker) == CircuitState.OPEN
        calls = faulty_server.predict_calls
        started = time.perf_counter()
        with pytest.raises(CircuitOpenError):
            await client.predict_proba(rows)
        # The request count proves that nothing was sent. The time bound only rules out a
        # wait for the deadline; 5 ms was exceeded on a loaded 2-core machine.
        assert time.perf_counter() - started < 0.1
        assert calls == faulty_server.predict_calls
        await asyncio.sleep(0.2)
        faulty_server.mode = "ok"
        await client.predict_proba(rows)
        assert current_state(breaker) == CircuitState.CLOSED


async def test_client_flapping_server_probe_fails(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A probe that fails while the server flaps reopens the circuit for another cooldown."""
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=1, cooldown_seconds=0.1))
    faulty_server.mode = "garbage"
    async with roomy_client(faulty_server.base_url, breaker=breaker) as client:
        with pytest.raises(InvalidModelResponseError):
            await client.predict_proba(rows)
        await asyncio.sleep(0.1)
        with pytest.raises(InvalidModelResponseError):
            await client.predict_proba(rows)
        assert current_state(breaker) == CircuitState.OPEN
        faulty_server.mode = "ok"
        await asyncio.sleep(0.1)
        await client.predict_proba(rows)
        assert current_state(breaker) == CircuitState.CLOSED


async def test_client_pool_overload_not_counted(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """With one connection, a call stuck behind a slow one is overload, not a model failure."""
    faulty_server.mode = "slow"
    faulty_server.delay = 0.15
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=5))
    limits = ConnectionLimits(max_connections=1)
    async with roomy_client(faulty_server.base_url, limits=limits, breaker=breaker) as client:
        first = asyncio.create_task(client.predict_proba(rows, deadline_seconds=1.0))
        await asyncio.sleep(0.01)
        with pytest.raises(ModelOverloadedError, match="no free connection"):
            await client.predict_proba(rows, deadline_seconds=DEADLINE)
        await first
    assert breaker.consecutive_failures == 0
    assert faulty_server.predict_calls == 1


async def test_client_pool_wait_recorded_at_deadline(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A call that got no connection before its deadline records its whole wait."""
    faulty_server.mode = "slow"
    faulty_server.delay = 0.3
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry)
    limits = ConnectionLimits(max_connections=1)
    async with roomy_client(faulty_server.base_url, limits=limits, metrics=metrics) as client:
        first = asyncio.create_task(client.predict_proba(rows))
        await asyncio.sleep(0.01)
        with pytest.raises(ModelOverloadedError, match="no free connection"):
            await client.predict_proba(rows, deadline_seconds=DEADLINE)
        await first

    count = registry.get_sample_value("evidence_model_pool_wait_seconds_count")
    total = registry.get_sample_value("evidence_model_pool_wait_seconds_sum")
    short_waits = registry.get_sample_value(
        "evidence_model_pool_wait_seconds_bucket", {"le": "0.025"}
    )
    assert count == 2
    assert short_waits == 1
    assert total is not None
    assert total + 0.005 >= DEADLINE


async def test_client_late_connection_not_counted(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A burst's calls that got a connection too late to finish are overload, not failures.

    Two connections, four calls and a server that responds after 0.6 s: the last two calls get
    a connection after 0.6 s of their 1 s deadline and time out 0.4 s later.
    """
    faulty_server.mode = "slow"
    faulty_server.delay = 0.6
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=2))
    limits = ConnectionLimits(max_connections=2)
    async with roomy_client(
        faulty_server.base_url, deadline_seconds=1.0, limits=limits, breaker=breaker
    ) as client:
        outcomes = await asyncio.gather(
            *(client.predict_proba(rows) for _ in range(4)), return_exceptions=True
        )
    answered = [outcome for outcome in outcomes if isinstance(outcome, np.ndarray)]
    overloaded = [outcome for outcome in outcomes if isinstance(outcome, ModelOverloadedError)]
    assert len(answered) == 2
    assert len(overloaded) == 2
    for error in overloaded:
        assert re.search(
            r"waited \d+ ms of its 1000 ms deadline for a pooled connection", str(error)
        )
    assert breaker.state == CircuitState.CLOSED
    assert breaker.consecutive_failures == 0
    assert faulty_server.predict_calls == 4


async def test_client_hung_service_opens_circuit_under_full_pool(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A service that stops responding opens the circuit even while every call queues for the pool.

    Twelve callers share two connections and keep calling throughout. Once the service hangs,
    each call gets its connection only when an earlier call's deadline ends, and by then has
    waited over half its own (the semaphore serves the longest waiter first).
    """
    faulty_server.mode = "slow"
    faulty_server.delay = 0.02
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=3, cooldown_seconds=30))
    limits = ConnectionLimits(max_connections=2)
    kinds: list[str] = []
    busy_states: list[CircuitState] = []

    async def caller(client: ModelClient, until: float) -> None:
        while time.monotonic() < until and breaker.state != CircuitState.OPEN:
            try:
                await client.predict_proba(rows)
                kinds.append("ok")
            except ModelClientError as exc:
                kinds.append(exc.kind)

    async def hang_after(seconds: float) -> None:
        await asyncio.sleep(seconds)
        busy_states.append(breaker.state)
        faulty_server.mode = "hang"

    async with roomy_client(
        faulty_server.base_url,
        deadline_seconds=0.2,
        limits=limits,
        breaker=breaker,
        retry=RetryPolicy(0),
    ) as client:
        until = time.monotonic() + 4.0
        await asyncio.gather(hang_after(1.0), *(caller(client, until) for _ in range(12)))

    assert busy_states == [CircuitState.CLOSED]
    assert "ok" in kinds
    assert "model_timeout" in kinds
    assert breaker.state == CircuitState.OPEN


async def test_client_timeout_with_free_connection_counted(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """Concurrent calls that got a connection at once and timed out count as failures."""
    faulty_server.mode = "slow"
    faulty_server.delay = 2.0
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=2))
    limits = ConnectionLimits(max_connections=2)
    async with roomy_client(
        faulty_server.base_url, deadline_seconds=0.3, limits=limits, breaker=breaker
    ) as client:
        outcomes = await asyncio.gather(
            *(client.predict_proba(rows) for _ in range(2)), return_exceptions=True
        )
    for outcome in outcomes:
        assert type(outcome) is ModelTimeoutError
    assert breaker.state == CircuitState.OPEN
    assert faulty_server.predict_calls == 2


async def test_client_closed_raises_runtime_error(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A call after aclose is a caller bug, and the message gives the fix."""
    client = roomy_client(faulty_server.base_url)
    await client.predict_proba(rows)
    await client.aclose()
    with pytest.raises(RuntimeError, match="ModelClient is closed"):
        await client.predict_proba(rows)
