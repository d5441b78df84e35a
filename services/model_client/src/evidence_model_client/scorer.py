"""``RiskScorer``: the facade the gateway uses to turn feature rows into scores with reasons.

It calls the model service through ``ModelClient`` and returns the rule-based fallback score
whenever the model cannot be used: the call failed or timed out, the circuit is open, or the
served model was trained on another feature spec. A fallback score carries
``model_version="RULE_BASED"`` and the error kind in ``fallback_reason``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import structlog
from evidence_features import FEATURE_SPEC_HASH
from prometheus_client import REGISTRY, CollectorRegistry

from evidence_model_client.client import ModelClient
from evidence_model_client.config import ClientSettings, get_client_settings
from evidence_model_client.errors import ArtifactError, CircuitOpenError, ModelClientError
from evidence_model_client.fallback import rule_based_contributions, score_with_reasons
from evidence_model_client.metrics import ModelMetrics
from evidence_model_client.protocol import validate_matrix
from evidence_model_client.reasons import Reason, ReasonProfile, top_reasons

__all__ = [
    "RULE_BASED_VERSION",
    "SPEC_HASH_MISMATCH",
    "UNKNOWN_VERSION",
    "RiskScorer",
    "Score",
    "ScorerHealth",
]

RULE_BASED_VERSION = "RULE_BASED"
UNKNOWN_VERSION = "REGISTRY_UNKNOWN"
SPEC_HASH_MISMATCH = "spec_hash_mismatch"
# How long to wait before asking /health again after it failed.
_INFO_RETRY_SECONDS = 5.0

_log = structlog.get_logger("evidence_model_client")


@dataclass(frozen=True, slots=True)
class Score:
    """The score of one row.

    Attributes:
        risk_score: positive-class probability (model) or fallback score, in [0, 1].
        model_version: ``REGISTRY_<VERSION>`` when the model scored the row, else ``RULE_BASED``.
        fallback_reason: error kind that caused the fallback (such as ``model_timeout`` or
            ``circuit_open``), None when the model scored the row.
        reasons: the top contributing features, largest absolute contribution first.
    """

    risk_score: float
    model_version: str
    fallback_reason: str | None
    reasons: list[Reason]


@dataclass(frozen=True, slots=True)
class ScorerHealth:
    """State of the model path, for the gateway's readiness and health endpoints."""

    circuit_state: str
    last_error_kind: str | None
    model_reachable: bool
    model_version: str | None
    spec_hash_ok: bool | None


class RiskScorer:
    """Score feature matrices with the model, or with the rule-based fallback when it fails.

    Example (in a FastAPI lifespan)::

        scorer = RiskScorer.from_settings(registry=registry)
        await scorer.start()
        scores = await scorer.score(matrix)
        await scorer.aclose()

    Args:
        client: the model client; the scorer closes it in ``aclose()``.
        metrics: the metrics the client records into as well.
        reason_profile: importances and training means for model reasons; None gives model
            scores the fallback terms as reasons.
        model_version: served version such as ``V2``; None reads it from ``GET /health``.
        served_spec_hash: feature spec hash of the served model; None reads it from
            ``GET /health``, and leaves it unchecked when that endpoint does not exist.
        top_k: reasons per score.
    """

    def __init__(
        self,
        client: ModelClient,
        *,
        metrics: ModelMetrics,
        reason_profile: ReasonProfile | None = None,
        model_version: str | None = None,
        served_spec_hash: str | None = None,
        top_k: int = 5,
    ) -> None:
        self.client = client
        self._metrics = metrics
        self._profile = reason_profile
        self._configured_version = model_version
        self._registry_version = f"REGISTRY_{model_version}" if model_version else None
        self._spec_hash_ok = (
            None if served_spec_hash is None else served_spec_hash == (FEATURE_SPEC_HASH)
        )
        self._top_k = top_k
        self._last_error_kind: str | None = None
        self._last_call_ok = False
        self._info_checked_at: float | None = None

    @classmethod
    def from_settings(
        cls,
        settings: ClientSettings | None = None,
        *,
        registry: CollectorRegistry | None = REGISTRY,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> RiskScorer:
        """Build the scorer and its client from ``MODEL_CLIENT_*`` settings.

        Args:
            settings: defaults to ``get_client_settings()``.
            registry: Prometheus registry for the metrics (the gateway passes its own).
            transport: httpx transport, for tests.
        """
        settings = settings or get_client_settings()
        metrics = ModelMetrics(registry)
        client = ModelClient.from_settings(settings, metrics=metrics, transport=transport)
        return cls(
            client,
            metrics=metrics,
            reason_profile=_load_profile(settings.reason_profile_dir),
            model_version=settings.model_version,
            served_spec_hash=settings.feature_spec_hash,
            top_k=settings.top_reasons,
        )

    async def start(self, *, timeout_seconds: float = 2.0) -> None:
        """Read the served model's version and spec hash; a failure here is not fatal.

        Without it, the first successful model call reads them.
        """
        await self._refresh_model_info(timeout_seconds=timeout_seconds)

    async def score(self, matrix: np.ndarray) -> list[Score]:
        """Score each row of a (n, 105) feature matrix, with the rules when the model fails.

        Model failures (``ModelClientError``) never propagate; they set ``fallback_reason``.

        Raises:
            ValueError: the matrix has the wrong shape or contains NaN or infinity.
        """
        values = validate_matrix(matrix)
        if self._spec_mismatch():
            return self._fallback(values, SPEC_HASH_MISMATCH)
        try:
            probabilities = await self.client.predict_proba(values)
        except CircuitOpenError as exc:
            # Not logged per call: the failure that opened the circuit was logged already.
            self._last_call_ok = False
            return self._fallback(values, exc.kind)
        except ModelClientError as exc:
            self._last_error_kind = exc.kind
            self._last_call_ok = False
            _log.warning(
                "model call failed, using fallback",
                error_kind=exc.kind,
                rows=len(values),
                circuit_state=self.client.breaker.state.name.lower(),
            )
            return self._fallback(values, exc.kind)
        self._last_call_ok = True
        if self._registry_version is None:
            # The service is up, so /health is cheap now. Checking here keeps this very batch
            # from being scored by a model trained on another spec.
            await self._refresh_model_info(timeout_seconds=self.client.deadline_seconds)
            if self._spec_mismatch():
                return self._fallback(values, SPEC_HASH_MISMATCH)
        version = self._registry_version or UNKNOWN_VERSION
        reasons = self._model_reasons(values)
        return [
            Score(float(p), version, None, row_reasons)
            for p, row_reasons in zip(probabilities, reasons, strict=True)
        ]

    def health(self) -> ScorerHealth:
        """Report the circuit state, the last error kind and whether the model is reachable.

        ``model_reachable`` is true when the last model call or ``/health`` request succeeded,
        unless the served spec hash is known to differ. Before any response it is false.
        """
        state = self.client.breaker.state
        self._metrics.circuit_state.set(state.value)
        return ScorerHealth(
            circuit_state=state.name.lower(),
            last_error_kind=self._last_error_kind,
            model_reachable=self._last_call_ok and self._spec_hash_ok is not False,
            model_version=self._registry_version,
            spec_hash_ok=self._spec_hash_ok,
        )

    async def aclose(self) -> None:
        """Close the model client's connections."""
        await self.client.aclose()

    def _spec_mismatch(self) -> bool:
        return self._spec_hash_ok is False

    def _fallback(self, values: np.ndarray, reason: str) -> list[Score]:
        self._metrics.fallbacks.labels(reason=reason).inc(len(values))
        scores, reasons = score_with_reasons(values, top_k=self._top_k)
        return [
            Score(float(s), RULE_BASED_VERSION, reason, row_reasons)
            for s, row_reasons in zip(scores, reasons, strict=True)
        ]

    def _model_reasons(self, values: np.ndarray) -> list[list[Reason]]:
        if self._profile is None:
            return top_reasons(values, rule_based_contributions(values), top_k=self._top_k)
        return self._profile.explain(values, top_k=self._top_k)

    async def _refresh_model_info(self, *, timeout_seconds: float) -> None:
        now = time.monotonic()
        if self._info_checked_at is not None and now - self._info_checked_at < _INFO_RETRY_SECONDS:
            return
        self._info_checked_at = now
        try:
            info = await self.client.fetch_model_info(timeout_seconds=timeout_seconds)
        except ModelClientError as exc:
            _log.warning("served model info unavailable", error_kind=exc.kind)
            return
        self._last_call_ok = True
        if self._configured_version is None:
            self._registry_version = f"REGISTRY_{info.model_version}"
        if info.feature_spec_hash is not None:
            self._spec_hash_ok = info.feature_spec_hash == FEATURE_SPEC_HASH
            if not self._spec_hash_ok:
                _log.error(
                    "served model has another feature spec hash, using fallback",
                    served_hash=info.feature_spec_hash,
                    expected_hash=FEATURE_SPEC_HASH,
                )
        _log.info(
            "served model info read",
            model_version=info.model_version,
            builtin=info.builtin,
        )


def _load_profile(directory: Path | None) -> ReasonProfile | None:
    if directory is None:
        return None
    try:
        return ReasonProfile.load(directory)
    except (ArtifactError, ValueError) as exc:
        _log.warning("reason profile unavailable, using fallback terms", error=str(exc))
        return None
