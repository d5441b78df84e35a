"""``RiskScorer``: the facade the gateway uses to turn feature rows into scores with reasons.

It calls the model service through ``ModelClient`` and returns the rule-based fallback score
whenever the model cannot be used: the call failed or timed out, the circuit is open, the
served model was trained on another feature spec, its ``/health`` reports a model fact in an
invalid format (``model_info.py``), or a row contains a value the model server rejects. A
fallback score carries
``model_version="RULE_BASED"`` and the error kind in ``fallback_reason``.

Model version: a model score is labelled ``REGISTRY_<VERSION>``. The version comes from
``MODEL_CLIENT_MODEL_VERSION`` when set (the Snowflake inference service has no endpoint that
reports it), else from the local model server's ``GET /health``. That request is sent at
start-up, by readiness checks, and after every successful model call while the version is still
unknown, so a gateway started before the model server learns the version with its first scored
batch. ``REGISTRY_UNKNOWN`` labels a model score only when that ``/health`` request failed or
returned no version. After a response without a version the scorer requests it again at most
every 5 s. A ``/health`` that reports an invalid version, name or spec hash sends every row
to the fallback (``model_info_invalid``) until a later ``/health`` reports valid facts, which
the scorer requests at most every 5 s while scoring and on each readiness probe.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from evidence_features import FEATURE_SPEC_HASH
from prometheus_client import REGISTRY, CollectorRegistry

from evidence_model_client.client import HealthProbe, ModelClient
from evidence_model_client.config import ClientSettings, get_client_settings
from evidence_model_client.errors import (
    ArtifactError,
    CircuitOpenError,
    InvalidModelInfoError,
    ModelClientError,
    ModelOverloadedError,
    ModelRequestRejectedError,
)
from evidence_model_client.fallback import rule_based_contributions, score_with_reasons
from evidence_model_client.metrics import ModelMetrics
from evidence_model_client.protocol import check_matrix_shape, rows_within_model_range
from evidence_model_client.reasons import Reason, ReasonProfile, top_reasons
from evidence_model_client.rejections import is_splittable, should_split_half

__all__ = [
    "FEATURES_OUT_OF_RANGE",
    "MODEL_INFO_INVALID",
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
#: Fallback reason of a row with NaN, infinity or a value beyond the float32 range.
FEATURES_OUT_OF_RANGE = "features_out_of_range"
#: Fallback reason of every row while the service's /health reports an invalid model fact.
MODEL_INFO_INVALID = InvalidModelInfoError.kind
# Seconds before /health is requested again after a response without a version, which is what
# a service without the local server's /health returns.
_INFO_RETRY_SECONDS = 5.0
STARTUP_GRACE_SECONDS = 30.0
"""Seconds after the first failed health check, before the service was ever reached, during
which further failures are no warning. A stack starts the gateway and the model server
together, and the model server loads its artifact for a few seconds."""

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
    served_spec_hash: str | None = None
    """Feature spec hash of the served model, from its ``/health`` or the client's settings."""
    model_info_error: str | None = None
    """Message naming the invalid model fact of the last ``/health``, None when all are valid."""


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
        probe_timeout_seconds: default timeout of the ``GET /health`` that ``probe()`` sends.
        probe_max_age_seconds: default age up to which ``probe()`` reuses the last observation.
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
        probe_timeout_seconds: float = 0.5,
        probe_max_age_seconds: float = 1.0,
        startup_grace_seconds: float = STARTUP_GRACE_SECONDS,
    ) -> None:
        self.client = client
        self._metrics = metrics
        self._profile = reason_profile
        self._configured_version = model_version
        self._registry_version = f"REGISTRY_{model_version}" if model_version else None
        self._served_spec_hash = served_spec_hash
        self._spec_hash_ok = (
            None if served_spec_hash is None else served_spec_hash == (FEATURE_SPEC_HASH)
        )
        self._top_k = top_k
        self._probe_timeout = probe_timeout_seconds
        self._probe_max_age = probe_max_age_seconds
        self._last_error_kind: str | None = None
        # Message naming the invalid fact of the last /health with model facts, else None.
        self._info_error: str | None = None
        # Last observation of the service: a model call or a /health request. None: none yet.
        self._reachable: bool | None = None
        self._observed_at: float | None = None
        self._ever_reachable = False
        # First failed health check before the service was ever reached, and whether the
        # warning after the grace time was logged.
        self._startup_grace = startup_grace_seconds
        self._waiting_since: float | None = None
        self._waiting_warned = False
        # When /health last returned no model version (a service without that endpoint).
        self._version_missing_at: float | None = None
        # One /health request at a time: concurrent callers wait and reuse its result.
        self._health_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: ClientSettings | None = None,
        *,
        metrics: ModelMetrics | None = None,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> RiskScorer:
        """Build the scorer and its client from ``MODEL_CLIENT_*`` settings.

        Args:
            settings: defaults to ``get_client_settings()``.
            metrics: metrics to record into. Pass the same instance to every scorer of one
                process, because prometheus-client rejects a second registration of the same
                names on one registry. None creates new metrics on ``registry``.
            registry: Prometheus registry of new metrics; ignored when ``metrics`` is given.
        """
        settings = settings or get_client_settings()
        if metrics is None:
            metrics = ModelMetrics(registry)
        client = ModelClient.from_settings(settings, metrics=metrics)
        return cls(
            client,
            metrics=metrics,
            reason_profile=_load_profile(settings.reason_profile_dir),
            model_version=settings.model_version,
            served_spec_hash=settings.feature_spec_hash,
            top_k=settings.top_reasons,
            probe_timeout_seconds=settings.health_timeout_ms / 1000.0,
            probe_max_age_seconds=settings.health_max_age_seconds,
        )

    async def start(self, *, timeout_seconds: float = 2.0) -> None:
        """Probe the model service and read the served model's version and spec hash.

        A service that is down is not fatal: the fallback scores, and later probes and model
        calls learn the version.
        """
        if self._spec_hash_ok is False:
            _log.error(
                "MODEL_CLIENT_FEATURE_SPEC_HASH differs from the installed feature spec hash, "
                "using fallback; deploy a model version trained on this feature spec, or an "
                "image built from the model's",
                served_hash=self._served_spec_hash,
                expected_hash=FEATURE_SPEC_HASH,
            )
        await self.probe(max_age_seconds=0.0, timeout_seconds=timeout_seconds)

    async def probe(
        self, *, max_age_seconds: float | None = None, timeout_seconds: float | None = None
    ) -> ScorerHealth:
        """Return the health after a fresh ``GET /health`` unless a recent observation exists.

        An observation is the outcome of a model call or of a health request. One younger than
        ``max_age_seconds`` is reused, so frequent readiness checks cost at most one request per
        interval. The request does not go through the circuit breaker.

        Args:
            max_age_seconds: default ``MODEL_CLIENT_HEALTH_MAX_AGE_SECONDS``.
            timeout_seconds: default ``MODEL_CLIENT_HEALTH_TIMEOUT_MS``.
        """
        max_age = self._probe_max_age if max_age_seconds is None else max_age_seconds
        timeout = self._probe_timeout if timeout_seconds is None else timeout_seconds
        async with self._health_lock:
            if not self._observed_within(max_age):
                self._record_probe(await self.client.probe_health(timeout_seconds=timeout))
        return self.health()

    async def score(self, matrix: np.ndarray) -> list[Score]:
        """Score each row of a (n, 105) feature matrix, with the rules when the model fails.

        Model failures (``ModelClientError``) never propagate. They set ``fallback_reason``. A
        row with a value the model server rejects (NaN, infinity, beyond the float32 range)
        falls back with ``features_out_of_range`` and the other rows go to the model. When the
        service rejects a batch (400, 413 or 422), its halves are scored separately (see
        ``_score_halves``), so one bad row or a batch over the service's row limit does not
        send the whole batch to the fallback.

        Raises:
            ValueError: the matrix is not (n, 105) with n >= 1.
            RuntimeError: the client is closed, or this call runs on another event loop than
                the one the scorer was first used on. Create one scorer per event loop.
        """
        values = check_matrix_shape(matrix)
        if self._spec_mismatch():
            return self._fallback(values, SPEC_HASH_MISMATCH)
        if self._info_error is not None:
            # The model is not called while its facts are invalid, so only /health can show a
            # fixed service. _learn_model_info requests it at most every 5 s.
            await self._learn_model_info()
            if self._info_error is not None:
                return self._fallback(values, MODEL_INFO_INVALID)
        usable = rows_within_model_range(values)
        if usable.all():
            return await self._score_with_model(values)

        rejected_rows = np.flatnonzero(~usable)
        _log.warning(
            "feature values outside the model's input range, using fallback",
            error_kind=FEATURES_OUT_OF_RANGE,
            rows=int(rejected_rows.size),
        )
        scores: list[Score | None] = [None] * len(values)
        fallback = self._fallback(values[rejected_rows], FEATURES_OUT_OF_RANGE)
        for index, score in zip(rejected_rows, fallback, strict=True):
            scores[index] = score
        usable_rows = np.flatnonzero(usable)
        if usable_rows.size:
            modelled = await self._score_with_model(values[usable_rows])
            for index, score in zip(usable_rows, modelled, strict=True):
                scores[index] = score
        return [score for score in scores if score is not None]

    async def _score_with_model(self, values: np.ndarray) -> list[Score]:
        outcome = await self._call_model(values)
        if not is_splittable(outcome, values):
            return await self._scores_from(values, outcome)

        _log.warning(
            "model service rejected the batch, scoring its halves separately",
            error_kind=outcome.kind,
            status=outcome.status,
            rows=len(values),
        )
        started = time.perf_counter()
        scores = await self._score_halves(values)
        self._log_split(scores, duration_seconds=time.perf_counter() - started)
        return scores

    async def _score_halves(self, values: np.ndarray) -> list[Score]:
        """Score both halves of a rejected batch, and split again the halves still rejected.

        ``rejections.should_split_half`` decides which halves are split: a half rejected with
        413 always is, a half rejected with 400 or 422 only when the other half was not
        rejected for its content as well. One bad row among n costs at most 2 * ceil(log2(n))
        extra calls, a service that rejects the content of every call costs two, and a
        service that returns 413 for every call costs 2n - 2.

        Both halves go out at once, and so do the splits of both halves, so the calls of one
        level of the split run concurrently. Each call has the client's full deadline, so a
        split of n rows waits at most 1 + ceil(log2(n)) deadlines for model calls, the first
        call included.
        """
        middle = len(values) // 2
        halves = (values[:middle], values[middle:])
        outcomes = await asyncio.gather(*(self._call_model(half) for half in halves))
        parts = []
        for half, outcome, sibling in zip(halves, outcomes, reversed(outcomes), strict=True):
            if should_split_half(outcome, half, sibling):
                parts.append(self._score_halves(half))
            else:
                parts.append(self._scores_from(half, outcome, log_failure=False))
        first, second = await asyncio.gather(*parts)
        return first + second

    def _log_split(self, scores: list[Score], *, duration_seconds: float) -> None:
        """Log the outcome of a split in one line, in place of one line per failed part.

        A service that returns 413 for every call would otherwise log a line for each row.
        """
        kinds = sorted({s.fallback_reason for s in scores if s.fallback_reason is not None})
        fallbacks = sum(1 for s in scores if s.fallback_reason is not None)
        log = _log.warning if fallbacks else _log.info
        log(
            "rejected batch scored in parts",
            rows=len(scores),
            scored=len(scores) - fallbacks,
            fallbacks=fallbacks,
            error_kind=",".join(kinds) or None,
            circuit_state=self.client.breaker.state.name.lower(),
            duration_ms=round(duration_seconds * 1000, 3),
        )

    async def _call_model(self, values: np.ndarray) -> np.ndarray | ModelClientError:
        """Send one model call and return the probabilities or the error, after recording it."""
        try:
            probabilities = await self.client.predict_proba(values)
        except CircuitOpenError as exc:
            # No request was sent, so the last observation of the service stays as it is.
            return exc
        except ModelClientError as exc:
            self._last_error_kind = exc.kind
            if isinstance(exc, ModelRequestRejectedError):
                self._observe(reachable=True)
            elif not isinstance(exc, ModelOverloadedError):
                # A local pool wait gives no information about the service itself.
                self._observe(reachable=False)
            return exc
        self._observe(reachable=True)
        self._last_error_kind = None
        return probabilities

    async def _scores_from(
        self,
        values: np.ndarray,
        outcome: np.ndarray | ModelClientError,
        *,
        log_failure: bool = True,
    ) -> list[Score]:
        if isinstance(outcome, ModelClientError):
            if log_failure and not isinstance(outcome, CircuitOpenError):
                # Calls rejected by the open circuit are not logged one by one, because the
                # failure that opened it was logged. The parts of a split are logged together
                # by _log_split.
                _log.warning(
                    "model call failed, using fallback",
                    error_kind=outcome.kind,
                    rows=len(values),
                    circuit_state=self.client.breaker.state.name.lower(),
                )
            return self._fallback(values, outcome.kind)
        if self._registry_version is None:
            # The service is up, so /health is cheap now. Checking here labels this very batch
            # and keeps it from being scored by a model trained on another spec.
            await self._learn_model_info()
            if self._spec_mismatch():
                return self._fallback(values, SPEC_HASH_MISMATCH)
            if self._info_error is not None:
                return self._fallback(values, MODEL_INFO_INVALID)
        version = self._registry_version or UNKNOWN_VERSION
        reasons = self._model_reasons(values)
        return [
            Score(float(p), version, None, row_reasons)
            for p, row_reasons in zip(outcome, reasons, strict=True)
        ]

    def health(self) -> ScorerHealth:
        """Report the circuit state, the last error kind and whether the model is reachable.

        ``model_reachable`` is true when the last observation (a model call or a ``/health``
        request) reached the service, unless the served spec hash is known to differ or the
        last ``/health`` reported an invalid model fact. Before any observation it is false.
        This method sends no request; ``probe()`` does.
        """
        state = self.client.breaker.state
        self._metrics.circuit_state.set(state.value)
        return ScorerHealth(
            circuit_state=state.name.lower(),
            last_error_kind=self._last_error_kind,
            model_reachable=(
                self._reachable is True
                and self._spec_hash_ok is not False
                and self._info_error is None
            ),
            model_version=self._registry_version,
            spec_hash_ok=self._spec_hash_ok,
            served_spec_hash=self._served_spec_hash,
            model_info_error=self._info_error,
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

    def _observe(self, *, reachable: bool) -> None:
        self._reachable = reachable
        self._observed_at = time.monotonic()
        if reachable:
            self._ever_reachable = True

    def _observed_within(self, max_age_seconds: float) -> bool:
        if self._observed_at is None:
            return False
        return time.monotonic() - self._observed_at < max_age_seconds

    async def _learn_model_info(self) -> None:
        """Ask ``/health`` for the version, or whether invalid facts were fixed, within the call
        deadline, unless asked recently."""
        try:
            async with asyncio.timeout(self.client.deadline_seconds):
                async with self._health_lock:
                    known = self._registry_version is not None and self._info_error is None
                    if known or self._version_recently_missing():
                        return
                    probe = await self.client.probe_health(
                        timeout_seconds=self.client.deadline_seconds
                    )
                    self._record_probe(probe)
        except TimeoutError:
            # This call's own /health request, or another caller's that held the lock, took the
            # whole deadline. Back off as for a reply without a version, so that later calls do
            # not each wait a deadline and log again.
            if not self._version_recently_missing():
                _log.warning("served model info not read within the deadline")
            self._version_missing_at = time.monotonic()

    def _log_waiting(self, error_kind: str | None) -> None:
        """Log a failed check before the first contact: info at first, one warning after grace."""
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
            # No error_kind here: a model server that is still starting is the normal case, and
            # the key reads as a failure. The warning after the grace time carries it.
            _log.info("waiting for model service")
            return
        waited = now - self._waiting_since
        if waited >= self._startup_grace and not self._waiting_warned:
            self._waiting_warned = True
            _log.warning(
                "model service health check failed",
                error_kind=error_kind,
                waited_seconds=round(waited, 1),
            )

    def _version_recently_missing(self) -> bool:
        missing_at = self._version_missing_at
        return missing_at is not None and time.monotonic() - missing_at < _INFO_RETRY_SECONDS

    def _record_probe(self, probe: HealthProbe) -> None:
        was_reachable = self._reachable
        first_contact = not self._ever_reachable
        self._observe(reachable=probe.reachable)
        if not probe.reachable:
            self._last_error_kind = probe.error_kind
            if first_contact:
                self._log_waiting(probe.error_kind)
            # Readiness checks probe about once a second, so log changes, not each failure.
            elif was_reachable is not False:
                _log.warning("model service health check failed", error_kind=probe.error_kind)
            return
        # The error kind describes the last observation, like model_reachable, so an error
        # seen before the service came up does not outlive a successful check.
        self._last_error_kind = None
        if first_contact and self._waiting_since is not None:
            waited = time.monotonic() - self._waiting_since
            _log.info("model service reachable", waited_seconds=round(waited, 1))
        elif was_reachable is False:
            _log.info("model service health check succeeded again")
        if probe.info_error is not None:
            self._record_invalid_info(probe.info_error)
            return
        if self._info_error is not None:
            _log.info("model service reports valid model info again")
            self._info_error = None
        info = probe.info
        if info is None:
            if self._configured_version is None and not self._version_recently_missing():
                _log.warning(
                    "model service reports no model version on /health; "
                    "set MODEL_CLIENT_MODEL_VERSION"
                )
            self._version_missing_at = time.monotonic()
            return
        self._version_missing_at = None
        learned = f"REGISTRY_{info.model_version}"
        if self._configured_version is None and self._registry_version != learned:
            # A later probe after a redeployment replaces the version learned before.
            self._registry_version = learned
            _log.info(
                "served model info read",
                model_version=info.model_version,
                builtin=info.builtin,
            )
        if info.feature_spec_hash is not None:
            spec_hash_ok = info.feature_spec_hash == FEATURE_SPEC_HASH
            if not spec_hash_ok and self._spec_hash_ok is not False:
                _log.error(
                    "served model has another feature spec hash, using fallback",
                    served_hash=info.feature_spec_hash,
                    expected_hash=FEATURE_SPEC_HASH,
                )
            self._spec_hash_ok = spec_hash_ok
            self._served_spec_hash = info.feature_spec_hash

    def _record_invalid_info(self, info_error: str) -> None:
        """Send every row to the fallback until ``/health`` reports valid facts again."""
        # Logged once per episode, because readiness probes repeat about once a second.
        if self._info_error is None:
            _log.error(
                "model service reports invalid model info, using fallback; fix the served "
                "model's version name, model name or feature spec hash",
                error=info_error,
                error_kind=MODEL_INFO_INVALID,
            )
        self._info_error = info_error
        # Scoring requests /health again at most every _INFO_RETRY_SECONDS.
        self._version_missing_at = time.monotonic()
        if self._configured_version is None:
            # The version learned before belongs to a model the service no longer reports.
            self._registry_version = None


def _load_profile(directory: Path | None) -> ReasonProfile | None:
    if directory is None:
        return None
    try:
        return ReasonProfile.load(directory)
    except (ArtifactError, ValueError) as exc:
        _log.warning("reason profile unavailable, using fallback terms", error=str(exc))
        return None
