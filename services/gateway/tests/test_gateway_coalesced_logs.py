"""The log of a shared model call that fell back names every request it served.

A real gateway process talks to a real model server that the test stops with SIGSTOP: the
server's socket still accepts connections, but nothing responds, so each model call times out.
The first request's call is in flight while the next requests arrive, so they share the second
call.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_gateway.testing import ServerProcess, free_port, start_gateway

from .conftest import SMOKE_MIB, SMOKE_RX, builtin_model_server

pytestmark = pytest.mark.slow

FALLBACK_EVENT = "model call failed, using fallback"
# Long enough for the coalesced requests to be extracted and waiting while the first call hangs.
DEADLINE_MS = 1500
COALESCED = 8


@pytest.fixture
def stopped_model_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A built-in model server that the test may stop with SIGSTOP; it is resumed at the end."""
    server = builtin_model_server(tmp_path, free_port())
    with server:
        try:
            yield server
        finally:
            os.kill(server.pid, signal.SIGCONT)


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for text in path.read_text().splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


async def test_coalesced_fallback_logs_every_request_id(
    stopped_model_server: ServerProcess, tmp_path: Path
) -> None:
    """Each fallback line names the ids of the requests of its call, the rows and no document."""
    model_url = stopped_model_server.ready_url.removesuffix("/health")
    gateway, url = start_gateway(
        tmp_path,
        model_url,
        tmp_path / "no-profile",
        MODEL_CLIENT_DEADLINE_MS=str(DEADLINE_MS),
        GATEWAY_LOG_FORMAT="json",
        GATEWAY_LOG_LEVEL="info",
    )
    first_id = f"{0:032x}"
    coalesced_ids = [f"{i:032x}" for i in range(1, COALESCED + 1)]
    try:
        os.kill(stopped_model_server.pid, signal.SIGSTOP)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:

            async def predict(request_id: str, number: int) -> httpx.Response:
                return await client.post(
                    "/v1/predict",
                    json={
                        "policy_number": f"POL-{number}",
                        "mib_xml": SMOKE_MIB,
                        "rx_xml": SMOKE_RX,
                    },
                    headers={"x-request-id": request_id},
                )

            first = asyncio.create_task(predict(first_id, 0))
            await asyncio.sleep(DEADLINE_MS / 1000 / 3)
            rest = await asyncio.gather(
                *(predict(request_id, n) for n, request_id in enumerate(coalesced_ids, 1))
            )
            responses = [await first, *rest]
    finally:
        gateway.stop()

    for response in responses:
        assert response.status_code == 200, response.text
        assert response.json()["fallback_reason"] == "model_timeout"
    log_text = gateway.log_path.read_text()
    fallbacks = [line for line in _json_lines(gateway.log_path) if line["event"] == FALLBACK_EVENT]
    logged_ids = [request_id for line in fallbacks for request_id in line.get("request_ids", [])]
    assert sorted(logged_ids) == [first_id, *coalesced_ids]
    assert fallbacks[0]["request_ids"] == [first_id]
    # The requests sent during the first call shared a later one.
    assert max(line["request_count"] for line in fallbacks) > 1
    for line in fallbacks:
        assert line["request_count"] == len(line["request_ids"])
        assert line["rows"] == line["request_count"]
        assert "request_id" not in line
    for fragment in ("METFORMIN", "CODE1", "<?xml", "ResponseData", "POL-"):
        assert fragment not in log_text
