"""The JSON API over the real app: predictions, limits, validation and persistence failures."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog.testing
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from evidence_gateway.config import Settings
from evidence_persistence import PredictionQueue

PREDICTION_KEYS = {
    "policy_number",
    "prediction_id",
    "risk_score",
    "risk_level",
    "model_version",
    "fallback_reason",
    "feature_spec_version",
    "reasons",
    "warnings",
    "inference_ms",
}


def _body(mib: str | None, rx: str | None, **extra: Any) -> dict[str, Any]:
    return {"policy_number": "TEST-001", "mib_xml": mib, "rx_xml": rx, **extra}


async def test_predict_smoke_pair_answers(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """The SQL smoke input gets a model score with every documented field."""
    response = await gateway.client.post("/v1/predict", json=_body(*smoke_pair))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == PREDICTION_KEYS
    assert body["policy_number"] == "TEST-001"
    assert 0.0 <= body["risk_score"] <= 1.0
    assert body["model_version"] == "REGISTRY_BUILTIN"
    assert body["fallback_reason"] is None
    assert body["feature_spec_version"] == FEATURE_SPEC_VERSION
    assert body["inference_ms"] > 0
    assert response.headers["x-request-id"]


async def test_predict_risk_level_matches_score(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """risk_level follows the documented cut-offs of risk_score."""
    body = (await gateway.client.post("/v1/predict", json=_body(*smoke_pair))).json()

    score = body["risk_score"]
    if score >= 0.7:
        expected = "HIGH"
    elif score >= 0.3:
        expected = "MEDIUM"
    else:
        expected = "LOW"
    assert expected == body["risk_level"]


async def test_predict_include_features_returns_105(
    gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """include_features adds all 105 values in spec order."""
    response = await gateway.client.post(
        "/v1/predict", json=_body(*smoke_pair, include_features=True)
    )

    features = response.json()["features"]
    assert list(FEATURE_NAMES) == list(features)


async def test_predict_null_documents_scored(gateway: Any) -> None:
    """An applicant with neither report is scored (no evidence is evidence too)."""
    response = await gateway.client.post("/v1/predict", json=_body(None, None))

    assert response.status_code == 200
    assert 0.0 <= response.json()["risk_score"] <= 1.0


async def test_predict_as_of_accepted(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """An explicit as_of date is accepted."""
    response = await gateway.client.post("/v1/predict", json=_body(*smoke_pair, as_of="2024-06-30"))

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        (0, "as_of must be a date string such as 2026-01-15, not a number"),
        (1_700_000_000, "as_of must be a date string such as 2026-01-15, not a number"),
        (True, "as_of must be a date string such as 2026-01-15, not a boolean"),
        (["2026-01-15"], "as_of must be a date string such as 2026-01-15, not a list"),
        ("0001-01-01", "as_of is before 1900-01-01"),
        ("1899-12-31", "as_of is before 1900-01-01"),
        ("9999-12-31", "as_of is after tomorrow"),
        ("2100-12-31", "as_of is after tomorrow"),
        ("2026-01-01T00:00:00+05:00", "as_of must be a date as YYYY-MM-DD"),
        ("2026-01-01 00:00", "as_of must be a date as YYYY-MM-DD"),
        ("2026-1-1", "as_of must be a date as YYYY-MM-DD"),
        ("", "as_of must be a date as YYYY-MM-DD"),
        ("2026-02-30", "as_of"),
    ],
)
async def test_predict_as_of_rejected(
    gateway: Any, smoke_pair: tuple[str, str], as_of: object, message: str
) -> None:
    """A number, a date-time, another date form or a date before 1900 or after tomorrow: 422."""
    response = await gateway.client.post("/v1/predict", json=_body(*smoke_pair, as_of=as_of))

    assert 422 == response.status_code
    assert message in response.text
    assert "as_of" in response.text
    # Validation errors never contain the submitted value.
    if isinstance(as_of, str) and as_of:
        assert as_of not in response.text


@pytest.mark.parametrize("value", ["yes", "on", 1, "1", "true", None])
async def test_predict_include_features_strict(
    gateway: Any, smoke_pair: tuple[str, str], value: object
) -> None:
    """include_features takes only JSON true or false, not text or numbers that look like them."""
    response = await gateway.client.post(
        "/v1/predict", json=_body(*smoke_pair, include_features=value)
    )

    assert 422 == response.status_code
    assert "include_features" in response.text


async def test_predict_as_of_range_edges(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """The first and last accepted dates both score, and the day after the last gets 422."""
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    for as_of in ("1900-01-01", tomorrow.isoformat()):
        response = await gateway.client.post("/v1/predict", json=_body(*smoke_pair, as_of=as_of))
        assert 200 == response.status_code, as_of

    late = (tomorrow + timedelta(days=1)).isoformat()
    response = await gateway.client.post("/v1/predict", json=_body(*smoke_pair, as_of=late))

    assert 422 == response.status_code
    assert f"as_of is after tomorrow ({tomorrow.isoformat()}, UTC)" in response.text


async def test_predict_malformed_rx_names_document(gateway: Any) -> None:
    """Broken Rx XML gets 422 naming the RX document, without echoing it."""
    applicant_text = "<IntelRXResponse><DrugFill>JANE-EXAMPLE-1970"
    response = await gateway.client.post("/v1/predict", json=_body("<r/>", applicant_text))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "malformed_document"
    assert error["document"] == "RX"
    assert "JANE-EXAMPLE" not in response.text


@pytest.mark.parametrize("field", ["mib_xml", "rx_xml"])
async def test_predict_lone_surrogate_rejected(gateway: Any, field: str) -> None:
    """A JSON escape that decodes to a lone surrogate gets 422 naming the field, not a 500."""
    body = _body("<r/>", "<r/>")
    body[field] = '<r a="\\ud800"/>'
    raw = json.dumps(body).replace("\\\\ud800", "\\ud800")

    response = await gateway.client.post(
        "/v1/predict", content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_document_encoding"
    assert field in error["message"]


async def test_predict_swapped_documents_rejected(gateway: Any) -> None:
    """An Rx report sent as the MIB document gets 422 naming MIB instead of a clean score."""
    response = await gateway.client.post(
        "/v1/predict", json=_body("<IntelRXResponse/>", "<MIBResponse/>")
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["document"] == "MIB"
    assert "swapped" in error["message"]


async def test_predict_doctype_rejected(gateway: Any) -> None:
    """A document declaring entities is rejected as hostile."""
    hostile = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]>'
        "<IntelRXResponse>&a;</IntelRXResponse>"
    )
    response = await gateway.client.post("/v1/predict", json=_body("<r/>", hostile))

    assert response.status_code == 422
    assert response.json()["error"]["type"] == "hostile_document"


async def test_predict_missing_field_does_not_echo(gateway: Any) -> None:
    """A missing rx_xml gets 422 with field paths only, never the submitted MIB."""
    mib = "<MIBResponse><Name>Jane Example</Name><DOB>01/01/1970</DOB></MIBResponse>"
    response = await gateway.client.post(
        "/v1/predict", json={"policy_number": "P-1", "mib_xml": mib}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["error"]["type"] == "validation_error"
    assert ["body", "rx_xml"] in [issue["loc"] for issue in body["details"]]
    assert "Jane Example" not in response.text
    assert all(set(issue) == {"type", "loc", "msg"} for issue in body["details"])


async def test_predict_xml_body_does_not_echo(gateway: Any) -> None:
    """An XML body sent as the request gets 415 without the XML in the response."""
    xml = "<MIBResponse><Name>Jane Example</Name></MIBResponse>"
    response = await gateway.client.post(
        "/v1/predict", content=xml, headers={"content-type": "application/xml"}
    )

    assert response.status_code == 415
    assert response.json()["error"]["type"] == "unsupported_media_type"
    assert "Jane Example" not in response.text


async def test_predict_truncated_json_rejected(gateway: Any) -> None:
    """Truncated JSON gets 422 json_invalid without the body."""
    response = await gateway.client.post(
        "/v1/predict",
        content=b'{"policy_number": "P-1", "mib_xml": "<Jane Example',
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["details"][0]["type"] == "json_invalid"
    assert "Jane Example" not in response.text


_KEY_CANARY_XML = "<IntelRXResponse><DrugGenericName>KEYCANARYDRUG</DrugGenericName>"


@pytest.mark.parametrize(
    ("route", "body", "expected_loc"),
    [
        ("/v1/predict", _body(None, None, **{_KEY_CANARY_XML: 1}), ["body", "<unknown key>"]),
        ("/v1/predict", _body(None, None, **{"Jane KEYCANARY": 1}), ["body", "<unknown key>"]),
        (
            "/v1/predict/batch",
            {"items": [_body(None, None, **{"DOB KEYCANARY 1970-01-01": 1})]},
            ["body", "items", 0, "<unknown key>"],
        ),
    ],
)
async def test_unknown_key_not_echoed_or_logged(
    gateway: Any, route: str, body: dict[str, Any], expected_loc: list[Any]
) -> None:
    """An unknown key may hold health data, so 422 and its log line name it only as unknown."""
    with structlog.testing.capture_logs() as logs:
        response = await gateway.client.post(route, json=body)

    assert 422 == response.status_code
    assert [expected_loc] == [issue["loc"] for issue in response.json()["details"]]
    assert "KEYCANARY" not in response.text
    assert [] == [line for line in logs if "KEYCANARY" in str(line)]
    rejected = [line for line in logs if line["event"] == "request rejected"]
    assert [".".join(map(str, expected_loc))] == rejected[0]["field_paths"]


async def test_predict_invalid_utf8_body_422(gateway: Any) -> None:
    """A body that is not UTF-8 gets the standard 422 body, not FastAPI's bare 400."""
    for route in ("/v1/predict", "/v1/predict/batch"):
        response = await gateway.client.post(
            route,
            content=b'{"policy_number": "Jane \xff\xfe Example"}',
            headers={"content-type": "application/json"},
        )

        assert response.status_code == 422, route
        body = response.json()
        assert body["error"]["type"] == "validation_error"
        assert "UTF-8" in body["error"]["message"]
        assert body["details"] == [
            {"type": "json_invalid", "loc": ["body"], "msg": body["error"]["message"]}
        ]
        assert "Jane" not in response.text


async def test_predict_deeply_nested_json_422(gateway: Any) -> None:
    """JSON nested past the decoder's recursion limit gets 422 validation_error."""
    depth = 100_000
    content = b'{"policy_number": ' + b"[" * depth + b"]" * depth + b"}"

    response = await gateway.client.post(
        "/v1/predict", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["type"] == "validation_error"
    assert "nested" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/predict", b'{"policy_number": ' + b"9" * 5000 + b"}"),
        ("/functions/predict", b'{"data": [[0, ' + b"9" * 5000 + b", null, null]]}"),
        ("/functions/predict", b'{"data": [[' + b"9" * 5000 + b', "P-1", null, null]]}'),
        ("/functions/health", b'{"data": [[' + b"9" * 5000 + b"]]}"),
    ],
)
async def test_predict_overlong_integer_422(gateway: Any, route: str, body: bytes) -> None:
    """An integer past Python's digit limit for int() gets 422 naming the limit, not a 500."""
    response = await gateway.client.post(
        route, content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "validation_error"
    assert "digits" in response.json()["error"]["message"]


async def test_predict_bad_policy_number_rejected(
    gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """A policy number with spaces or an empty one gets 422."""
    for policy in ("", "has space", "x" * 65):
        body = {**_body(*smoke_pair), "policy_number": policy}
        response = await gateway.client.post("/v1/predict", json=body)
        assert response.status_code == 422, policy


async def test_predict_unknown_field_rejected(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """An unexpected field is an error, not silently ignored."""
    response = await gateway.client.post("/v1/predict", json=_body(*smoke_pair, ssn="1"))

    assert response.status_code == 422


async def test_predict_document_too_large_413(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """A document above GATEWAY_MAX_DOCUMENT_BYTES gets 413 naming the setting."""
    gw = await gateway_factory(make_settings(max_document_bytes=1000))
    big_rx = "<IntelRXResponse>" + "x" * 1000 + "</IntelRXResponse>"

    response = await gw.client.post("/v1/predict", json=_body("<r/>", big_rx))

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["type"] == "document_too_large"
    assert error["document"] == "RX"
    assert "GATEWAY_MAX_DOCUMENT_BYTES=1000" in error["message"]


async def test_predict_multibyte_document_measured_in_bytes(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """The document limit counts UTF-8 bytes, not characters."""
    gw = await gateway_factory(make_settings(max_document_bytes=1000))
    # 400 characters of 3 bytes each: under the limit in characters, over it in bytes.
    rx = "<IntelRXResponse>" + "€" * 400 + "</IntelRXResponse>"

    response = await gw.client.post("/v1/predict", json=_body("<r/>", rx))

    assert response.status_code == 413


async def test_predict_body_over_limit_413(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """A body over GATEWAY_MAX_BODY_BYTES gets 413 with the limit in the message."""
    gw = await gateway_factory(make_settings(max_body_bytes=2000, max_document_bytes=1000))

    response = await gw.client.post("/v1/predict", json=_body("<r/>", "x" * 5000))

    assert response.status_code == 413
    assert "GATEWAY_MAX_BODY_BYTES=2000" in response.json()["error"]["message"]


async def test_batch_scores_good_items_and_reports_bad(
    gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """A batch keeps request order; the broken item gets an error entry, the rest are scored."""
    items = [
        {"policy_number": "B-0", "mib_xml": smoke_pair[0], "rx_xml": smoke_pair[1]},
        {"policy_number": "B-1", "mib_xml": "<r/>", "rx_xml": "not xml <"},
        {"policy_number": "B-2", "mib_xml": None, "rx_xml": "<IntelRXResponse/>"},
    ]

    response = await gateway.client.post("/v1/predict/batch", json={"items": items})

    assert response.status_code == 200
    body = response.json()
    assert (body["scored"], body["failed"]) == (2, 1)
    results = body["results"]
    assert [r["policy_number"] for r in results] == ["B-0", "B-1", "B-2"]
    assert results[1]["index"] == 1
    assert results[1]["error"]["document"] == "RX"
    assert "risk_score" in results[0]
    assert "risk_score" in results[2]


async def test_batch_missing_key_rejects_whole_batch(
    gateway: Any, smoke_pair: tuple[str, str], make_settings: Callable[..., Settings]
) -> None:
    """An item without rx_xml is a malformed request: 422 naming the item, nothing queued."""
    items = [
        {"policy_number": "M-0", "mib_xml": smoke_pair[0], "rx_xml": smoke_pair[1]},
        {"policy_number": "M-1", "mib_xml": smoke_pair[0]},
    ]

    response = await gateway.client.post("/v1/predict/batch", json={"items": items})

    assert response.status_code == 422
    body = response.json()
    assert body["error"]["type"] == "validation_error"
    assert [["body", "items", 1, "rx_xml"]] == [issue["loc"] for issue in body["details"]]
    assert PredictionQueue(make_settings().queue_path).depth() == 0


async def test_batch_over_row_limit_413(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """More items than GATEWAY_MAX_BATCH_ROWS get 413 before any scoring."""
    gw = await gateway_factory(make_settings(max_batch_rows=2))
    items = [{"policy_number": f"B-{i}", "mib_xml": None, "rx_xml": None} for i in range(3)]

    response = await gw.client.post("/v1/predict/batch", json={"items": items})

    assert response.status_code == 413
    assert response.json()["error"]["type"] == "batch_too_large"


async def test_batch_empty_rejected(gateway: Any) -> None:
    """An empty items list is invalid."""
    response = await gateway.client.post("/v1/predict/batch", json={"items": []})

    assert response.status_code == 422


async def test_predict_token_required_when_set(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
) -> None:
    """With GATEWAY_API_TOKEN set, /v1 needs the bearer token."""
    token = "s3cret-token"  # noqa: S105 - a test value, not a credential
    gw = await gateway_factory(make_settings(api_token=token))

    missing = await gw.client.post("/v1/predict", json=_body(*smoke_pair))
    wrong = await gw.client.post(
        "/v1/predict", json=_body(*smoke_pair), headers={"Authorization": "Bearer s3cret"}
    )
    right = await gw.client.post(
        "/v1/predict",
        json=_body(*smoke_pair),
        headers={"Authorization": "Bearer s3cret-token"},
    )

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200


async def test_predict_queue_full_503(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
) -> None:
    """When the queue append fails the caller gets 503 and no score."""
    settings = make_settings(queue_max_depth=1)
    gw = await gateway_factory(settings)
    first = await gw.client.post("/v1/predict", json=_body(*smoke_pair))

    second = await gw.client.post("/v1/predict", json=_body(*smoke_pair))

    assert first.status_code == 200
    assert second.status_code == 503
    assert second.json()["error"]["type"] == "persistence_unavailable"
    message = second.json()["error"]["message"]
    assert "could not be recorded in the durable queue (QueueFullError)" in message
    assert "nothing was scored" not in message
    assert "risk_score" not in second.text
    assert second.headers["retry-after"] == "1"
    assert PredictionQueue(settings.queue_path).depth() == 1


async def test_full_queue_is_named_in_health(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
) -> None:
    """A queue at its depth limit names QueueFullError in readiness and FN_HEALTH.

    No append has failed yet, so the reason comes from the depth check alone.
    """
    gw = await gateway_factory(make_settings(queue_max_depth=1))
    before = await gw.client.get("/health/ready")
    assert "error" not in before.json()["checks"]["queue"]["detail"]

    filled = await gw.client.post("/v1/predict", json=_body(*smoke_pair))
    ready = await gw.client.get("/health/ready")
    health = await gw.client.post("/functions/health", json={"data": [[0]]})

    assert filled.status_code == 200
    assert ready.status_code == 503
    queue = ready.json()["checks"]["queue"]
    assert queue["ok"] is False
    assert queue["detail"] == {"depth": 1, "max_depth": 1, "error": "QueueFullError"}
    summary = health.json()["data"][0][1]
    assert summary["checks"]["queue"] is False
    assert summary["errors"]["queue"] == "QueueFullError"


def _kill_pool_processes(gw: Any) -> None:
    pool = gw.app.state.pipeline.extractor._pool.current
    processes = list(pool._processes.values())
    assert processes
    for process in processes:
        os.kill(process.pid, signal.SIGKILL)
    for process in processes:
        process.join(timeout=10)


def _exiting_pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=os._exit,
        initargs=(3,),
    )


@pytest.fixture
async def pool_gateway(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> tuple[Any, Settings]:
    """A gateway that extracts every request on a process pool, with its settings."""
    settings = make_settings(extraction_executor="process", inline_extraction_max_bytes=0)
    return await gateway_factory(settings), settings


async def test_predict_after_pool_crash(
    pool_gateway: tuple[Any, Settings], smoke_pair: tuple[str, str]
) -> None:
    """After the extraction processes die, the next request is scored on a fresh pool."""
    gw, settings = pool_gateway
    _kill_pool_processes(gw)

    response = await gw.client.post("/v1/predict", json=_body(*smoke_pair))

    assert response.status_code == 200
    assert response.json()["model_version"].startswith("REGISTRY_")
    assert PredictionQueue(settings.queue_path).depth() == 1


async def test_predict_pool_broken_twice_503(
    pool_gateway: tuple[Any, Settings], smoke_pair: tuple[str, str]
) -> None:
    """When the replacement pool dies too, the caller gets 503 and nothing is queued."""
    gw, settings = pool_gateway
    gw.app.state.pipeline.extractor._pool._factory = _exiting_pool
    _kill_pool_processes(gw)

    response = await gw.client.post("/v1/predict", json=_body(*smoke_pair))

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "extraction_unavailable"
    assert "retry the request" in response.json()["error"]["message"]
    assert response.headers["retry-after"] == "1"
    assert PredictionQueue(settings.queue_path).depth() == 0


async def test_predict_appends_before_answer(
    gateway: Any, make_settings: Callable[..., Settings], smoke_pair: tuple[str, str]
) -> None:
    """Each returned prediction is already in the queue when the response arrives."""
    queue = PredictionQueue(make_settings().queue_path)

    for expected_depth in (1, 2, 3):
        response = await gateway.client.post("/v1/predict", json=_body(*smoke_pair))
        assert response.status_code == 200
        assert expected_depth == queue.depth()


async def test_predict_model_down_falls_back(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
) -> None:
    """With no model server listening, the rule-based fallback scores the request."""
    from evidence_gateway.testing import free_port

    gw = await gateway_factory(make_settings(), model_url=f"http://127.0.0.1:{free_port()}")

    response = await gw.client.post("/v1/predict", json=_body(*smoke_pair))

    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "RULE_BASED"
    assert body["fallback_reason"]
    assert 0.0 <= body["risk_score"] <= 1.0


async def test_unknown_route_404_json(gateway: Any) -> None:
    """An unknown path gets the JSON error shape."""
    response: httpx.Response = await gateway.client.get("/v2/predict")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _capture_merged_logs() -> Any:
    """Capture log entries with the bound context variables, as the JSON renderer receives them."""
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])


@pytest.mark.parametrize(
    "supplied",
    ["0f8fad5b-d9cb-469f-a165-70867728950e", "4BF92F3577B34DA6", _TRACE_ID],
)
async def test_request_id_id_shaped_kept(gateway: Any, supplied: str) -> None:
    """A UUID or 16 to 64 hex digits is kept as the request id and echoed."""
    with _capture_merged_logs() as logs:
        response = await gateway.client.get("/v1/nothing", headers={"x-request-id": supplied})

    assert supplied == response.headers["x-request-id"]
    assert [supplied] == [line["request_id"] for line in logs if "request_id" in line]


@pytest.mark.parametrize(
    "supplied", ["Jane.Doe", "req-500-test", "POL-0001", "abc", "0" * 65, "4bf92f35-77b3"]
)
async def test_request_id_free_text_replaced(gateway: Any, supplied: str) -> None:
    """Any other value gets a new UUID in the log and the response, and is not logged."""
    with _capture_merged_logs() as logs:
        response = await gateway.client.get("/v1/nothing", headers={"x-request-id": supplied})

    echoed = response.headers["x-request-id"]
    assert supplied != echoed
    assert str(uuid.UUID(echoed)) == echoed
    assert [echoed] == [line["request_id"] for line in logs if "request_id" in line]
    assert [] == [line for line in logs if supplied in str(line)]


async def test_unexpected_error_500_logs_request_id(gateway: Any) -> None:
    """A bug returns 500 without details, and its log line carries the request id."""

    async def broken() -> None:
        raise RuntimeError("boom")

    gateway.app.add_api_route("/test-broken", broken, methods=["GET"])
    transport = httpx.ASGITransport(app=gateway.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        with structlog.testing.capture_logs() as logs:
            response = await client.get("/test-broken", headers={"x-request-id": _TRACE_ID})

    assert response.status_code == 500
    assert response.json()["error"]["type"] == "internal_error"
    assert response.headers["connection"] == "close"
    failures = [line for line in logs if line["event"] == "request failed"]
    assert len(failures) == 1
    assert failures[0]["request_id"] == _TRACE_ID
    assert failures[0]["exception_type"] == "RuntimeError"
