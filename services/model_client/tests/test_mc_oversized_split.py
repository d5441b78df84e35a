"""Calls rejected with 413 (too many rows) are split until every part fits.

A 413 means the call was too large, not that a row is bad, so the scorer splits both halves of
such a call again and again. The number of calls stays at most 2n - 1 for n rows, and the calls
of one level of the split go out together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from evidence_model_client.client import ModelClient
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from .conftest import (
    REJECT_MARKER,
    FaultyServer,
    ServerProcess,
    make_scorer,
    make_training_data,
    start_server,
    stop_server,
)


def _rows(n_rows: int) -> np.ndarray:
    matrix, _ = make_training_data(n_rows=n_rows, seed=31)
    return matrix


def _calls(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value(
        "evidence_model_call_duration_seconds_count", {"outcome": outcome}
    )
    return value or 0.0


def _fallbacks(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("evidence_model_fallbacks_total", {"reason": reason})
    return value or 0.0


@pytest.fixture(scope="module")
def four_row_server(
    artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The real model server with ``MODEL_SERVER_MAX_ROWS=4``."""
    log_path = tmp_path_factory.mktemp("four-row-server") / "server.log"
    server = start_server(artifact_dir, log_path, MODEL_SERVER_MAX_ROWS="4")
    yield server
    stop_server(server)


@pytest.mark.slow
async def test_split_413_real_server_scores_all(four_row_server: ServerProcess) -> None:
    """20 rows against a 4-row limit: every row gets the model's score, in 15 calls."""
    matrix = _rows(20)
    registry = CollectorRegistry()
    scorer = make_scorer(four_row_server.base_url, registry)
    await scorer.start()

    scores = await scorer.score(matrix)
    health = scorer.health()
    await scorer.aclose()

    parts = []
    async with ModelClient(four_row_server.base_url, deadline_seconds=2.0) as client:
        for start in range(0, 20, 4):
            parts.append(await client.predict_proba(matrix[start : start + 4]))
    assert ["REGISTRY_V2"] * 20 == [s.model_version for s in scores]
    assert [None] * 20 == [s.fallback_reason for s in scores]
    assert np.concatenate(parts).tolist() == [s.risk_score for s in scores]
    # Parts of 20, 10 and 5 rows are rejected (1 + 2 + 4 calls). The 8 parts of 2 or 3 rows fit.
    assert 7.0 == _calls(registry, "model_request_rejected")
    assert 8.0 == _calls(registry, "ok")
    assert 0.0 == _fallbacks(registry, "model_request_rejected")
    assert "closed" == health.circuit_state


async def test_split_413_call_sequence(faulty_server: FaultyServer) -> None:
    """Both halves of every part over the limit are split again, down to parts that fit."""
    faulty_server.max_rows = 4
    registry = CollectorRegistry()
    scorer = make_scorer(faulty_server.base_url, registry, model_version="V9")

    scores = await scorer.score(_rows(20))
    await scorer.aclose()

    assert ["REGISTRY_V9"] * 20 == [s.model_version for s in scores]
    assert [0.25] * 20 == [s.risk_score for s in scores]
    sizes = faulty_server.predict_sizes
    assert [20, 10, 10] == sizes[:3]
    # The branches of the split do not wait for each other, so later sizes may interleave.
    assert [5, 5, 5, 5, 3, 3, 3, 3, 2, 2, 2, 2] == sorted(sizes[3:], reverse=True)


@pytest.mark.parametrize(("n_rows", "expected_calls"), [(1, 1), (2, 3), (5, 9), (8, 15)])
async def test_split_413_every_call_bounded(
    faulty_server: FaultyServer, n_rows: int, expected_calls: int
) -> None:
    """A service that returns 413 for every call costs 2n - 1 calls, and every row falls back."""
    faulty_server.mode = "status"
    faulty_server.status = 413
    registry = CollectorRegistry()
    scorer = make_scorer(faulty_server.base_url, registry, model_version="V9")

    scores = await scorer.score(_rows(n_rows))
    health = scorer.health()
    await scorer.aclose()

    assert ["RULE_BASED"] * n_rows == [s.model_version for s in scores]
    assert ["model_request_rejected"] * n_rows == [s.fallback_reason for s in scores]
    assert expected_calls == faulty_server.predict_calls
    assert [1] * n_rows == sorted(faulty_server.predict_sizes)[:n_rows]
    assert float(n_rows) == _fallbacks(registry, "model_request_rejected")
    assert "closed" == health.circuit_state


async def test_split_logs_one_summary_line(faulty_server: FaultyServer) -> None:
    """A split logs its start and one summary, not a line per failed part."""
    faulty_server.mode = "status"
    faulty_server.status = 413
    scorer = make_scorer(faulty_server.base_url, CollectorRegistry(), model_version="V9")

    with capture_logs() as logs:
        await scorer.score(_rows(4))
    await scorer.aclose()

    assert [
        "model service rejected the batch, scoring its halves separately",
        "rejected batch scored in parts",
    ] == [entry["event"] for entry in logs]
    summary = logs[1]
    assert "warning" == summary["log_level"]
    assert 4 == summary["rows"]
    assert 0 == summary["scored"]
    assert 4 == summary["fallbacks"]
    assert "model_request_rejected" == summary["error_kind"]
    assert "closed" == summary["circuit_state"]


async def test_split_413_then_bad_row(faulty_server: FaultyServer) -> None:
    """Under a 4-row limit, one bad row among 16 is found and falls back alone."""
    faulty_server.max_rows = 4
    faulty_server.reject_value = REJECT_MARKER
    matrix = _rows(16)
    matrix[5, 7] = REJECT_MARKER
    registry = CollectorRegistry()
    scorer = make_scorer(faulty_server.base_url, registry, model_version="V9")

    scores = await scorer.score(matrix)
    await scorer.aclose()

    expected = ["REGISTRY_V9"] * 16
    expected[5] = "RULE_BASED"
    assert expected == [s.model_version for s in scores]
    assert "model_request_rejected" == scores[5].fallback_reason
    # 16 (413), 8 + 8 (413), four parts of 4 (one 400), 2 + 2 (one 400), 1 + 1 (one 400).
    assert 1 + 2 + 4 + 2 + 2 == faulty_server.predict_calls
    assert 1.0 == _fallbacks(registry, "model_request_rejected")


async def test_split_bad_half_beside_413_half(faulty_server: FaultyServer) -> None:
    """A half rejected with 400 is split further when its sibling was only too large (413)."""
    faulty_server.max_rows = 4
    faulty_server.reject_value = REJECT_MARKER
    matrix = _rows(9)
    matrix[1, 3] = REJECT_MARKER
    scorer = make_scorer(faulty_server.base_url, CollectorRegistry(), model_version="V9")

    scores = await scorer.score(matrix)
    await scorer.aclose()

    expected = ["REGISTRY_V9"] * 9
    expected[1] = "RULE_BASED"
    assert expected == [s.model_version for s in scores]
    # 9 (413), 4 (400) + 5 (413), then 2 + 2 and 1 + 1 under the 4, and 2 + 3 under the 5.
    assert 1 + 2 + 2 + 2 + 2 == faulty_server.predict_calls


async def test_split_400_both_halves_stop(faulty_server: FaultyServer) -> None:
    """Two bad rows in different halves still stop the split after three calls."""
    faulty_server.reject_value = REJECT_MARKER
    matrix = _rows(8)
    matrix[1, 3] = REJECT_MARKER
    matrix[6, 3] = REJECT_MARKER
    scorer = make_scorer(faulty_server.base_url, CollectorRegistry(), model_version="V9")

    scores = await scorer.score(matrix)
    await scorer.aclose()

    assert ["model_request_rejected"] * 8 == [s.fallback_reason for s in scores]
    assert 3 == faulty_server.predict_calls


async def test_split_413_levels_concurrent(faulty_server: FaultyServer) -> None:
    """The parts of one level go out together, so the split takes one deadline per level."""
    faulty_server.mode = "slow"
    faulty_server.delay = 0.2
    faulty_server.max_rows = 2
    deadline_seconds = 0.5
    scorer = make_scorer(
        faulty_server.base_url,
        CollectorRegistry(),
        model_version="V9",
        deadline_ms=deadline_seconds * 1000,
    )

    started = time.perf_counter()
    scores = await scorer.score(_rows(16))
    elapsed = time.perf_counter() - started
    await scorer.aclose()

    assert ["REGISTRY_V9"] * 16 == [s.model_version for s in scores]
    # 16, 8, 4 and 2 rows: four levels and 15 calls of 0.2 s each, 3 s if sent one by one.
    assert 15 == faulty_server.predict_calls
    assert faulty_server.max_in_flight >= 8
    assert elapsed < (1 + math.ceil(math.log2(16))) * deadline_seconds
