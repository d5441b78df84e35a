"""JSON decoding of request bodies and orjson responses."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from evidence_gateway import bodies
from evidence_gateway.bodies import decode_json
from evidence_gateway.responses import FastJSONResponse
from fastapi.responses import JSONResponse


def test_decode_json_plain_object() -> None:
    """Ordinary JSON decodes to what json.loads returns."""
    raw = b'{"policy_number": "P-1", "mib_xml": null, "rx_xml": "<r/>", "n": [1, 2.5, true]}'

    assert decode_json(raw) == json.loads(raw)


def test_decode_json_lone_surrogate_kept() -> None:
    """A \\ud800 escape, which orjson rejects, decodes as json.loads does."""
    decoded = decode_json(b'{"rx_xml": "<r a=\\"\\ud800\\"/>"}')

    assert decoded == {"rx_xml": '<r a="\ud800"/>'}


def test_decode_json_nan_accepted() -> None:
    """NaN, which orjson rejects, decodes as json.loads does."""
    decoded = decode_json(b'{"x": NaN}')

    assert decoded["x"] != decoded["x"]


def test_decode_json_invalid_utf8_raises() -> None:
    """A body that is not UTF-8 raises UnicodeDecodeError, as FastAPI's decoding does."""
    with pytest.raises(UnicodeDecodeError):
        decode_json(b'{"policy_number": "\xff\xfe"}')


def test_decode_json_truncated_raises() -> None:
    """Truncated JSON raises json.JSONDecodeError, which FastAPI turns into json_invalid."""
    with pytest.raises(json.JSONDecodeError):
        decode_json(b'{"policy_number": "P-1", "mib_xml": "<r')


async def test_large_body_decoded_in_thread(
    gateway: Any, smoke_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body of at least THREAD_DECODE_MIN_BYTES is decoded off the event loop thread."""
    threads: list[str] = []

    def recording_decode(body: bytes) -> Any:
        threads.append(threading.current_thread().name)
        return decode_json(body)

    monkeypatch.setattr(bodies, "THREAD_DECODE_MIN_BYTES", 100)
    monkeypatch.setattr(bodies, "decode_json", recording_decode)
    items = [{"policy_number": f"T-{i}", "mib_xml": smoke_pair[0], "rx_xml": smoke_pair[1]}
             for i in range(3)]  # fmt: skip

    response = await gateway.client.post("/v1/predict/batch", json={"items": items})

    assert response.status_code == 200
    assert response.json()["scored"] == 3
    assert len(threads) == 1
    assert threads[0] != threading.current_thread().name


async def test_small_body_decoded_inline(
    gateway: Any, smoke_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body under THREAD_DECODE_MIN_BYTES is decoded on the event loop thread."""
    threads: list[str] = []

    def recording_decode(body: bytes) -> Any:
        threads.append(threading.current_thread().name)
        return decode_json(body)

    monkeypatch.setattr(bodies, "decode_json", recording_decode)
    body = {"policy_number": "T-1", "mib_xml": smoke_pair[0], "rx_xml": smoke_pair[1]}

    response = await gateway.client.post("/v1/predict", json=body)

    assert response.status_code == 200
    assert threads == [threading.current_thread().name]


def test_fast_response_same_json_as_starlette() -> None:
    """orjson output decodes to the same value as Starlette's json.dumps output."""
    content = {
        "policy_number": "P-1",
        "risk_score": 0.123456789,
        "inference_ms": 1e-05,
        "fallback_reason": None,
        "reasons": [{"feature": "RX_COUNT", "value": 3.0, "contribution": -0.25}],
        "warnings": [],
        "text": "café \u2028",
    }

    fast = bytes(FastJSONResponse(content).body)
    standard = bytes(JSONResponse(content).body)

    assert json.loads(fast) == json.loads(standard)
    assert FastJSONResponse(content).headers["content-type"] == "application/json"
