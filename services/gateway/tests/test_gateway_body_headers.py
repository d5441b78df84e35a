"""Content-Type, Content-Encoding and byte order marks, the same on /v1 and /functions."""

from __future__ import annotations

import codecs
import gzip
import json
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing
from evidence_gateway.body_encoding import decompress_gzip
from evidence_gateway.config import Settings
from evidence_gateway.limits import BodyTooLargeError
from evidence_gateway.testing import start_gateway
from starlette.exceptions import HTTPException

# Text that imitates health data. No response or log line may contain it.
CANARY = "Jane Canary 1970-01-01"
CANARY_MIB = f"<MIBResponse><Name>{CANARY}</Name></MIBResponse>"

ROUTES = ["/v1/predict", "/v1/predict/batch", "/functions/predict", "/functions/health"]


def _json_body(route: str, smoke_pair: tuple[str, str]) -> bytes:
    """A valid JSON body for ``route``."""
    mib, rx = smoke_pair
    item = {"policy_number": "HDR-1", "mib_xml": mib, "rx_xml": rx}
    bodies: dict[str, Any] = {
        "/v1/predict": item,
        "/v1/predict/batch": {"items": [item]},
        "/functions/predict": {"data": [[0, "HDR-1", mib, rx]]},
        "/functions/health": {"data": [[0]]},
    }
    return json.dumps(bodies[route]).encode("utf-8")


def _assert_answered(route: str, body: dict[str, Any]) -> None:
    """Check that ``body`` is a successful response of ``route``."""
    if route == "/v1/predict":
        assert 0.0 <= body["risk_score"] <= 1.0
    elif route == "/v1/predict/batch":
        assert body["scored"] == 1
    elif route == "/functions/predict":
        assert 0.0 <= body["data"][0][1]["risk_score"] <= 1.0
    else:
        assert body["data"][0][1]["status"] == "healthy"


def _gzip_bomb(decompressed_bytes: int) -> bytes:
    """Gzip ``decompressed_bytes`` zero bytes without holding them in memory at once."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1_000_000)
    parts = [compressor.compress(chunk) for _ in range(decompressed_bytes // len(chunk))]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.mark.parametrize("route", ROUTES)
async def test_body_utf8_bom_ignored(gateway: Any, smoke_pair: tuple[str, str], route: str) -> None:
    """A UTF-8 byte order mark before the JSON text is ignored, as RFC 8259 allows."""
    content = codecs.BOM_UTF8 + _json_body(route, smoke_pair)

    response = await gateway.client.post(
        route, content=content, headers={"content-type": "application/json"}
    )

    assert 200 == response.status_code, response.text
    _assert_answered(route, response.json())


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
async def test_body_not_utf8_rejected(
    gateway: Any, smoke_pair: tuple[str, str], route: str, codec: str
) -> None:
    """JSON in UTF-16 or UTF-32 gets 422 on every route, because RFC 8259 requires UTF-8."""
    content = _json_body(route, smoke_pair).decode("utf-8").encode(codec)

    response = await gateway.client.post(
        route, content=content, headers={"content-type": "application/json"}
    )

    assert 422 == response.status_code, response.text
    assert "validation_error" == response.json()["error"]["type"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data",
        "json",
    ],
)
async def test_body_non_json_type_415(
    gateway: Any, smoke_pair: tuple[str, str], route: str, content_type: str
) -> None:
    """A body declared as another media type gets 415 naming Content-Type, even if it is JSON."""
    response = await gateway.client.post(
        route, content=_json_body(route, smoke_pair), headers={"content-type": content_type}
    )

    assert 415 == response.status_code, response.text
    error = response.json()["error"]
    assert "unsupported_media_type" == error["type"]
    assert f"Content-Type {content_type} is not supported" in error["message"]
    assert "application/json" in error["message"]


@pytest.mark.parametrize("route", ROUTES)
async def test_body_missing_type_415(gateway: Any, smoke_pair: tuple[str, str], route: str) -> None:
    """A body without Content-Type gets 415, because browsers send those without preflight."""
    response = await gateway.client.post(route, content=_json_body(route, smoke_pair))

    assert 415 == response.status_code, response.text
    assert "Content-Type is missing" in response.json()["error"]["message"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON; charset=UTF-8", "application/ld+json"],
)
async def test_body_json_type_variants_accepted(
    gateway: Any, smoke_pair: tuple[str, str], route: str, content_type: str
) -> None:
    """application/json in any letter case, with charset=utf-8, and +json types are JSON."""
    response = await gateway.client.post(
        route, content=_json_body(route, smoke_pair), headers={"content-type": content_type}
    )

    assert 200 == response.status_code, response.text
    _assert_answered(route, response.json())


@pytest.mark.parametrize("route", ROUTES)
async def test_body_other_charset_415(
    gateway: Any, smoke_pair: tuple[str, str], route: str
) -> None:
    """application/json with a charset other than UTF-8 gets 415 naming the charset."""
    response = await gateway.client.post(
        route,
        content=_json_body(route, smoke_pair),
        headers={"content-type": "application/json; charset=utf-16"},
    )

    assert 415 == response.status_code, response.text
    assert "charset utf-16 is not supported" in response.json()["error"]["message"]


@pytest.mark.parametrize("route", ROUTES)
async def test_body_xml_415_without_echo(gateway: Any, route: str) -> None:
    """An XML body gets 415, and neither the response nor any log line contains it."""
    with structlog.testing.capture_logs() as logs:
        response = await gateway.client.post(
            route, content=CANARY_MIB, headers={"content-type": "application/xml"}
        )

    assert 415 == response.status_code, response.text
    assert CANARY not in response.text
    assert [] == [line for line in logs if CANARY in json.dumps(line, default=str)]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZip"])
async def test_body_gzip_decoded(
    gateway: Any, smoke_pair: tuple[str, str], route: str, encoding: str
) -> None:
    """A gzip-compressed body is decompressed and gets the response the plain body gets."""
    content = gzip.compress(_json_body(route, smoke_pair))

    response = await gateway.client.post(
        route,
        content=content,
        headers={"content-type": "application/json", "content-encoding": encoding},
    )

    assert 200 == response.status_code, response.text
    _assert_answered(route, response.json())


@pytest.mark.parametrize("route", ROUTES)
async def test_body_gzip_with_bom_accepted(
    gateway: Any, smoke_pair: tuple[str, str], route: str
) -> None:
    """The byte order mark rule applies to the decompressed body."""
    content = gzip.compress(codecs.BOM_UTF8 + _json_body(route, smoke_pair))

    response = await gateway.client.post(
        route,
        content=content,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )

    assert 200 == response.status_code, response.text


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("encoding", ["identity", ""])
async def test_body_identity_encoding_accepted(
    gateway: Any, smoke_pair: tuple[str, str], route: str, encoding: str
) -> None:
    """Content-Encoding identity, or an empty value, means the body is not compressed."""
    response = await gateway.client.post(
        route,
        content=_json_body(route, smoke_pair),
        headers={"content-type": "application/json", "content-encoding": encoding},
    )

    assert 200 == response.status_code, response.text


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "compress", "gzip, gzip"])
async def test_body_other_encoding_415(
    gateway: Any, smoke_pair: tuple[str, str], route: str, encoding: str
) -> None:
    """An encoding the gateway does not decode gets 415 naming the header, not a parse error."""
    response = await gateway.client.post(
        route,
        content=_json_body(route, smoke_pair),
        headers={"content-type": "application/json", "content-encoding": encoding},
    )

    assert 415 == response.status_code, response.text
    error = response.json()["error"]
    assert "unsupported_media_type" == error["type"]
    assert f"Content-Encoding {encoding} is not supported" in error["message"]
    assert "gzip" == response.headers["accept-encoding"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content",
    [
        CANARY_MIB.encode("utf-8"),
        gzip.compress(CANARY_MIB.encode("utf-8"))[:-12],
        gzip.compress(CANARY_MIB.encode("utf-8")) + b"trailing " + CANARY.encode(),
        b"",
    ],
    ids=["not-gzip", "truncated", "trailing-data", "empty"],
)
async def test_body_invalid_gzip_400(gateway: Any, route: str, content: bytes) -> None:
    """A body that is not valid gzip data gets 400 naming the header, without the body."""
    with structlog.testing.capture_logs() as logs:
        response = await gateway.client.post(
            route,
            content=content,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )

    assert 400 == response.status_code, response.text
    assert "Content-Encoding gzip" in response.json()["error"]["message"]
    assert CANARY not in response.text
    assert [] == [line for line in logs if CANARY in json.dumps(line, default=str)]


@pytest.mark.parametrize("route", ROUTES)
async def test_body_gzip_bomb_413(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings], route: str
) -> None:
    """A gzip body that decompresses past GATEWAY_MAX_BODY_BYTES gets 413 naming the limit."""
    gw = await gateway_factory(make_settings(max_body_bytes=200_000, max_document_bytes=100_000))
    bomb = _gzip_bomb(50_000_000)
    assert len(bomb) < 200_000

    response = await gw.client.post(
        route,
        content=bomb,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )

    assert 413 == response.status_code, response.text
    error = response.json()["error"]
    assert "payload_too_large" == error["type"]
    assert "decompressed" in error["message"]
    assert "GATEWAY_MAX_BODY_BYTES=200000" in error["message"]


@pytest.mark.parametrize("route", ROUTES)
async def test_body_gzip_at_limit_accepted(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
    route: str,
) -> None:
    """A gzip body that decompresses to exactly GATEWAY_MAX_BODY_BYTES is accepted."""
    # Trailing whitespace compresses well, so the gzip body stays under the limit too.
    plain = _json_body(route, smoke_pair) + b" " * 1000
    limits = {"max_body_bytes": len(plain), "max_document_bytes": min(len(plain), 500)}
    gw = await gateway_factory(make_settings(**limits))

    response = await gw.client.post(
        route,
        content=gzip.compress(plain),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )

    assert 200 == response.status_code, response.text


def test_body_rules_over_uvicorn(
    model_server_url: str, tmp_path: Path, smoke_pair: tuple[str, str]
) -> None:
    """Over real HTTP both route groups get the same responses, and the log has no body text."""
    gateway, url = start_gateway(
        tmp_path,
        model_server_url,
        tmp_path / "no-model",
        GATEWAY_MAX_BODY_BYTES="200000",
        GATEWAY_MAX_DOCUMENT_BYTES="100000",
    )
    json_type = {"content-type": "application/json"}
    gzip_type = {**json_type, "content-encoding": "gzip"}
    brotli_type = {**json_type, "content-encoding": "br"}
    statuses: dict[str, list[int]] = {}
    try:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            for route in ("/v1/predict", "/functions/predict"):
                plain = _json_body(route, smoke_pair)
                # Truncated gzip of the XML: a valid gzip header, then the data ends early.
                canary_gzip = gzip.compress(CANARY_MIB.encode("utf-8"))[:-12]
                responses = [
                    client.post(route, content=codecs.BOM_UTF8 + plain, headers=json_type),
                    client.post(route, content=gzip.compress(plain), headers=gzip_type),
                    client.post(route, content=plain, headers={"content-type": "text/plain"}),
                    client.post(route, content=CANARY_MIB, headers={"content-type": "text/xml"}),
                    client.post(route, content=plain, headers=brotli_type),
                    client.post(route, content=canary_gzip, headers=gzip_type),
                    client.post(route, content=_gzip_bomb(50_000_000), headers=gzip_type),
                ]
                assert [] == [r.text for r in responses if CANARY in r.text]
                statuses[route] = [r.status_code for r in responses]
    finally:
        gateway.stop()

    assert [200, 200, 415, 415, 415, 400, 413] == statuses["/v1/predict"]
    assert statuses["/v1/predict"] == statuses["/functions/predict"]
    log_text = next(tmp_path.glob("gateway-*.log")).read_text()
    assert "request completed" in log_text
    assert CANARY not in log_text


def test_decompress_gzip_multiple_members() -> None:
    """Concatenated gzip members decompress to the concatenated data, as gzip(1) does."""
    data = gzip.compress(b'{"a": ') + gzip.compress(b"1}")

    assert b'{"a": 1}' == decompress_gzip(data, max_bytes=100)


def test_decompress_gzip_member_limit() -> None:
    """16 members decompress, but a 17th, even an empty one, gets 400 naming the count."""
    sixteen = gzip.compress(b"[") + gzip.compress(b"") * 14 + gzip.compress(b"]")

    assert b"[]" == decompress_gzip(sixteen, max_bytes=100)
    with pytest.raises(HTTPException) as raised:
        decompress_gzip(sixteen + gzip.compress(b""), max_bytes=100)
    assert 400 == raised.value.status_code
    assert "more than 16 gzip members" in str(raised.value.detail)


def test_decompress_gzip_many_members_400() -> None:
    """700,000 empty members (14 MB) get 400 after 16, because reading all took minutes."""
    body = gzip.compress(b"") * 700_000

    with pytest.raises(HTTPException) as raised:
        decompress_gzip(body, max_bytes=16_000_000)

    assert 400 == raised.value.status_code
    assert "more than 16 gzip members" in str(raised.value.detail)


def test_decompress_gzip_stops_at_limit() -> None:
    """A 100 MB bomb raises 413 after allocating little more than the 1 MB limit."""
    bomb = _gzip_bomb(100_000_000)

    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLargeError) as raised:
            decompress_gzip(bomb, max_bytes=1_000_000)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert 413 == raised.value.status_code
    assert peak_bytes < 5_000_000


def test_decompress_gzip_limit_exact() -> None:
    """Exactly ``max_bytes`` of output is allowed, and one more byte is not."""
    data = gzip.compress(b"x" * 1000)

    assert 1000 == len(decompress_gzip(data, max_bytes=1000))
    with pytest.raises(BodyTooLargeError):
        decompress_gzip(data, max_bytes=999)


def test_decompress_gzip_invalid_raises_400() -> None:
    """Data that is not gzip raises a 400 HTTPException naming the header."""
    with pytest.raises(HTTPException) as raised:
        decompress_gzip(b"{}", max_bytes=100)

    assert 400 == raised.value.status_code
    assert "Content-Encoding gzip" in str(raised.value.detail)
