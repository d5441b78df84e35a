"""The route label of each request's summary log line and latency histogram."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from evidence_gateway.config import Settings
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from .conftest import InProcessGateway

MAX_BODY_BYTES = 2_000


def _requests_counted(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "evidence_gateway_request_duration_seconds_count",
        {"method": "POST", "route": route, "status": status},
    )
    return value or 0.0


@pytest.fixture
async def small_body_gateway(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> InProcessGateway:
    """A gateway that rejects bodies over ``MAX_BODY_BYTES`` before routing."""
    built: InProcessGateway = await gateway_factory(
        make_settings(max_body_bytes=MAX_BODY_BYTES, max_document_bytes=MAX_BODY_BYTES)
    )
    return built


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/predict/batch", "/functions/predict"])
async def test_rejected_before_routing_keeps_route(
    small_body_gateway: InProcessGateway, path: str
) -> None:
    """A 413 from the body limit counts and logs under its route, not as unmatched."""
    before = _requests_counted(path, "413")
    with capture_logs() as logs:
        response = await small_body_gateway.client.post(
            path,
            content=b"{" + b" " * MAX_BODY_BYTES + b"}",
            headers={"content-type": "application/json"},
        )

    assert response.status_code == 413
    assert _requests_counted(path, "413") == before + 1
    summaries = [entry for entry in logs if entry["event"] == "request completed"]
    assert [(entry["route"], entry["status"]) for entry in summaries] == [(path, 413)]


async def test_unknown_path_unmatched(small_body_gateway: InProcessGateway) -> None:
    """A path that no route serves stays unmatched, whatever its body."""
    before = _requests_counted("unmatched", "413")
    with capture_logs() as logs:
        response = await small_body_gateway.client.post(
            "/v1/nowhere",
            content=b"{" + b" " * MAX_BODY_BYTES + b"}",
            headers={"content-type": "application/json"},
        )

    assert response.status_code == 413
    assert _requests_counted("unmatched", "413") == before + 1
    summaries = [entry for entry in logs if entry["event"] == "request completed"]
    assert [entry["route"] for entry in summaries] == ["unmatched"]


async def test_routed_request_keeps_route(small_body_gateway: InProcessGateway) -> None:
    """A request that reaches its route is labelled with the route's template."""
    with capture_logs() as logs:
        response = await small_body_gateway.client.post(
            "/v1/predict",
            json={"policy_number": "ROUTE-1", "mib_xml": None, "rx_xml": "<r/>"},
        )

    assert response.status_code == 200
    summaries = [entry for entry in logs if entry["event"] == "request completed"]
    assert [entry["route"] for entry in summaries] == ["/v1/predict"]


async def test_client_error_on_quiet_route_logged_at_info(
    small_body_gateway: InProcessGateway,
) -> None:
    """A 413 on /metrics is logged at info, while a plain scrape stays below info."""
    with capture_logs() as logs:
        # A GET, so that the route matches; the body is over the limit.
        rejected = await small_body_gateway.client.request(
            "GET",
            "/metrics",
            content=b"{" + b" " * MAX_BODY_BYTES + b"}",
            headers={"content-type": "application/json"},
        )
        scraped = await small_body_gateway.client.get("/metrics")

    # The tests' log level drops debug lines, so the scrape leaves no line at all.
    summaries = [entry for entry in logs if entry["event"] == "request completed"]
    assert [(entry["status"], entry["log_level"]) for entry in summaries] == [(413, "info")]
    assert rejected.status_code == 413
    assert scraped.status_code == 200


@pytest.mark.parametrize("method", ["FOOBAR", "X" * 200, "PROPFIND"])
async def test_unknown_method_labelled_other(
    small_body_gateway: InProcessGateway, method: str
) -> None:
    """A method outside RFC 9110 and PATCH counts and logs as ``other``, never as sent."""
    labels = {"route": "/health/live", "status": "405"}
    before = REGISTRY.get_sample_value(
        "evidence_gateway_request_duration_seconds_count", {"method": "other", **labels}
    )
    with capture_logs() as logs:
        response = await small_body_gateway.client.request(method, "/health/live")

    after = REGISTRY.get_sample_value(
        "evidence_gateway_request_duration_seconds_count", {"method": "other", **labels}
    )
    sent = REGISTRY.get_sample_value(
        "evidence_gateway_request_duration_seconds_count", {"method": method, **labels}
    )
    assert response.status_code == 405
    assert (after or 0.0) == (before or 0.0) + 1
    assert sent is None
    summaries = [entry for entry in logs if entry["event"] == "request completed"]
    assert [entry["method"] for entry in summaries] == ["other"]
