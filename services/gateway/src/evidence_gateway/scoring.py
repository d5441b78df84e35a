"""Construction of the model client's ``RiskScorer`` and the adapter the gateway talks to."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import structlog
from evidence_model_client import DEFAULT_MODEL_NAME, ArtifactError, ReasonProfile
from evidence_model_client.client import ModelClient
from evidence_model_client.config import ClientSettings, get_client_settings
from evidence_model_client.metrics import ModelMetrics
from evidence_model_client.scorer import RiskScorer, Score
from prometheus_client import REGISTRY

from evidence_gateway.readiness import ModelStatus

__all__ = ["ScorerAdapter", "build_scorer"]

_log = structlog.get_logger("evidence_gateway.scoring")


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
        """Read the served model's version and spec hash; failures only log a warning."""
        await self.scorer.start()

    async def score(self, matrix: np.ndarray) -> Sequence[Score]:
        """Score every row, with the rule-based fallback when the model call fails."""
        return await self.scorer.score(matrix)

    async def model_status(self) -> ModelStatus:
        """Summarise the scorer's health for the readiness probe.

        While the served model's version is unknown, because the model service was down when
        the gateway started, request its ``/health`` again. The model client sends that request
        at most once per few seconds.
        """
        health = self.scorer.health()
        if health.model_version is None and health.circuit_state == "closed":
            await self.scorer.start(timeout_seconds=1.0)
            health = self.scorer.health()
        # Before the first model call "reachable" is unknown, so a closed circuit, a known
        # model version and no failure yet count as reachable.
        reachable = health.model_reachable or (
            health.last_error_kind is None
            and health.circuit_state == "closed"
            and health.model_version is not None
        )
        return ModelStatus(
            reachable=reachable,
            circuit_state=health.circuit_state,
            model_version=health.model_version,
            spec_hash_ok=health.spec_hash_ok,
            detail={"last_error_kind": health.last_error_kind},
        )

    async def aclose(self) -> None:
        """Close the model client's connections."""
        await self.scorer.aclose()


def build_scorer(settings: ClientSettings | None = None) -> ScorerAdapter:
    """Build the scorer from ``MODEL_CLIENT_*`` settings, reusing this process's metrics."""
    resolved = settings or get_client_settings()
    metrics = _model_metrics()
    profile: ReasonProfile | None = None
    if resolved.reason_profile_dir is not None:
        try:
            profile = ReasonProfile.load(resolved.reason_profile_dir)
        except (ArtifactError, ValueError) as exc:
            _log.warning("reason profile unavailable", exception_type=type(exc).__name__)
    client = ModelClient.from_settings(resolved, metrics=metrics)
    scorer = RiskScorer(
        client,
        metrics=metrics,
        reason_profile=profile,
        model_version=resolved.model_version,
        served_spec_hash=resolved.feature_spec_hash,
        top_k=resolved.top_reasons,
    )
    return ScorerAdapter(scorer)
