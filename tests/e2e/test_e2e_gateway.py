"""End to end over real processes: model server, gateway and persistence worker on 127.0.0.1."""

from __future__ import annotations

import codecs
import math
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_features import FEATURE_NAMES
from evidence_gateway.testing import Stack, script_path, start_gateway, start_model_server
from evidence_synthetic import generate_pairs

pytestmark = pytest.mark.slow

BATCH_HEADER = "sf-external-function-query-batch-id"


def _text(document: bytes) -> str:
    """Decode a generated document as a client holding text (or a VARCHAR column) would."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if document.startswith(bom):
            return document.decode(codec)
    declared = re.match(rb"\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)", document)
    return document.decode(declared.group(1).decode("ascii") if declared else "utf-8")


def _predict(url: str, policy: str, mib: str | None, rx: str | None) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/predict",
        json={"policy_number": policy, "mib_xml": mib, "rx_xml": rx},
        timeout=10.0,
    )


def test_smoke_inputs_scored_by_registry_model(
    stack: Stack, smoke_inputs: list[tuple[str, str | None, str | None]]
) -> None:
    """The three smoke inputs get REGISTRY_V2 scores in [0, 1] through both paths."""
    for policy, mib, rx in smoke_inputs:
        body = _predict(stack.gateway_url, policy, mib, rx).json()
        assert body["model_version"] == "REGISTRY_V2", policy
        assert 0.0 <= body["risk_score"] <= 1.0

    rows = [[i, policy, mib, rx] for i, (policy, mib, rx) in enumerate(smoke_inputs)]
    data = httpx.post(f"{stack.gateway_url}/functions/predict", json={"data": rows}).json()["data"]
    assert [row[0] for row in data] == [0, 1, 2]
    assert {"REGISTRY_V2"} == {row[1]["model_version"] for row in data}


def _batch_rows(count: int, bad_row: int) -> list[list[Any]]:
    pairs = generate_pairs(count, seed=2024)
    rows: list[list[Any]] = [
        [i, f"E2E-{i:04d}", _text(pair.mib_xml), _text(pair.rx_xml)] for i, pair in enumerate(pairs)
    ]
    rows[bad_row][3] = "<IntelRXResponse><DrugFill>"
    return rows


@pytest.fixture(scope="module")
def batch_answer(stack: Stack) -> tuple[list[list[Any]], dict[str, Any], float]:
    """A 200-row batch with one truncated Rx document, sent once with a batch id."""
    rows = _batch_rows(200, bad_row=57)
    started = time.perf_counter()
    response = httpx.post(
        f"{stack.gateway_url}/functions/predict",
        json={"data": rows},
        headers={BATCH_HEADER: "01e2e000-0000-0000:1:1:0:0"},
        timeout=30.0,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return rows, response.json(), elapsed


def test_batch_200_rows_one_bad(
    stack: Stack, batch_answer: tuple[list[list[Any]], dict[str, Any], float]
) -> None:
    """One call returns 200 rows in order; the bad row has an error and 199 rows are stored."""
    _, body, _ = batch_answer
    data = body["data"]

    assert list(range(200)) == [row[0] for row in data]
    assert data[57][1]["error_type"] == "malformed_document"
    scored = [row[1] for row in data if "error" not in row[1]]
    assert len(scored) == 199
    assert {"REGISTRY_V2"} == {answer["model_version"] for answer in scored}
    assert [f"E2E-{i:04d}" for i in range(200) if i != 57] == [
        answer["policy_number"] for answer in scored
    ]
    assert stack.wait_stored([answer["prediction_id"] for answer in scored]) == 199


def test_batch_registry_answers_carry_reasons(
    batch_answer: tuple[list[list[Any]], dict[str, Any], float],
) -> None:
    """Registry-scored rows carry reasons with known feature names and finite contributions."""
    _, body, _ = batch_answer
    scored = [row[1] for row in body["data"] if "error" not in row[1]]
    explained = [answer for answer in scored if answer["reasons"]]

    assert len(explained) >= len(scored) // 2
    for answer in explained:
        for reason in answer["reasons"]:
            assert reason["feature"] in FEATURE_NAMES
            assert math.isfinite(reason["contribution"])


def test_replayed_batch_stored_once(
    stack: Stack, batch_answer: tuple[list[list[Any]], dict[str, Any], float]
) -> None:
    """Replaying the batch with the same batch id gives the same ids and writes no new rows."""
    rows, first, _ = batch_answer
    ids = [row[1]["prediction_id"] for row in first["data"] if "error" not in row[1]]
    assert stack.wait_stored(ids) == 199
    total_before = stack.total_rows("ML_MODELS__MODEL_PREDICTIONS")

    replay = httpx.post(
        f"{stack.gateway_url}/functions/predict",
        json={"data": rows},
        headers={BATCH_HEADER: "01e2e000-0000-0000:1:1:0:0"},
        timeout=30.0,
    ).json()
    # Let the worker drain the replayed records before counting.
    deadline = time.monotonic() + 10.0
    while (
        httpx.get(f"{stack.gateway_url}/health/ready").json()["checks"]["queue"]["detail"]["depth"]
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)

    assert ids == [row[1]["prediction_id"] for row in replay["data"] if "error" not in row[1]]
    assert total_before == stack.total_rows("ML_MODELS__MODEL_PREDICTIONS")
    assert stack.stored_ids(ids) == 199


def test_json_api_4xx(stack: Stack) -> None:
    """Bad JSON API requests get 4xx with the documented error shape over real HTTP."""
    url = stack.gateway_url
    missing = httpx.post(f"{url}/v1/predict", json={"policy_number": "P-1", "mib_xml": "<r/>"})
    broken = _predict(url, "P-1", "<r/>", "<IntelRXResponse>")
    wrong_type = httpx.post(
        f"{url}/v1/predict", content=b"[]", headers={"content-type": "application/json"}
    )
    untyped = httpx.post(f"{url}/v1/predict", content=b"[]")
    unknown = httpx.get(f"{url}/v1/nothing")
    method = httpx.get(f"{url}/v1/predict")

    answers = (missing, broken, wrong_type, untyped, unknown, method)
    assert [r.status_code for r in answers] == [422, 422, 422, 415, 404, 405]
    for response in answers:
        assert {"type", "message", "document"} == set(response.json()["error"])


def test_body_limit_413_before_body_sent(stack: Stack) -> None:
    """A declared 100 MB body gets 413 after the headers alone; the body is never sent."""
    host, port = stack.gateway_url.removeprefix("http://").split(":")
    request = (
        "POST /v1/predict HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 104857600\r\n"
        "\r\n"
        '{"policy_number": "P-1", '
    ).encode()
    received = b""
    with socket.create_connection((host, int(port)), timeout=5.0) as sock:
        sock.sendall(request)
        # The server closes the connection after the 413, so read until EOF: the headers and
        # the body may arrive in separate segments.
        while chunk := sock.recv(4096):
            received += chunk
    answer = received.decode("latin-1")

    assert answer.startswith("HTTP/1.1 413")
    assert "GATEWAY_MAX_BODY_BYTES" in answer


def test_body_limit_413_chunked(stack: Stack) -> None:
    """A chunked body with no Content-Length is counted while streaming and cut at the limit."""

    def chunks() -> Iterator[bytes]:
        yield b'{"policy_number": "P-1", "mib_xml": "'
        for _ in range(40):
            yield b"x" * 1_000_000

    response = httpx.post(
        f"{stack.gateway_url}/v1/predict",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30.0,
    )

    assert response.status_code == 413


def test_openapi_document_valid(stack: Stack) -> None:
    """The OpenAPI document lists every route with its request examples."""
    document = httpx.get(f"{stack.gateway_url}/openapi.json").json()

    assert document["openapi"].startswith("3.")
    assert {
        "/v1/predict",
        "/v1/predict/batch",
        "/functions/predict",
        "/functions/health",
        "/health/live",
        "/health/ready",
        "/metrics",
    } <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert schemas["PredictionRequest"]["examples"]


def test_schemathesis_finds_no_server_error(stack: Stack, tmp_path: Path) -> None:
    """Schemathesis, with a small example budget per operation, gets no 5xx and valid bodies.

    Every status it receives must be one the OpenAPI document lists for that route.
    """
    import subprocess

    result = subprocess.run(
        [
            script_path("schemathesis"),
            "run",
            f"{stack.gateway_url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance,"
            "status_code_conformance",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--phases",
            "examples,coverage,fuzzing",
            "--generation-database",
            "none",
            "--workers",
            "2",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout[-4000:]


def test_model_server_stopped_falls_back(
    tmp_path: Path,
    trained_model_dir: Path,
    smoke_inputs: list[tuple[str, str | None, str | None]],
) -> None:
    """Stopping the model server turns REGISTRY_V2 scores into RULE_BASED ones."""
    model, model_url = start_model_server(tmp_path, trained_model_dir)
    gateway, gateway_url = start_gateway(tmp_path, model_url, trained_model_dir)
    try:
        before = [_predict(gateway_url, *smoke).json() for smoke in smoke_inputs]
        model.stop()
        after = [_predict(gateway_url, *smoke).json() for smoke in smoke_inputs]
        ready = httpx.get(f"{gateway_url}/health/ready")
    finally:
        gateway.stop()
        model.stop()

    assert [answer["model_version"] for answer in before] == ["REGISTRY_V2"] * 3
    assert [answer["model_version"] for answer in after] == ["RULE_BASED"] * 3
    assert all(0.0 <= answer["risk_score"] <= 1.0 for answer in after)
    assert all(answer["fallback_reason"] for answer in after)
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
