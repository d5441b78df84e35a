"""Error replies that keep the outline of a report raise instead of scoring as clean applicants.

The root-level error documents (`<Error>`, SOAP faults) are covered in test_features_xml.py.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from evidence_features import (
    FEATURE_NAMES,
    MalformedDocumentError,
    extract_batch,
    extract_features,
)

AS_OF = date(2024, 3, 16)
PRIVATE_TEXT = "Jane Example OXYCODONE 503D"

FORM = (
    '<Party id="C1"><Carrier><CarrierCode>XA1</CarrierCode></Carrier></Party>'
    '<FormInstance id="F1" ProviderPartyID="C1"><SubmitDate>2023-01-01</SubmitDate>'
    "<FormResponse><ResponseData>311</ResponseData></FormResponse></FormInstance>"
)
FILL = (
    "<DrugFill><FillDate>2024-02-15</FillDate><DrugGenericName>METFORMIN</DrugGenericName>"
    "<Quantity>60</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
)


def txlife(result_code: str, olife: str = "", records: int = 0) -> bytes:
    return (
        "<TXLife xmlns='http://ACORD.org/Standards/Life/2'><TXLifeResponse>"
        f"<TransResult>{result_code}<RecordsFound>{records}</RecordsFound></TransResult>"
        f"<OLifE>{olife}</OLifE></TXLifeResponse></TXLife>"
    ).encode()


def intelrx(body: str) -> bytes:
    return f"<IntelRX><IntelRXResponse>{body}</IntelRXResponse></IntelRX>".encode()


def rejects(mib: bytes | None, rx: bytes | None, pattern: str) -> str:
    with pytest.raises(MalformedDocumentError, match=pattern) as caught:
        extract_features(mib, rx, as_of=AS_OF)
    message = str(caught.value)
    assert "error reply" in message
    assert "request it again" in message
    for word in PRIVATE_TEXT.split():
        assert word not in message
    return message


# ACORD ResultCode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result_code", "pattern"),
    [
        (f"<ResultCode tc='5'>Failure: {PRIVATE_TEXT}</ResultCode>", r"Failure \(tc 5\)"),
        ("<ResultCode tc='3'>Received Pending</ResultCode>", r"Received Pending \(tc 3\)"),
        ("<ResultCode tc='4'/>", r"Received Pending with information \(tc 4\)"),
        (f"<ResultCode tc='{PRIVATE_TEXT}'/>", r"not Success \(tc 1\)"),
        ("<ResultCode tc='1000500001'>Vendor error</ResultCode>", r"not Success \(tc 1\)"),
        (f"<ResultCode>{PRIVATE_TEXT}</ResultCode>", r"not Success \(tc 1\)"),
        ("<ResultCode>Failure</ResultCode>", r"not Success \(tc 1\)"),
    ],
    ids=["failure", "pending", "pending-info", "odd-tc", "extension-tc", "text", "failure-text"],
)
def test_mib_failed_result_code_without_records_raises(result_code: str, pattern: str) -> None:
    """A TransResult that is not a success and no FormInstance is an error reply."""
    message = rejects(txlife(result_code), None, pattern)
    assert message.startswith("MIB document is an error reply")
    assert "TransResult/ResultCode" in message


@pytest.mark.parametrize(
    "result_code",
    [
        "<ResultCode tc='1'>Success</ResultCode>",
        "<ResultCode tc=' 2 '>Success with information</ResultCode>",
        "<ResultCode tc='1'>Failure</ResultCode>",
        "<ResultCode>Success</ResultCode>",
        "<ResultCode>success with info</ResultCode>",
        "<ResultCode/>",
        "<ResultCode tc=''> </ResultCode>",
        "",
    ],
    ids=["tc-1", "tc-2", "tc-wins-over-text", "text", "text-info", "blank", "blank-tc", "none"],
)
def test_mib_successful_no_file_reply_scores(result_code: str) -> None:
    """A successful reply without records is a no-file reply and scores with defaults."""
    vector = extract_features(txlife(result_code), None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 0.0
    assert vector.as_dict()["META_MIB_PARSE_ERROR"] == 0.0


def test_mib_failed_result_code_with_records_scores() -> None:
    """A failed reply that still carries a record is scored from that record."""
    document = txlife("<ResultCode tc='5'>Failure</ResultCode>", FORM, records=1)
    assert extract_features(document, None, as_of=AS_OF).as_dict()["MIB_TOTAL_RECORDS"] == 1.0


def test_mib_nfd_only_failed_reply_raises() -> None:
    """NFD forms are not records, so a failed reply with only NFD forms is an error reply."""
    nfd = (
        '<FormInstance id="F1"><FormResponse><ResponseData>311</ResponseData></FormResponse>'
        '</FormInstance><Relation OriginatingObjectID="F1"><RelationRoleCode>NFD'
        "</RelationRoleCode></Relation>"
    )
    rejects(txlife("<ResultCode tc='5'/>", nfd), None, r"Failure \(tc 5\)")


def _two_replies(first: str, second: str) -> bytes:
    return (
        f"<TXLife><TXLifeResponse><TransResult>{first}</TransResult><OLifE>{FORM}</OLifE>"
        f"</TXLifeResponse><TXLifeResponse><TransResult>{second}</TransResult>"
        "</TXLifeResponse></TXLife>"
    ).encode()


def test_mib_one_failed_reply_among_many() -> None:
    """Records of a successful reply are scored, and a failed reply with no records raises."""
    document = _two_replies("<ResultCode tc='1'/>", "<ResultCode tc='5'/>")
    assert extract_features(document, None, as_of=AS_OF).as_dict()["MIB_TOTAL_RECORDS"] == 1.0
    empty = document.replace(FORM.encode(), b"")
    rejects(empty, None, r"Failure \(tc 5\)")


def test_mib_result_code_outside_trans_result_is_ignored() -> None:
    """Only TransResult/ResultCode describes the reply; the same name elsewhere is data."""
    document = txlife("<ResultCode tc='1'/>", "<Holding><ResultCode tc='5'/></Holding>")
    assert extract_features(document, None, as_of=AS_OF).as_dict()["MIB_TOTAL_RECORDS"] == 0.0


@pytest.mark.parametrize(
    "document",
    [
        f"<TXLife><Error><Code>503</Code><Message>{PRIVATE_TEXT}</Message></Error></TXLife>",
        "<TXLife><TXLifeResponse><Error>timeout</Error></TXLifeResponse></TXLife>",
        "<MIBResponse><Errors><Error>timeout</Error></Errors></MIBResponse>",
        "<Report><Error>timeout</Error></Report>",
    ],
    ids=["under-root", "under-reply", "errors-flat-shape", "unknown-root"],
)
def test_mib_error_element_without_records_raises(document: str) -> None:
    """An Error element at the top of an MIB reply without records is an error reply."""
    message = rejects(document.encode(), None, r"<Errors?> element and it has no records")
    assert message.startswith("MIB document")


@pytest.mark.parametrize(
    "document",
    [
        # An Error field inside a record of a valid report is data.
        txlife(
            "<ResultCode tc='1'/>",
            FORM.replace("</FormInstance>", "<Error>field note</Error></FormInstance>"),
            records=1,
        ),
        txlife("<ResultCode tc='1'/>", "<Holding><Error>note</Error></Holding>"),
        txlife("<ResultCode tc='1'/>").replace(b"<OLifE>", b"<Errors/><Errors> </Errors><OLifE>"),
        b"<MIBResponse><Errors><Error/></Errors></MIBResponse>",
    ],
    ids=["inside-form", "inside-holding", "empty-errors", "empty-nested-errors"],
)
def test_mib_inner_error_element_scores(document: bytes) -> None:
    """A deep or empty Error element does not make an MIB report an error reply."""
    vector = extract_features(document, None, as_of=AS_OF)
    assert vector.as_dict()["META_MIB_PARSE_ERROR"] == 0.0


def test_mib_error_element_with_records_scores() -> None:
    """An Error element beside records is scored from the records."""
    document = txlife("<ResultCode tc='1'/>", FORM, records=1).replace(
        b"<TransResult>", b"<Error>partial</Error><TransResult>"
    )
    assert extract_features(document, None, as_of=AS_OF).as_dict()["MIB_TOTAL_RECORDS"] == 1.0


# Rx <Result> ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "result",
    [
        "ERROR: service unavailable",
        PRIVATE_TEXT,
        "TIMEOUT",
        "NO",
        "0",
        "HIT OR MISS",
        "NOT AVAILABLE",
    ],
)
def test_rx_error_result_without_fills_raises(result: str) -> None:
    """A Result that reports neither a hit nor a no-hit, with no fills, is an error reply."""
    document = intelrx(f"<Result>{result}</Result>")
    message = rejects(None, document, r"<Result> reports neither a hit nor a no-hit")
    assert message.startswith("RX document is an error reply")


@pytest.mark.parametrize(
    "document",
    [
        b"<IntelRXResponse><Result>ERROR</Result></IntelRXResponse>",
        b"<RxHistoryResponse><Result>ERROR</Result></RxHistoryResponse>",
        b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body><IntelRX>"
        b"<IntelRXResponse><Result>ERROR</Result></IntelRXResponse></IntelRX></s:Body>"
        b"</s:Envelope>",
        b"<IntelRX><IntelRXResponse><Result>NOHIT</Result></IntelRXResponse><IntelRXResponse>"
        b"<Result>ERROR</Result></IntelRXResponse></IntelRX>",
    ],
    ids=["bare-response", "rx-history", "soap", "second-of-many"],
)
def test_rx_error_result_in_every_shape_raises(document: bytes) -> None:
    """The Result check works for every report wrapper the reader accepts."""
    rejects(None, document, r"<Result> reports neither a hit nor a no-hit")


@pytest.mark.parametrize(
    "result",
    [
        "HIT",
        "hit",
        " NOHIT ",
        "NO HIT",
        "NO_HIT",
        "NO-HIT",
        "No Hit",
        "no\n hit",
        "",
        "HITS",
        "No hit found.",
        "NO RECORDS FOUND",
        "Not found",
        "No match",
        "Record found",
    ],
)
def test_rx_hit_or_nohit_result_scores(result: str) -> None:
    """A hit or a no-hit in any case and wording, and a blank Result, score as a report."""
    vector = extract_features(None, intelrx(f"<Result>{result}</Result>"), as_of=AS_OF)
    assert vector.as_dict()["RX_TOTAL_FILLS"] == 0.0
    assert vector.as_dict()["META_RX_PARSE_ERROR"] == 0.0


@pytest.mark.parametrize("fills", [1, 3])
def test_rx_error_result_with_fills_scores(fills: int) -> None:
    """An error Result beside fills is scored from the fills."""
    document = intelrx("<Result>ERROR: partial</Result>" + FILL * fills)
    values = extract_features(None, document, as_of=AS_OF).as_dict()
    # Identical fills merge, so RX_DUPLICATE_FILLS shows every copy after the first.
    assert values["RX_TOTAL_FILLS"] == 1.0
    assert values["RX_DUPLICATE_FILLS"] == fills - 1


def test_rx_result_inside_a_fill_is_data() -> None:
    """A Result element inside a fill is a field of the fill, not the reply's result."""
    document = intelrx(
        "<Result>NOHIT</Result>" + FILL.replace("</DrugFill>", "<Result>X</Result></DrugFill>")
    )
    assert extract_features(None, document, as_of=AS_OF).as_dict()["RX_TOTAL_FILLS"] == 1.0


# Rx <Error> -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        f"<IntelRX><Error>{PRIVATE_TEXT}</Error></IntelRX>",
        "<IntelRX><IntelRXResponse><Error><Code>503</Code></Error></IntelRXResponse></IntelRX>",
        "<IntelRXResponse><Errors><Error>timeout</Error></Errors></IntelRXResponse>",
        "<IntelRX><IntelRXResponse><Result>NOHIT</Result></IntelRXResponse><Error>x</Error>"
        "</IntelRX>",
    ],
    ids=["under-root", "under-response", "errors", "beside-nohit"],
)
def test_rx_error_element_without_fills_raises(document: str) -> None:
    """An Error element at the top of an Rx report without fills is an error reply."""
    message = rejects(None, document.encode(), r"<Errors?> element and it has no fills")
    assert message.startswith("RX document")


@pytest.mark.parametrize(
    "document",
    [
        intelrx("<Result>NOHIT</Result><Errors/>"),
        intelrx("<Result>NOHIT</Result><Error> </Error>"),
        intelrx("<Eligibility><Error>no coverage data</Error></Eligibility>"),
    ],
    ids=["empty-errors", "blank-error", "inside-eligibility"],
)
def test_rx_inner_error_element_scores(document: bytes) -> None:
    """An empty Error element, or one inside another block, is not an error reply."""
    vector = extract_features(None, document, as_of=AS_OF)
    assert vector.as_dict()["META_RX_PARSE_ERROR"] == 0.0


def test_rx_error_element_with_fills_scores() -> None:
    """An Error element beside fills is scored from the fills, and one inside a fill is data."""
    document = intelrx(
        "<Error>partial</Error>" + FILL.replace("</DrugFill>", "<Error>x</Error></DrugFill>")
    )
    assert extract_features(None, document, as_of=AS_OF).as_dict()["RX_TOTAL_FILLS"] == 1.0


# Batches ----------------------------------------------------------------------------------

ERROR_PAIRS = [
    (txlife("<ResultCode tc='5'/>"), None),
    (None, intelrx("<Result>ERROR</Result>")),
    (b"<TXLife><Error>x</Error></TXLife>", intelrx("<Error>x</Error>")),
]
GOOD_PAIRS = [
    (txlife("<ResultCode tc='1'/>", FORM, records=1), intelrx("<Result>HIT</Result>" + FILL)),
    (None, None),
]


def test_lenient_batch_records_error_replies_as_parse_errors() -> None:
    """A lenient batch sets META_*_PARSE_ERROR for each error reply and scores the others."""
    pairs = [GOOD_PAIRS[0], *ERROR_PAIRS, GOOD_PAIRS[1]]
    matrix = extract_batch(pairs, as_of=AS_OF, lenient=True)
    mib_error = matrix[:, FEATURE_NAMES.index("META_MIB_PARSE_ERROR")].tolist()
    rx_error = matrix[:, FEATURE_NAMES.index("META_RX_PARSE_ERROR")].tolist()
    assert mib_error == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert rx_error == [0.0, 0.0, 1.0, 1.0, 0.0]
    # The Rx side of the MIB error row is read as usual, and vice versa.
    assert matrix[1, FEATURE_NAMES.index("HAS_RX_EVIDENCE")] == 0.0
    for row, pair in ((0, GOOD_PAIRS[0]), (4, GOOD_PAIRS[1])):
        single = extract_features(*pair, as_of=AS_OF).values
        np.testing.assert_array_equal(single, matrix[row])


def test_lenient_error_reply_gives_defaults() -> None:
    """An error reply's features are the defaults, as for a document that failed to parse."""
    failed = extract_batch([ERROR_PAIRS[0]], as_of=AS_OF, lenient=True)[0]
    unparsable = extract_batch([(b"<TXLife>", None)], as_of=AS_OF, lenient=True)[0]
    np.testing.assert_array_equal(failed, unparsable)


@pytest.mark.parametrize("pair", ERROR_PAIRS, ids=["mib", "rx", "both"])
def test_strict_batch_raises_on_error_reply(pair: tuple[bytes | None, bytes | None]) -> None:
    """Strict batches raise for an error reply, as extract_features does."""
    with pytest.raises(MalformedDocumentError, match="error reply"):
        extract_batch([GOOD_PAIRS[0], pair], as_of=AS_OF)
