"""Bearer token on /v1, the token default outside local mode, and SQL kept as data."""

from __future__ import annotations

import asyncio
import hmac
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from evidence_gateway import security
from evidence_gateway.config import Settings
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import SecretStr, ValidationError
from reliability_kit import API_TOKEN, GatewayUnderTest

BODY = {"policy_number": "SEC-1", "mib_xml": None, "rx_xml": "<IntelRXResponse/>"}
SQL_POLICIES = [
    "SF-1'; DROP TABLE ML_MODELS__MODEL_PREDICTIONS; --",
    'SF-2"); DELETE FROM FEATURE_STORE__ONLINE_FEATURES; --',
    "SF-3' OR '1'='1",
]
CONTROL_POLICY = "SF-4\r\n\u001b[31m\u0000"


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer wrong-token", id="wrong"),
        pytest.param(f"Bearer {API_TOKEN[:-1]}", id="prefix"),
        pytest.param(f"Bearer {API_TOKEN}x", id="longer"),
        pytest.param(f"Basic {API_TOKEN}", id="basic-scheme"),
        pytest.param(API_TOKEN, id="no-scheme"),
        pytest.param("Bearer", id="empty"),
    ],
)
def test_security_v1_rejects_bad_token(
    gateway: GatewayUnderTest, authorization: str | None
) -> None:
    """/v1/predict and /v1/predict/batch return 401 without the exact bearer token."""
    headers = {} if authorization is None else {"Authorization": authorization}
    single = httpx.post(f"{gateway.url}/v1/predict", json=BODY, headers=headers, timeout=10.0)
    batch = httpx.post(
        f"{gateway.url}/v1/predict/batch", json={"items": [BODY]}, headers=headers, timeout=10.0
    )

    assert (401, 401) == (single.status_code, batch.status_code)
    assert "unauthorized" == single.json()["error"]["type"]
    assert "Bearer" == single.headers["www-authenticate"]
    assert API_TOKEN not in single.text


def test_security_v1_accepts_token(gateway: GatewayUnderTest) -> None:
    """The configured token is accepted."""
    response = httpx.post(
        f"{gateway.url}/v1/predict", json=BODY, headers=gateway.headers(), timeout=10.0
    )
    assert 200 == response.status_code


def test_security_internal_paths_need_no_token(gateway: GatewayUnderTest) -> None:
    """Service-function, health and metrics paths follow SPCS: no bearer token."""
    rows = httpx.post(
        f"{gateway.url}/functions/predict", json={"data": [[0, "SEC-F", None, None]]}, timeout=10.0
    )
    health = httpx.post(f"{gateway.url}/functions/health", json={"data": [[0]]}, timeout=10.0)

    assert 200 == rows.status_code
    assert "risk_score" in rows.json()["data"][0][1]
    assert 200 == health.status_code
    assert 200 == httpx.get(f"{gateway.url}/health/live", timeout=10.0).status_code
    assert 200 == httpx.get(f"{gateway.url}/metrics", timeout=10.0).status_code


def test_security_token_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token check goes through hmac.compare_digest, never ==."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)
    request: Any = SimpleNamespace(
        app=SimpleNamespace(
            state=SimpleNamespace(settings=SimpleNamespace(api_token=SecretStr("s3")))
        )
    )
    wrong = HTTPAuthorizationCredentials(scheme="Bearer", credentials="s4")
    right = HTTPAuthorizationCredentials(scheme="Bearer", credentials="s3")

    with pytest.raises(HTTPException) as raised:
        asyncio.run(security.require_api_token(request, wrong))
    asyncio.run(security.require_api_token(request, right))

    assert 401 == raised.value.status_code
    assert [(b"s4", b"s3"), (b"s3", b"s3")] == calls


def _clear_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


def test_security_token_required_outside_local_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without GATEWAY_LOCAL_MODE=true, settings without GATEWAY_API_TOKEN are rejected."""
    _clear_gateway_environment(monkeypatch)

    with pytest.raises(ValidationError, match="GATEWAY_API_TOKEN"):
        Settings()


def test_security_local_mode_allows_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """GATEWAY_LOCAL_MODE=true keeps the token optional for the local stack."""
    _clear_gateway_environment(monkeypatch)
    monkeypatch.setenv("GATEWAY_LOCAL_MODE", "true")

    settings = Settings()

    assert settings.api_token is None
    assert settings.local_mode is True


def _stored_rows(store: Path, policies: list[str], timeout: float = 30.0) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        try:
            connection = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
        except sqlite3.OperationalError:
            time.sleep(0.1)
            continue
        try:
            placeholders = ",".join("?" * len(policies))
            rows = connection.execute(
                "SELECT POLICY_NUMBER, PREDICTION_ID FROM ML_MODELS__MODEL_PREDICTIONS "  # noqa: S608
                f"WHERE POLICY_NUMBER IN ({placeholders})",
                policies,
            ).fetchall()
        except sqlite3.OperationalError:
            rows = []
        finally:
            connection.close()
        if {policy for policy, _ in rows} == set(policies):
            break
        time.sleep(0.1)
    return rows


def test_security_sql_in_policy_number_stored_as_data(gateway: GatewayUnderTest) -> None:
    """Policy numbers carrying SQL are scored and stored verbatim; control characters fail."""
    before = httpx.post(
        f"{gateway.url}/v1/predict", json=BODY, headers=gateway.headers(), timeout=10.0
    ).json()["prediction_id"]
    policies = [*SQL_POLICIES, CONTROL_POLICY]
    rows = [[i, policy, None, "<IntelRXResponse/>"] for i, policy in enumerate(policies)]
    response = httpx.post(f"{gateway.url}/functions/predict", json={"data": rows}, timeout=30.0)
    assert 200 == response.status_code
    answered = [row[1] for row in response.json()["data"]]
    assert SQL_POLICIES == [answer["policy_number"] for answer in answered[:-1]]
    assert "invalid_policy_number" == answered[-1]["error_type"]
    assert "policy_number" in answered[-1]["error"]
    assert CONTROL_POLICY not in answered[-1]["error"]

    stored = _stored_rows(gateway.store_path, [*SQL_POLICIES, "SEC-1"])
    connection = sqlite3.connect(f"{gateway.store_path.as_uri()}?mode=ro", uri=True)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    features = connection.execute(
        "SELECT COUNT(*) FROM FEATURE_STORE__ONLINE_FEATURES WHERE POLICY_NUMBER = 'SEC-1'"
    ).fetchone()
    earlier = connection.execute(
        "SELECT COUNT(*) FROM ML_MODELS__MODEL_PREDICTIONS WHERE PREDICTION_ID = ?", (before,)
    ).fetchone()
    rejected = connection.execute(
        "SELECT COUNT(*) FROM ML_MODELS__MODEL_PREDICTIONS WHERE POLICY_NUMBER = ?",
        (CONTROL_POLICY,),
    ).fetchone()
    connection.close()

    assert sorted([*SQL_POLICIES, "SEC-1"]) == sorted({policy for policy, _ in stored})
    assert (0,) == rejected
    assert {"ML_MODELS__MODEL_PREDICTIONS", "FEATURE_STORE__ONLINE_FEATURES"} <= tables
    assert (1,) == features
    assert (1,) == earlier
