"""A vendor reply that reports an error but carries records reaches callers as a warning."""

from __future__ import annotations

from collections.abc import Callable

from evidence_gateway.config import Settings
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from prometheus_client import REGISTRY

from .conftest import InProcessGateway

PRIVATE_TEXT = "Jane Example OXYCODONE 503D"
FILLS = "".join(
    f"<DrugFill><FillDate>2024-0{month}-15</FillDate><DrugGenericName>METFORMIN"
    "</DrugGenericName><Quantity>60</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
    for month in (1, 2)
)
PARTIAL_RX = (
    f"<IntelRX><IntelRXResponse><Result>{PRIVATE_TEXT}</Result>{FILLS}</IntelRXResponse></IntelRX>"
)
PARTIAL_MIB = (
    "<TXLife xmlns='http://ACORD.org/Standards/Life/2'><TXLifeResponse><TransResult>"
    f"<ResultCode tc='5'>{PRIVATE_TEXT}</ResultCode></TransResult><OLifE>"
    '<Party id="C1"><Carrier><CarrierCode>XA1</CarrierCode></Carrier></Party>'
    '<FormInstance id="F1" ProviderPartyID="C1"><SubmitDate>2023-01-01</SubmitDate>'
    "<FormResponse><ResponseData>311</ResponseData></FormResponse></FormInstance>"
    "</OLifE></TXLifeResponse></TXLife>"
)
PARTIAL_WARNING = "partial_error_reply"
# The feature library's wording, which names the element and the numeric code only.
MIB_MESSAGE_START = "MIB document reports a vendor error but carries records: its "
MIB_MESSAGE_CODE = "TransResult/ResultCode is Failure (tc 5)"
RX_MESSAGE_START = "RX document reports a vendor error but carries records: its <Result>"


def _warnings_counted(document: str) -> float:
    value = REGISTRY.get_sample_value(
        "evidence_gateway_feature_warnings_total",
        {"kind": PARTIAL_WARNING, "document": document},
    )
    return value or 0.0


def _queued_warnings(settings: Settings) -> list[tuple[str, ...]]:
    consumer = QueueConsumer(PredictionQueue(settings.queue_path), owner="partial-error-test")
    return [item.record.warnings for item in consumer.claim(10) if item.record is not None]


async def test_predict_partial_error_reply_warns(
    gateway: InProcessGateway, make_settings: Callable[..., Settings]
) -> None:
    """The response, the warning metric and the queued row all carry the warning."""
    counted_before = _warnings_counted("RX")
    body = {"policy_number": "TEST-001", "mib_xml": None, "rx_xml": PARTIAL_RX}

    response = await gateway.client.post("/v1/predict", json=body)

    assert response.status_code == 200
    warnings = response.json()["warnings"]
    partial = [w for w in warnings if w["kind"] == PARTIAL_WARNING]
    others = [w for w in warnings if w["kind"] != PARTIAL_WARNING]
    assert len(partial) == 1
    assert partial[0]["document"] == "RX"
    assert partial[0]["count"] == 1
    assert partial[0]["message"].startswith(RX_MESSAGE_START)
    assert others == [{"kind": "missing_document", "document": "MIB", "count": 1}]
    assert _warnings_counted("RX") == counted_before + 1
    for word in PRIVATE_TEXT.split():
        assert word not in response.text
    queued = _queued_warnings(make_settings())
    assert len(queued) == 1
    assert PARTIAL_WARNING in queued[0]


async def test_functions_partial_error_row_warns(
    gateway: InProcessGateway, smoke_pair: tuple[str, str]
) -> None:
    """A service-function row with a partial MIB error warns; a clean row does not."""
    counted_before = _warnings_counted("MIB")
    mib, rx = smoke_pair
    rows = [[0, "P-0", PARTIAL_MIB, rx], [1, "P-1", mib, rx], [2, "P-2", PARTIAL_MIB, PARTIAL_RX]]

    response = await gateway.client.post("/functions/predict", json={"data": rows})

    assert response.status_code == 200
    data = response.json()["data"]
    partial = [
        [(w["kind"], w["document"]) for w in row[1]["warnings"] if w["kind"] == PARTIAL_WARNING]
        for row in data
    ]
    assert partial == [
        [(PARTIAL_WARNING, "MIB")],
        [],
        [(PARTIAL_WARNING, "MIB"), (PARTIAL_WARNING, "RX")],
    ]
    assert _warnings_counted("MIB") == counted_before + 2
    messages = [
        [w.get("message", "") for w in row[1]["warnings"] if w["kind"] == PARTIAL_WARNING]
        for row in data
    ]
    assert messages[0][0].startswith(MIB_MESSAGE_START)
    assert MIB_MESSAGE_CODE in messages[0][0]
    assert messages[1] == []
    assert messages[2][0] == messages[0][0]
    assert messages[2][1].startswith(RX_MESSAGE_START)
    other_warnings = [w for row in data for w in row[1]["warnings"] if w["kind"] != PARTIAL_WARNING]
    assert all("message" not in w for w in other_warnings)
    for word in PRIVATE_TEXT.split():
        assert word not in response.text


async def test_predict_error_reply_without_records_still_fails(gateway: InProcessGateway) -> None:
    """The same reply without fills is still rejected as an error reply."""
    rx = PARTIAL_RX.replace(FILLS, "")
    body = {"policy_number": "TEST-001", "mib_xml": None, "rx_xml": rx}

    response = await gateway.client.post("/v1/predict", json=body)

    assert response.status_code == 422
    assert "error reply" in response.text
    for word in PRIVATE_TEXT.split():
        assert word not in response.text
