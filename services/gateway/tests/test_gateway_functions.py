"""The Snowflake service-function endpoints over the real app."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import structlog.testing
from evidence_features import FEATURE_SPEC_HASH
from evidence_gateway.config import Settings
from evidence_gateway.ids import service_function_prediction_id
from evidence_persistence import PredictionQueue

BATCH_HEADER = "sf-external-function-query-batch-id"


async def test_functions_rows_answered_in_order(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """Every input row gets exactly one output row with its own row number, in input order."""
    mib, rx = smoke_pair
    rows = [
        [0, "P-0", mib, rx],
        [1, "P-1", None, "<IntelRXResponse/>"],
        [2, "P-2", "<r/>", "not xml <"],
        [3, None, mib, rx],
        [4, "P-4", 17, rx],
        [5, "P-5", mib],
    ]

    response = await gateway.client.post("/functions/predict", json={"data": rows})

    assert response.status_code == 200
    data = response.json()["data"]
    assert [row[0] for row in data] == [0, 1, 2, 3, 4, 5]
    assert 0.0 <= data[0][1]["risk_score"] <= 1.0
    assert data[1][1]["policy_number"] == "P-1"
    assert data[2][1]["error_type"] == "malformed_document"
    assert data[2][1]["document"] == "RX"
    assert data[3][1]["error_type"] == "missing_policy_number"
    assert data[4][1]["error_type"] == "invalid_arguments"
    assert "mib_xml" in data[4][1]["error"]
    assert data[5][1]["error_type"] == "invalid_arguments"


async def test_functions_row_numbers_not_positions(
    gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """Row numbers that are not 0..n-1 are echoed as sent."""
    rows = [[7, "P-7", *smoke_pair], [3, "P-3", *smoke_pair]]

    data = (await gateway.client.post("/functions/predict", json={"data": rows})).json()["data"]

    assert [row[0] for row in data] == [7, 3]
    assert [row[1]["policy_number"] for row in data] == ["P-7", "P-3"]


async def test_functions_batch_id_gives_deterministic_ids(
    gateway: Any, smoke_pair: tuple[str, str], make_settings: Callable[..., Settings]
) -> None:
    """With the batch-id header, prediction ids derive from batch id, row number and content."""
    rows = [[0, "P-0", *smoke_pair], [1, "P-1", *smoke_pair]]
    headers = {BATCH_HEADER: "01b2c3d4-0000:1:1:0:0"}

    first = await gateway.client.post("/functions/predict", json={"data": rows}, headers=headers)
    replay = await gateway.client.post("/functions/predict", json={"data": rows}, headers=headers)

    ids = [row[1]["prediction_id"] for row in first.json()["data"]]
    assert [
        service_function_prediction_id("01b2c3d4-0000:1:1:0:0", 0, rows[0][1:]),
        service_function_prediction_id("01b2c3d4-0000:1:1:0:0", 1, rows[1][1:]),
    ] == ids
    assert ids == [row[1]["prediction_id"] for row in replay.json()["data"]]
    scores = [row[1]["risk_score"] for row in first.json()["data"]]
    assert scores == [row[1]["risk_score"] for row in replay.json()["data"]]


async def test_functions_without_batch_id_random_ids(
    gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """Without the header each call gets fresh ids."""
    rows = [[0, "P-0", *smoke_pair]]

    first = await gateway.client.post("/functions/predict", json={"data": rows})
    second = await gateway.client.post("/functions/predict", json={"data": rows})

    assert (
        first.json()["data"][0][1]["prediction_id"] != second.json()["data"][0][1]["prediction_id"]
    )


async def test_functions_only_scored_rows_queued(
    gateway: Any, smoke_pair: tuple[str, str], make_settings: Callable[..., Settings]
) -> None:
    """Rows that fail are not queued; scored rows are queued before the response."""
    rows = [[0, "P-0", *smoke_pair], [1, "P-1", "<r/>", "<broken"], [2, "P-2", None, None]]

    await gateway.client.post("/functions/predict", json={"data": rows})

    assert PredictionQueue(make_settings().queue_path).depth() == 2


async def test_functions_empty_batch(gateway: Any) -> None:
    """An empty batch gets an empty response."""
    response = await gateway.client.post("/functions/predict", json={"data": []})

    assert response.status_code == 200
    assert response.json() == {"data": []}


NOT_ROW_NUMBERS = [True, False, 1.0, 0.0, "0", None, [0], {"row": 0}]


@pytest.mark.parametrize("number", NOT_ROW_NUMBERS, ids=repr)
@pytest.mark.parametrize("route", ["/functions/predict", "/functions/health"])
async def test_functions_bad_row_number_400(gateway: Any, route: str, number: object) -> None:
    """A row number that is not a JSON integer is a 400 naming the row, never echoed."""
    rows = [[0, "P-0", None, None], [number, "P-1", None, None]]

    response = await gateway.client.post(route, json={"data": rows})

    assert 400 == response.status_code, response.text
    error = response.json()["error"]
    assert "invalid_envelope" == error["type"]
    assert "data[1] does not start with an integer row number" == error["message"]


@pytest.mark.parametrize("route", ["/functions/predict", "/functions/health"])
async def test_functions_empty_row_400(gateway: Any, route: str) -> None:
    """A row with no elements has no row number: 400."""
    response = await gateway.client.post(route, json={"data": [[]]})

    assert 400 == response.status_code, response.text
    assert "invalid_envelope" == response.json()["error"]["type"]


async def test_functions_bad_row_number_not_queued(
    gateway: Any, smoke_pair: tuple[str, str], make_settings: Callable[..., Settings]
) -> None:
    """A predict batch rejected for a boolean row number scores and queues nothing."""
    rows = [[0, "P-0", *smoke_pair], [True, "P-1", *smoke_pair]]

    response = await gateway.client.post("/functions/predict", json={"data": rows})

    assert 400 == response.status_code
    assert 0 == PredictionQueue(make_settings().queue_path).depth()


async def test_functions_health_duplicate_row_numbers_400(gateway: Any) -> None:
    """FN_HEALTH rejects a repeated row number as FN_API_PREDICT does."""
    response = await gateway.client.post("/functions/health", json={"data": [[3], [3]]})

    assert 400 == response.status_code
    assert "data[0] and data[1] both have row number 3" in response.json()["error"]["message"]


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1])
async def test_functions_health_row_number_beyond_int64(gateway: Any, number: int) -> None:
    """FN_HEALTH rejects a row number outside the signed 64-bit range with 400."""
    response = await gateway.client.post("/functions/health", json={"data": [[number]]})

    assert 400 == response.status_code
    assert "data[0][0] is outside the signed 64-bit range" in response.text


async def test_functions_health_echoes_row_numbers(gateway: Any) -> None:
    """FN_HEALTH echoes the row numbers as sent, in input order."""
    response = await gateway.client.post(
        "/functions/health", json={"data": [[7], [2**63 - 1], [-1]]}
    )

    assert 200 == response.status_code
    assert [7, 2**63 - 1, -1] == [row[0] for row in response.json()["data"]]


async def test_functions_duplicate_row_numbers_400(gateway: Any) -> None:
    """Two rows with the same row number get 400."""
    rows = [[0, "P-0", None, None], [0, "P-1", None, None]]

    response = await gateway.client.post("/functions/predict", json={"data": rows})

    assert response.status_code == 400


async def test_functions_over_row_limit_413(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """A batch above GATEWAY_MAX_BATCH_ROWS is rejected early with 413."""
    gw = await gateway_factory(make_settings(max_batch_rows=3))
    rows = [[i, f"P-{i}", None, None] for i in range(4)]

    response = await gw.client.post("/functions/predict", json={"data": rows})

    assert response.status_code == 413


async def test_functions_health_over_row_limit_413(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """FN_HEALTH takes at most GATEWAY_MAX_BATCH_ROWS rows; 3 pass and 4 get 413."""
    gw = await gateway_factory(make_settings(max_batch_rows=3))

    at_limit = await gw.client.post("/functions/health", json={"data": [[0], [1], [2]]})
    over = await gw.client.post("/functions/health", json={"data": [[0], [1], [2], [3]]})

    assert 200 == at_limit.status_code
    assert [0, 1, 2] == [row[0] for row in at_limit.json()["data"]]
    assert 413 == over.status_code
    assert "GATEWAY_MAX_BATCH_ROWS" in over.json()["error"]["message"]


async def test_functions_health_answers_each_row(gateway: Any) -> None:
    """FN_HEALTH gets one healthy status object per row."""
    response = await gateway.client.post("/functions/health", json={"data": [[0], [1]]})

    data = response.json()["data"]
    assert [row[0] for row in data] == [0, 1]
    assert data[0][1]["status"] == "healthy"
    assert data[0][1]["checks"] == {
        "queue": True,
        "feature_spec": True,
        "model_info": True,
        "model": True,
    }
    assert data[0][1]["errors"] == {}
    assert data[0][1]["feature_spec_hash"] == FEATURE_SPEC_HASH
    assert data[0][1]["model_feature_spec_hash"] == FEATURE_SPEC_HASH


async def test_functions_invalid_envelope_422(gateway: Any) -> None:
    """A body that is not {"data": [[...], ...]} gets 422 with paths only, never the values."""
    cases = [
        b'{"data": [[0, "P-0", "<MIB>Jane Example</MIB>"',
        b'{"rows": [[0, "P-0", "<MIB>Jane Example</MIB>", null]]}',
        b'{"data": "<MIB>Jane Example</MIB>"}',
    ]
    for content in cases:
        response = await gateway.client.post(
            "/functions/predict", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, content
        assert response.json()["error"]["type"] == "validation_error"
        assert "Jane Example" not in response.text


async def test_functions_policy_number_rule(gateway: Any) -> None:
    """Over-long policy numbers and invisible characters fail their row; SQL text is data."""
    policies = [
        "P-" + "9" * 62,  # 64 characters: the maximum
        "P-" + "9" * 63,  # 65 characters
        "P-\r\n1",
        "P-\u0000",
        "P-\u202e1",  # right-to-left override
        "P-\u2028",  # line separator
        "P-1'; DROP TABLE x; --",
    ]
    rows = [[i, policy, None, None] for i, policy in enumerate(policies)]

    response = await gateway.client.post("/functions/predict", json={"data": rows})

    assert response.status_code == 200
    values = [row[1] for row in response.json()["data"]]
    assert values[0]["policy_number"] == policies[0]
    assert values[-1]["policy_number"] == policies[-1]
    for value in values[1:-1]:
        assert value["error_type"] == "invalid_policy_number", value
        assert value["error"].startswith("policy_number "), value
    assert "65 characters; at most 64" in values[1]["error"]
    assert "U+000D" in values[2]["error"]
    assert "U+0000" in values[3]["error"]
    assert "U+202E" in values[4]["error"]
    assert "U+2028" in values[5]["error"]


async def test_functions_blank_policy_number_fails_row(gateway: Any) -> None:
    """A whitespace-only policy number fails its own row; the row beside it is scored."""
    rows = [[0, "   ", None, None], [1, "P-1", None, None]]

    response = await gateway.client.post("/functions/predict", json={"data": rows})

    assert response.status_code == 200
    values = [row[1] for row in response.json()["data"]]
    assert values[0]["error_type"] == "missing_policy_number"
    assert values[1]["policy_number"] == "P-1"


async def test_functions_batch_id_reused_for_other_content(
    gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """A batch id sent again with other rows gets new ids, so nothing acknowledged is replaced."""
    headers = {BATCH_HEADER: "01b2c3d4-0000:1:1:0:7"}
    first = await gateway.client.post(
        "/functions/predict", json={"data": [[0, "P-FIRST", *smoke_pair]]}, headers=headers
    )
    second = await gateway.client.post(
        "/functions/predict", json={"data": [[0, "P-SECOND", *smoke_pair]]}, headers=headers
    )

    first_id = first.json()["data"][0][1]["prediction_id"]
    second_id = second.json()["data"][0][1]["prediction_id"]
    assert first_id != second_id


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 10**30])
async def test_functions_row_number_beyond_int64(
    gateway: Any, smoke_pair: tuple[str, str], number: int
) -> None:
    """A row number outside the signed 64-bit range is a 400 naming it, and nothing is scored."""
    response = await gateway.client.post(
        "/functions/predict", json={"data": [[number, "P-0", *smoke_pair]]}
    )

    assert 400 == response.status_code
    assert "data[0][0] is outside the signed 64-bit range" in response.text


async def test_functions_row_number_int64_edges(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """The extreme signed 64-bit row numbers are accepted and echoed."""
    rows = [[2**63 - 1, "P-0", *smoke_pair], [-(2**63), "P-1", *smoke_pair]]
    response = await gateway.client.post("/functions/predict", json={"data": rows})

    assert 200 == response.status_code
    assert [2**63 - 1, -(2**63)] == [row[0] for row in response.json()["data"]]


def _with_lone_surrogate(rows: list[list[Any]]) -> bytes:
    """Encode ``rows`` as a batch body, turning each LONE marker into a \\ud800 JSON escape."""
    return json.dumps({"data": rows}).replace("LONE", "\\ud800").encode("ascii")


async def test_functions_lone_surrogate_fails_own_row(
    gateway: Any, smoke_pair: tuple[str, str], make_settings: Callable[..., Settings]
) -> None:
    """A lone surrogate fails only its row, naming the column; the other rows are scored."""
    mib, rx = smoke_pair
    rows = [
        [0, "P-0", mib, rx],
        [1, "P-1", mib, '<IntelRXResponse a="LONE"/>'],
        [2, "P-2", "<MIBResponse>LONE</MIBResponse>", rx],
        [3, "P-LONE", mib, rx],
        [4, "P-4", mib, rx],
    ]

    with structlog.testing.capture_logs() as logs:
        response = await gateway.client.post(
            "/functions/predict",
            content=_with_lone_surrogate(rows),
            headers={"content-type": "application/json"},
        )

    assert 200 == response.status_code, response.text
    data = response.json()["data"]
    assert [0, 1, 2, 3, 4] == [row[0] for row in data]
    values = [row[1] for row in data]
    assert 0.0 <= values[0]["risk_score"] <= 1.0
    assert 0.0 <= values[4]["risk_score"] <= 1.0
    assert "invalid_document_encoding" == values[1]["error_type"]
    assert "RX" == values[1]["document"]
    assert values[1]["error"].startswith("rx_xml contains a lone UTF-16 surrogate")
    assert "invalid_document_encoding" == values[2]["error_type"]
    assert "MIB" == values[2]["document"]
    assert values[2]["error"].startswith("mib_xml contains a lone UTF-16 surrogate")
    assert "invalid_policy_number" == values[3]["error_type"]
    assert values[3]["error"].startswith("policy_number contains a lone UTF-16 surrogate U+D800")
    assert 2 == PredictionQueue(make_settings().queue_path).depth()
    assert [] == [line for line in logs if line["log_level"] == "error"]


async def test_functions_lone_surrogate_batch_id_rows(
    gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """With a batch id, a lone-surrogate row still fails alone and the others get stable ids."""
    mib, rx = smoke_pair
    rows = [[0, "P-0", mib, rx], [1, "P-1", "LONE", rx]]
    headers = {"content-type": "application/json", BATCH_HEADER: "01b2c3d4-0000:1:1:0:9"}

    response = await gateway.client.post(
        "/functions/predict", content=_with_lone_surrogate(rows), headers=headers
    )

    assert 200 == response.status_code, response.text
    data = response.json()["data"]
    expected_id = service_function_prediction_id("01b2c3d4-0000:1:1:0:9", 0, rows[0][1:])
    assert expected_id == data[0][1]["prediction_id"]
    assert "invalid_document_encoding" == data[1][1]["error_type"]


@pytest.mark.parametrize("with_batch_id", [False, True])
@pytest.mark.parametrize("depth", [1, 10, 1_000])
async def test_functions_nested_argument_fails_own_row(
    gateway: Any, with_batch_id: bool, depth: int
) -> None:
    """An argument nested deep as a JSON array fails its row; the other row is still scored."""
    nested = "[" * depth + "]" * depth
    body = '{"data": [[0, "P-DEEP", ' + nested + ', null], [1, "P-OK", null, "<r/>"]]}'
    headers = {"content-type": "application/json"}
    if with_batch_id:
        headers[BATCH_HEADER] = f"batch-nested-{depth}"

    response = await gateway.client.post("/functions/predict", content=body, headers=headers)

    assert response.status_code == 200, response.text
    first, second = response.json()["data"]
    assert first[0] == 0
    assert first[1]["error_type"] == "invalid_arguments"
    assert "mib_xml is a JSON list" in first[1]["error"]
    assert second[0] == 1
    assert 0.0 <= second[1]["risk_score"] <= 1.0
