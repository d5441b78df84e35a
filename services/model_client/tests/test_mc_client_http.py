"""Tests of ModelClient's HTTP behaviour over aiohttp, against real servers on 127.0.0.1.

The servers are the real model server (as a subprocess) and ``FaultyServer``, whose request
log shows what reached the wire: paths, bodies, headers and connections.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.artifact import ModelArtifact
from evidence_model_client.breaker import BreakerPolicy, CircuitBreaker, CircuitState
from evidence_model_client.client import ModelClient, RetryPolicy
from evidence_model_client.config import ClientSettings
from evidence_model_client.errors import (
    InvalidModelResponseError,
    ModelClientError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from evidence_model_client.http_session import HEALTH_CONNECTIONS, ConnectionLimits

from .conftest import (
    ROOMY,
    SLACK,
    FaultyServer,
    ServerProcess,
    make_training_data,
    roomy_client,
    start_server,
    stop_server,
)

# Keep-alive timeout of the short-lived model server, in whole seconds as uvicorn takes it.
SERVER_KEEP_ALIVE_SECONDS = 1


def _settings(base_url: str, **overrides: object) -> ClientSettings:
    options: dict[str, object] = {
        "base_url": base_url,
        "deadline_ms": ROOMY * 1000,
        "reason_profile_dir": None,
        **overrides,
    }
    return ClientSettings(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def short_keep_alive_server(
    artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The real model server app under uvicorn with a 1 s keep-alive timeout."""
    log_path = tmp_path_factory.mktemp("keep-alive-logs") / "server.log"
    server = start_server(artifact_dir, log_path, keep_alive_seconds=SERVER_KEEP_ALIVE_SECONDS)
    yield server
    stop_server(server)


# --- rows -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("n_rows", [1, 200])
async def test_http_real_server_row_counts(
    model_server: ServerProcess, artifact_dir: Path, n_rows: int
) -> None:
    """One row and 200 rows come back from the real server as the model's probabilities."""
    matrix, _ = make_training_data(n_rows=n_rows, seed=5)
    expected = ModelArtifact.load(artifact_dir).model.predict_proba(matrix)[:, 1]
    async with roomy_client(model_server.base_url) as client:
        probabilities = await client.predict_proba(matrix)
    assert probabilities.shape == (n_rows,)
    np.testing.assert_allclose(expected, probabilities, rtol=0, atol=1e-12)


async def test_http_zero_rows_not_sent(faulty_server: FaultyServer) -> None:
    """An empty matrix raises ValueError before any request."""
    async with roomy_client(faulty_server.base_url) as client:
        with pytest.raises(ValueError, match="n >= 1"):
            await client.predict_proba(np.zeros((0, len(FEATURE_NAMES))))
    assert faulty_server.requests == []


# --- broken responses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected", "pattern", "calls"),
    [
        ("drop", ModelUnavailableError, "ServerDisconnectedError", 2),
        ("truncated", ModelUnavailableError, "ClientPayloadError", 2),
        ("malformed", ModelUnavailableError, "ClientResponseError", 2),
        ("bad_encoding", InvalidModelResponseError, "Content-Encoding 'gzip'", 1),
    ],
)
async def test_http_broken_responses(
    faulty_server: FaultyServer,
    rows: np.ndarray,
    mode: str,
    expected: type[ModelClientError],
    pattern: str,
    calls: int,
) -> None:
    """Dropped, cut and malformed responses are retried outages, but a compressed body is not."""
    faulty_server.mode = mode
    async with roomy_client(faulty_server.base_url, retry=RetryPolicy(1, 0.0)) as client:
        with pytest.raises(ModelClientError, match=pattern) as raised:
            await client.predict_proba(rows)
    assert type(raised.value) is expected
    assert faulty_server.predict_calls == calls


# The five rows of ``rows`` may respond with at most 64 KiB + 5 x 4 KiB = 86,016 bytes (client.py),
# so 60,000 bytes of padding pass.
@pytest.mark.parametrize("mode", ["padded", "padded_chunked"])
@pytest.mark.parametrize(("padding", "accepted"), [(0, True), (60_000, True), (2_000_000, False)])
async def test_http_response_body_bounded(
    faulty_server: FaultyServer, rows: np.ndarray, mode: str, padding: int, accepted: bool
) -> None:
    """A body far beyond a prediction's size fails as invalid, with or without a length."""
    faulty_server.mode = mode
    faulty_server.padding = padding
    async with roomy_client(faulty_server.base_url, retry=RetryPolicy(0)) as client:
        if accepted:
            probabilities = await client.predict_proba(rows)
        else:
            with pytest.raises(InvalidModelResponseError, match="over the 86016 bytes"):
                await client.predict_proba(rows)
    if accepted:
        np.testing.assert_array_equal(probabilities, np.full(rows.shape[0], 0.25))
    assert faulty_server.predict_calls == 1


async def test_http_gzip_bomb_rejected_unread(faulty_server: FaultyServer) -> None:
    """A gzip body of 200 MiB of zeros fails as invalid at once, without being decompressed."""
    faulty_server.mode = "gzip_bomb"
    # The response to 50 rows may have 64 KiB + 50 x 4 KiB = 270,336 bytes, more than the bomb's
    # 207 KB, so only its encoding can reject it before it is read.
    matrix, _ = make_training_data(n_rows=50, seed=5)
    deadline = 0.5
    async with roomy_client(
        faulty_server.base_url, deadline_seconds=deadline, retry=RetryPolicy(0)
    ) as client:
        with pytest.raises(InvalidModelResponseError, match="Content-Encoding 'gzip'") as raised:
            await client.predict_proba(matrix)
        # The message comes only from the header check that read_body runs before reading, and
        # with auto_decompress off aiohttp's parser does not inflate the body as it arrives.
        session = client._session
        assert session is not None
        assert session.auto_decompress is False
    assert raised.value.kind == "invalid_response"
    assert faulty_server.predict_calls == 1


async def test_http_compressed_health_reported(faulty_server: FaultyServer) -> None:
    """A compressed /health body is an invalid response, but the service counts as reachable."""
    faulty_server.response_headers = {"Content-Encoding": "gzip"}
    async with roomy_client(faulty_server.base_url) as client:
        probe = await client.probe_health(timeout_seconds=ROOMY)
        with pytest.raises(InvalidModelResponseError, match="Content-Encoding 'gzip'"):
            await client.fetch_model_info(timeout_seconds=ROOMY)
    assert probe.reachable is True
    assert probe.info is None


async def test_http_compressed_health_503_unreachable(faulty_server: FaultyServer) -> None:
    """A 503 from /health with a compressed body still reports the service as unreachable."""
    faulty_server.response_headers = {"Content-Encoding": "gzip"}
    faulty_server.health_status = 503
    async with roomy_client(faulty_server.base_url) as client:
        probe = await client.probe_health(timeout_seconds=ROOMY)
    assert probe.reachable is False
    assert probe.error_kind == ModelUnavailableError.kind


async def test_http_health_body_bounded(faulty_server: FaultyServer) -> None:
    """An oversized /health body is an invalid response, and the probe still reports a reply."""
    faulty_server.health = {"model_version": "V9", "padding": "x" * 100_000}
    async with roomy_client(faulty_server.base_url) as client:
        probe = await client.probe_health(timeout_seconds=ROOMY)
        with pytest.raises(InvalidModelResponseError, match="over the 65536 bytes"):
            await client.fetch_model_info(timeout_seconds=ROOMY)
    assert probe.reachable is True
    assert probe.info is None
    assert probe.error_kind is None


async def test_http_malformed_response_opens_circuit(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """aiohttp reports a malformed status line as status 400, yet the breaker counts it."""
    faulty_server.mode = "malformed"
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=2, cooldown_seconds=30))
    async with roomy_client(
        faulty_server.base_url, retry=RetryPolicy(0), breaker=breaker
    ) as client:
        for _ in range(2):
            with pytest.raises(ModelUnavailableError):
                await client.predict_proba(rows)
    assert breaker.state == CircuitState.OPEN


async def test_http_redirect_not_followed(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """A 302 fails the call as HTTP 302, and its target receives nothing."""
    target = FaultyServer()
    await target.start()
    faulty_server.mode = "redirect"
    faulty_server.redirect_to = f"{target.base_url}/predict-proba"
    try:
        async with roomy_client(faulty_server.base_url) as client:
            with pytest.raises(ModelUnavailableError, match="HTTP 302"):
                await client.predict_proba(rows)
    finally:
        await target.stop()
    assert target.requests == []
    assert faulty_server.predict_calls == 1


# --- what the session sends -------------------------------------------------------------------


async def test_http_cookies_not_sent(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """A Set-Cookie from the service is dropped, so no request carries a Cookie header."""
    faulty_server.response_headers = {"Set-Cookie": "session=abc; Path=/"}
    # A host name, because aiohttp's default cookie jar ignores cookies from IP addresses.
    base_url = f"http://localhost:{faulty_server.port}"
    async with roomy_client(base_url) as client:
        await client.predict_proba(rows)
        await client.probe_health(timeout_seconds=ROOMY)
        await client.predict_proba(rows)
    assert len(faulty_server.request_headers) == 3
    for headers in faulty_server.request_headers:
        assert "cookie" not in headers


async def test_http_accept_encoding_identity(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """Every request has Accept-Encoding: identity, even when the caller's headers set gzip."""
    async with roomy_client(faulty_server.base_url, headers={"accept-encoding": "gzip"}) as client:
        await client.predict_proba(rows)
        await client.probe_health(timeout_seconds=ROOMY)
    assert len(faulty_server.request_headers) == 2
    for headers in faulty_server.request_headers:
        assert headers.get("accept-encoding") == "identity"


async def test_http_proxy_environment_ignored(
    monkeypatch: pytest.MonkeyPatch,
    faulty_server: FaultyServer,
    refused_url: str,
    rows: np.ndarray,
) -> None:
    """HTTP_PROXY pointing at a dead proxy does not divert calls to the service."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, refused_url)
    async with roomy_client(faulty_server.base_url) as client:
        await client.predict_proba(rows)
    assert faulty_server.predict_calls == 1


async def test_http_health_request_not_repeated(faulty_server: FaultyServer) -> None:
    """A dropped GET /health is reported after one request, which aiohttp does not repeat."""
    faulty_server.health_mode = "drop"
    async with roomy_client(faulty_server.base_url) as client:
        probe = await client.probe_health(timeout_seconds=ROOMY)
    assert probe.reachable is False
    assert probe.error_kind == ModelUnavailableError.kind
    assert faulty_server.health_calls == 1


@pytest.mark.parametrize(("expiry_seconds", "connections"), [(0.1, 2), (30.0, 1)])
async def test_http_keepalive_expiry_setting(
    faulty_server: FaultyServer, rows: np.ndarray, expiry_seconds: float, connections: int
) -> None:
    """A pooled connection idle beyond MODEL_CLIENT_KEEPALIVE_EXPIRY_SECONDS is replaced."""
    settings = _settings(faulty_server.base_url, keepalive_expiry_seconds=expiry_seconds)
    async with ModelClient.from_settings(settings) as client:
        await client.predict_proba(rows)
        await asyncio.sleep(0.3)
        await client.predict_proba(rows)
    assert faulty_server.connections == connections


async def test_http_max_connections_setting(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """With MODEL_CLIENT_MAX_CONNECTIONS=2, five concurrent calls share two connections."""
    faulty_server.mode = "slow"
    faulty_server.delay = 0.1
    settings = _settings(faulty_server.base_url, max_connections=2, deadline_ms=5000)
    async with ModelClient.from_settings(settings) as client:
        await asyncio.gather(*(client.predict_proba(rows) for _ in range(5)))
    assert faulty_server.predict_calls == 5
    assert faulty_server.max_in_flight == 2
    assert faulty_server.connections == 2


async def test_http_probe_answers_with_pool_full(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """GET /health gets a connection of its own while slow model calls hold all the others."""
    faulty_server.mode = "slow"
    faulty_server.delay = 0.4
    limits = ConnectionLimits(max_connections=2)
    async with roomy_client(faulty_server.base_url, deadline_seconds=3.0, limits=limits) as client:
        calls = [asyncio.create_task(client.predict_proba(rows)) for _ in range(4)]
        for _ in range(100):
            if faulty_server.in_flight == 2:
                break
            await asyncio.sleep(0.01)
        assert faulty_server.in_flight == 2
        probe = await client.probe_health(timeout_seconds=0.3)
        outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert probe.reachable is True
    assert probe.error_kind is None
    for outcome in outcomes:
        assert isinstance(outcome, np.ndarray)
    assert faulty_server.max_in_flight == 2


async def test_http_probes_leave_model_connections(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """Concurrent slow GET /health requests never take the connection a model call needs."""
    faulty_server.health_delay = 0.5
    limits = ConnectionLimits(max_connections=1)
    async with roomy_client(faulty_server.base_url, limits=limits) as client:
        probes = [
            asyncio.create_task(client.probe_health(timeout_seconds=2.0))
            for _ in range(HEALTH_CONNECTIONS + 2)
        ]
        await asyncio.sleep(0.05)
        probabilities = await client.predict_proba(rows, deadline_seconds=0.3)
        results = await asyncio.gather(*probes)

    assert probabilities.shape == (len(rows),)
    for probe in results:
        assert probe.reachable is True
    assert faulty_server.health_calls == HEALTH_CONNECTIONS + 2


# --- deadline, stale connections, life cycle --------------------------------------------------


async def test_http_deadline_covers_backoff(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """A backoff longer than the deadline ends the call at the deadline, before a retry."""
    faulty_server.mode = "status"
    faulty_server.status = 503
    retry = RetryPolicy(max_retries=3, backoff_seconds=0.5)
    async with roomy_client(faulty_server.base_url, deadline_seconds=0.1, retry=retry) as client:
        started = time.perf_counter()
        with pytest.raises(ModelTimeoutError, match="100 ms deadline"):
            await client.predict_proba(rows)
        elapsed = time.perf_counter() - started
    assert elapsed < 0.1 + SLACK
    assert faulty_server.predict_calls == 1


@pytest.mark.slow
@pytest.mark.parametrize("call", ["predict_proba", "fetch_model_info"])
async def test_http_stale_pooled_connection(
    short_keep_alive_server: ServerProcess, rows: np.ndarray, call: str
) -> None:
    """A pooled connection the server closed while idle does not fail the next call.

    The server's keep-alive timeout (1 s) is shorter than the client's expiry (30 s), and the
    client may not retry, so only a fresh connection lets the second call succeed.
    """
    limits = ConnectionLimits(max_connections=1, keepalive_expiry_seconds=30.0)
    client = roomy_client(short_keep_alive_server.base_url, retry=RetryPolicy(0), limits=limits)
    async with client:
        await client.predict_proba(rows)
        await asyncio.sleep(SERVER_KEEP_ALIVE_SECONDS + 1.0)
        if call == "predict_proba":
            probabilities = await client.predict_proba(rows)
            assert probabilities.shape == (len(rows),)
        else:
            info = await client.fetch_model_info(timeout_seconds=ROOMY)
            assert info.model_version == "V2"


@pytest.mark.slow
def test_http_client_built_outside_loop(model_server: ServerProcess, rows: np.ndarray) -> None:
    """A client built with no running loop opens its session on first use inside one."""
    client = roomy_client(model_server.base_url)

    async def use() -> np.ndarray:
        async with client:
            return await client.predict_proba(rows)

    assert asyncio.run(use()).shape == (len(rows),)


# The session stays open on the first loop, which asyncio.run closes, so it cannot be closed
# any more, and aiohttp reports that when the session is collected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_http_client_reused_on_new_loop(refused_url: str, rows: np.ndarray) -> None:
    """A client used in a second asyncio.run raises an error that names the fix."""
    client = roomy_client(refused_url)
    with pytest.raises(ModelUnavailableError):
        asyncio.run(client.predict_proba(rows))
    with pytest.raises(RuntimeError, match="one ModelClient per event loop"):
        asyncio.run(client.predict_proba(rows))
    del client
    gc.collect()


async def test_http_client_rejects_other_loop(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """Every call from a loop other than the client's raises, and the client stays usable."""
    pattern = "belongs to the event loop it was first used on"
    async with roomy_client(faulty_server.base_url) as client:
        await client.predict_proba(rows)
        with pytest.raises(RuntimeError, match=pattern):
            await asyncio.to_thread(asyncio.run, client.predict_proba(rows))
        with pytest.raises(RuntimeError, match=pattern):
            await asyncio.to_thread(asyncio.run, client.probe_health())
        with pytest.raises(RuntimeError, match=pattern):
            await asyncio.to_thread(asyncio.run, client.fetch_model_info())
        with pytest.raises(RuntimeError, match=pattern):
            await asyncio.to_thread(asyncio.run, client.aclose())
        probabilities = await client.predict_proba(rows)

    assert probabilities.shape == (len(rows),)
    assert faulty_server.predict_calls == 2
    assert faulty_server.health_calls == 0


async def test_http_aclose_closes_connections(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """aclose closes the pooled connection, and every later call raises RuntimeError."""
    client = roomy_client(faulty_server.base_url)
    await client.predict_proba(rows)
    await client.aclose()
    await client.aclose()
    for _ in range(50):
        if faulty_server.closed_connections == 1:
            break
        await asyncio.sleep(0.01)
    assert faulty_server.closed_connections == 1
    with pytest.raises(RuntimeError, match="ModelClient is closed"):
        await client.predict_proba(rows)
    with pytest.raises(RuntimeError, match="ModelClient is closed"):
        await client.fetch_model_info()
    with pytest.raises(RuntimeError, match="ModelClient is closed"):
        await client.probe_health()
    assert faulty_server.predict_calls == 1
