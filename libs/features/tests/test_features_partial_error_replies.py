"""Error replies that still carry records are scored with a `partial_error_reply` warning.

The same replies without records raise, as test_features_error_replies.py checks in depth.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from evidence_features import (
    FEATURE_NAMES,
    WARNING_KINDS,
    FeatureVector,
    FeatureWarning,
    MalformedDocumentError,
    extract_batch,
    extract_features,
)

AS_OF = date(2024, 3, 16)
PRIVATE_TEXT = "Jane Example OXYCODONE 503D"
ACORD = "http://ACORD.org/Standards/Life/2"
INCOMPLETE = "the report may be incomplete"


def forms(count: int) -> str:
    """Return `count` MIB FormInstance records, each with its own code and date."""
    parts = ['<Party id="C1"><Carrier><CarrierCode>XA1</CarrierCode></Carrier></Party>']
    for index in range(count):
        parts.append(
            f'<FormInstance id="F{index}" ProviderPartyID="C1">'
            f"<SubmitDate>2023-01-{index + 1:02d}</SubmitDate>"
            f"<FormResponse><ResponseData>3{index:02d}</ResponseData></FormResponse>"
            "</FormInstance>"
        )
    return "".join(parts)


def fills(count: int) -> str:
    """Return `count` distinct Rx fills."""
    return "".join(
        f"<DrugFill><FillDate>2024-02-{index + 1:02d}</FillDate>"
        "<DrugGenericName>METFORMIN</DrugGenericName>"
        "<Quantity>60</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
        for index in range(count)
    )


def txlife(result_code: str, olife: str, before_result: str = "") -> bytes:
    return (
        f"<TXLife xmlns='{ACORD}'><TXLifeResponse>{before_result}"
        f"<TransResult>{result_code}</TransResult>"
        f"<OLifE>{olife}</OLifE></TXLifeResponse></TXLife>"
    ).encode()


def intelrx(body: str) -> bytes:
    return f"<IntelRX><IntelRXResponse>{body}</IntelRXResponse></IntelRX>".encode()


def partial_warnings(vector: FeatureVector) -> list[FeatureWarning]:
    return [w for w in vector.warnings if w.kind == "partial_error_reply"]


def only_partial_warning(vector: FeatureVector, document: str) -> str:
    """Check the one partial_error_reply warning of `document` and return its message."""
    found = partial_warnings(vector)
    assert len(found) == 1
    assert found[0].document == document
    assert found[0].count == 1
    message = found[0].message
    assert message.startswith(f"{document} document reports a vendor error but carries records")
    assert INCOMPLETE in message
    for word in PRIVATE_TEXT.split():
        assert word not in message
    return message


def test_partial_error_reply_is_a_warning_kind() -> None:
    """The new kind is listed with the others, in sorted order."""
    assert "partial_error_reply" in WARNING_KINDS
    assert list(WARNING_KINDS) == sorted(WARNING_KINDS)


# ACORD ResultCode -------------------------------------------------------------------------


@pytest.mark.parametrize("records", [1, 4])
@pytest.mark.parametrize(
    ("result_code", "finding"),
    [
        (f"<ResultCode tc='5'>Failure: {PRIVATE_TEXT}</ResultCode>", "Failure (tc 5)"),
        ("<ResultCode tc='3'>Received Pending</ResultCode>", "Received Pending (tc 3)"),
        ("<ResultCode tc='4'/>", "Received Pending with information (tc 4)"),
        ("<ResultCode tc='1000500001'>Vendor error</ResultCode>", "tc 1000500001, not Success"),
        (f"<ResultCode tc='{PRIVATE_TEXT}'/>", "is not Success (tc 1)"),
        ("<ResultCode tc='12345678901'/>", "is not Success (tc 1)"),
        (f"<ResultCode>{PRIVATE_TEXT}</ResultCode>", "is not Success (tc 1)"),
    ],
    ids=["failure", "pending", "pending-info", "extension-tc", "text-tc", "long-tc", "text"],
)
def test_mib_failed_result_code_with_records_warns(
    result_code: str, finding: str, records: int
) -> None:
    """A failed ResultCode beside records scores them and warns with the numeric code only."""
    vector = extract_features(txlife(result_code, forms(records)), None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == records
    assert vector.as_dict()["META_MIB_PARSE_ERROR"] == 0.0
    message = only_partial_warning(vector, "MIB")
    assert "its TransResult/ResultCode is " in message
    assert finding in message


def test_mib_partial_warning_leaves_out_long_tc() -> None:
    """A tc of more than 10 digits is not repeated, since it could be an identifier."""
    vector = extract_features(txlife("<ResultCode tc='12345678901'/>", forms(1)), None, as_of=AS_OF)
    assert "12345678901" not in only_partial_warning(vector, "MIB")


@pytest.mark.parametrize("records", [1, 3])
@pytest.mark.parametrize(
    "result_code",
    [
        "<ResultCode tc='1'>Success</ResultCode>",
        "<ResultCode tc='2'>Success with information</ResultCode>",
        "<ResultCode tc=' 2 '/>",
        "<ResultCode>Success</ResultCode>",
        "<ResultCode/>",
    ],
    ids=["tc-1", "tc-2", "tc-2-spaces", "text", "blank"],
)
def test_mib_success_with_records_has_no_warning(result_code: str, records: int) -> None:
    """A successful reply with records raises no partial_error_reply and no message."""
    vector = extract_features(txlife(result_code, forms(records)), None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == records
    assert partial_warnings(vector) == []
    assert [w.message for w in vector.warnings] == [""] * len(vector.warnings)


def test_mib_failed_reply_among_successful_ones_warns() -> None:
    """A failed reply without records beside a successful one with records is partial."""
    document = (
        f"<TXLife xmlns='{ACORD}'><TXLifeResponse><TransResult><ResultCode tc='1'/>"
        f"</TransResult><OLifE>{forms(2)}</OLifE></TXLifeResponse><TXLifeResponse>"
        "<TransResult><ResultCode tc='5'/></TransResult></TXLifeResponse></TXLife>"
    ).encode()
    vector = extract_features(document, None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 2.0
    assert "Failure (tc 5)" in only_partial_warning(vector, "MIB")


def test_mib_prefixed_namespace_result_code_warns() -> None:
    """A prefixed ACORD namespace is read like the default one."""
    document = (
        f"<a:TXLife xmlns:a='{ACORD}'><a:TXLifeResponse><a:TransResult>"
        "<a:ResultCode tc='5'/></a:TransResult><a:OLifE>"
        '<a:Party id="C1"><a:Carrier><a:CarrierCode>XA1</a:CarrierCode></a:Carrier></a:Party>'
        '<a:FormInstance id="F1" ProviderPartyID="C1"><a:SubmitDate>2023-01-01</a:SubmitDate>'
        "<a:FormResponse><a:ResponseData>311</a:ResponseData></a:FormResponse>"
        "</a:FormInstance></a:OLifE></a:TXLifeResponse></a:TXLife>"
    ).encode()
    vector = extract_features(document, None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 1.0
    assert "Failure (tc 5)" in only_partial_warning(vector, "MIB")


# Error elements ---------------------------------------------------------------------------


@pytest.mark.parametrize("records", [1, 5])
@pytest.mark.parametrize("name", ["Error", "Errors"])
def test_mib_error_element_with_records_warns(name: str, records: int) -> None:
    """An Error or Errors element at the top of a reply with records warns by element name."""
    error = f"<{name}><Code>503</Code><Message>{PRIVATE_TEXT}</Message></{name}>"
    document = txlife("<ResultCode tc='1'/>", forms(records), before_result=error)
    vector = extract_features(document, None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == records
    assert f"it has an <{name}> element" in only_partial_warning(vector, "MIB")


def test_mib_flat_shape_errors_with_records_warns() -> None:
    """The flat MIBResponse shape with an Errors block and records warns too."""
    document = (
        f"<MIBResponse><Errors><Error>{PRIVATE_TEXT}</Error></Errors>"
        "<MIBRecord><Code>311</Code></MIBRecord><MIBRecord><Code>312</Code></MIBRecord>"
        "</MIBResponse>"
    ).encode()
    vector = extract_features(document, None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 2.0
    assert "it has an <Errors> element" in only_partial_warning(vector, "MIB")


@pytest.mark.parametrize("count", [1, 4])
@pytest.mark.parametrize("name", ["Error", "Errors"])
def test_rx_error_element_with_fills_warns(name: str, count: int) -> None:
    """An Error or Errors element at the top of an Rx report with fills warns."""
    error = f"<{name}><Code>503</Code><Message>{PRIVATE_TEXT}</Message></{name}>"
    vector = extract_features(None, intelrx(error + fills(count)), as_of=AS_OF)
    assert vector.as_dict()["RX_TOTAL_FILLS"] == count
    assert vector.as_dict()["META_RX_PARSE_ERROR"] == 0.0
    assert f"it has an <{name}> element" in only_partial_warning(vector, "RX")


@pytest.mark.parametrize(
    "document",
    [
        intelrx("<Result>NOHIT</Result><Errors/>" + fills(2)),
        intelrx("<Error> </Error>" + fills(2)),
        intelrx(fills(1) + fills(1).replace("</DrugFill>", "<Error>x</Error></DrugFill>")),
        intelrx("<Eligibility><Error>no coverage data</Error></Eligibility>" + fills(1)),
    ],
    ids=["empty-errors", "blank-error", "inside-fill", "inside-eligibility"],
)
def test_rx_inner_or_empty_error_has_no_warning(document: bytes) -> None:
    """An empty Error element, or one inside a fill or block, is no partial error."""
    vector = extract_features(None, document, as_of=AS_OF)
    assert partial_warnings(vector) == []


# Rx <Result> ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 6])
@pytest.mark.parametrize("result", ["ERROR: service unavailable", PRIVATE_TEXT, "TIMEOUT"])
def test_rx_error_result_with_fills_warns(result: str, count: int) -> None:
    """A Result that is neither a hit nor a no-hit beside fills warns without its text."""
    vector = extract_features(None, intelrx(f"<Result>{result}</Result>" + fills(count)))
    assert vector.as_dict()["RX_TOTAL_FILLS"] == count
    message = only_partial_warning(vector, "RX")
    assert "its <Result> reports neither a hit nor a no-hit" in message
    assert result not in message


@pytest.mark.parametrize("result", ["HIT", "No Hit", "NO RECORDS FOUND", ""])
def test_rx_hit_result_with_fills_has_no_warning(result: str) -> None:
    """A hit, a no-hit wording or a blank Result beside fills raises no warning."""
    vector = extract_features(None, intelrx(f"<Result>{result}</Result>" + fills(2)))
    assert partial_warnings(vector) == []


@pytest.mark.parametrize(
    "document",
    [
        b"<IntelRX xmlns='urn:vendor:rx'><IntelRXResponse><Result>ERROR</Result>"
        + fills(2).encode()
        + b"</IntelRXResponse></IntelRX>",
        b"<rx:IntelRX xmlns:rx='urn:vendor:rx'><rx:IntelRXResponse><rx:Result>ERROR</rx:Result>"
        b"<rx:DrugFill><rx:FillDate>2024-02-15</rx:FillDate>"
        b"<rx:DrugGenericName>METFORMIN</rx:DrugGenericName></rx:DrugFill>"
        b"</rx:IntelRXResponse></rx:IntelRX>",
        b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body><IntelRX>"
        b"<IntelRXResponse><Result>ERROR</Result>"
        + fills(1).encode()
        + b"</IntelRXResponse></IntelRX></s:Body></s:Envelope>",
        b"<rx:RxHistoryResponse xmlns:rx='urn:vendor:rx'><rx:Errors><rx:Error>x</rx:Error>"
        b"</rx:Errors><rx:MedicationDispensed><rx:FillDate>2024-02-15</rx:FillDate>"
        b"<rx:DrugGenericName>METFORMIN</rx:DrugGenericName></rx:MedicationDispensed>"
        b"</rx:RxHistoryResponse>",
    ],
    ids=["default-namespace", "prefixed", "soap", "prefixed-errors"],
)
def test_rx_namespaced_partial_error_warns(document: bytes) -> None:
    """Namespaced and SOAP-wrapped Rx reports with an error and fills warn."""
    vector = extract_features(None, document, as_of=AS_OF)
    assert vector.as_dict()["RX_TOTAL_FILLS"] >= 1.0
    only_partial_warning(vector, "RX")


# Both documents, without records, and batches ---------------------------------------------


def test_partial_errors_in_both_documents() -> None:
    """Each document gets its own warning, sorted with the other warnings."""
    mib = txlife("<ResultCode tc='5'/>", forms(2))
    rx = intelrx("<Result>ERROR</Result>" + fills(3))
    vector = extract_features(mib, rx, as_of=AS_OF)
    assert [w.document for w in partial_warnings(vector)] == ["MIB", "RX"]
    keys = [(w.kind, w.document) for w in vector.warnings]
    assert keys == sorted(keys)


PARTIAL_PAIRS = [
    (txlife("<ResultCode tc='5'/>", forms(2)), None),
    (None, intelrx("<Result>ERROR</Result>" + fills(2))),
    (txlife("<ResultCode tc='1'/>", forms(1), before_result="<Error>x</Error>"), None),
    (None, intelrx("<Errors><Error>x</Error></Errors>" + fills(1))),
]


@pytest.mark.parametrize(
    "pair", PARTIAL_PAIRS, ids=["mib-result-code", "rx-result", "mib-error", "rx-errors"]
)
def test_same_shapes_without_records_raise(pair: tuple[bytes | None, bytes | None]) -> None:
    """Without records, each shape still raises MalformedDocumentError."""
    mib, rx = pair
    if mib is not None:
        mib = mib.replace(forms(2).encode(), b"").replace(forms(1).encode(), b"")
    if rx is not None:
        rx = rx.replace(fills(2).encode(), b"").replace(fills(1).encode(), b"")
    with pytest.raises(MalformedDocumentError, match="error reply"):
        extract_features(mib, rx, as_of=AS_OF)


@pytest.mark.parametrize("lenient", [False, True])
def test_batch_scores_partial_errors_like_single(lenient: bool) -> None:
    """Batches score partial error replies as extract_features does, without a parse error."""
    matrix = extract_batch(PARTIAL_PAIRS, as_of=AS_OF, lenient=lenient)
    for row, pair in enumerate(PARTIAL_PAIRS):
        vector = extract_features(*pair, as_of=AS_OF)
        assert len(partial_warnings(vector)) == 1
        np.testing.assert_array_equal(vector.values, matrix[row])
    assert matrix[:, FEATURE_NAMES.index("META_MIB_PARSE_ERROR")].tolist() == [0.0] * 4
    assert matrix[:, FEATURE_NAMES.index("META_RX_PARSE_ERROR")].tolist() == [0.0] * 4


def test_other_warnings_have_no_message() -> None:
    """Counted kinds such as missing_document keep an empty message."""
    vector = extract_features(None, intelrx("<Result>ERROR</Result>" + fills(1)), as_of=AS_OF)
    assert FeatureWarning("missing_document", "MIB", 1) in vector.warnings
