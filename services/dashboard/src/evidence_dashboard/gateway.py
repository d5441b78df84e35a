"""HTTP calls to the gateway: readiness for the service-state panel and one test prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
import structlog
from pydantic import SecretStr

__all__ = [
    "GatewayReadiness",
    "PredictionOutcome",
    "fetch_readiness",
    "find_circuit_state",
    "submit_prediction",
]

logger = structlog.get_logger(__name__)

READY_PATH = "/health/ready"
PREDICT_PATH = "/v1/predict"


@dataclass(frozen=True, slots=True)
class GatewayReadiness:
    """Result of ``GET /health/ready``, or the reason it could not be reached."""

    reachable: bool
    status: str | None = None
    http_status: int | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    circuit_state: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PredictionOutcome:
    """JSON response of the gateway to one test prediction, or the error that prevented it."""

    ok: bool
    http_status: int | None
    body: dict[str, Any]
    error: str | None = None


def find_circuit_state(checks: dict[str, Any]) -> str | None:
    """Find the model circuit breaker's state among the readiness checks' details.

    The gateway reports it inside one check's ``detail`` under a key that contains ``circuit``
    or ``breaker`` (for example ``{"model": {"ok": true, "detail": {"circuit": "closed"}}}``).
    """
    for check in checks.values():
        detail = check.get("detail") if isinstance(check, dict) else None
        if not isinstance(detail, dict):
            continue
        for key, value in detail.items():
            lowered = key.lower()
            if ("circuit" in lowered or "breaker" in lowered) and isinstance(value, str):
                return value
    return None


def fetch_readiness(base_url: str, *, timeout: float) -> GatewayReadiness:
    """Call ``GET {base_url}/health/ready``; a connection failure returns ``reachable=False``."""
    url = base_url.rstrip("/") + READY_PATH
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        logger.warning("gateway unreachable", url=url, error=type(exc).__name__)
        return GatewayReadiness(
            reachable=False, error=f"{type(exc).__name__}: {exc or 'no detail'}"
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return GatewayReadiness(
            reachable=True,
            http_status=response.status_code,
            error=f"{url} returned HTTP {response.status_code} without a JSON object",
        )
    raw_checks = body.get("checks")
    checks: dict[str, Any] = raw_checks if isinstance(raw_checks, dict) else {}
    return GatewayReadiness(
        reachable=True,
        status=str(body.get("status")) if body.get("status") is not None else None,
        http_status=response.status_code,
        checks=checks,
        circuit_state=find_circuit_state(checks),
    )


def submit_prediction(
    base_url: str,
    *,
    policy_number: str,
    mib_xml: str | None,
    rx_xml: str | None,
    timeout: float,
    bearer_token: SecretStr | None = None,
) -> PredictionOutcome:
    """Post one evidence pair to ``POST {base_url}/v1/predict`` and return the JSON response.

    ``bearer_token`` goes into the ``Authorization`` header only. A 401 response gets an error
    that names ``DASHBOARD_GATEWAY_TOKEN`` and never the token.
    """
    url = base_url.rstrip("/") + PREDICT_PATH
    payload = {"policy_number": policy_number, "mib_xml": mib_xml, "rx_xml": rx_xml}
    headers: dict[str, str] = {}
    if bearer_token is not None:
        headers["Authorization"] = f"Bearer {bearer_token.get_secret_value()}"
    try:
        response = httpx.post(url, json=payload, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        logger.warning("test prediction failed", url=url, error=type(exc).__name__)
        return PredictionOutcome(
            ok=False, http_status=None, body={}, error=f"{type(exc).__name__}: {exc or 'no detail'}"
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {"data": body}
    if response.is_success:
        return PredictionOutcome(ok=True, http_status=response.status_code, body=body)
    if response.status_code == HTTPStatus.UNAUTHORIZED:
        logger.warning(
            "test prediction rejected: bearer token missing or wrong",
            url=url,
            http_status=response.status_code,
        )
        return PredictionOutcome(
            ok=False,
            http_status=response.status_code,
            body=body,
            error=_unauthorized_message(token_sent=bearer_token is not None),
        )
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return PredictionOutcome(
        ok=False,
        http_status=response.status_code,
        body=body,
        error=f"HTTP {response.status_code}: {message or response.reason_phrase}",
    )


def _unauthorized_message(*, token_sent: bool) -> str:
    # The settings are read once per dashboard process, so a new token needs a restart.
    if token_sent:
        problem = "the gateway rejected the bearer token in DASHBOARD_GATEWAY_TOKEN"
    else:
        problem = (
            "the gateway requires a bearer token on /v1/predict, and DASHBOARD_GATEWAY_TOKEN "
            "is not set"
        )
    return (
        f"HTTP 401: {problem}; set DASHBOARD_GATEWAY_TOKEN to the gateway's GATEWAY_API_TOKEN "
        "and restart the dashboard"
    )
