"""Each error status a route returns for a bad request is listed in the OpenAPI document."""

from __future__ import annotations

import gzip

import pytest

from .conftest import InProcessGateway

JSON = {"content-type": "application/json"}
GZIP = {**JSON, "content-encoding": "gzip"}
VALID_ITEM = b'{"policy_number": "OA-1", "mib_xml": null, "rx_xml": "<r/>"}'
# A fixed mtime keeps these bytes, and so the test ids, equal in every pytest-xdist worker.
BAD_GZIP = gzip.compress(VALID_ITEM, mtime=0)[:-12]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/v1/predict", BAD_GZIP, GZIP, 400),
        ("/v1/predict", b"{", JSON, 422),
        ("/v1/predict", VALID_ITEM, {"content-type": "text/plain"}, 415),
        ("/v1/predict/batch", BAD_GZIP, GZIP, 400),
        ("/functions/predict", b"{}", JSON, 422),
        ("/functions/predict", b"not json", JSON, 422),
        ("/functions/predict", BAD_GZIP, GZIP, 400),
        ("/functions/predict", b'{"data": [[{}]]}', JSON, 400),
        ("/functions/health", b"{}", JSON, 422),
        ("/functions/health", b'{"data": [[{}]]}', JSON, 400),
    ],
)
async def test_error_status_documented(
    gateway: InProcessGateway, path: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    """The status of a bad request is one the route documents, with its JSON error shape."""
    response = await gateway.client.post(path, content=body, headers=headers)
    document = await gateway.client.get("/openapi.json")

    assert response.status_code == status
    assert "error" in response.json()
    assert str(status) in document.json()["paths"][path]["post"]["responses"]


async def test_warning_message_documented_optional(gateway: InProcessGateway) -> None:
    """The warning schema lists an optional string message with an example."""
    document = (await gateway.client.get("/openapi.json")).json()
    warning = document["components"]["schemas"]["FeatureWarningOut"]

    assert "message" in warning["properties"]
    assert "message" not in warning.get("required", [])
    assert {"type": "string"} in warning["properties"]["message"]["anyOf"]
    assert warning["properties"]["message"]["examples"]
