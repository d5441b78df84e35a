"""The hostile-input corpus (tests/corpus/manifest.yaml) against a real gateway process.

Every case must get its expected status and error type, never a 5xx, within a time bound, with
the gateway alive afterwards and its memory bounded. Responses must not echo the planted canary
values or the contents of a local file that an entity or XInclude points at.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from reliability_kit import CANARY_MIB, CANARY_RX, GatewayUnderTest, find_canaries, rss_mb

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"
MANIFEST = yaml.safe_load((CORPUS_DIR / "manifest.yaml").read_text())
DOCUMENT_CASES: list[dict[str, Any]] = MANIFEST["document_cases"]
REQUEST_CASES: list[dict[str, Any]] = MANIFEST["request_cases"]
ROUTES = {"predict": "/v1/predict", "batch": "/v1/predict/batch", "functions": "/functions/predict"}
# Worst time one corpus request may take on a loaded 2-core machine; a hang hits it.
REQUEST_SECONDS = 30.0
# Largest growth of the gateway's resident memory over the whole corpus.
RSS_GROWTH_LIMIT_MB = 400.0
HOSTNAME = socket.gethostname()


# --- payload generators ------------------------------------------------------------------------


def _deep_nesting(depth: int, root: str = "IntelRXResponse") -> str:
    return f"<{root}>" + "<a>" * depth + "x" + "</a>" * depth + f"</{root}>"


def _tiny_elements(count: int) -> str:
    return "<IntelRXResponse>" + "<a/>" * count + "</IntelRXResponse>"


def _many_fills(count: int) -> str:
    fill = (
        "<DrugFill><FillDate>2026-01-10</FillDate><DrugGenericName>LISINOPRIL</DrugGenericName>"
        "<Quantity>30</Quantity><DaysSupply>30</DaysSupply><NDC>00000-0000-00</NDC></DrugFill>"
    )
    return "<IntelRXResponse>" + fill * count + "</IntelRXResponse>"


def _multibyte_text(count: int) -> str:
    return "<TXLife><Note>" + "\u20ac" * count + "</Note></TXLife>"


def _huge_attribute(size: int) -> str:
    return f'<IntelRXResponse><Result note="{"x" * size}">HIT</Result></IntelRXResponse>'


def _binary_garbage(size: int, seed: int) -> str:
    return random.Random(seed).randbytes(size).decode("latin-1")


def _huge_numbers() -> str:
    return (
        "<TXLife><TXLifeResponse><OLifE><FormInstance id='F1'><SubmitDate>2025-01-01</SubmitDate>"
        "<FormResponse><ResponseData>311C</ResponseData></FormResponse>"
        "<OLifEExtension><Build><HeightIn>-70</HeightIn><WeightLb>1e308</WeightLb>"
        f"<BMI>{'9' * 400}</BMI></Build></OLifEExtension></FormInstance>"
        "</OLifE></TXLifeResponse></TXLife>"
    )


DOCUMENT_GENERATORS: dict[str, Any] = {
    "deep_nesting": _deep_nesting,
    "tiny_elements": _tiny_elements,
    "many_fills": _many_fills,
    "multibyte_text": _multibyte_text,
    "huge_attribute": _huge_attribute,
    "binary_garbage": _binary_garbage,
    "huge_numbers": _huge_numbers,
    "canary_mib": lambda: CANARY_MIB,
}


def _nested_json(depth: int, envelope: str = "policy_number") -> bytes:
    return (f'{{"{envelope}": ' + "[" * depth + "]" * depth + "}").encode()


def _long_policy(length: int) -> bytes:
    body = {"policy_number": "P" * length, "mib_xml": None, "rx_xml": None}
    return json.dumps(body).encode()


def _api_batch(rows: int) -> bytes:
    items = [{"policy_number": f"B-{i}", "mib_xml": None, "rx_xml": None} for i in range(rows)]
    return json.dumps({"items": items}).encode()


def _functions_batch(rows: int) -> bytes:
    data = [
        [i, f"SF-{i}", CANARY_MIB if i % 10 == 0 else None, CANARY_RX if i % 10 == 0 else None]
        for i in range(rows)
    ]
    return json.dumps({"data": data}).encode()


def _missing_rx() -> bytes:
    return json.dumps({"policy_number": "P-1", "mib_xml": CANARY_MIB}).encode()


def _big_body(size: int, chunked: bool = False) -> bytes | Iterator[bytes]:
    prefix = b'{"data": [[0, "P-1", "'
    if not chunked:
        return prefix + b"a" * (size - len(prefix))

    def chunks() -> Iterator[bytes]:
        yield prefix
        sent = len(prefix)
        block = b"a" * 1_000_000
        while sent < size:
            yield block
            sent += len(block)

    return chunks()


REQUEST_GENERATORS: dict[str, Any] = {
    "nested_json": _nested_json,
    "long_policy": _long_policy,
    "api_batch": _api_batch,
    "functions_batch": _functions_batch,
    "missing_rx": _missing_rx,
    "canary_mib": lambda: CANARY_MIB.encode(),
    "big_body": _big_body,
}


def build_document(payload: dict[str, Any]) -> str:
    """Build a document case's payload as the text sent in the JSON field."""
    if "text" in payload:
        return str(payload["text"])
    if "file" in payload:
        return (CORPUS_DIR / str(payload["file"])).read_text()
    arguments = {key: value for key, value in payload.items() if key != "generate"}
    return str(DOCUMENT_GENERATORS[payload["generate"]](**arguments))


def build_body(body: dict[str, Any]) -> bytes | Iterator[bytes]:
    """Build a request case's body bytes (or chunks for a chunked upload)."""
    if "json" in body:
        return json.dumps(body["json"]).encode()
    if "raw" in body:
        return str(body["raw"]).encode()
    if "raw_hex" in body:
        return bytes.fromhex(str(body["raw_hex"]).replace(" ", ""))
    arguments = {key: value for key, value in body.items() if key != "generate"}
    result: bytes | Iterator[bytes] = REQUEST_GENERATORS[body["generate"]](**arguments)
    return result


# --- memory sampling ---------------------------------------------------------------------------


class RssSampler:
    """Sample a process's resident memory every 20 ms in a thread and keep the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss_mb(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except Exception:
                return

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=2.0)


@pytest.fixture(scope="module")
def rss(gateway: GatewayUnderTest) -> Iterator[RssSampler]:
    """The gateway's memory, sampled while this module's cases run."""
    sampler = RssSampler(gateway.process.pid)
    yield sampler
    sampler.stop()


# --- checks ------------------------------------------------------------------------------------


def _send(
    gateway: GatewayUnderTest,
    route: str,
    content: bytes | Iterator[bytes],
    content_type: str = "application/json",
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = httpx.post(
        gateway.url + route,
        content=content,
        headers={"content-type": content_type, **gateway.headers()},
        timeout=REQUEST_SECONDS,
    )
    return response, time.perf_counter() - started


def _check_common(gateway: GatewayUnderTest, response: httpx.Response, seconds: float) -> None:
    assert response.status_code < 500, response.text[:500]
    assert seconds < REQUEST_SECONDS
    assert response.headers["content-type"].startswith("application/json")
    assert find_canaries(response.text) == [], "an answer echoed planted health data"
    assert "root:x:0:0" not in response.text, "an answer holds /etc/passwd"
    assert gateway.process.alive, "the gateway process died"


def _check_error(error: dict[str, Any], expect: dict[str, Any]) -> None:
    if "error_type" in expect:
        assert expect["error_type"] == error["type"], error
    if "document" in expect:
        assert expect["document"] == error["document"], error
    if "message" in expect:
        assert str(expect["message"]).lower() in error["message"].lower(), error


def _document_rows(case: dict[str, Any], document: str) -> list[dict[str, Any]]:
    good = {"mib_xml": CANARY_MIB, "rx_xml": CANARY_RX}
    bad = {**good, case["field"]: document}
    return [
        {"policy_number": f"C-{case['id']}-0", **good},
        {"policy_number": f"C-{case['id']}-1", **bad},
        {"policy_number": f"C-{case['id']}-2", **good},
    ]


def _scored(answer: dict[str, Any]) -> bool:
    return isinstance(answer.get("risk_score"), float) and 0.0 <= answer["risk_score"] <= 1.0


@pytest.mark.parametrize("case", DOCUMENT_CASES, ids=[case["id"] for case in DOCUMENT_CASES])
def test_corpus_document_three_routes(
    gateway: GatewayUnderTest, rss: RssSampler, case: dict[str, Any]
) -> None:
    """One bad document gets the expected response on each route; its neighbours are scored."""
    document = build_document(case["payload"])
    expect = case["expect"]
    rows = _document_rows(case, document)

    single = {**rows[1], "include_features": True}
    response, seconds = _send(gateway, ROUTES["predict"], json.dumps(single).encode())
    _check_common(gateway, response, seconds)
    assert expect["status"] == response.status_code, response.text[:500]
    answer = response.json()
    if expect["status"] == 200:
        assert _scored(answer)
        assert HOSTNAME not in json.dumps(answer), "a local file was read into the document"
        for name, value in expect.get("features", {}).items():
            assert value == answer["features"][name], name
        assert all(isinstance(v, float) for v in answer["features"].values())
        kinds = {warning["kind"] for warning in answer["warnings"]}
        assert set(expect.get("warnings", [])) <= kinds
    else:
        _check_error(answer["error"], expect)

    response, seconds = _send(gateway, ROUTES["batch"], json.dumps({"items": rows}).encode())
    _check_common(gateway, response, seconds)
    assert 200 == response.status_code, response.text[:500]
    results = response.json()["results"]
    assert [True, True] == [_scored(results[0]), _scored(results[2])]
    if expect["status"] == 200:
        assert _scored(results[1])
    else:
        assert 1 == results[1]["index"]
        _check_error(results[1]["error"], expect)

    data = [[i, row["policy_number"], row["mib_xml"], row["rx_xml"]] for i, row in enumerate(rows)]
    response, seconds = _send(gateway, ROUTES["functions"], json.dumps({"data": data}).encode())
    _check_common(gateway, response, seconds)
    assert 200 == response.status_code, response.text[:500]
    answered = response.json()["data"]
    assert [0, 1, 2] == [row[0] for row in answered]
    assert [True, True] == [_scored(answered[0][1]), _scored(answered[2][1])]
    if expect["status"] == 200:
        assert _scored(answered[1][1])
    else:
        assert "error" in answered[1][1]
        if "error_type" in expect:
            assert expect["error_type"] == answered[1][1]["error_type"]


@pytest.mark.parametrize("case", REQUEST_CASES, ids=[case["id"] for case in REQUEST_CASES])
def test_corpus_request_expected_answer(
    gateway: GatewayUnderTest, rss: RssSampler, case: dict[str, Any]
) -> None:
    """A malformed request gets the expected status, error type and field path."""
    expect = case["expect"]
    content = build_body(case["body"])
    try:
        response, seconds = _send(
            gateway,
            ROUTES[case["endpoint"]],
            content,
            case.get("content_type", "application/json"),
        )
    except (httpx.WriteError, httpx.RemoteProtocolError):
        # The gateway may send 413 and close the socket while a large body is still being
        # sent, so the client sees the closed connection instead of the response.
        closed_early = True
    else:
        closed_early = False
    if closed_early:
        assert 413 == expect["status"], "the connection closed before an answer"
        assert gateway.process.alive
        return
    _check_common(gateway, response, seconds)
    assert expect["status"] == response.status_code, response.text[:500]

    body = response.json()
    if "error_type" in expect:
        _check_error(body["error"], expect)
    if "loc" in expect:
        locations = [detail["loc"] for detail in body.get("details", [])]
        assert expect["loc"] in locations, locations
        for detail in body["details"]:
            assert {"type", "loc", "msg"} == set(detail), "validation detail echoes input"
    if "rows" in expect:
        answered = {row[0]: row[1] for row in body["data"]}
        assert [int(n) for n in expect["rows"]] == [row[0] for row in body["data"]]
        for number, outcome in expect["rows"].items():
            value = answered[int(number)]
            if outcome == "scored":
                assert _scored(value), value
            else:
                assert outcome == value["error_type"], value
                assert isinstance(value["error"], str)
    if "row_count" in expect:
        numbers = [row[0] for row in body["data"]]
        assert list(range(expect["row_count"])) == numbers
        assert all(_scored(row[1]) for row in body["data"])


def test_corpus_covers_every_pitfall_class() -> None:
    """The corpus has at least 40 cases and touches every input-related pitfall class."""
    cases = DOCUMENT_CASES + REQUEST_CASES
    pitfalls = {case["pitfall"] for case in cases}

    assert len(cases) >= 40
    assert {"P-01", "P-02", "P-03", "P-04", "P-05", "P-06", "P-07", "P-09", "P-16"} <= pitfalls
    assert len({case["id"] for case in cases}) == len(cases)


def test_corpus_gateway_memory_bounded(gateway: GatewayUnderTest, rss: RssSampler) -> None:
    """After the whole corpus, the gateway's peak resident memory grew by a bounded amount."""
    assert gateway.process.alive
    assert httpx.get(f"{gateway.url}/health/live", timeout=5.0).status_code == 200
    growth = rss.peak - rss.baseline
    print(f"gateway RSS baseline {rss.baseline:.0f} MiB, peak {rss.peak:.0f} MiB")
    assert growth < RSS_GROWTH_LIMIT_MB
