"""A report date that cannot be right reaches callers as a warning and leaves the features alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from evidence_gateway.config import Settings
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from prometheus_client import REGISTRY

from .conftest import InProcessGateway
from .score_cli_kit import rule_based_env, run_score_cli

KIND = "implausible_document_date"
FILLS = "".join(
    f"<DrugFill><FillDate>{day}</FillDate><DrugGenericName>METFORMIN</DrugGenericName>"
    "<Quantity>60</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
    for day in ("2023-06-10", "2024-03-01")
)


def rx_report(report_date: str) -> str:
    return (
        f"<IntelRX><IntelRXResponse><ReportDate>{report_date}</ReportDate>{FILLS}"
        "</IntelRXResponse></IntelRX>"
    )


def warnings_counted(document: str) -> float:
    value = REGISTRY.get_sample_value(
        "evidence_gateway_feature_warnings_total", {"kind": KIND, "document": document}
    )
    return value or 0.0


def queued_warnings(settings: Settings) -> list[tuple[str, ...]]:
    consumer = QueueConsumer(PredictionQueue(settings.queue_path), owner="document-date-test")
    return [item.record.warnings for item in consumer.claim(10) if item.record is not None]


async def test_predict_placeholder_report_date_warns(
    gateway: InProcessGateway, make_settings: Callable[..., Settings]
) -> None:
    """The response, the warning metric and the queued row carry the warning."""
    counted_before = warnings_counted("RX")
    body = {
        "policy_number": "TEST-001",
        "mib_xml": None,
        "rx_xml": rx_report("1900-01-01"),
        "include_features": True,
    }

    response = await gateway.client.post("/v1/predict", json=body)

    assert response.status_code == 200
    answer = response.json()
    assert {"kind": KIND, "document": "RX", "count": 1} in answer["warnings"]
    # Read as of the latest fill, both fills fall inside 12 months and none is future-dated.
    assert answer["features"]["RX_FILLS_LAST_12M"] == 2.0
    assert answer["features"]["META_FUTURE_DATED_RECORDS"] == 0.0
    assert warnings_counted("RX") == counted_before + 1
    queued = queued_warnings(make_settings())
    assert len(queued) == 1
    assert KIND in queued[0]


async def test_functions_rows_warn_per_document(gateway: InProcessGateway) -> None:
    """Service-function rows warn only for the rows whose report date cannot be right."""
    counted_before = warnings_counted("RX")
    rows = [
        [0, "P-0", None, rx_report("1924-03-16")],
        [1, "P-1", None, rx_report("2024-03-16")],
        [2, "P-2", None, rx_report("1900-01-01")],
    ]

    response = await gateway.client.post("/functions/predict", json={"data": rows})

    assert response.status_code == 200
    data = response.json()["data"]
    skipped = [[w for w in row[1]["warnings"] if w["kind"] == KIND] for row in data]
    assert skipped == [[{"kind": KIND, "document": "RX", "count": 1}], [], skipped[0]]
    assert warnings_counted("RX") == counted_before + 2


@pytest.mark.slow
def test_score_cli_prints_document_date_warning(tmp_path: Path) -> None:
    """evidence-score prints the warning line for a placeholder report date."""
    rx = tmp_path / "rx.xml"
    rx.write_text(rx_report("1900-01-01"))
    result = run_score_cli(
        ["--rx", str(rx), "--in-process", "--create-queue"], rule_based_env(tmp_path)
    )

    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert f"warning: RX {KIND} ×1" in lines
