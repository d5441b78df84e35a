"""Tests of the model server's start-up warm-up and its OpenMP/BLAS thread limit."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC, FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION
from evidence_model_client.config import ServerSettings
from evidence_model_client.served_model import ServedModel
from evidence_model_client.server import create_app
from evidence_model_client.threads import ScoringThreads
from threadpoolctl import threadpool_info

from .conftest import ServerProcess


def _openmp_threads() -> int:
    threads = {
        int(info["num_threads"]) for info in threadpool_info() if info["user_api"] == "openmp"
    }
    assert len(threads) == 1, "scikit-learn's OpenMP runtime is not loaded in this process"
    return threads.pop()


class RecordingModel:
    """A classifier that records each matrix it scores and the OpenMP threads it may use."""

    classes_ = np.array([0, 1])

    def __init__(self) -> None:
        self.matrices: list[np.ndarray] = []
        self.openmp_threads: list[int] = []

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        self.matrices.append(matrix.copy())
        self.openmp_threads.append(_openmp_threads())
        return np.tile([0.75, 0.25], (len(matrix), 1))


def _served(model: RecordingModel) -> ServedModel:
    return ServedModel(
        model=model,
        model_name="EVIDENCE_RISK_MODEL",
        model_version="V2",
        feature_spec_hash=FEATURE_SPEC_HASH,
        feature_spec_version=FEATURE_SPEC_VERSION,
        created_at=None,
        builtin=False,
    )


async def test_warmup_scores_defaults_before_serving(tmp_path: Path) -> None:
    """Start-up scores one row of feature defaults before any request arrives."""
    model = RecordingModel()
    app = create_app(ServerSettings(artifact_dir=tmp_path), served=_served(model))

    async with app.router.lifespan_context(app):
        assert len(model.matrices) == 1

    defaults = [[spec.default for spec in FEATURE_SPEC]]
    np.testing.assert_array_equal(np.array(defaults), model.matrices[0])


@pytest.mark.parametrize("threads", [1, 2])
async def test_warmup_request_openmp_limited(tmp_path: Path, threads: int) -> None:
    """Warm-up and requests run with MODEL_SERVER_SCORING_THREADS OpenMP threads."""
    model = RecordingModel()
    settings = ServerSettings(artifact_dir=tmp_path, scoring_threads=threads)
    app = create_app(settings, served=_served(model))
    body = {"data": [[0, *([0.0] * len(FEATURE_NAMES))]]}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model.test") as client:
            response = await client.post("/predict-proba", json=body)

    assert response.status_code == 200
    assert [threads, threads] == model.openmp_threads


def test_threads_limit_sets_and_restores() -> None:
    """ScoringThreads caps OpenMP inside the block and restores the previous count after it."""
    before = _openmp_threads()
    limiter = ScoringThreads(1)
    with limiter.limit():
        assert _openmp_threads() == 1
    assert _openmp_threads() == before
    assert "openmp" in limiter.libraries()


def test_threads_zero_rejected() -> None:
    """Zero threads is a configuration error."""
    with pytest.raises(ValueError, match="max_threads must be >= 1, got 0"):
        ScoringThreads(0)


def test_server_scoring_threads_setting_rejects_zero() -> None:
    """MODEL_SERVER_SCORING_THREADS=0 fails validation."""
    with pytest.raises(ValueError, match="scoring_threads"):
        ServerSettings(scoring_threads=0)


@pytest.mark.slow
def test_server_start_log_reports_warmup(model_server: ServerProcess) -> None:
    """The real server logs its warm-up time and the thread-limited libraries at start-up."""
    started = [
        json.loads(line)
        for line in model_server.log_path.read_text().splitlines()
        if line.startswith("{") and '"model server started"' in line
    ]

    assert len(started) == 1
    assert started[0]["warm_up_ms"] > 0
    assert started[0]["scoring_threads"] == 1
    assert "openmp" in started[0]["thread_limited_libraries"]
