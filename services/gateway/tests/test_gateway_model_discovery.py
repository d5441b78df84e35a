"""Readiness and model-version labels when the model server is down or starts late."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from evidence_gateway.config import Settings
from evidence_gateway.testing import ServerProcess, free_port, script_path


@pytest.mark.parametrize("configured_version", [None, "V2"])
async def test_ready_without_model_server_degraded(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    configured_version: str | None,
) -> None:
    """Right after start-up with nothing on the model port, the model check is false."""
    gw = await gateway_factory(
        make_settings(),
        model_url=f"http://127.0.0.1:{free_port()}",
        model_version=configured_version,
    )

    response = await gw.client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["model"]["ok"] is False
    assert body["checks"]["model"]["detail"]["reachable"] is False
    assert body["checks"]["model"]["detail"]["last_error_kind"] == "model_unavailable"


@pytest.mark.slow
async def test_model_server_started_after_gateway(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
    tmp_path: Path,
) -> None:
    """The first prediction after the model server comes up carries its version; ready follows."""
    port = free_port()
    gw = await gateway_factory(
        make_settings(), model_url=f"http://127.0.0.1:{port}", health_max_age_seconds=0.0
    )
    assert (await gw.client.get("/health/ready")).json()["status"] == "degraded"

    late_server = ServerProcess(
        [script_path("evidence-model-server")],
        ready_url=f"http://127.0.0.1:{port}/health",
        env={
            "MODEL_SERVER_PORT": str(port),
            "MODEL_SERVER_ARTIFACT_DIR": str(tmp_path / "no-artifact"),
            "MODEL_SERVER_LOG_LEVEL": "warning",
        },
        log_path=tmp_path / "late-model-server.log",
        timeout=120.0,
    )
    with late_server:
        predicted = await gw.client.post(
            "/v1/predict",
            json={"policy_number": "P-1", "mib_xml": smoke_pair[0], "rx_xml": smoke_pair[1]},
        )
        ready = await gw.client.get("/health/ready")
        # Stopping the server: the next readiness check sends a new GET /health (max age 0).
    stopped = await gw.client.get("/health/ready")

    assert predicted.status_code == 200
    assert predicted.json()["model_version"] == "REGISTRY_BUILTIN"
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["model"]["detail"]["reachable"] is True
    assert ready.json()["model_version"] == "REGISTRY_BUILTIN"
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "degraded"
    assert stopped.json()["checks"]["model"]["detail"]["reachable"] is False
