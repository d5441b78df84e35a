"""A real gateway's memory stays bounded when every request brings new XML element names.

lxml keeps each name it parses in a dictionary of the parsing thread until the thread ends. The
gateway replaces its extraction threads after ``GATEWAY_EXTRACTION_RECYCLE_BYTES`` of input,
and this test checks that the setting reaches the running process and bounds its growth.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from evidence_gateway.testing import ServerProcess, start_gateway
from prometheus_client.parser import text_string_to_metric_families
from reliability_kit import assert_logs_clean, rss_mb

RECYCLE_BYTES = 4 * 2**20
NAMES_PER_DOCUMENT = 3_500
REQUESTS = 300
# Without recycling these requests grew a gateway by 47 MiB in a measurement (about 3 bytes
# of memory per byte of new names), and with 4 MiB recycling by 3 MiB.
MAX_GROWTH_MIB = 25.0


@pytest.fixture(scope="module")
def recycling_gateway(
    tmp_path_factory: pytest.TempPathFactory, model_server: str, empty_artifact_dir: Path
) -> Iterator[tuple[ServerProcess, str]]:
    """A gateway that replaces its extraction threads every 4 MiB of documents."""
    directory = tmp_path_factory.mktemp("gateway-recycling")
    process, url = start_gateway(
        directory,
        model_server,
        empty_artifact_dir,
        GATEWAY_EXTRACTION_RECYCLE_BYTES=str(RECYCLE_BYTES),
    )
    try:
        yield process, url
    finally:
        process.stop()
        assert_logs_clean(list(directory.glob("*.log")))


def _novel_names_rx(index: int) -> str:
    names = "".join(f"<n{index:05d}x{name:05d}/>" for name in range(NAMES_PER_DOCUMENT))
    return (
        f"<IntelRXResponse>{names}<DrugFill><DrugGenericName>METFORMIN</DrugGenericName>"
        "<FillDate>2024-01-02</FillDate></DrugFill></IntelRXResponse>"
    )


def _recycles(metrics_text: str, pool: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "evidence_gateway_extraction_recycles_total" and sample.labels == {
                "pool": pool,
                "reason": "input_bytes",
            }:
                return sample.value
    return 0.0


def test_new_names_memory_bounded(recycling_gateway: tuple[ServerProcess, str]) -> None:
    """300 requests with 17 MB of new names in all leave the gateway's memory bounded."""
    process, url = recycling_gateway
    with httpx.Client(base_url=url, timeout=30.0) as client:
        # Warm-up with ordinary names, so the baseline includes the first requests' allocations.
        for index in range(20):
            body = {"policy_number": f"WARM-{index}", "mib_xml": None, "rx_xml": _novel_names_rx(0)}
            assert client.post("/v1/predict", json=body).status_code == 200
        baseline = rss_mb(process.pid)

        for index in range(1, REQUESTS + 1):
            body = {
                "policy_number": f"NAMES-{index}",
                "mib_xml": None,
                "rx_xml": _novel_names_rx(index),
            }
            response = client.post("/v1/predict", json=body)
            assert response.status_code == 200, response.text
        growth = rss_mb(process.pid) - baseline
        metrics_text = client.get("/metrics").text

    print(f"gateway RSS grew {growth:.1f} MiB over {REQUESTS} requests")
    # Each request sends about 56 KB, under the 64 KiB inline bound, so the inline thread
    # takes them all and is replaced about every 75 requests.
    assert _recycles(metrics_text, "inline") >= 3
    assert growth < MAX_GROWTH_MIB
