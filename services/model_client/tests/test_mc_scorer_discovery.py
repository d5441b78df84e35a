"""Tests of RiskScorer's model-version discovery, health probes and shared metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from evidence_features import FEATURE_SPEC_HASH
from evidence_model_client.client import ModelClient
from evidence_model_client.config import ClientSettings
from evidence_model_client.metrics import ModelMetrics
from evidence_model_client.scorer import RiskScorer
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from .conftest import FaultyServer, free_port, start_server, stop_server


def _settings(base_url: str, **overrides: object) -> ClientSettings:
    options: dict[str, object] = {
        "base_url": base_url,
        "deadline_ms": 1000,
        "reason_profile_dir": None,
        **overrides,
    }
    return ClientSettings(**options)  # type: ignore[arg-type]


def _scorer(base_url: str, **overrides: object) -> RiskScorer:
    return RiskScorer.from_settings(_settings(base_url, **overrides), registry=CollectorRegistry())


@pytest.mark.slow
async def test_discovery_model_server_started_late(
    artifact_dir: Path, tmp_path: Path, rows: np.ndarray
) -> None:
    """A scorer started before the model server labels its first model batch REGISTRY_V2."""
    port = free_port()
    scorer = _scorer(f"http://127.0.0.1:{port}", deadline_ms=2000)
    await scorer.start(timeout_seconds=0.5)
    assert scorer.health().model_version is None
    assert scorer.health().model_reachable is False

    server = start_server(artifact_dir, tmp_path / "late-server.log", port=port)
    try:
        scores = await scorer.score(rows)
    finally:
        stop_server(server)
        await scorer.aclose()

    assert {None} == {s.fallback_reason for s in scores}
    assert {"REGISTRY_V2"} == {s.model_version for s in scores}
    assert scorer.health().model_version == "REGISTRY_V2"


async def test_discovery_health_recovers_before_first_call(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """/health failing at start-up, then working: the first scored batch has the version."""
    faulty_server.health_status = 503
    scorer = _scorer(faulty_server.base_url)
    await scorer.start()
    assert scorer.health().model_version is None

    faulty_server.health_status = 200
    scores = await scorer.score(rows)
    await scorer.aclose()

    assert {"REGISTRY_V9"} == {s.model_version for s in scores}


async def test_discovery_health_without_version_throttled(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A /health with no version (404) gives REGISTRY_UNKNOWN and is asked once per interval."""
    faulty_server.health_status = 404
    scorer = _scorer(faulty_server.base_url)
    batches = [await scorer.score(rows) for _ in range(3)]
    await scorer.aclose()

    assert {"REGISTRY_UNKNOWN"} == {s.model_version for batch in batches for s in batch}
    assert {None} == {s.fallback_reason for batch in batches for s in batch}
    assert faulty_server.predict_calls == 3
    assert faulty_server.health_calls == 1


async def test_discovery_hanging_health_throttled(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A /health that never responds costs one deadline and one warning per interval."""
    faulty_server.health_delay = 30.0
    scorer = _scorer(faulty_server.base_url, deadline_ms=200)
    with capture_logs() as logs:
        batches = [await scorer.score(rows) for _ in range(3)]
    await scorer.aclose()

    assert {"REGISTRY_UNKNOWN"} == {s.model_version for batch in batches for s in batch}
    assert {None} == {s.fallback_reason for batch in batches for s in batch}
    # Only the first call waited its deadline for /health; the next ones did not ask again.
    assert faulty_server.health_calls == 1
    assert faulty_server.predict_calls == 3
    warnings = [entry for entry in logs if entry["event"].startswith("served model info")]
    assert len(warnings) == 1


async def test_discovery_configured_version_probe_keeps_it(faulty_server: FaultyServer) -> None:
    """MODEL_CLIENT_MODEL_VERSION wins over the version /health reports."""
    scorer = _scorer(faulty_server.base_url, model_version="V2")
    health = await scorer.probe(max_age_seconds=0.0)
    await scorer.aclose()

    assert health.model_version == "REGISTRY_V2"
    assert health.model_reachable is True
    assert faulty_server.health_calls == 1


async def test_discovery_probe_learns_new_version(faulty_server: FaultyServer) -> None:
    """A probe after a redeployment replaces the version learned earlier."""
    scorer = _scorer(faulty_server.base_url)
    await scorer.start()
    faulty_server.health = {"model_version": "V10", "feature_spec_hash": FEATURE_SPEC_HASH}
    health = await scorer.probe(max_age_seconds=0.0)
    await scorer.aclose()

    assert health.model_version == "REGISTRY_V10"
    assert health.spec_hash_ok is True


async def test_probe_refused_not_reachable(refused_url: str) -> None:
    """Nothing listening: the probe reports unreachable and the error kind."""
    scorer = _scorer(refused_url, model_version="V2")
    health = await scorer.probe()
    await scorer.aclose()

    assert health.model_reachable is False
    assert health.last_error_kind == "model_unavailable"
    assert health.circuit_state == "closed"


async def test_probe_before_any_observation_is_false(refused_url: str) -> None:
    """health() without a probe or a call reports the model as not reachable."""
    scorer = _scorer(refused_url, model_version="V2")
    health = scorer.health()
    await scorer.aclose()

    assert health.model_reachable is False


async def test_probe_hanging_health_times_out() -> None:
    """A /health that never responds costs the probe timeout, then reports model_timeout."""
    hanging = await asyncio.start_server(_hang, "127.0.0.1", 0)
    port = hanging.sockets[0].getsockname()[1]
    scorer = _scorer(f"http://127.0.0.1:{port}", model_version="V2")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        health = await scorer.probe(timeout_seconds=0.2)
        elapsed = loop.time() - started
    finally:
        await scorer.aclose()
        hanging.close()

    assert health.model_reachable is False
    assert health.last_error_kind == "model_timeout"
    # 0.2 s timeout plus scheduling slack on a loaded machine; the server never responds.
    assert elapsed < 1.5


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.read()
    finally:
        writer.close()


async def test_probe_reuses_recent_observation(faulty_server: FaultyServer) -> None:
    """Probes within the max age send one /health; an older observation sends another."""
    scorer = _scorer(faulty_server.base_url)
    for _ in range(3):
        await scorer.probe(max_age_seconds=60.0)
    assert faulty_server.health_calls == 1

    await scorer.probe(max_age_seconds=0.0)
    await scorer.aclose()
    assert faulty_server.health_calls == 2


async def test_probe_sees_server_going_down(faulty_server: FaultyServer) -> None:
    """A reachable model that stops responding is reported unreachable by the next probe."""
    scorer = _scorer(faulty_server.base_url, model_version="V2")
    assert (await scorer.probe(max_age_seconds=0.0)).model_reachable is True

    faulty_server.health_status = 500
    health = await scorer.probe(max_age_seconds=0.0)
    await scorer.aclose()

    assert health.model_reachable is False
    assert health.last_error_kind == "model_unavailable"


async def test_probe_success_clears_error_kind(faulty_server: FaultyServer) -> None:
    """An error seen before the model service came up is gone after a successful probe."""
    scorer = _scorer(faulty_server.base_url, model_version="V2")
    faulty_server.health_status = 500
    down = await scorer.probe(max_age_seconds=0.0)

    faulty_server.health_status = 200
    up = await scorer.probe(max_age_seconds=0.0)
    await scorer.aclose()

    assert down.last_error_kind == "model_unavailable"
    assert up.model_reachable is True
    assert up.last_error_kind is None


async def test_probe_concurrent_calls_share_request(faulty_server: FaultyServer) -> None:
    """Ten concurrent probes send one /health request."""
    scorer = _scorer(faulty_server.base_url)
    results = await asyncio.gather(*(scorer.probe(max_age_seconds=5.0) for _ in range(10)))
    await scorer.aclose()

    assert {True} == {health.model_reachable for health in results}
    assert faulty_server.health_calls == 1


async def test_from_settings_shares_metrics(faulty_server: FaultyServer) -> None:
    """Two scorers of one process record into one ModelMetrics on one registry."""
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry)
    settings = _settings(faulty_server.base_url, model_version="V2")
    first = RiskScorer.from_settings(settings, metrics=metrics)
    second = RiskScorer.from_settings(settings, metrics=metrics, registry=registry)
    rows = np.zeros((2, 105))
    await first.score(rows)
    await second.score(rows)
    await first.aclose()
    await second.aclose()

    count = registry.get_sample_value(
        "evidence_model_call_duration_seconds_count", {"outcome": "ok"}
    )
    assert count == 2.0


async def test_from_settings_new_metrics_twice_rejected(refused_url: str) -> None:
    """Without a shared ModelMetrics, a second scorer on the same registry is rejected."""
    registry = CollectorRegistry()
    settings = _settings(refused_url, model_version="V2")
    first = RiskScorer.from_settings(settings, registry=registry)
    await first.aclose()

    with pytest.raises(ValueError, match="Duplicated timeseries"):
        RiskScorer.from_settings(settings, registry=registry)


def _health_logs(logs: Sequence[Mapping[str, object]]) -> list[tuple[object, object]]:
    """Return (level, event) of the log entries about the model service's health."""
    return [
        (entry["log_level"], entry["event"])
        for entry in logs
        if "model service" in str(entry["event"])
    ]


def _graced_scorer(base_url: str, grace: float) -> RiskScorer:
    settings = _settings(base_url, model_version="V2")
    metrics = ModelMetrics(CollectorRegistry())
    return RiskScorer(
        ModelClient.from_settings(settings, metrics=metrics),
        metrics=metrics,
        model_version="V2",
        startup_grace_seconds=grace,
    )


async def test_startup_probe_failure_logs_waiting(refused_url: str) -> None:
    """A model service not up at start-up is an info line, not a warning."""
    scorer = _graced_scorer(refused_url, grace=30.0)
    with capture_logs() as logs:
        await scorer.start()
        await scorer.probe(max_age_seconds=0.0)
        await scorer.probe(max_age_seconds=0.0)
    await scorer.aclose()

    assert _health_logs(logs) == [("info", "waiting for model service")]
    assert "error_kind" not in logs[0]


async def test_startup_waiting_warns_after_grace(refused_url: str) -> None:
    """A model service still down after the grace time gets one warning."""
    scorer = _graced_scorer(refused_url, grace=0.2)
    with capture_logs() as logs:
        await scorer.start()
        await asyncio.sleep(0.3)
        await scorer.probe(max_age_seconds=0.0)
        await scorer.probe(max_age_seconds=0.0)
    await scorer.aclose()

    assert _health_logs(logs) == [
        ("info", "waiting for model service"),
        ("warning", "model service health check failed"),
    ]
    waited = logs[-1]["waited_seconds"]
    assert isinstance(waited, float)
    assert waited >= 0.2


async def test_startup_service_comes_up(faulty_server: FaultyServer) -> None:
    """Down at start-up, then up: info lines only, the second with the wait."""
    faulty_server.health_status = 503
    scorer = _graced_scorer(faulty_server.base_url, grace=30.0)
    with capture_logs() as logs:
        await scorer.start()
        faulty_server.health_status = 200
        health = await scorer.probe(max_age_seconds=0.0)
    await scorer.aclose()

    assert health.model_reachable is True
    assert _health_logs(logs) == [
        ("info", "waiting for model service"),
        ("info", "model service reachable"),
    ]


async def test_failure_after_contact_warns_at_once(faulty_server: FaultyServer) -> None:
    """Once the service was reached, its first failed check is a warning, whatever the grace."""
    scorer = _graced_scorer(faulty_server.base_url, grace=30.0)
    with capture_logs() as logs:
        await scorer.start()
        faulty_server.health_status = 500
        await scorer.probe(max_age_seconds=0.0)
        await scorer.probe(max_age_seconds=0.0)
        faulty_server.health_status = 200
        await scorer.probe(max_age_seconds=0.0)
    await scorer.aclose()

    assert _health_logs(logs) == [
        ("warning", "model service health check failed"),
        ("info", "model service health check succeeded again"),
    ]
