"""Tests of RiskScorer: model scores, every fallback path, health and metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH
from evidence_model_client.artifact import ModelArtifact
from evidence_model_client.config import ClientSettings
from evidence_model_client.fallback import rule_based_scores
from evidence_model_client.scorer import RiskScorer
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from .conftest import FaultyServer, ServerProcess


def _scorer(
    base_url: str, registry: CollectorRegistry, profile_dir: Path | None = None, **settings: object
) -> RiskScorer:
    options: dict[str, object] = {
        "base_url": base_url,
        "deadline_ms": 1000,
        "breaker_failure_threshold": 2,
        "breaker_cooldown_seconds": 30,
        "reason_profile_dir": profile_dir,
        **settings,
    }
    return RiskScorer.from_settings(ClientSettings(**options), registry=registry)  # type: ignore[arg-type]


def _fallbacks(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("evidence_model_fallbacks_total", {"reason": reason})
    return value or 0.0


@pytest.mark.slow
async def test_scorer_real_server_answers_registry_version(
    model_server: ServerProcess, artifact_dir: Path, rows: np.ndarray
) -> None:
    """The real server's scores carry REGISTRY_V2, no fallback reason and profile reasons."""
    registry = CollectorRegistry()
    scorer = _scorer(model_server.base_url, registry, artifact_dir, deadline_ms=2000)
    await scorer.start()
    scores = await scorer.score(rows)
    await scorer.aclose()
    expected = ModelArtifact.load(artifact_dir).model.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(expected, [s.risk_score for s in scores], atol=1e-12)
    assert {"REGISTRY_V2"} == {s.model_version for s in scores}
    assert {None} == {s.fallback_reason for s in scores}
    assert all(0 < len(s.reasons) <= 5 for s in scores)
    health = scorer.health()
    assert health.model_reachable is True
    assert health.circuit_state == "closed"
    assert health.spec_hash_ok is True


async def test_scorer_reads_version_after_first_call(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """Without start(), the first successful call reads the version from /health."""
    faulty_server.health = {"model_version": "V7", "feature_spec_hash": FEATURE_SPEC_HASH}
    scorer = _scorer(faulty_server.base_url, CollectorRegistry())
    scores = await scorer.score(rows)
    await scorer.aclose()
    assert {"REGISTRY_V7"} == {s.model_version for s in scores}


async def test_scorer_configured_version_wins(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """MODEL_CLIENT_MODEL_VERSION labels the scores and no /health request is needed."""
    scorer = _scorer(faulty_server.base_url, CollectorRegistry(), model_version="V2")
    scores = await scorer.score(rows)
    await scorer.aclose()
    assert {"REGISTRY_V2"} == {s.model_version for s in scores}
    assert [path for path, _ in faulty_server.requests if path == "/health"] == []


async def test_scorer_timeout_falls_back_within_deadline(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A hanging model costs the deadline; rows get the rule-based score flagged model_timeout."""
    faulty_server.mode = "hang"
    registry = CollectorRegistry()
    scorer = _scorer(faulty_server.base_url, registry, model_version="V2", deadline_ms=50)
    started = time.perf_counter()
    scores = await scorer.score(rows)
    elapsed = time.perf_counter() - started
    await scorer.aclose()
    # 50 ms deadline plus scheduling slack on a loaded machine; the server hangs for an hour.
    assert elapsed < 0.3
    np.testing.assert_allclose(rule_based_scores(rows), [s.risk_score for s in scores])
    assert {"RULE_BASED"} == {s.model_version for s in scores}
    assert {"model_timeout"} == {s.fallback_reason for s in scores}
    assert float(len(rows)) == _fallbacks(registry, "model_timeout")
    assert scorer.health().last_error_kind == "model_timeout"
    assert scorer.health().model_reachable is False


async def test_scorer_circuit_open_fallback(faulty_server: FaultyServer, rows: np.ndarray) -> None:
    """After two failures the circuit opens; the next rows fall back with circuit_open."""
    faulty_server.mode = "status"
    registry = CollectorRegistry()
    scorer = _scorer(faulty_server.base_url, registry, model_version="V2")
    for _ in range(2):
        assert (await scorer.score(rows))[0].fallback_reason == "model_unavailable"
    calls = faulty_server.predict_calls
    scores = await scorer.score(rows)
    await scorer.aclose()
    assert {"circuit_open"} == {s.fallback_reason for s in scores}
    assert calls == faulty_server.predict_calls
    assert scorer.health().circuit_state == "open"
    assert registry.get_sample_value("evidence_model_circuit_state") == 1.0


async def test_scorer_spec_hash_mismatch_falls_back(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A served model with another spec hash is never used: every row falls back."""
    faulty_server.health = {"model_version": "V2", "feature_spec_hash": "ffffffffffffffff"}
    registry = CollectorRegistry()
    scorer = _scorer(faulty_server.base_url, registry)
    await scorer.start()
    first = await scorer.score(rows)
    second = await scorer.score(rows)
    await scorer.aclose()
    assert {"spec_hash_mismatch"} == {s.fallback_reason for s in first + second}
    assert faulty_server.predict_calls == 0
    assert scorer.health().spec_hash_ok is False


async def test_scorer_mismatch_found_after_first_call(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """When start() was skipped, a mismatch found after the first call still blocks that batch."""
    faulty_server.health = {"model_version": "V2", "feature_spec_hash": "ffffffffffffffff"}
    scorer = _scorer(faulty_server.base_url, CollectorRegistry())
    scores = await scorer.score(rows)
    await scorer.aclose()
    assert {"spec_hash_mismatch"} == {s.fallback_reason for s in scores}


async def test_scorer_fallback_reasons_are_terms(refused_url: str) -> None:
    """Fallback reasons are the rule's terms with their credited share."""
    row = np.zeros((1, len(FEATURE_NAMES)))
    row[0, FEATURE_NAMES.index("RX_MAX_CLASS_SEVERITY")] = 10
    scorer = _scorer(refused_url, CollectorRegistry(), model_version="V2")
    (score,) = await scorer.score(row)
    await scorer.aclose()
    assert score.fallback_reason == "model_unavailable"
    assert [(r.feature, r.value) for r in score.reasons] == [("RX_MAX_CLASS_SEVERITY", 10.0)]
    assert score.reasons[0].contribution == pytest.approx(0.45)


async def test_scorer_latency_lands_in_finite_bucket(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A fast local call is observed in seconds and falls in a finite histogram bucket."""
    registry = CollectorRegistry()
    scorer = _scorer(faulty_server.base_url, registry, model_version="V2")
    await scorer.score(rows)
    await scorer.aclose()
    labels = {"outcome": "ok"}
    total = registry.get_sample_value("evidence_model_call_duration_seconds_count", labels)
    within = registry.get_sample_value(
        "evidence_model_call_duration_seconds_bucket", {**labels, "le": "0.05"}
    )
    assert total == 1.0
    assert within == 1.0


async def test_scorer_nan_row_falls_back_alone(faulty_server: FaultyServer) -> None:
    """A NaN row falls back with features_out_of_range; the other row goes to the model."""
    matrix = np.zeros((2, len(FEATURE_NAMES)))
    matrix[0, 0] = np.nan
    scorer = _scorer(faulty_server.base_url, CollectorRegistry(), model_version="V2")
    scores = await scorer.score(matrix)
    await scorer.aclose()
    assert ["RULE_BASED", "REGISTRY_V2"] == [s.model_version for s in scores]
    assert ["features_out_of_range", None] == [s.fallback_reason for s in scores]
    body = json.loads(faulty_server.requests[-1][1])
    assert 1 == len(body["dataframe_split"]["data"])


@pytest.mark.parametrize("shape", [(0, len(FEATURE_NAMES)), (2, 3), (len(FEATURE_NAMES),)])
async def test_scorer_rejects_wrong_shape(
    faulty_server: FaultyServer, shape: tuple[int, ...]
) -> None:
    """A matrix of the wrong shape is a caller error (ValueError), not a fallback."""
    scorer = _scorer(faulty_server.base_url, CollectorRegistry(), model_version="V2")
    with pytest.raises(ValueError, match="expected a feature matrix of shape"):
        await scorer.score(np.zeros(shape))
    await scorer.aclose()


async def test_scorer_logs_carry_no_feature_values(refused_url: str, rows: np.ndarray) -> None:
    """Fallback logging names the error kind and row count only."""
    scorer = _scorer(refused_url, CollectorRegistry(), model_version="V2")
    with capture_logs() as logs:
        await scorer.score(rows)
    await scorer.aclose()
    assert [
        {k: v for k, v in entry.items() if k in {"error_kind", "rows"}}
        for entry in logs
        if entry["event"] == "model call failed, using fallback"
    ] == [{"error_kind": "model_unavailable", "rows": 5}]
    assert all(
        set(entry) <= {"event", "log_level", "error_kind", "rows", "attempt", "circuit_state"}
        for entry in logs
    )
