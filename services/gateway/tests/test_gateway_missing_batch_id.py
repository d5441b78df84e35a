"""A service-function batch without a query batch id: random ids, one warning, one count."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import pytest
import structlog.testing
from prometheus_client import REGISTRY

BATCH_HEADER = "sf-external-function-query-batch-id"
QUERY_HEADER = "sf-external-function-current-query-id"
QUERY_ID = "01b2c3d4-0000-1234-0000-00012345abcd"
METRIC = "evidence_gateway_function_batches_without_batch_id_total"
WARNING = "service-function batch has no sf-external-function-query-batch-id header"


def _missing_batch_id_count() -> float:
    return REGISTRY.get_sample_value(METRIC) or 0.0


def _body(smoke_pair: tuple[str, str], rows: int) -> dict[str, Any]:
    mib, rx = smoke_pair
    return {"data": [[number, f"POL-{number}", mib, rx] for number in range(rows)]}


def _warnings(
    logs: Sequence[MutableMapping[str, Any]],
) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"].startswith(WARNING)]


@pytest.mark.parametrize("rows", [0, 1, 3])
async def test_missing_batch_id_warns_once(
    gateway: Any, smoke_pair: tuple[str, str], rows: int
) -> None:
    """Each batch without the header logs one warning with ids and counts, and counts once."""
    before = _missing_batch_id_count()

    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        response = await gateway.client.post(
            "/functions/predict",
            json=_body(smoke_pair, rows),
            headers={QUERY_HEADER: QUERY_ID},
        )

    assert response.status_code == 200
    assert _missing_batch_id_count() == before + 1
    warnings = _warnings(logs)
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["query_id"] == QUERY_ID
    assert warnings[0]["rows"] == rows
    mib, rx = smoke_pair
    rendered = repr(warnings[0])
    assert mib not in rendered
    assert rx not in rendered
    assert "POL-" not in rendered


async def test_missing_batch_id_keeps_random_ids(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """Two identical batches without the header get different prediction ids."""
    body = _body(smoke_pair, 2)

    first = await gateway.client.post("/functions/predict", json=body)
    second = await gateway.client.post("/functions/predict", json=body)

    first_ids = [row[1]["prediction_id"] for row in first.json()["data"]]
    second_ids = [row[1]["prediction_id"] for row in second.json()["data"]]
    assert len(set(first_ids + second_ids)) == 4


@pytest.mark.parametrize("batch_id", [f"{QUERY_ID}:1:1:0:0", "not-a-snowflake-id"])
async def test_batch_id_present_no_warning(
    gateway: Any, smoke_pair: tuple[str, str], batch_id: str
) -> None:
    """A batch with the header, Snowflake-shaped or not, is neither warned about nor counted."""
    before = _missing_batch_id_count()

    with structlog.testing.capture_logs() as logs:
        response = await gateway.client.post(
            "/functions/predict", json=_body(smoke_pair, 2), headers={BATCH_HEADER: batch_id}
        )

    assert response.status_code == 200
    assert _missing_batch_id_count() == before
    assert _warnings(logs) == []


async def test_empty_batch_id_counts_as_missing(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """An empty header value is treated as missing: warned about and counted."""
    before = _missing_batch_id_count()

    with structlog.testing.capture_logs() as logs:
        response = await gateway.client.post(
            "/functions/predict", json=_body(smoke_pair, 1), headers={BATCH_HEADER: ""}
        )

    assert response.status_code == 200
    assert _missing_batch_id_count() == before + 1
    assert len(_warnings(logs)) == 1


async def test_missing_batch_id_metric_exported(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """/metrics exports the counter under its conventional name."""
    await gateway.client.post("/functions/predict", json=_body(smoke_pair, 1))

    text = (await gateway.client.get("/metrics")).text

    assert f"{METRIC} " in text
