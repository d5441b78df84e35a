"""Rejected requests and out-of-range rows: the breaker ignores them, other rows still score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.artifact import ModelArtifact
from evidence_model_client.breaker import BreakerPolicy, CircuitBreaker, CircuitState
from evidence_model_client.client import ModelClient
from evidence_model_client.errors import (
    ModelClientError,
    ModelRequestRejectedError,
    ModelUnavailableError,
)
from evidence_model_client.fallback import rule_based_scores
from evidence_model_client.protocol import MAX_MODEL_INPUT, rows_within_model_range
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from .conftest import REJECT_MARKER, FaultyServer, ServerProcess, make_scorer, make_training_data

# A value the feature library once produced from a huge number in a report: finite as a
# float64, far beyond the float32 range the model server accepts.
HUGE = 1e300


def _fallbacks(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("evidence_model_fallbacks_total", {"reason": reason})
    return value or 0.0


def _rows(n_rows: int) -> np.ndarray:
    matrix, _ = make_training_data(n_rows=n_rows, seed=23)
    return matrix


def test_range_rule_matches_server_bounds() -> None:
    """Rows pass up to the float32 maximum, but NaN, infinity and anything beyond fail."""
    matrix = np.zeros((7, len(FEATURE_NAMES)))
    matrix[1, 4] = MAX_MODEL_INPUT
    matrix[2, 4] = -MAX_MODEL_INPUT
    matrix[3, 4] = np.nextafter(MAX_MODEL_INPUT, np.inf)
    matrix[4, 4] = -HUGE
    matrix[5, 4] = np.nan
    matrix[6, 4] = np.inf

    within = rows_within_model_range(matrix)

    assert within.tolist() == [True, True, True, False, False, False, False]


@pytest.mark.slow
async def test_client_real_server_400_not_counted(model_server: ServerProcess) -> None:
    """The real server's 400 for a value beyond float32 never opens the circuit."""
    matrix = _rows(3)
    matrix[1, FEATURE_NAMES.index("RX_TOTAL_FILLS")] = HUGE
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=2, cooldown_seconds=30))
    async with ModelClient(model_server.base_url, deadline_seconds=2.0, breaker=breaker) as client:
        for _ in range(5):
            with pytest.raises(ModelRequestRejectedError, match="HTTP 400") as caught:
                await client.predict_proba(matrix)
            assert 400 == caught.value.status
            assert "model_request_rejected" == caught.value.kind
        probabilities = await client.predict_proba(_rows(3))

    assert CircuitState.CLOSED == breaker.state
    assert 0 == breaker.consecutive_failures
    assert (3,) == probabilities.shape


@pytest.mark.parametrize(
    ("status", "error_type", "counted"),
    [
        (400, ModelRequestRejectedError, 0),
        (413, ModelRequestRejectedError, 0),
        (415, ModelRequestRejectedError, 0),
        (422, ModelRequestRejectedError, 0),
        (401, ModelUnavailableError, 3),
        (403, ModelUnavailableError, 3),
        (404, ModelUnavailableError, 3),
        (408, ModelUnavailableError, 3),
        (429, ModelUnavailableError, 3),
        (500, ModelUnavailableError, 3),
    ],
)
async def test_client_breaker_counts_outages_only(
    faulty_server: FaultyServer, status: int, error_type: type[ModelClientError], counted: int
) -> None:
    """Only 400, 413, 415 and 422 leave the breaker alone. Other statuses count as outages."""
    faulty_server.mode = "status"
    faulty_server.status = status
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=10, cooldown_seconds=30))
    async with ModelClient(faulty_server.base_url, deadline_seconds=2.0, breaker=breaker) as client:
        for _ in range(3):
            with pytest.raises(error_type, match=f"HTTP {status}"):
                await client.predict_proba(_rows(2))

    assert counted == breaker.consecutive_failures


@pytest.mark.slow
async def test_scorer_out_of_range_row_alone(
    model_server: ServerProcess, artifact_dir: Path
) -> None:
    """Only the rows the server would reject fall back. The rest get the real model's scores."""
    matrix = _rows(6)
    column = FEATURE_NAMES.index("RX_TOTAL_FILLS")
    matrix[1, column] = HUGE
    matrix[3, column] = np.inf
    matrix[4, column] = np.nan
    matrix[5, column] = MAX_MODEL_INPUT
    registry = CollectorRegistry()
    scorer = make_scorer(model_server.base_url, registry)
    await scorer.start()

    with capture_logs() as logs:
        scores = await scorer.score(matrix)
    await scorer.aclose()

    model = ModelArtifact.load(artifact_dir).model
    good = [0, 2, 5]
    expected = model.predict_proba(matrix[good])[:, 1]
    assert ["REGISTRY_V2"] * 3 == [scores[i].model_version for i in good]
    assert [None] * 3 == [scores[i].fallback_reason for i in good]
    np.testing.assert_allclose(expected, [scores[i].risk_score for i in good], atol=1e-12)
    bad = [1, 3, 4]
    assert ["RULE_BASED"] * 3 == [scores[i].model_version for i in bad]
    assert ["features_out_of_range"] * 3 == [scores[i].fallback_reason for i in bad]
    fallback = rule_based_scores(np.nan_to_num(matrix[bad], nan=0.0))
    np.testing.assert_allclose(fallback, [scores[i].risk_score for i in bad])
    assert 3.0 == _fallbacks(registry, "features_out_of_range")
    assert "closed" == scorer.health().circuit_state
    assert [{"error_kind": "features_out_of_range", "rows": 3}] == [
        {"error_kind": entry["error_kind"], "rows": entry["rows"]}
        for entry in logs
        if entry["log_level"] == "warning"
    ]


async def test_scorer_all_rows_out_of_range(faulty_server: FaultyServer) -> None:
    """A batch whose every row is out of range makes no model call."""
    matrix = np.zeros((2, len(FEATURE_NAMES)))
    matrix[:, 0] = [np.nan, -HUGE]
    scorer = make_scorer(faulty_server.base_url, CollectorRegistry(), model_version="V2")

    scores = await scorer.score(matrix)
    await scorer.aclose()

    assert ["features_out_of_range"] * 2 == [s.fallback_reason for s in scores]
    assert 0 == faulty_server.predict_calls


async def test_scorer_bisects_rejected_batch(faulty_server: FaultyServer) -> None:
    """A batch rejected for one row is split until only that row falls back."""
    faulty_server.reject_value = REJECT_MARKER
    matrix = _rows(8)
    matrix[5, 7] = REJECT_MARKER
    registry = CollectorRegistry()
    scorer = make_scorer(faulty_server.base_url, registry, model_version="V9")

    scores = await scorer.score(matrix)
    await scorer.aclose()

    assert ["REGISTRY_V9"] * 5 + ["RULE_BASED"] + ["REGISTRY_V9"] * 2 == [
        s.model_version for s in scores
    ]
    assert [0.25] * 5 == [s.risk_score for s in scores[:5]]
    assert "model_request_rejected" == scores[5].fallback_reason
    # 8 rows, then halves of 4, 2 and 1 row: one call plus two per level.
    assert 1 + 2 * 3 == faulty_server.predict_calls
    assert 1.0 == _fallbacks(registry, "model_request_rejected")
    assert "closed" == scorer.health().circuit_state


async def test_scorer_rejection_of_every_call_bounded(faulty_server: FaultyServer) -> None:
    """A service that rejects every call costs three calls per batch and never opens the circuit."""
    faulty_server.mode = "status"
    faulty_server.status = 400
    registry = CollectorRegistry()
    scorer = make_scorer(faulty_server.base_url, registry, model_version="V9")

    for _ in range(4):
        scores = await scorer.score(_rows(16))
        assert ["model_request_rejected"] * 16 == [s.fallback_reason for s in scores]
    health = scorer.health()
    await scorer.aclose()

    assert 4 * 3 == faulty_server.predict_calls
    assert "closed" == health.circuit_state
    assert health.model_reachable is True
    assert "model_request_rejected" == health.last_error_kind


async def test_scorer_one_rejected_row_no_split(faulty_server: FaultyServer) -> None:
    """A rejected single row falls back after one call."""
    faulty_server.reject_value = REJECT_MARKER
    matrix = _rows(1)
    matrix[0, 0] = REJECT_MARKER
    scorer = make_scorer(faulty_server.base_url, CollectorRegistry(), model_version="V9")

    (score,) = await scorer.score(matrix)
    await scorer.aclose()

    assert "model_request_rejected" == score.fallback_reason
    assert 1 == faulty_server.predict_calls
