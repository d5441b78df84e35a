"""Readiness: can this gateway score and record predictions right now?

- ``queue``: the durable queue file takes a write lock and has room, and the most recent append
  transaction did not fail within the last ``APPEND_FAILURE_WINDOW_SECONDS`` (required), in
  any worker of this gateway. The write probe dirties one page, so it can pass while appends of
  whole batches fail.
- ``feature_spec``: the model serves the feature spec this gateway extracts (required when the
  model reports its hash). A mismatch means a bad deployment: the scorer would score every
  row with the fallback, so the instance reports ``not_ready`` and a rollout stops there.
- ``model_info``: the model service's ``/health`` reports no model fact in an invalid format
  (required). An invalid version, model name or spec hash sends every row to the fallback,
  so this is a bad deployment too.
- ``model``: the model service responds and its circuit is closed. Not required: with the model
  down the rule-based fallback still scores, so the status is ``degraded``, not ``not_ready``.

Each failed check carries an ``error`` in its detail, which ``FN_HEALTH`` passes on. Errors
contain exception names, error kinds, hashes and fixed text, never evidence.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from evidence_features import FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION
from evidence_model_client.scorer import MODEL_INFO_INVALID, SPEC_HASH_MISMATCH
from evidence_persistence import PersistenceError, QueueFullError

from evidence_gateway.append_status import QueueAppendStatus

__all__ = ["CheckResult", "ModelStatus", "ReadinessProbe", "ReadinessReport"]


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """Model service state as the scorer reports it."""

    reachable: bool
    circuit_state: str
    model_version: str | None = None
    spec_hash_ok: bool | None = None
    model_spec_hash: str | None = None
    model_info_error: str | None = None
    last_error_kind: str | None = None
    """Error kind of the last model call or ``/health`` request, None after a success."""


class ModelStatusSource(Protocol):
    """Anything that reports the model's status (an adapter around the scorer)."""

    async def model_status(self) -> ModelStatus: ...


class QueueProbe(Protocol):
    """The queue calls the readiness probe makes."""

    def check_writable(self) -> None: ...
    def depth(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one check."""

    ok: bool
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """All checks and the overall status."""

    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, CheckResult]
    model_version: str | None
    feature_spec_version: str = FEATURE_SPEC_VERSION
    feature_spec_hash: str = FEATURE_SPEC_HASH
    # With GATEWAY_WORKERS above 1, the probe reached this worker process.
    worker_pid: int = field(default_factory=os.getpid)

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON body of ``GET /health/ready``."""
        return {
            "status": self.status,
            "checks": {
                name: {"ok": check.ok, "detail": check.detail}
                for name, check in self.checks.items()
            },
            "model_version": self.model_version,
            "feature_spec_version": self.feature_spec_version,
            "feature_spec_hash": self.feature_spec_hash,
            "worker_pid": self.worker_pid,
        }


class ReadinessProbe:
    """Runs the readiness checks; the queue calls go to a thread because they do file I/O."""

    def __init__(
        self,
        *,
        model: ModelStatusSource,
        queue: QueueProbe,
        max_depth: int,
        append_status: QueueAppendStatus | None = None,
    ) -> None:
        self.model = model
        self.queue = queue
        self.max_depth = max_depth
        self.append_status = append_status if append_status is not None else QueueAppendStatus()

    async def check(self) -> ReadinessReport:
        """Run every check and combine them."""
        queue_check, status = await asyncio.gather(self._check_queue(), self._model_status())
        model_check = _check_model(status)
        spec_check = _check_feature_spec(status)
        info_check = _check_model_info(status)
        checks = {
            "queue": queue_check,
            "feature_spec": spec_check,
            "model_info": info_check,
            "model": model_check,
        }
        if not (queue_check.ok and spec_check.ok and info_check.ok):
            overall: Literal["ready", "degraded", "not_ready"] = "not_ready"
        elif not model_check.ok:
            overall = "degraded"
        else:
            overall = "ready"
        return ReadinessReport(status=overall, checks=checks, model_version=status.model_version)

    async def _model_status(self) -> ModelStatus:
        return await self.model.model_status()

    async def _check_queue(self) -> CheckResult:
        def probe() -> int:
            self.queue.check_writable()
            return self.queue.depth()

        try:
            depth = await asyncio.to_thread(probe)
        except PersistenceError as exc:
            return CheckResult(ok=False, detail={"error": type(exc).__name__})
        detail: dict[str, Any] = {"depth": depth, "max_depth": self.max_depth}
        full = depth >= self.max_depth
        if full:
            # The same name as the error that the next append would raise.
            detail["error"] = QueueFullError.__name__
        failure = self.append_status.failure()
        if failure is not None:
            detail["error"] = failure.error
            detail["failed_appends"] = failure.failed_appends
            detail["failed_append_age_seconds"] = failure.age_seconds
            detail["failed_append_pids"] = list(failure.pids)
        return CheckResult(ok=not full and failure is None, detail=detail)


def _check_model(status: ModelStatus) -> CheckResult:
    detail: dict[str, Any] = {
        "reachable": status.reachable,
        "circuit_state": status.circuit_state,
        "model_version": status.model_version,
        "last_error_kind": status.last_error_kind,
    }
    ok = status.reachable and status.circuit_state == "closed"
    if not ok:
        detail["error"] = _model_error(status)
    return CheckResult(ok=ok, detail=detail)


def _model_error(status: ModelStatus) -> str:
    """Describe a failed model check by the model client's error kind and the circuit state."""
    circuit = f"circuit {status.circuit_state}"
    kind = status.last_error_kind
    # The scorer reports a model that responds as unreachable when it may not use it. The
    # feature_spec or model_info check then gives the details.
    if kind is None and status.spec_hash_ok is False:
        kind = SPEC_HASH_MISMATCH
    elif kind is None and status.model_info_error is not None:
        kind = MODEL_INFO_INVALID
    if kind is not None:
        return f"{kind}, {circuit}"
    if status.reachable:
        # A GET /health succeeded after the failed calls that opened the circuit, and each
        # success clears the last error kind.
        return f"{circuit} after failed model calls, although the last GET /health succeeded"
    return f"model service not reached yet, {circuit}"


def _check_feature_spec(status: ModelStatus) -> CheckResult:
    # spec_hash_ok is None when neither the model's /health nor MODEL_CLIENT_FEATURE_SPEC_HASH
    # gives the model's hash, so there is nothing to compare.
    detail: dict[str, Any] = {
        "gateway_hash": FEATURE_SPEC_HASH,
        "model_hash": status.model_spec_hash,
        "matches_model": status.spec_hash_ok,
    }
    if status.spec_hash_ok is False:
        detail["error"] = (
            f"the model's feature spec hash {status.model_spec_hash} (from its /health or "
            f"MODEL_CLIENT_FEATURE_SPEC_HASH) differs from this gateway's {FEATURE_SPEC_HASH}, "
            "so every row would get the rule-based score. Deploy a model version trained on "
            "this gateway's feature spec, or a gateway image built from the model's"
        )
    return CheckResult(ok=status.spec_hash_ok is not False, detail=detail)


def _check_model_info(status: ModelStatus) -> CheckResult:
    if status.model_info_error is None:
        return CheckResult(ok=True, detail={})
    # The scorer's message names the field and quotes at most a short escaped prefix of it.
    error = (
        f"{status.model_info_error}, so every row gets the rule-based score. Fix the model "
        "service's /health, or deploy a model whose version, name and spec hash pass this check"
    )
    return CheckResult(ok=False, detail={"error": error})
