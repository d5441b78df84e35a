"""The gateway scores with the fallback when the model server is full of request bodies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from evidence_gateway.config import Settings
from evidence_gateway.testing import free_port

from .conftest import builtin_model_server

pytestmark = pytest.mark.slow

BUDGET = 100_000


async def test_model_server_busy_503_falls_back(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
    tmp_path: Path,
) -> None:
    """A 503 for the model server's in-flight body limit gives a 200 with the fallback score."""
    port = free_port()
    model_server = builtin_model_server(
        tmp_path,
        port,
        MODEL_SERVER_MAX_BODY_BYTES=str(BUDGET),
        MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES=str(BUDGET),
        MODEL_SERVER_LOG_LEVEL="info",
    )
    with model_server:
        gw = await gateway_factory(make_settings(), model_url=f"http://127.0.0.1:{port}")
        # A request that declares the whole budget and stalls after its head reserves all of it.
        holder = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            holder.sendall(
                f"POST /predict-proba HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {BUDGET}\r\n\r\n".encode()
            )
            await asyncio.sleep(0.5)
            busy = await gw.client.post(
                "/v1/predict",
                json={"policy_number": "P-1", "mib_xml": smoke_pair[0], "rx_xml": smoke_pair[1]},
            )
        finally:
            holder.close()
        log_text = model_server.log_path.read_text()

    assert busy.status_code == 200, busy.text
    assert busy.json()["model_version"] == "RULE_BASED"
    assert busy.json()["fallback_reason"] == "model_unavailable"
    assert "in-flight body limit reached" in log_text
