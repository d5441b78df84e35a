"""Construction of the model client's ``RiskScorer`` and the adapter the gateway talks to."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from evidence_model_client import DEFAULT_MODEL_NAME
from evidence_model_client.config import ClientSettings, get_client_settings
from evidence_model_client.metrics import ModelMetrics
from evidence_model_client.scorer import RiskScorer, Score
from prometheus_client import REGISTRY

from evidence_gateway.readiness import ModelStatus

__all__ = ["ScorerAdapter", "build_scorer"]


@lru_cache(maxsize=1)
def _model_metrics() -> ModelMetrics:
    # One set per process: prometheus-client rejects registering the same metric names twice,
    # and tests build several apps in one process.
    return ModelMetrics(REGISTRY)


class ScorerAdapter:
    """``RiskScorer`` plus the model status the readiness probe reads."""

    def __init__(self, scorer: RiskScorer, model_name: str = DEFAULT_MODEL_NAME) -> None:
        self.scorer = scorer
        self.model_name = model_name

    async def start(self) -> None:
        """Probe the model service and read the served model's version and spec hash.

        A model service that is down only logs a warning: the fallback scores meanwhile.
        """
        await self.scorer.start()

    async def score(self, matrix: np.ndarray) -> Sequence[Score]:
        """Score every row, with the rule-based fallback when the model call fails."""
        return await self.scorer.score(matrix)

    async def model_status(self) -> ModelStatus:
        """Summarise the scorer's health for the readiness probe.

        ``reachable`` is what the last model call or ``GET /health`` observed. When that
        observation is older than ``MODEL_CLIENT_HEALTH_MAX_AGE_SECONDS`` (1 s by default), the
        scorer first sends a ``GET /health`` with the ``MODEL_CLIENT_HEALTH_TIMEOUT_MS``
        timeout (500 ms by default).
        """
        health = await self.scorer.probe()
        return ModelStatus(
            reachable=health.model_reachable,
            circuit_state=health.circuit_state,
            model_version=health.model_version,
            spec_hash_ok=health.spec_hash_ok,
            model_spec_hash=health.served_spec_hash,
            model_info_error=health.model_info_error,
            last_error_kind=health.last_error_kind,
        )

    async def aclose(self) -> None:
        """Close the model client's connections."""
        await self.scorer.aclose()


def build_scorer(settings: ClientSettings | None = None) -> ScorerAdapter:
    """Build the scorer from ``MODEL_CLIENT_*`` settings, reusing this process's metrics."""
    resolved = settings or get_client_settings()
    return ScorerAdapter(RiskScorer.from_settings(resolved, metrics=_model_metrics()))
