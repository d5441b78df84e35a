"""A model response sent twice on one connection must not score the gateway's next request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from evidence_gateway.config import Settings

from .fake_model_kit import FakeModelService


class RepeatingModel(FakeModelService):
    """A model service that echoes the request's index and sends its first response twice.

    The n-th prediction request gets probability ``n / 10`` for each row, so a copy of the
    first response shows up as the first applicant's score. The copy follows 50 ms after the
    first response, once the gateway has put the connection back in its pool; ``repeated`` is
    set when it is written.
    """

    def __init__(self) -> None:
        super().__init__()
        self.predict_calls = 0
        self.repeated = asyncio.Event()

    def _answer(self, request_line: str, body: bytes) -> tuple[int, bytes]:
        if request_line.startswith("GET /health"):
            return 200, json.dumps({"model_name": "FAKE", "model_version": "V9"}).encode()
        self.predict_calls += 1
        index = json.loads(body)["dataframe_split"]["index"]
        outputs = {"output_feature_1": self.predict_calls / 10}
        return 200, json.dumps({"data": [[row_id, outputs] for row_id in index]}).encode()

    async def _after_response(self, writer: asyncio.StreamWriter, response: bytes) -> None:
        if self.predict_calls == 1 and not self.repeated.is_set():
            await asyncio.sleep(0.05)
            writer.write(response)
            await writer.drain()
            self.repeated.set()


@pytest.fixture
async def repeating_gateway(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Any, RepeatingModel]]:
    """A gateway in front of ``RepeatingModel``."""
    model = RepeatingModel()
    await model.start()
    yield await gateway_factory(make_settings(), model_url=model.url), model
    await model.stop()


async def test_stray_response_falls_back(
    repeating_gateway: tuple[Any, RepeatingModel], smoke_pair: tuple[str, str]
) -> None:
    """The request that receives a copy of another's response falls back as invalid_response."""
    gateway, model = repeating_gateway
    mib, rx = smoke_pair
    first = await gateway.client.post(
        "/v1/predict", json={"policy_number": "S-1", "mib_xml": mib, "rx_xml": rx}
    )
    await asyncio.wait_for(model.repeated.wait(), timeout=5)
    await asyncio.sleep(0.05)
    second = await gateway.client.post(
        "/v1/predict", json={"policy_number": "S-2", "mib_xml": mib, "rx_xml": rx}
    )
    third = await gateway.client.post(
        "/v1/predict", json={"policy_number": "S-3", "mib_xml": mib, "rx_xml": rx}
    )

    assert 200 == first.status_code, first.text
    assert ("REGISTRY_V9", 0.1) == (first.json()["model_version"], first.json()["risk_score"])
    assert 200 == second.status_code, second.text
    assert "RULE_BASED" == second.json()["model_version"]
    assert "invalid_response" == second.json()["fallback_reason"]
    assert 200 == third.status_code, third.text
    assert "REGISTRY_V9" == third.json()["model_version"]
    assert third.json()["fallback_reason"] is None
