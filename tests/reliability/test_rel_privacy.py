"""Planted health data never leaves the scoring path: not in logs, metrics, errors or the store.

The canary documents carry a made-up name, date of birth, drug, physician and MIB code. They go
through every route, valid and broken in several ways; then every response, the metrics scrape,
the process logs, the pytest-captured output and the store are searched for them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_gateway.testing import Stack, start_gateway
from reliability_kit import (
    CANARIES,
    CANARY_FIRST_NAME,
    CANARY_MIB,
    CANARY_RX,
    GatewayUnderTest,
    assert_logs_clean,
    find_canaries,
    start_piped_worker,
)

TRUNCATED_RX = CANARY_RX[: CANARY_RX.index("</DrugGenericName>")]
HOSTILE_MIB = CANARY_MIB.replace("<TXLife ", '<!DOCTYPE TXLife [<!ENTITY x "y">]><TXLife ', 1)
MISMATCHED_RX = CANARY_RX.replace("</DrugGenericName>", f"</{CANARY_FIRST_NAME}>", 1)
OVERSIZED_RX = CANARY_RX.replace("<Result>", "<Result>" + "x" * 2_100_000, 1)


def _requests(gateway: GatewayUnderTest) -> list[tuple[str, dict[str, Any] | bytes, str]]:
    """(route, body, content type) for every way the canaries can reach the gateway."""
    good = {"mib_xml": CANARY_MIB, "rx_xml": CANARY_RX}
    return [
        ("/v1/predict", {"policy_number": "PRIV-1", **good, "include_features": True}, "json"),
        (
            "/v1/predict",
            {"policy_number": "PRIV-2", "mib_xml": CANARY_MIB, "rx_xml": TRUNCATED_RX},
            "json",
        ),
        (
            "/v1/predict",
            {"policy_number": "PRIV-3", "mib_xml": HOSTILE_MIB, "rx_xml": None},
            "json",
        ),
        (
            "/v1/predict",
            {"policy_number": "PRIV-4", "mib_xml": None, "rx_xml": MISMATCHED_RX},
            "json",
        ),
        (
            "/v1/predict",
            {"policy_number": "PRIV-5", "mib_xml": None, "rx_xml": OVERSIZED_RX},
            "json",
        ),
        ("/v1/predict", {"policy_number": "PRIV-6", "mib_xml": CANARY_MIB}, "json"),
        ("/v1/predict", {"policy_number": "PRIV-7", **good, "as_of": CANARY_BIRTH_TEXT}, "json"),
        ("/v1/predict", {"policy_number": "PRIV-8", **good, "note": CANARY_FIRST_NAME}, "json"),
        (
            "/v1/predict",
            {"policy_number": "PRIV-9", "mib_xml": {"name": CANARY_FIRST_NAME}, "rx_xml": None},
            "json",
        ),
        ("/v1/predict", {"policy_number": CANARY_FIRST_NAME + "\n", **good}, "json"),
        ("/v1/predict", CANARY_MIB.encode(), "xml"),
        ("/v1/predict", (json.dumps(good)[:-40]).encode(), "json"),
        (
            "/v1/predict/batch",
            {
                "items": [
                    {"policy_number": "PRIV-B1", **good},
                    {"policy_number": "PRIV-B2", "mib_xml": None, "rx_xml": TRUNCATED_RX},
                ]
            },
            "json",
        ),
        (
            "/functions/predict",
            {
                "data": [
                    [0, "PRIV-F0", CANARY_MIB, CANARY_RX],
                    [1, "PRIV-F1", HOSTILE_MIB, None],
                    [2, "PRIV-F2", None, MISMATCHED_RX],
                    [3, "PRIV-F3", {"n": CANARY_FIRST_NAME}, None],
                ]
            },
            "json",
        ),
    ]


CANARY_BIRTH_TEXT = "born " + CANARIES[2]


def test_privacy_canaries_in_no_answer_metric_or_log(
    gateway: GatewayUnderTest, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Canaries sent every way appear in no response, metric, log line or captured output."""
    answers = []
    for route, body, kind in _requests(gateway):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        content_type = "application/xml" if kind == "xml" else "application/json"
        response = httpx.post(
            gateway.url + route,
            content=content,
            headers={"content-type": content_type, **gateway.headers()},
            timeout=30.0,
        )
        assert response.status_code < 500, response.text[:300]
        answers.append(response)
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10.0).text
    ready = httpx.get(f"{gateway.url}/health/ready", timeout=10.0).text
    # Let the worker write these predictions, so its log lines are checked too.
    time.sleep(1.0)
    captured = capsys.readouterr()

    statuses = [answer.status_code for answer in answers]
    assert 200 == statuses[0]
    assert {413, 415, 422} >= set(statuses[1:12]), statuses
    assert [] == [a.request.url.path for a in answers if find_canaries(a.text)]
    assert [] == find_canaries(metrics)
    assert [] == find_canaries(ready)
    assert [] == find_canaries(caplog.text)
    assert [] == find_canaries(captured.out + captured.err)
    assert_logs_clean(list(gateway.directory.glob("*.log")))


def test_privacy_raw_evidence_absent_by_default(gateway: GatewayUnderTest) -> None:
    """With the default settings neither the queue nor the store contains any XML."""
    response = httpx.post(
        f"{gateway.url}/v1/predict",
        json={"policy_number": "RAW-OFF-1", "mib_xml": CANARY_MIB, "rx_xml": CANARY_RX},
        headers=gateway.headers(),
        timeout=30.0,
    )
    assert 200 == response.status_code
    prediction_id = response.json()["prediction_id"]
    _wait_stored(gateway.directory, prediction_id)

    connection = sqlite3.connect(f"{gateway.store_path.as_uri()}?mode=ro", uri=True)
    raw_rows = connection.execute("SELECT COUNT(*) FROM FEATURE_STORE__RAW_EVIDENCE").fetchone()
    dump = "\n".join(connection.iterdump())
    connection.close()
    queue = sqlite3.connect(f"{gateway.queue_path.as_uri()}?mode=ro", uri=True)
    queued_xml = queue.execute(
        "SELECT COUNT(*) FROM queue_items WHERE mib_xml IS NOT NULL OR rx_xml IS NOT NULL"
    ).fetchone()
    queue.close()

    assert (0,) == raw_rows
    assert (0,) == queued_xml
    assert [] == find_canaries(dump)


def _wait_stored(directory: Path, prediction_id: str, timeout: float = 30.0) -> None:
    """Wait until the worker has stored the prediction in ``directory``'s store, or fail."""
    # Stack.wait_stored reads only the store file, so the URLs can stay empty.
    stack = Stack(
        directory=directory,
        model_url="",
        gateway_url="",
        queue_path=directory / "queue.sqlite3",
        store_path=directory / "store.sqlite3",
    )
    if stack.wait_stored([prediction_id], timeout=timeout) < 1:
        pytest.fail(f"prediction {prediction_id} was not stored within {timeout} s")


@pytest.mark.slow
def test_privacy_raw_evidence_stored_only_when_enabled(
    tmp_path: Path, model_server: str, empty_artifact_dir: Path
) -> None:
    """With both raw-evidence switches on, the exact XML lands in RAW_EVIDENCE, logs stay clean."""
    gateway, url = start_gateway(
        tmp_path, model_server, empty_artifact_dir, GATEWAY_STORE_RAW_EVIDENCE="true"
    )
    # evidence_gateway.testing.start_worker sets no extra environment, so the kit's worker
    # starter turns raw-evidence storage on.
    worker = start_piped_worker(tmp_path, PERSISTENCE_STORE_RAW_EVIDENCE="true")
    try:
        response = httpx.post(
            f"{url}/v1/predict",
            json={"policy_number": "RAW-ON-1", "mib_xml": CANARY_MIB, "rx_xml": CANARY_RX},
            timeout=30.0,
        )
        assert 200 == response.status_code
        _wait_stored(tmp_path, response.json()["prediction_id"])
    finally:
        gateway.stop()
        worker.stop()

    connection = sqlite3.connect(tmp_path / "store.sqlite3")
    columns = [
        row[1] for row in connection.execute("PRAGMA table_info(FEATURE_STORE__RAW_EVIDENCE)")
    ]
    rows = connection.execute("SELECT * FROM FEATURE_STORE__RAW_EVIDENCE").fetchall()
    connection.close()
    assert 1 == len(rows)
    stored = dict(zip(columns, rows[0], strict=True))
    texts = [
        value.decode() if isinstance(value, bytes) else str(value) for value in stored.values()
    ]
    assert CANARY_MIB in texts
    assert CANARY_RX in texts
    assert_logs_clean(list(tmp_path.glob("*.log")))
