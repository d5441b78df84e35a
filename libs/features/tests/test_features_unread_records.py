"""Reports whose records the readers cannot read raise instead of scoring as no evidence."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from evidence_features import (
    FEATURE_NAMES,
    FeatureWarning,
    MalformedDocumentError,
    extract_batch,
    extract_features,
)

AS_OF = date(2024, 3, 16)
SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples"
PRIVATE_TEXT = "Jane Example OXYCODONE 503D"
ACORD_NS = "http://ACORD.org/Standards/Life/2"


def fill(name: str = "DrugFill", generic: str = "METFORMIN") -> str:
    return (
        f"<{name}><FillDate>2024-02-15</FillDate><DrugGenericName>{generic}</DrugGenericName>"
        f"<Quantity>60</Quantity><DaysSupply>30</DaysSupply></{name}>"
    )


def intelrx(body: str, result: str | None = "HIT") -> str:
    result_tag = "" if result is None else f"<Result>{result}</Result>"
    return f"<IntelRX><IntelRXResponse>{result_tag}{body}</IntelRXResponse></IntelRX>"


def txlife(olife: str, records_found: str | None = "1") -> str:
    found = "" if records_found is None else f"<RecordsFound>{records_found}</RecordsFound>"
    return (
        f"<TXLife xmlns='{ACORD_NS}'><TXLifeResponse><TransResult><ResultCode tc='1'>Success"
        f"</ResultCode>{found}</TransResult><OLifE>{olife}</OLifE></TXLifeResponse></TXLife>"
    )


def form(name: str = "FormInstance", code: str = "503D", form_id: str = "F1") -> str:
    return (
        f"<{name} id='{form_id}'><SubmitDate>2023-01-01</SubmitDate>"
        f"<FormResponse><ResponseData>{code}</ResponseData></FormResponse></{name}>"
    )


def rejects(mib: str | bytes | None, rx: str | bytes | None, pattern: str) -> str:
    with pytest.raises(MalformedDocumentError, match=pattern) as caught:
        extract_features(mib, rx, as_of=AS_OF)
    message = str(caught.value)
    assert caught.value.document == ("MIB" if mib is not None else "RX")
    for word in PRIVATE_TEXT.split():
        assert word not in message
    return message


# Rx: record names in another case -------------------------------------------------------


@pytest.mark.parametrize("spelling", ["drugfill", "DRUGFILL", "drugFill", "Drugfill"])
@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("result", ["HIT", None])
def test_rx_fill_name_in_other_case_raises(spelling: str, count: int, result: str | None) -> None:
    """A fill spelled in another case raises, with or without a hit Result."""
    document = intelrx(fill(spelling, PRIVATE_TEXT) * count, result)
    message = rejects(None, document, f"<{spelling}> element")
    assert message.startswith("RX document contains a")
    assert "must be spelled <DrugFill>" in message


@pytest.mark.parametrize(
    "document",
    [
        "<IntelRXResponse>" + fill("drugfill") + "</IntelRXResponse>",
        "<RxHistoryResponse>" + fill("medicationdispensed") + "</RxHistoryResponse>",
        "<r>" + fill("DRUGFILL") + "</r>",
        "<ns:IntelRX xmlns:ns='urn:vendor'><ns:IntelRXResponse><ns:Result>HIT</ns:Result>"
        "<ns:drugfill><ns:DrugGenericName>METFORMIN</ns:DrugGenericName></ns:drugfill>"
        "</ns:IntelRXResponse></ns:IntelRX>",
        "<IntelRX xmlns='urn:vendor'><IntelRXResponse><DrugFill/><drugfill>x</drugfill>"
        "</IntelRXResponse></IntelRX>",
    ],
    ids=["bare-response", "ncpdp", "unknown-root", "prefixed", "beside-empty-fill"],
)
def test_rx_fill_name_in_other_case_every_shape(document: str) -> None:
    """The check covers every wrapper, namespaces, unknown roots and empty correct fills."""
    message = rejects(None, document, "XML element names are case-sensitive")
    assert "Ask the sender to correct the element names" in message


def test_rx_diabetic_sample_lowercase_fills_raise() -> None:
    """The 66-fill sample with every DrugFill lowercased raises instead of scoring 0 fills."""
    sample = (SAMPLES / "02-diabetic" / "rx.xml").read_text(encoding="utf-8")
    assert extract_features(None, sample, as_of=AS_OF).as_dict()["RX_TOTAL_FILLS"] > 0
    rejects(None, sample.replace("DrugFill", "drugfill"), "<drugfill> element")


# Rx: fill fields outside any fill ---------------------------------------------------------


@pytest.mark.parametrize("wrapper", ["Fill", "Prescription", "drugFillRecord"])
@pytest.mark.parametrize("result", ["HIT", None])
def test_rx_fields_in_unknown_wrapper_raise(wrapper: str, result: str | None) -> None:
    """Fills wrapped in a vendor element raise, naming the first fill field found."""
    document = intelrx(fill(wrapper, PRIVATE_TEXT) * 2, result)
    message = rejects(None, document, "no readable fill records but contains a <FillDate>")
    assert "<DrugFill> or <MedicationDispensed>" in message


@pytest.mark.parametrize(
    "field",
    ["<drugGenericName>X</drugGenericName>", "<ndc>00093512998</ndc>", "<FILLDATE>1</FILLDATE>"],
)
def test_rx_field_in_other_case_outside_fill_raises(field: str) -> None:
    """Fill fields count in any case."""
    rejects(None, intelrx(f"<Fill>{field}</Fill>"), "element with text, which belongs inside")


def test_rx_diabetic_sample_vendor_fill_name_raises() -> None:
    """The sample with DrugFill renamed to a vendor name raises."""
    sample = (SAMPLES / "02-diabetic" / "rx.xml").read_text(encoding="utf-8")
    rejects(None, sample.replace("DrugFill", "Fill"), "no readable fill records")


# Rx: reports that keep working -------------------------------------------------------------


@pytest.mark.parametrize("result", ["NO HIT", "NOHIT", "No hit found."])
def test_rx_no_hit_without_fills_is_clean(result: str) -> None:
    """A no-hit report without fills is a clean report without evidence and no warning."""
    vector = extract_features(None, intelrx("<ReportDate>2024-03-16</ReportDate>", result))
    assert vector.as_dict()["RX_TOTAL_FILLS"] == 0.0
    assert vector.as_dict()["HAS_RX_EVIDENCE"] == 0.0
    assert (FeatureWarning("missing_document", "MIB", 1),) == vector.warnings


def test_rx_hit_without_fills_scores_as_no_evidence() -> None:
    """A hit with eligibility and no fills is an applicant with coverage but no prescriptions."""
    body = (
        "<ReportDate>2024-03-16</ReportDate><Eligibility><Period><BeginDate>2019-03-16"
        "</BeginDate><EndDate>2024-03-16</EndDate></Period></Eligibility><RiskScore>3</RiskScore>"
    )
    vector = extract_features(None, intelrx(body))
    assert vector.as_dict()["RX_TOTAL_FILLS"] == 0.0
    assert (FeatureWarning("missing_document", "MIB", 1),) == vector.warnings


def test_rx_empty_root_still_warns() -> None:
    """`<r/>` stays an empty document with a warning."""
    vector = extract_features(None, "<r/>")
    assert FeatureWarning("empty_document", "RX", 1) in vector.warnings


def test_rx_fill_with_unreadable_fields_is_counted() -> None:
    """A fill whose fields are all in another case counts as a fill, with warnings."""
    document = intelrx(
        "<DrugFill><drugGenericName>METFORMIN</drugGenericName><fillDate>2024-01-01</fillDate>"
        "</DrugFill>"
    )
    vector = extract_features(None, document, as_of=AS_OF)
    assert vector.as_dict()["RX_TOTAL_FILLS"] == 1.0
    assert vector.as_dict()["HAS_RX_EVIDENCE"] == 1.0
    assert FeatureWarning("unknown_drug", "RX", 1) in vector.warnings
    assert FeatureWarning("undated_record", "RX", 1) in vector.warnings


# MIB: ACORD and flat record lists ---------------------------------------------------------


@pytest.mark.parametrize("spelling", ["forminstance", "FORMINSTANCE", "formInstance"])
@pytest.mark.parametrize("records_found", ["1", "2", None])
def test_mib_form_name_in_other_case_raises(spelling: str, records_found: str | None) -> None:
    """A FormInstance in another case raises instead of being read as flat codes."""
    olife = form(spelling, PRIVATE_TEXT) + form(spelling, "311", "F2")
    message = rejects(txlife(olife, records_found), None, f"<{spelling}> element")
    assert "must be spelled <FormInstance>" in message


def test_mib_prefixed_form_name_in_other_case_raises() -> None:
    """A prefixed ACORD reply is checked on local names."""
    document = (
        f"<ns2:TXLife xmlns:ns2='{ACORD_NS}'><ns2:TXLifeResponse><ns2:OLifE>"
        "<ns2:Forminstance id='F1'><ns2:FormResponse><ns2:ResponseData>311</ns2:ResponseData>"
        "</ns2:FormResponse></ns2:Forminstance></ns2:OLifE></ns2:TXLifeResponse></ns2:TXLife>"
    )
    rejects(document, None, "<Forminstance> element")


@pytest.mark.parametrize("count", [1, 2])
def test_mib_flat_record_name_in_other_case_raises(count: int) -> None:
    """An MIBRecord in another case raises."""
    record = '<mibrecord ReplyType="HIT"><Csy>XA1</Csy><Code>503D</Code></mibrecord>'
    rejects(f"<MIBResponse>{record * count}</MIBResponse>", None, "spelled <MIBRecord>")


@pytest.mark.parametrize("spelling", ["responseData", "RESPONSEDATA", "responsedata"])
@pytest.mark.parametrize("count", [1, 2])
def test_mib_legacy_code_name_in_other_case_raises(spelling: str, count: int) -> None:
    """The legacy `<Response><ResponseData>` shape in another case raises."""
    codes = "".join(f"<{spelling}>{code}</{spelling}>" for code in ("503D", "311C")[:count])
    message = rejects(f"<Response>{codes}</Response>", None, f"<{spelling}> element")
    assert "503D" not in message


def test_mib_legacy_mixed_spelling_raises() -> None:
    """A flat reply is checked before it is read, so one misspelled code among good ones raises."""
    document = (
        "<Response><ResponseData>503D</ResponseData><responsedata>311</responsedata></Response>"
    )
    rejects(document, None, "<responsedata> element")


@pytest.mark.parametrize(("records_found", "count"), [("1", 1), ("2", 2), ("0000000003", 3)])
def test_mib_records_found_without_records_raises(records_found: str, count: int) -> None:
    """RecordsFound 1 or more without any record element raises and repeats the count."""
    olife = "".join(
        f"<Form id='F{index}'><Data>{PRIVATE_TEXT}</Data></Form>" for index in range(count)
    )
    message = rejects(txlife(olife, records_found), None, "in RecordsFound, but no records")
    noun = "record" if count == 1 else "records"
    assert f"reports {count} {noun} in RecordsFound" in message
    assert "<FormInstance>, <MIBRecord> or <ResponseData>" in message


@pytest.mark.parametrize(
    ("empty", "pattern"), [(1, "its only record element is empty"), (3, "all 3 of")]
)
def test_mib_records_found_with_empty_forms_raises(empty: int, pattern: str) -> None:
    """RecordsFound 1 with only empty FormInstance elements raises."""
    olife = "<FormInstance/>" * empty
    rejects(txlife(olife, "1"), None, pattern)


def test_mib_records_found_with_no_file_record_scores() -> None:
    """An NFD record is a record the reader understood, so RecordsFound 1 is consistent."""
    olife = (
        form() + "<Relation OriginatingObjectID='F1' RelatedObjectID='P1'>"
        "<RelationRoleCode>NFD</RelationRoleCode></Relation>"
    )
    vector = extract_features(txlife(olife, "1"), None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 0.0


@pytest.mark.parametrize("records_found", ["0", "000", None, "", "  "])
def test_mib_no_count_or_zero_without_records_scores(records_found: str | None) -> None:
    """RecordsFound 0, absent or blank states no records."""
    vector = extract_features(txlife("", records_found), None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 0.0
    assert vector.as_dict()["META_MIB_PARSE_ERROR"] == 0.0


@pytest.mark.parametrize(
    "records_found",
    ["two", PRIVATE_TEXT, "12345678901", "99999999999", "+3", "-1", "1e3", "3.0", "\uff11"],
)
def test_mib_unreadable_count_without_records_raises(records_found: str) -> None:
    """A RecordsFound that is no plain count may claim records, so a reply without any raises."""
    message = rejects(
        txlife("", records_found), None, "RecordsFound that is not a whole number of records"
    )
    assert records_found not in message


def test_mib_unreadable_count_with_records_scores() -> None:
    """An unreadable RecordsFound beside readable records is not checked."""
    vector = extract_features(txlife(form(), "-1"), None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 1.0


def test_mib_records_found_with_records_scores() -> None:
    """A count that disagrees with a reply that has records is not checked."""
    vector = extract_features(txlife(form(), "5"), None, as_of=AS_OF)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 1.0


def test_mib_legacy_code_in_attribute_is_counted() -> None:
    """A ResponseData with data but no text counts as a record without a code."""
    vector = extract_features("<Response><ResponseData code='503D'/></Response>", None)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 1.0
    assert vector.as_dict()["MIB_UNIQUE_CODES"] == 0.0


@pytest.mark.parametrize("spelling", ["responseData", "RESPONSEDATA"])
def test_mib_form_code_in_other_case_raises(spelling: str) -> None:
    """A dated FormInstance whose only code is misspelled raises instead of counting no code."""
    olife = (
        "<FormInstance id='F1'><SubmitDate>2023-01-01</SubmitDate><FormResponse>"
        f"<{spelling}>{PRIVATE_TEXT}</{spelling}></FormResponse></FormInstance>"
    )
    message = rejects(txlife(olife), None, f"<{spelling}> element")
    assert "one of its codes" in message
    assert "must be spelled <ResponseData>" in message


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [("code", "Code"), ("DATAITEM", "DataItem"), ("mibCode", "MibCode")],
)
def test_mib_flat_code_in_other_case_raises(spelling: str, expected: str) -> None:
    """An MIBRecord whose only code is misspelled raises."""
    record = (
        f'<MIBRecord ReplyType="HIT"><Csy>XA1</Csy><DateReported>20AG21</DateReported>'
        f"<{spelling}>{PRIVATE_TEXT}</{spelling}></MIBRecord>"
    )
    rejects(f"<MIBResponse>{record}</MIBResponse>", None, f"must be spelled <{expected}>")


def test_mib_record_with_codes_and_misspelling_scores() -> None:
    """A record with a readable code is not checked, so the check stays off the common path."""
    record = '<MIBRecord ReplyType="HIT"><Code>503D</Code><code>311</code></MIBRecord>'
    vector = extract_features(f"<MIBResponse>{record}</MIBResponse>", None, as_of=AS_OF)
    assert vector.as_dict()["MIB_CODE_COUNT"] == 1.0


def test_long_namespace_tag_still_checked() -> None:
    """A tag too long for the classification cache is classified on every visit."""
    namespace = "urn:" + "x" * 400
    document = (
        f"<IntelRXResponse xmlns='{namespace}'><drugfill><DrugGenericName>A</DrugGenericName>"
        "</drugfill><drugfill/></IntelRXResponse>"
    )
    for _ in range(2):
        rejects(None, document, "<drugfill> element")


# Batches ----------------------------------------------------------------------------------


def test_lenient_batch_records_unread_records_as_parse_errors() -> None:
    """Lenient batches set META_*_PARSE_ERROR and score the other document and rows."""
    good = (txlife(form()), intelrx(fill()))
    pairs = [
        good,
        (txlife(form("forminstance")), intelrx(fill())),
        (txlife(form()), intelrx(fill("drugfill"))),
        (txlife("", "2"), intelrx(fill("Fill"))),
    ]
    matrix = extract_batch(pairs, as_of=AS_OF, lenient=True)
    mib_error = matrix[:, FEATURE_NAMES.index("META_MIB_PARSE_ERROR")].tolist()
    rx_error = matrix[:, FEATURE_NAMES.index("META_RX_PARSE_ERROR")].tolist()
    assert mib_error == [0.0, 1.0, 0.0, 1.0]
    assert rx_error == [0.0, 0.0, 1.0, 1.0]
    assert matrix[1, FEATURE_NAMES.index("RX_TOTAL_FILLS")] == 1.0
    assert matrix[2, FEATURE_NAMES.index("MIB_TOTAL_RECORDS")] == 1.0


def test_strict_batch_raises() -> None:
    """A strict batch raises on the first such document."""
    with pytest.raises(MalformedDocumentError, match="<drugfill>"):
        extract_batch([(None, intelrx(fill("drugfill")))], as_of=AS_OF)
