"""A report whose records the feature library cannot read is rejected, never scored empty."""

from __future__ import annotations

from .conftest import InProcessGateway

PRIVATE_TEXT = "Jane Example METFORMIN"
LOWERCASE_FILLS = (
    "<IntelRX><IntelRXResponse><Result>HIT</Result>" + "<drugfill><FillDate>2024-01-15</FillDate>"
    f"<DrugGenericName>{PRIVATE_TEXT}</DrugGenericName></drugfill>"
    * 2
    + "</IntelRXResponse></IntelRX>"
)
LOWERCASE_CODES = "<Response><responseData>503D</responseData></Response>"


async def test_predict_lowercase_fills_rejected(
    gateway: InProcessGateway, smoke_pair: tuple[str, str]
) -> None:
    """/v1/predict returns 422 naming the Rx document and the misspelled element."""
    mib, _ = smoke_pair
    body = {"policy_number": "TEST-001", "mib_xml": mib, "rx_xml": LOWERCASE_FILLS}

    response = await gateway.client.post("/v1/predict", json=body)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "malformed_document"
    assert error["document"] == "RX"
    assert "<drugfill>" in error["message"]
    assert "<DrugFill>" in error["message"]
    for word in PRIVATE_TEXT.split():
        assert word not in response.text


async def test_functions_lowercase_codes_row_error(
    gateway: InProcessGateway, smoke_pair: tuple[str, str]
) -> None:
    """/functions/predict fails only the row whose MIB codes cannot be read."""
    mib, rx = smoke_pair
    rows = [[0, "P-0", mib, rx], [1, "P-1", LOWERCASE_CODES, rx]]

    response = await gateway.client.post("/functions/predict", json={"data": rows})

    assert response.status_code == 200
    data = response.json()["data"]
    assert 0.0 <= data[0][1]["risk_score"] <= 1.0
    assert data[1][1]["error_type"] == "malformed_document"
    assert data[1][1]["document"] == "MIB"
    assert "<responseData>" in data[1][1]["error"]
    assert "503D" not in response.text
