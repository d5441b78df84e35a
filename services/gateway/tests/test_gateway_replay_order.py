"""A retried service-function batch, through real gateways and a worker.

The retry is not newer evidence for ``ONLINE_FEATURES``, and its answer, the one Snowflake
received, is the one ``MODEL_PREDICTIONS`` keeps.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_gateway.testing import free_port, start_gateway, start_worker
from evidence_persistence import PredictionQueue

pytestmark = pytest.mark.slow

BATCH_HEADER = "sf-external-function-query-batch-id"
BATCH_ID = "01c0ffee-0000-4000-8000-000000000002:1:1:0:0"
POLICY = "OOO-2"


def _rx(fills: int) -> str:
    """Return an Rx report with ``fills`` fills of one drug on distinct dates."""
    body = "".join(
        "<DrugFill><DrugGenericName>METFORMIN</DrugGenericName>"
        f"<FillDate>20{20 + index // 300}-{1 + index // 28 % 12:02d}-{1 + index % 28:02d}"
        "</FillDate><DaysSupply>30</DaysSupply></DrugFill>"
        for index in range(fills)
    )
    return f'<?xml version="1.0"?><IntelRXResponse>{body}</IntelRXResponse>'


def _service_function_answer(url: str) -> dict[str, Any]:
    """Send the one-row batch and return the answer of its row."""
    response = httpx.post(
        f"{url}/functions/predict",
        json={"data": [[0, POLICY, None, _rx(6)]]},
        headers={BATCH_HEADER: BATCH_ID},
        timeout=30.0,
    )
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()["data"][0][1]
    return answer


def _service_function(url: str) -> str:
    prediction_id: str = _service_function_answer(url)["prediction_id"]
    return prediction_id


def _api(url: str) -> str:
    response = httpx.post(
        f"{url}/v1/predict",
        json={"policy_number": POLICY, "mib_xml": None, "rx_xml": _rx(66)},
        timeout=30.0,
    )
    assert response.status_code == 200
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


def _wait_drained(queue_path: Path, timeout: float = 20.0) -> int:
    queue = PredictionQueue(queue_path)
    deadline = time.monotonic() + timeout
    try:
        while queue.depth() > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        return queue.depth()
    finally:
        queue.close()


def _query(store: Path, sql: str, *parameters: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


def test_replayed_batch_keeps_newer_features(model_server_url: str, tmp_path: Path) -> None:
    """Batch, then a newer API scoring, then the batch again: the API's features stay."""
    gateway, url = start_gateway(tmp_path, model_server_url, tmp_path / "no-model")
    worker = start_worker(tmp_path)
    queue_path = tmp_path / "queue.sqlite3"
    store = tmp_path / "store.sqlite3"
    try:
        first = _service_function(url)
        # The gateway appends before it responds, so an empty queue means the row is written.
        assert _wait_drained(queue_path) == 0
        [(first_created,)] = _query(
            store,
            "SELECT CREATED_AT FROM ML_MODELS__MODEL_PREDICTIONS WHERE PREDICTION_ID = ?",
            first,
        )
        [(first_fills,)] = _query(
            store,
            "SELECT RX_TOTAL_FILLS FROM FEATURE_STORE__ONLINE_FEATURES WHERE POLICY_NUMBER = ?",
            POLICY,
        )
        time.sleep(1.0)
        newer = _api(url)
        assert _wait_drained(queue_path) == 0
        time.sleep(1.0)
        replayed = _service_function(url)
        left = _wait_drained(queue_path)
    finally:
        worker.stop()
        gateway.stop()

    assert first_fills == 6.0
    assert left == 0
    assert replayed == first
    [(online_id, fills)] = _query(
        store,
        "SELECT PREDICTION_ID, RX_TOTAL_FILLS FROM FEATURE_STORE__ONLINE_FEATURES "
        "WHERE POLICY_NUMBER = ?",
        POLICY,
    )
    assert (online_id, fills) == (newer, 66.0)
    created = dict(
        _query(store, "SELECT PREDICTION_ID, CREATED_AT FROM ML_MODELS__MODEL_PREDICTIONS")
    )
    assert len(created) == 2
    assert created[first] == first_created
    assert datetime.fromisoformat(created[first]) < datetime.fromisoformat(created[newer])


def test_retried_batch_stores_delivered_answer(model_server_url: str, tmp_path: Path) -> None:
    """Fallback on the first attempt, model on the retry: the row stores the retry's answer.

    Two gateways append to one queue, the first with no model server listening at its URL.
    """
    no_model = f"http://127.0.0.1:{free_port()}"
    down, down_url = start_gateway(tmp_path, no_model, tmp_path / "no-model")
    worker = start_worker(tmp_path)
    store = tmp_path / "store.sqlite3"
    try:
        up, up_url = start_gateway(tmp_path, model_server_url, tmp_path / "no-model")
        try:
            first = _service_function_answer(down_url)
            retry = _service_function_answer(up_url)
            left = _wait_drained(tmp_path / "queue.sqlite3")
        finally:
            up.stop()
    finally:
        worker.stop()
        down.stop()

    assert left == 0
    assert first["model_version"] == "RULE_BASED"
    assert first["fallback_reason"] is not None
    assert retry["prediction_id"] == first["prediction_id"]
    assert retry["model_version"] != "RULE_BASED"
    [row] = _query(
        store,
        "SELECT RISK_SCORE, RISK_LEVEL, MODEL_VERSION, FALLBACK_REASON, CREATED_AT, ANSWERED_AT "
        "FROM ML_MODELS__MODEL_PREDICTIONS WHERE PREDICTION_ID = ?",
        first["prediction_id"],
    )
    assert row[:4] == (
        retry["risk_score"],
        retry["risk_level"],
        retry["model_version"],
        retry["fallback_reason"],
    )
    assert datetime.fromisoformat(row[4]) < datetime.fromisoformat(row[5])
