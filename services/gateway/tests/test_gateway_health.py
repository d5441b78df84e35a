"""Probes and metrics over the real app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evidence_gateway.config import Settings
from prometheus_client.parser import text_string_to_metric_families


async def test_live_ok(gateway: Any) -> None:
    """Liveness returns 200 with status ok."""
    response = await gateway.client.get("/health/live")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_reports_checks(gateway: Any) -> None:
    """Readiness is 'ready' with the queue, spec and model checks passing."""
    response = await gateway.client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert {"queue", "feature_spec", "model_info", "model"} == set(body["checks"])
    assert body["checks"]["queue"]["detail"]["depth"] == 0


async def test_ready_queue_unwritable_503(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    """A queue path that cannot be opened as a database makes the gateway not ready."""
    directory = tmp_path / "a-directory"
    directory.mkdir()
    gw = await gateway_factory(make_settings(queue_path=directory))

    response = await gw.client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["queue"]["ok"] is False


async def test_ready_model_down_degraded(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
) -> None:
    """After a failed model call readiness stays 200 but reports 'degraded'."""
    from evidence_gateway.testing import free_port

    gw = await gateway_factory(make_settings(), model_url=f"http://127.0.0.1:{free_port()}")
    await gw.client.post(
        "/v1/predict",
        json={"policy_number": "P-1", "mib_xml": smoke_pair[0], "rx_xml": smoke_pair[1]},
    )

    response = await gw.client.get("/health/ready")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["model"]["ok"] is False


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_metrics_count_predictions(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """Each scored request adds one prediction sample for its source and model version."""
    before = _samples(
        (await gateway.client.get("/metrics")).text, "evidence_gateway_predictions_total"
    )
    body = {"policy_number": "P-1", "mib_xml": smoke_pair[0], "rx_xml": smoke_pair[1]}
    for _ in range(3):
        await gateway.client.post("/v1/predict", json=body)

    after = _samples(
        (await gateway.client.get("/metrics")).text, "evidence_gateway_predictions_total"
    )

    key = (("model_version", "REGISTRY_BUILTIN"), ("source", "API"))
    assert after[key] - before.get(key, 0.0) == 3.0


async def test_metrics_latency_in_finite_bucket(gateway: Any, smoke_pair: tuple[str, str]) -> None:
    """A typical request lands in a finite millisecond-scale bucket, not only in +Inf."""
    body = {"policy_number": "P-1", "mib_xml": smoke_pair[0], "rx_xml": smoke_pair[1]}
    await gateway.client.post("/v1/predict", json=body)

    text = (await gateway.client.get("/metrics")).text
    buckets = _samples(text, "evidence_gateway_request_duration_seconds_bucket")
    route = [
        (dict(labels)["le"], value)
        for labels, value in buckets.items()
        if dict(labels)["route"] == "/v1/predict" and dict(labels)["status"] == "200"
    ]
    finite = {float(le): value for le, value in route if le != "+Inf"}
    assert finite[1.0] >= 1.0
    assert min(finite) <= 0.001


async def test_metrics_content_type(gateway: Any) -> None:
    """The metrics response uses the Prometheus text format."""
    response = await gateway.client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    assert "evidence_gateway_queue_depth" in response.text
