"""Service-function envelopes: non-list rows, repeated row numbers and headers, a -0.0 score."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from evidence_gateway.config import Settings
from evidence_gateway.testing import start_gateway

from .fake_model_kit import FakeModelService
from .raw_http import read_until_closed

BATCH_HEADER = "sf-external-function-query-batch-id"
QUERY_HEADER = "sf-external-function-current-query-id"
QUERY_ID = "01b2c3d4-0000-1234-0000-00012345abcd"
CANARY = "Jane Canary"


@pytest.mark.parametrize("route", ["/functions/predict", "/functions/health"])
@pytest.mark.parametrize(
    ("data", "position", "kind"),
    [
        ([5], 0, "number"),
        ([1.5], 0, "number"),
        ([f"<MIB>{CANARY}</MIB>"], 0, "string"),
        ([{"name": CANARY}], 0, "object"),
        ([None], 0, "null"),
        ([True], 0, "boolean"),
        ([[0, "P-0", None, None], [1, "P-1", None, None], CANARY], 2, "string"),
    ],
    ids=["int", "float", "string", "object", "null", "bool", "third-of-three"],
)
async def test_functions_non_list_row_400(
    gateway: Any, route: str, data: list[Any], position: int, kind: str
) -> None:
    """A row that is not a list gets 400 invalid_envelope naming its index and JSON type only."""
    response = await gateway.client.post(route, json={"data": data})

    assert 400 == response.status_code, response.text
    error = response.json()["error"]
    assert "invalid_envelope" == error["type"]
    assert (
        f"data[{position}] is a JSON {kind}, not a row; send each row as a list that starts "
        "with its row number"
    ) == error["message"]
    assert CANARY not in response.text


@pytest.mark.parametrize("route", ["/functions/predict", "/functions/health"])
async def test_functions_non_list_data_still_422(gateway: Any, route: str) -> None:
    """A "data" value that is not a list is the body's shape: 422 validation_error."""
    response = await gateway.client.post(route, json={"data": {"rows": []}})

    assert 422 == response.status_code
    assert "validation_error" == response.json()["error"]["type"]


@pytest.mark.parametrize("route", ["/functions/predict", "/functions/health"])
@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        ([0, 0], "data[0] and data[1] both have row number 0"),
        ([4, 5, 6, 5], "data[1] and data[3] both have row number 5"),
        ([-7, 1, -7, 1], "data[0] and data[2] both have row number -7"),
        ([2**63 - 1, 2**63 - 1], f"data[0] and data[1] both have row number {2**63 - 1}"),
    ],
    ids=["first-two", "later-pair", "first-repeat-reported", "int64-max"],
)
async def test_functions_repeated_row_number_named(
    gateway: Any, route: str, numbers: list[int], message: str
) -> None:
    """A repeated row number gets 400 naming the number and both positions."""
    response = await gateway.client.post(
        route, json={"data": [[number, "P-0", None, None] for number in numbers]}
    )

    assert 400 == response.status_code, response.text
    error = response.json()["error"]
    assert "invalid_envelope" == error["type"]
    assert f"{message}; each row number must be unique in a batch" == error["message"]


# --- repeated headers, sent raw to a real gateway process --------------------------------------


@pytest.fixture(scope="module")
def gateway_port(model_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real ``evidence-gateway`` process, because HTTP clients merge a repeated header."""
    directory = tmp_path_factory.mktemp("gateway")
    server, url = start_gateway(directory, model_server_url, directory / "no-model")
    try:
        yield int(url.rsplit(":", 1)[1])
    finally:
        server.stop()


def post_raw(port: int, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, Any]:
    """Send one POST with ``headers`` as given, repeats included; return status and JSON body."""
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body)
        raw = read_until_closed(sock)
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, response_body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(response_body)


ROWS = json.dumps({"data": [[0, "HDR-0", None, "<IntelRXResponse/>"]]}).encode()


@pytest.mark.slow
@pytest.mark.parametrize("header", [BATCH_HEADER, QUERY_HEADER])
@pytest.mark.parametrize(
    "values",
    [
        [f"{QUERY_ID}:1", f"{QUERY_ID}:2"],
        [f"{QUERY_ID}:1", f"{QUERY_ID}:1", CANARY],
        ["", f"{QUERY_ID}:1"],
    ],
    ids=["two-values", "three-with-two-equal", "empty-and-value"],
)
def test_functions_ambiguous_header_400(gateway_port: int, header: str, values: list[str]) -> None:
    """Different values of one sf-external-function-* header get 400 naming only the header."""
    status, body = post_raw(
        gateway_port, "/functions/predict", [(header, value) for value in values], ROWS
    )

    assert 400 == status, body
    assert "invalid_envelope" == body["error"]["type"]
    assert body["error"]["message"].startswith(
        f"the {header} header occurs with {len(set(values))} different values; send it once"
    )
    assert QUERY_ID not in json.dumps(body)
    assert CANARY not in json.dumps(body)


@pytest.mark.slow
@pytest.mark.parametrize("copies", [0, 1, 2, 3])
def test_functions_identical_batch_ids_accepted(gateway_port: int, copies: int) -> None:
    """No batch id, one, or identical copies of it score; copies give the ids of one."""
    batch_id = f"{QUERY_ID}:9"
    headers = [(BATCH_HEADER, batch_id)] * copies + [(QUERY_HEADER, QUERY_ID)] * copies

    status, body = post_raw(gateway_port, "/functions/predict", headers, ROWS)

    assert 200 == status, body
    prediction_id = body["data"][0][1]["prediction_id"]
    if copies:
        _, once = post_raw(gateway_port, "/functions/predict", [(BATCH_HEADER, batch_id)], ROWS)
        assert once["data"][0][1]["prediction_id"] == prediction_id


# --- a model that returns -0.0 -------------------------------------------------------------------


class NegativeZeroModel(FakeModelService):
    """A fake model service on 127.0.0.1 whose positive-class probability is always -0.0."""

    def _answer(self, request_line: str, body: bytes) -> tuple[int, bytes]:
        if request_line.startswith("GET /health"):
            return 200, json.dumps({"model_name": "FAKE", "model_version": "V9"}).encode()
        rows = json.loads(body)["dataframe_split"]["data"]
        outputs = {"output_feature_0": 1.0, "output_feature_1": -0.0}
        return 200, json.dumps({"data": [[i, outputs] for i in range(len(rows))]}).encode()


@pytest.fixture
async def negative_zero_gateway(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> AsyncIterator[Any]:
    """A gateway in front of ``NegativeZeroModel``."""
    model = NegativeZeroModel()
    await model.start()
    yield await gateway_factory(make_settings(), model_url=model.url)
    await model.stop()


async def test_negative_zero_score_normalised(
    negative_zero_gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """A model probability of -0.0 is returned as 0.0 by both routes, one and many rows."""
    mib, rx = smoke_pair
    client = negative_zero_gateway.client
    single = await client.post(
        "/v1/predict", json={"policy_number": "Z-1", "mib_xml": mib, "rx_xml": rx}
    )
    batch = await client.post(
        "/functions/predict", json={"data": [[i, f"Z-{i}", mib, rx] for i in range(3)]}
    )

    assert 200 == single.status_code, single.text
    assert 200 == batch.status_code, batch.text
    scores = [single.json()["risk_score"]] + [row[1]["risk_score"] for row in batch.json()["data"]]
    assert [0.0] * 4 == scores
    assert all(math.copysign(1.0, score) == 1.0 for score in scores)
    assert "-0.0" not in single.text
    assert "-0.0" not in batch.text
    assert "REGISTRY_V9" == single.json()["model_version"]
