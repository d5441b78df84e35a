"""Snowflake query headers: never logged as free text, and long batch ids stay idempotent."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing
from evidence_gateway.config import Settings
from evidence_gateway.ids import service_function_prediction_id
from evidence_gateway.snowflake_headers import loggable_id
from evidence_gateway.testing import Stack, start_gateway, start_worker
from evidence_persistence import PredictionQueue

BATCH_HEADER = "sf-external-function-query-batch-id"
QUERY_HEADER = "sf-external-function-current-query-id"
CANARY = "Jane Canary 1970-01-01"
CANARY_HEADER = f"<MIBResponse><Name>{CANARY}</Name></MIBResponse>"
QUERY_ID = "01b2c3d4-0000-1234-0000-00012345abcd"
BATCH_ID = f"{QUERY_ID}:1:1:0:0"


def _capture_logs() -> Any:
    """Capture log calls with the request's context variables merged in, as rendered."""
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])


@pytest.mark.parametrize(
    "value",
    [
        QUERY_ID,
        BATCH_ID,
        QUERY_ID.upper(),
        f"{QUERY_ID}:1:2:3:4:5:6:7:8",
    ],
)
def test_loggable_id_snowflake_shape_kept(value: str) -> None:
    """Snowflake-shaped query and batch ids are logged as sent."""
    assert {"query_batch_id": value} == loggable_id("query_batch_id", value)


@pytest.mark.parametrize(
    "value",
    [
        CANARY_HEADER,
        "Jane",
        "evidence-stack:" + QUERY_ID,
        f"{QUERY_ID}:1:2:3:4:5:6:7:8:9",
        f"{QUERY_ID}:Jane",
        f"{QUERY_ID}\n",
        QUERY_ID[:-1],
    ],
)
def test_loggable_id_other_text_digested(value: str) -> None:
    """Any other value becomes a 12-hex-digit digest and its length."""
    fields = loggable_id("query_batch_id", value)

    assert {"query_batch_id_digest", "query_batch_id_length"} == set(fields)
    assert re.fullmatch(r"[0-9a-f]{12}", fields["query_batch_id_digest"])
    assert len(value) == fields["query_batch_id_length"]


def test_loggable_id_digest_stable_in_process() -> None:
    """The same value gets the same digest, another value another digest."""
    first = loggable_id("query_id", "Jane")
    second = loggable_id("query_id", "Jane")
    other = loggable_id("query_id", "John")

    assert first == second
    assert first["query_id_digest"] != other["query_id_digest"]


@pytest.mark.parametrize("route", ["/functions/predict", "/functions/health"])
async def test_query_headers_canary_not_logged(
    gateway: Any, smoke_pair: tuple[str, str], route: str
) -> None:
    """Free text in either header reaches no log line; the summary line has digests instead."""
    headers = {BATCH_HEADER: CANARY_HEADER, QUERY_HEADER: CANARY}
    body = {"data": [[0, "HDR-1", *smoke_pair]] if route == "/functions/predict" else [[0]]}

    with _capture_logs() as logs:
        response = await gateway.client.post(route, json=body, headers=headers)

    assert 200 == response.status_code
    assert [] == [line for line in logs if CANARY in json.dumps(line, default=str)]
    if route == "/functions/predict":
        [completed] = [line for line in logs if line["event"] == "request completed"]
        assert len(CANARY_HEADER) == completed["query_batch_id_length"]
        assert len(CANARY) == completed["query_id_length"]
        assert "query_batch_id" not in completed


async def test_query_headers_snowflake_ids_logged(
    gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """Snowflake-shaped ids appear in the summary line as sent."""
    headers = {BATCH_HEADER: BATCH_ID, QUERY_HEADER: QUERY_ID}

    with _capture_logs() as logs:
        await gateway.client.post(
            "/functions/predict", json={"data": [[0, "HDR-1", *smoke_pair]]}, headers=headers
        )

    [completed] = [line for line in logs if line["event"] == "request completed"]
    assert BATCH_ID == completed["query_batch_id"]
    assert QUERY_ID == completed["query_id"]


@pytest.mark.slow
def test_query_headers_canary_absent_from_process_log(
    model_server_url: str, smoke_pair: tuple[str, str], tmp_path: Path
) -> None:
    """A real gateway process writes neither header's text to its log."""
    headers = {BATCH_HEADER: CANARY_HEADER, QUERY_HEADER: CANARY}
    server, url = start_gateway(tmp_path, model_server_url, tmp_path / "no-model")
    try:
        response = httpx.post(
            f"{url}/functions/predict",
            json={"data": [[0, "HDR-1", *smoke_pair]]},
            headers=headers,
            timeout=30.0,
        )
    finally:
        server.stop()
    log_text = server.log_path.read_text()

    assert 200 == response.status_code
    assert CANARY not in log_text
    completed = [
        json.loads(line) for line in log_text.splitlines() if '"request completed"' in line
    ]
    assert [len(CANARY_HEADER)] == [line["query_batch_id_length"] for line in completed]
    assert re.fullmatch(r"[0-9a-f]{12}", completed[0]["query_batch_id_digest"])


async def test_long_batch_id_gives_deterministic_ids(
    gateway: Any, smoke_pair: tuple[str, str]
) -> None:
    """A 1,000-character batch id gives the same ids on replay, derived from the whole value."""
    long_id = BATCH_ID + ":" + "7" * (1000 - len(BATCH_ID) - 1)
    # Same first 999 characters: a prefix of the header must not decide the ids.
    other_id = long_id[:-1] + "8"
    rows = [[0, "P-0", *smoke_pair], [1, "P-1", *smoke_pair]]

    first, replay, other = [
        await gateway.client.post(
            "/functions/predict", json={"data": rows}, headers={BATCH_HEADER: batch_id}
        )
        for batch_id in (long_id, long_id, other_id)
    ]

    ids = [row[1]["prediction_id"] for row in first.json()["data"]]
    assert [service_function_prediction_id(long_id, i, rows[i][1:]) for i in range(2)] == ids
    assert ids == [row[1]["prediction_id"] for row in replay.json()["data"]]
    assert not set(ids) & {row[1]["prediction_id"] for row in other.json()["data"]}


@pytest.mark.slow
async def test_long_batch_id_replay_stored_once(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
    tmp_path: Path,
) -> None:
    """A replayed batch with a 2,000-character id is stored once by the real worker."""
    gateway = await gateway_factory(make_settings())
    headers = {BATCH_HEADER: "b" * 2000}
    rows = [[i, f"P-{i}", *smoke_pair] for i in range(3)]

    answers = [
        await gateway.client.post("/functions/predict", json={"data": rows}, headers=headers)
        for _ in range(2)
    ]
    ids = [row[1]["prediction_id"] for row in answers[0].json()["data"]]
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queued = queue.depth()
    queue.close()
    worker = start_worker(tmp_path)
    stack = Stack(
        directory=tmp_path,
        model_url="",
        gateway_url="",
        queue_path=tmp_path / "queue.sqlite3",
        store_path=tmp_path / "store.sqlite3",
    )
    try:
        stored = stack.wait_stored(ids)
        # The worker also drains the replay, so wait until the queue is empty before counting.
        total = _total_after_drain(stack)
    finally:
        worker.stop()

    assert ids == [row[1]["prediction_id"] for row in answers[1].json()["data"]]
    assert 6 == queued
    assert 3 == stored
    assert 3 == total


def _total_after_drain(stack: Stack, timeout: float = 20.0) -> int:
    queue = PredictionQueue(stack.queue_path)
    deadline = time.monotonic() + timeout
    try:
        while queue.depth() > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        queue.close()
    return stack.total_rows("ML_MODELS__MODEL_PREDICTIONS")
