"""Rows the model service would reject fall back alone and never open the circuit.

The feature library reads report numbers above 10^9 as missing, so no document yields a value
beyond float32 any more. The tests therefore run the real extraction and then set one feature
of the rows whose Rx report carries a marker comment to 1e300, the value a huge fill quantity
once produced. Against the real model server, which returns 400 for the whole call when one
value is beyond the float32 range, the gateway must keep such rows out of the model call.
Against a fake model service that rejects a value the gateway accepts, the gateway must retry
the rest of the call without the rejected row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_gateway.config import Settings
from evidence_gateway.extraction import ExtractionRequest, ExtractionResult, FeatureExtractor
from evidence_persistence import PredictionQueue
from prometheus_client import REGISTRY

from .fake_model_kit import FakeModelService

MARKER = "<!-- out-of-range -->"
HUGE = 1e300
COLUMN = FEATURE_NAMES.index("RX_TOTAL_FILLS")
MODEL = "REGISTRY_BUILTIN"


class MarkingExtractor:
    """The real extractor, with ``value`` in one feature of rows whose Rx report has ``MARKER``."""

    def __init__(self, inner: FeatureExtractor, value: float = HUGE) -> None:
        self.inner = inner
        self.value = value

    async def extract(self, requests: Sequence[ExtractionRequest]) -> list[ExtractionResult]:
        results = await self.inner.extract(requests)
        changed = []
        for request, result in zip(requests, results, strict=True):
            rx = request.rx_xml
            if result.values is not None and isinstance(rx, str) and MARKER in rx:
                values = result.values.copy()
                values[COLUMN] = self.value
                result = dataclasses.replace(result, values=values)
            changed.append(result)
        return changed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _fallbacks(reason: str) -> float:
    value = REGISTRY.get_sample_value("evidence_gateway_fallbacks_total", {"reason": reason})
    return value or 0.0


@pytest.fixture
async def gateway_with_marker(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> Any:
    """A gateway whose marked rows carry a feature beyond float32; breaker opens after 5."""
    built = await gateway_factory(make_settings(), breaker_failure_threshold=5)
    pipeline = built.app.state.pipeline
    pipeline.extractor = MarkingExtractor(pipeline.extractor)
    return built


def _item(policy: str, smoke_pair: tuple[str, str], *, marked: bool) -> dict[str, Any]:
    mib, rx = smoke_pair
    return {"policy_number": policy, "mib_xml": mib, "rx_xml": rx + MARKER if marked else rx}


async def test_out_of_range_never_opens_circuit(
    gateway_with_marker: Any, smoke_pair: tuple[str, str]
) -> None:
    """Eight marked requests in a row fall back alone; the next good request gets the model."""
    client = gateway_with_marker.client
    before = _fallbacks("features_out_of_range")

    marked = [
        (await client.post("/v1/predict", json=_item(f"OOR-{i}", smoke_pair, marked=True))).json()
        for i in range(8)
    ]
    good = (await client.post("/v1/predict", json=_item("OK-1", smoke_pair, marked=False))).json()
    ready = (await client.get("/health/ready")).json()

    assert ["RULE_BASED"] * 8 == [body["model_version"] for body in marked]
    assert ["features_out_of_range"] * 8 == [body["fallback_reason"] for body in marked]
    assert MODEL == good["model_version"]
    assert good["fallback_reason"] is None
    assert "closed" == ready["checks"]["model"]["detail"]["circuit_state"]
    assert 8.0 == _fallbacks("features_out_of_range") - before


async def test_out_of_range_concurrent_requests_unaffected(
    gateway_with_marker: Any, smoke_pair: tuple[str, str]
) -> None:
    """Requests that may share a model call with a marked one still get the model's score."""
    client = gateway_with_marker.client
    items = [_item(f"C-{i}", smoke_pair, marked=i == 3) for i in range(8)]

    responses = await asyncio.gather(*(client.post("/v1/predict", json=item) for item in items))

    bodies = [response.json() for response in responses]
    assert [MODEL] * 3 + ["RULE_BASED"] + [MODEL] * 4 == [b["model_version"] for b in bodies]
    assert "features_out_of_range" == bodies[3]["fallback_reason"]


async def test_out_of_range_batch_items_unaffected(
    gateway_with_marker: Any, smoke_pair: tuple[str, str], make_settings: Callable[..., Settings]
) -> None:
    """In a batch only the marked item falls back, and its features are queued as computed."""
    items = [_item(f"B-{i}", smoke_pair, marked=i == 1) for i in range(3)]

    response = await gateway_with_marker.client.post(
        "/v1/predict/batch", json={"items": items, "include_features": True}
    )

    body = response.json()
    assert 200 == response.status_code
    assert 3 == body["scored"]
    results = body["results"]
    assert [MODEL, "RULE_BASED", MODEL] == [r["model_version"] for r in results]
    assert [None, "features_out_of_range", None] == [r["fallback_reason"] for r in results]
    assert HUGE == results[1]["features"]["RX_TOTAL_FILLS"]
    assert 0.0 <= results[1]["risk_score"] <= 1.0
    assert 3 == PredictionQueue(make_settings().queue_path).depth()


async def test_out_of_range_service_function_row(
    gateway_with_marker: Any, smoke_pair: tuple[str, str]
) -> None:
    """A marked service-function row falls back; the rows around it get the model."""
    mib, rx = smoke_pair
    rows = [[0, "F-0", mib, rx], [1, "F-1", mib, rx + MARKER], [2, "F-2", mib, rx]]

    response = await gateway_with_marker.client.post("/functions/predict", json={"data": rows})

    values = [row[1] for row in response.json()["data"]]
    assert [MODEL, "RULE_BASED", MODEL] == [v["model_version"] for v in values]
    assert "features_out_of_range" == values[1]["fallback_reason"]
    assert np.isfinite(values[1]["risk_score"])


# --- a model service that rejects a value the gateway accepts ---------------------------------

REJECTED_VALUE = 7777.5


class RejectingModel(FakeModelService):
    """A fake model service on 127.0.0.1: 400 for a call containing ``REJECTED_VALUE``, else 0.25.

    It imitates a service whose input rule is stricter than the gateway's check. ``calls``
    lists the row count of each ``/predict-proba`` request.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def _answer(self, request_line: str, body: bytes) -> tuple[int, bytes]:
        if request_line.startswith("GET /health"):
            return 200, json.dumps({"model_name": "FAKE", "model_version": "V9"}).encode()
        rows = json.loads(body)["dataframe_split"]["data"]
        self.calls.append(len(rows))
        if any(REJECTED_VALUE in row for row in rows):
            return 400, b'{"detail": "column RX_TOTAL_FILLS of row 0 is not accepted"}'
        outputs = {"output_feature_0": 0.75, "output_feature_1": 0.25}
        return 200, json.dumps({"data": [[i, outputs] for i in range(len(rows))]}).encode()


@pytest.fixture
async def rejecting_gateway(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Any, RejectingModel]]:
    """A gateway in front of ``RejectingModel``; marked rows carry ``REJECTED_VALUE``."""
    model = RejectingModel()
    await model.start()
    built = await gateway_factory(make_settings(), model_url=model.url, breaker_failure_threshold=5)
    pipeline = built.app.state.pipeline
    pipeline.extractor = MarkingExtractor(pipeline.extractor, REJECTED_VALUE)
    yield built, model
    await model.stop()


async def test_rejected_row_never_opens_circuit(
    rejecting_gateway: tuple[Any, RejectingModel], smoke_pair: tuple[str, str]
) -> None:
    """Rejected requests fall back as model_request_rejected; the breaker does not count them."""
    gateway, model = rejecting_gateway

    marked = [
        (
            await gateway.client.post("/v1/predict", json=_item(f"R-{i}", smoke_pair, marked=True))
        ).json()
        for i in range(7)
    ]
    good = (
        await gateway.client.post("/v1/predict", json=_item("R-OK", smoke_pair, marked=False))
    ).json()

    assert ["model_request_rejected"] * 7 == [body["fallback_reason"] for body in marked]
    assert "REGISTRY_V9" == good["model_version"]
    assert [1] * 8 == model.calls


async def test_rejected_batch_split_keeps_good_rows(
    rejecting_gateway: tuple[Any, RejectingModel], smoke_pair: tuple[str, str]
) -> None:
    """In a rejected batch of 8, only the marked item falls back, after 1 + 2 * 3 calls."""
    gateway, model = rejecting_gateway
    items = [_item(f"S-{i}", smoke_pair, marked=i == 6) for i in range(8)]

    response = await gateway.client.post("/v1/predict/batch", json={"items": items})

    results = response.json()["results"]
    expected = ["REGISTRY_V9"] * 6 + ["RULE_BASED", "REGISTRY_V9"]
    assert expected == [r["model_version"] for r in results]
    assert "model_request_rejected" == results[6]["fallback_reason"]
    assert [8, 4, 4, 2, 2, 1, 1] == model.calls


async def test_rejected_request_spares_coalesced_requests(
    rejecting_gateway: tuple[Any, RejectingModel], smoke_pair: tuple[str, str]
) -> None:
    """Requests sharing a call with a rejected one still get the model's score."""
    gateway, model = rejecting_gateway
    items = [_item(f"K-{i}", smoke_pair, marked=i == 2) for i in range(10)]

    responses = await asyncio.gather(
        *(gateway.client.post("/v1/predict", json=item) for item in items)
    )

    versions = [response.json()["model_version"] for response in responses]
    # At least one call carried several requests, or the test proves nothing about coalescing.
    assert max(model.calls) > 1
    assert ["REGISTRY_V9"] * 2 + ["RULE_BASED"] + ["REGISTRY_V9"] * 7 == versions
