"""Hardened parsing and every XML shape the readers accept (P-01 to P-04, P-06)."""

from __future__ import annotations

import codecs
import math
import time
from collections.abc import Callable

import pytest
from evidence_features import (
    FEATURE_NAMES,
    DocumentError,
    DocumentTooLargeError,
    EvidenceFeaturesError,
    FeatureWarning,
    HostileDocumentError,
    MalformedDocumentError,
    ParseLimits,
    extract_batch,
    extract_features,
)
from evidence_features._xml import _HOSTILE_MARKERS
from lxml import etree

ONE_FILL = (
    b"<IntelRXResponse><DrugFill><DrugGenericName>METFORMIN</DrugGenericName>"
    b"</DrugFill></IntelRXResponse>"
)
METFORMIN_FILL = "<DrugFill><DrugGenericName>METFORMIN</DrugGenericName></DrugFill>"
TWO_FILLS = (
    b"<IntelRXResponse><DrugFill><DrugGenericName>METFORMIN</DrugGenericName></DrugFill>"
    b"<DrugFill><DrugGenericName>LISINOPRIL</DrugGenericName></DrugFill></IntelRXResponse>"
)


def rx_values(document: bytes | str) -> dict[str, float]:
    return extract_features(None, document).as_dict()


def mib_values(document: bytes | str) -> dict[str, float]:
    return extract_features(document, None).as_dict()


@pytest.mark.parametrize(
    ("document", "fills"),
    [
        (ONE_FILL, 1),
        (TWO_FILLS, 2),
        (b"<IntelRXResponse></IntelRXResponse>", 0),
        (b"<IntelRXResponse><DrugFill/></IntelRXResponse>", 0),
    ],
)
def test_fill_count_zero_one_many(document: bytes, fills: int) -> None:
    """One fill counts as one, two as two, none and an empty fill element as zero."""
    assert fills == rx_values(document)["RX_TOTAL_FILLS"]


def test_empty_fill_warns_empty_record() -> None:
    """A self-closing DrugFill is no fill.

    It raises only empty_record, and neither unknown_drug nor undated_record.
    """
    vector = extract_features(None, b"<IntelRXResponse><DrugFill/></IntelRXResponse>")

    assert 0.0 == vector.as_dict()["RX_UNIQUE_DRUGS"]
    assert 0.0 == vector.as_dict()["HAS_RX_EVIDENCE"]
    assert (
        FeatureWarning("empty_record", "RX", 1),
        FeatureWarning("missing_document", "MIB", 1),
    ) == vector.warnings


def test_leaf_values_attribute_blank_and_unit() -> None:
    """Attributes, unit attributes, self-closing and blank leaves read as in P-02."""
    document = (
        b"<IntelRXResponse><ReportDate>2024-01-31</ReportDate>"
        b"<DrugFill><FillDate>2024-01-01</FillDate><DrugGenericName>LISINOPRIL</DrugGenericName>"
        b'<DaysSupply unit="days">30</DaysSupply><Qty>60</Qty></DrugFill>'
        b"<DrugFill><FillDate>2023-10-01</FillDate><DrugGenericName>LISINOPRIL</DrugGenericName>"
        b'<DaysSupply>90</DaysSupply><Qty unit="ea">90</Qty></DrugFill>'
        b"<DrugFill><FillDate>2023-06-01</FillDate><DrugGenericName>LISINOPRIL</DrugGenericName>"
        b"<DaysSupply/><Qty>   </Qty></DrugFill></IntelRXResponse>"
    )
    values = rx_values(document)
    assert values["RX_TOTAL_FILLS"] == 3.0
    assert values["RX_TOTAL_DAYS_SUPPLY"] == 120.0  # 30 + 90 + missing as 0


def test_quantity_as_attribute_value() -> None:
    """`<Quantity value="30"/>` and `<Quantity>30</Quantity>` are the same fill."""
    as_attribute = (
        b"<IntelRXResponse><DrugFill><FillDate>2024-01-01</FillDate>"
        b'<DrugGenericName>LISINOPRIL</DrugGenericName><Quantity value="30"/></DrugFill>'
        b"<DrugFill><FillDate>2024-01-01</FillDate><DrugGenericName>LISINOPRIL</DrugGenericName>"
        b"<Quantity>30</Quantity></DrugFill></IntelRXResponse>"
    )
    assert rx_values(as_attribute)["RX_DUPLICATE_FILLS"] == 1.0


def test_namespaces_prefixed_default_and_soap() -> None:
    """Prefixed, default and SOAP-wrapped documents read the same as plain ones."""
    plain = rx_values(TWO_FILLS)
    prefixed = (
        b'<ns2:IntelRXResponse xmlns:ns2="urn:example:rx"><ns2:DrugFill><ns2:DrugGenericName>'
        b"METFORMIN</ns2:DrugGenericName></ns2:DrugFill><ns2:DrugFill><ns2:DrugGenericName>"
        b"LISINOPRIL</ns2:DrugGenericName></ns2:DrugFill></ns2:IntelRXResponse>"
    )
    default = TWO_FILLS.replace(b"<IntelRXResponse>", b'<IntelRXResponse xmlns="urn:example:rx">')
    soap = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        + TWO_FILLS.replace(b"<IntelRXResponse>", b'<IntelRXResponse xmlns="">')
        + b"</soap:Body></soap:Envelope>"
    )
    assert plain == rx_values(prefixed)
    assert plain == rx_values(default)
    assert plain == rx_values(soap)


def test_cdata_entities_comments_pis() -> None:
    """CDATA, predefined entities, comments and processing instructions do not change values."""
    document = (
        b"<?xml version='1.0'?><?vendor hint?><IntelRXResponse><!-- note -->"
        b"<DrugFill><DrugGenericName><![CDATA[METFORMIN]]></DrugGenericName>"
        b"<PharmacyName>A &amp; B</PharmacyName></DrugFill></IntelRXResponse>"
    )
    values = rx_values(document)
    assert values["RX_DRUG_NONINSULIN_ANTIDIABETIC"] == 1.0
    assert values["RX_UNIQUE_PHARMACIES"] == 1.0


@pytest.mark.parametrize(
    "document",
    [
        '<?xml version="1.0" encoding="ISO-8859-1"?><MIBResponse><MIBRecord ReplyType="HIT">'
        "<Csy>ÉÑ1</Csy><Code>503D</Code></MIBRecord></MIBResponse>".encode("iso-8859-1"),
        codecs.BOM_UTF8 + b'<MIBResponse><MIBRecord ReplyType="HIT"><Csy>\xc3\x891</Csy>'
        b"<Code>503D</Code></MIBRecord></MIBResponse>",
        codecs.BOM_UTF16_LE
        + '<MIBResponse><MIBRecord ReplyType="HIT"><Csy>É1</Csy><Code>503D</Code>'
        "</MIBRecord></MIBResponse>".encode("utf-16-le"),
        '<?xml version="1.0" encoding="UTF-16"?><MIBResponse><MIBRecord ReplyType="HIT">'
        "<Csy>É1</Csy><Code>503D</Code></MIBRecord></MIBResponse>".encode("utf-16"),
    ],
    ids=["iso-8859-1", "utf-8-bom", "utf-16-le-bom", "utf-16-declared"],
)
def test_encodings_parse_from_bytes(document: bytes) -> None:
    """Declared ISO-8859-1, UTF-8 and UTF-16 byte-order marks all parse from bytes."""
    values = mib_values(document)
    assert values["MIB_HIT_COUNT"] == 1.0
    assert values["MIB_CAT_ENDOCRINE_DIABETES"] == 1.0


def test_str_with_encoding_declaration() -> None:
    """A str that still carries an encoding declaration parses (the declaration is dropped)."""
    document = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>'
        "<Response><ResponseData>503D</ResponseData></Response>"
    )
    assert mib_values(document)["MIB_TOTAL_RECORDS"] == 1.0


def test_latin1_bytes_declared_utf8_recovered() -> None:
    """Latin-1 bytes in a document declared UTF-8 are re-read as ISO-8859-1 with a warning."""
    document = (
        b'<?xml version="1.0" encoding="UTF-8"?><MIBResponse><MIBRecord><Csy>\xe91</Csy>'
        b"<Code>503D</Code></MIBRecord></MIBResponse>"
    )
    vector = extract_features(document, None)
    assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 1.0
    assert FeatureWarning("encoding_recovered", "MIB", 1) in vector.warnings


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r><Name>&b;</Name><Qty>30</Qty></r>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        b"<r><Name>&x;</Name></r>",
        b'<!DOCTYPE r SYSTEM "r.dtd"><r><Qty>30</Qty></r>',
        '<!DOCTYPE r [<!ENTITY a "x">]><r>&a;</r>'.encode("utf-16"),
        "<!DOCTYPE r><r/>",
    ],
    ids=["billion-laughs", "external-entity", "doctype-only", "utf-16-doctype", "str-doctype"],
)
def test_doctype_and_entities_rejected(document: bytes | str) -> None:
    """Any DOCTYPE or entity declaration raises HostileDocumentError naming the document (P-03)."""
    with pytest.raises(HostileDocumentError, match=r"^RX document") as caught:
        extract_features(None, document)
    assert caught.value.document == "RX"
    assert "hostname" not in str(caught.value)


def test_hostile_markers_all_contain_bang() -> None:
    """parse_document skips the marker scan for bytes without "!", so every marker needs one."""
    for marker in _HOSTILE_MARKERS:
        assert b"!" in marker, marker


def test_billion_laughs_rejected_quickly() -> None:
    """A nine-level expansion bomb is rejected before any expansion, in well under a second."""
    entities = "".join(f'<!ENTITY e{level} "{f"&e{level - 1};" * 10}">' for level in range(1, 10))
    document = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e0 "lol">{entities}]><r>&e9;</r>'
    started = time.perf_counter()
    with pytest.raises(HostileDocumentError):
        extract_features(document.encode(), None)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("depth", [65, 300, 1200])
def test_deep_nesting_rejected(depth: int) -> None:
    """Nesting deeper than the cap raises DocumentTooLargeError with limit "depth" (P-04)."""
    document = (
        b"<IntelRXResponse>" + b"<a>" * depth + b"x" + b"</a>" * depth + b"</IntelRXResponse>"
    )
    with pytest.raises(DocumentTooLargeError, match="nested deeper than 64 elements") as caught:
        extract_features(None, document)
    assert caught.value.limit == "depth"


def test_depth_past_parser_cap_names_configured_cap() -> None:
    """Past libxml2's own 256 levels the message still names the configured cap."""
    document = b"<r>" + b"<a>" * 300 + b"</a>" * 300 + b"</r>"
    with pytest.raises(DocumentTooLargeError, match="nested deeper than 12 elements") as caught:
        extract_features(None, document, limits=ParseLimits(max_depth=12))
    assert caught.value.limit == "depth"
    assert "256 levels" in str(caught.value)


def test_depth_at_cap_accepted() -> None:
    """A document exactly at the depth cap parses."""
    document = b"<r>" + b"<a>" * 63 + b"</a>" * 63 + b"</r>"
    vector = extract_features(None, document)
    assert FeatureWarning("unrecognized_document", "RX", 1) in vector.warnings


def test_byte_cap_rejected_before_parse() -> None:
    """A document over max_bytes raises DocumentTooLargeError with limit "bytes" (P-05)."""
    document = b"<IntelRXResponse>" + b"<a>xxxx</a>" * 200 + b"</IntelRXResponse>"
    with pytest.raises(DocumentTooLargeError, match="over the 1,000-byte limit") as caught:
        extract_features(None, document, limits=ParseLimits(max_bytes=1_000))
    assert caught.value.limit == "bytes"


def test_element_cap_rejected() -> None:
    """A document with more elements than max_elements raises with limit "elements"."""
    document = b"<IntelRXResponse>" + b"<DrugFill/>" * 50 + b"</IntelRXResponse>"
    with pytest.raises(DocumentTooLargeError, match="51 elements") as caught:
        extract_features(None, document, limits=ParseLimits(max_elements=50))
    assert caught.value.limit == "elements"


@pytest.mark.parametrize(
    "field",
    [
        {"max_bytes": 0},
        {"max_depth": -1},
        {"max_elements": 1.5},
        {"max_depth": 300},
        {"max_attributes": 0},
        {"max_attributes": True},
    ],
)
def test_parse_limits_invalid_values(field: dict[str, object]) -> None:
    """ParseLimits rejects non-positive, non-int and over-256 depth values with ValueError."""
    with pytest.raises(ValueError, match="ParseLimits"):
        ParseLimits(**field)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("document", "pattern"),
    [
        (b"<IntelRXResponse><DrugFill><DrugGenericName>MET", "not well-formed"),
        (b"<IntelRXResponse><DrugFill></IntelRXResponse>", "not well-formed"),
        (b"not xml at all", "not XML"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "HTML page"),
        (b"<!DOCTYPE html><html><body>Error</body></html>", "DOCTYPE"),
        (b"<html><body><p>unclosed</body></html>", "not well-formed"),
        (b"<Error><Code>500</Code></Error>", r"error reply \(root element Error\)"),
        (b"<Errors><Error>timeout</Error></Errors>", r"error reply \(root element Errors\)"),
        (b"<ns:ErrorResponse xmlns:ns='urn:x'/>", r"error reply \(root element ErrorResponse\)"),
        (b"<Fault><faultcode>Server</faultcode></Fault>", r"error reply \(root element Fault\)"),
        (
            b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>"
            b"<s:Fault><faultcode>s:Server</faultcode></s:Fault></s:Body></s:Envelope>",
            "a SOAP fault",
        ),
    ],
    ids=[
        "truncated",
        "mismatched",
        "text",
        "xhtml-page",
        "html5-page",
        "html-unclosed",
        "error-root",
        "errors-root",
        "prefixed-error-response",
        "fault-root",
        "soap-fault",
    ],
)
def test_malformed_documents_raise(document: bytes, pattern: str) -> None:
    """Truncated XML, plain text and HTML error pages raise a DocumentError, never zeros."""
    with pytest.raises(DocumentError, match=pattern) as caught:
        extract_features(None, document)
    assert caught.value.document == "RX"
    assert isinstance(caught.value, EvidenceFeaturesError)
    assert isinstance(caught.value, ValueError)


def test_soap_envelope_with_report_is_read() -> None:
    """A SOAP envelope around a report is read. Only one whose body contains a fault is rejected."""
    envelope = (
        b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>"
        b"<IntelRXResponse><DrugFill><DrugGenericName>METFORMIN</DrugGenericName></DrugFill>"
        b"</IntelRXResponse></s:Body></s:Envelope>"
    )
    assert extract_features(None, envelope).as_dict()["RX_TOTAL_FILLS"] == 1.0


def test_lenient_error_reply_parse_error() -> None:
    """A lenient batch records an error reply as a parse error instead of scoring it as empty."""
    frame = extract_batch(
        [(b"<Error><Code>503</Code></Error>", None), (b"<r/>", None)], lenient=True
    )
    assert frame[0][FEATURE_NAMES.index("META_MIB_PARSE_ERROR")] == 1.0
    assert frame[1][FEATURE_NAMES.index("META_MIB_PARSE_ERROR")] == 0.0


def test_malformed_message_hides_content() -> None:
    """The error message names the problem and position, never the document text."""
    with pytest.raises(MalformedDocumentError) as caught:
        extract_features(b"<MIBResponse><Name>Jane Example</Nme></MIBResponse>", None)
    message = str(caught.value)
    assert message.startswith("MIB document is not well-formed XML (ERR_TAG_NAME_MISMATCH")
    assert "Jane" not in message


@pytest.mark.parametrize(
    ("document", "hint"),
    [
        (b"hello, not xml {\n", ""),
        (b"name: Jane Example", ""),
        (b'{"name": "Jane Example"}', "; it starts with '{', as JSON does."),
        (b'\xef\xbb\xbf  [{"name": "Jane Example"}]', "; it starts with '[', as JSON does."),
        (b'<?xml version="1.0"?>\n{"name": "Jane"}', "; it starts with '{', as JSON does."),
        ('<?xml version="1.0" encoding="UTF-16"?>{"name": "Jane"}', "; it starts with '{'"),
        ("Jane Example".encode("utf-16"), ""),
        (b"<!-- report --> Jane Example", ""),
        (b"\x00\x01", ""),
    ],
    ids=["text", "yaml", "json", "bom-json-array", "declared-json", "str-json", "utf16-text",
         "comment-then-text", "control-bytes"],
)  # fmt: skip
def test_non_xml_document_message(document: bytes | str, hint: str) -> None:
    """A document without a root element is named not XML, with no text of it echoed."""
    with pytest.raises(MalformedDocumentError) as caught:
        extract_features(document, None)
    message = str(caught.value)
    assert message.startswith(
        "MIB document is not XML: it does not start with an element ('<') after any XML "
        "declaration or comments"
    )
    assert hint in message
    assert message.endswith("Check that the file is the XML report and not JSON or text")
    assert "Jane" not in message
    assert "hello" not in message
    assert "ERR_DOCUMENT_EMPTY" not in message


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"   \n",
        "",
        b'<?xml version="1.0"?>',
        b"<IntelRXResponse/>",
        b"<Response/>",
        b"<r> </r>",
    ],
)
def test_empty_documents_warn(document: bytes | str) -> None:
    """Blank input, a bare declaration and empty roots give defaults and empty_document."""
    vector = extract_features(b"<r/>", document)
    assert (
        FeatureWarning("empty_document", "MIB", 1),
        FeatureWarning("empty_document", "RX", 1),
    ) == vector.warnings
    assert vector.as_dict()["HAS_RX_EVIDENCE"] == 0.0


def test_numeric_oddities_stay_finite() -> None:
    """Zero, NaN, Infinity, negative and 999 supplies or quantities never give NaN or inf."""
    fills = "".join(
        f"<DrugFill><FillDate>2024-01-0{index}</FillDate><DrugGenericName>OXYCODONE</DrugGenericName>"
        f"<DrugStrength>10 MG</DrugStrength><Quantity>{quantity}</Quantity>"
        f"<DaysSupply>{days}</DaysSupply></DrugFill>"
        for index, (quantity, days) in enumerate(
            [("30", "0"), ("NaN", "30"), ("Infinity", "Infinity"), ("-5", "-30"), ("30", "999")],
            start=1,
        )
    )
    vector = extract_features(None, f"<IntelRXResponse>{fills}</IntelRXResponse>")
    assert all(math.isfinite(value) for value in vector.values)
    values = vector.as_dict()
    assert values["RX_TOTAL_FILLS"] == 5.0
    assert values["RX_TOTAL_DAYS_SUPPLY"] == 30 + 365
    assert 0.0 < values["RX_OPIOID_MAX_DAILY_MME"] <= 15.0


def test_ncpdp_medication_dispensed_aliases() -> None:
    """NCPDP MedicationDispensed with nested Date, Quantity/Value, ProductCode and blocks reads."""
    document = b"""<RxHistoryResponse><MedicationDispensed>
      <DrugDescription>HYDROCODONE-APAP 5-325 TABLET</DrugDescription>
      <DrugCoded><ProductCode><Code>0406-0123-01</Code><Qualifier>ND</Qualifier></ProductCode></DrugCoded>
      <Quantity><Value>60</Value></Quantity><DaysSupply>15</DaysSupply>
      <LastFillDate><Date>2024-03-01</Date></LastFillDate><WrittenDate><Date>2024-02-28</Date></WrittenDate>
      <Pharmacy><Identification><NCPDPID>0312345</NCPDPID><NPI>1999999999</NPI></Identification>
        <BusinessName>Example Pharmacy</BusinessName></Pharmacy>
      <Prescriber><NonVeterinarian><Identification><NPI>1234567893</NPI></Identification>
        <Specialty>PAIN MEDICINE</Specialty></NonVeterinarian></Prescriber>
    </MedicationDispensed></RxHistoryResponse>"""
    vector = extract_features(None, document, as_of=None)
    values = vector.as_dict()
    assert values["RX_TOTAL_FILLS"] == 1.0
    assert values["RX_DRUG_OPIOID"] == 1.0
    assert values["RX_OPIOID_MAX_DAILY_MME"] == 20.0  # 5 mg x 60 / 15 days x 1
    assert values["RX_OPIOID_PRESCRIBERS_12M"] == 1.0
    assert values["RX_UNIQUE_PHARMACIES"] == 1.0
    assert values["RX_UNIQUE_SPECIALTIES"] == 1.0
    assert vector.as_of.isoformat() == "2024-03-01"


def test_ndc_only_fill_keys_on_ndc() -> None:
    """Fills naming only an NDC count as drugs keyed on the 11-digit NDC, in any format."""
    document = (
        b"<IntelRXResponse><DrugFill><NDC>0093-5129-98</NDC></DrugFill>"
        b"<DrugFill><NDC>00093512998</NDC></DrugFill></IntelRXResponse>"
    )
    values = rx_values(document)
    assert values["RX_UNIQUE_DRUGS"] == 1.0
    assert values["RX_DUPLICATE_FILLS"] == 1.0


@pytest.mark.parametrize(
    ("relation", "hits", "tries"),
    [
        (b'<RelationRoleCode tc="1001"/>', 1, 0),
        (b"<RelationRoleCode>Hit</RelationRoleCode>", 1, 0),
        (b'<RelationRoleCode tc="1002">Try</RelationRoleCode>', 0, 1),
        (b"<RelationRoleCode>TRY</RelationRoleCode>", 0, 1),
        (b"", 0, 0),
    ],
)
def test_acord_relation_role_forms(relation: bytes, hits: int, tries: int) -> None:
    """RelationRoleCode as tc only, text only or both decides Hit and Try; none counts neither."""
    document = (
        b'<ns2:TXLife xmlns:ns2="http://ACORD.org/Standards/Life/2"><ns2:TXLifeResponse>'
        b'<ns2:OLifE><ns2:FormInstance id="F1"><ns2:FormResponse><ns2:ResponseData>311C'
        b"</ns2:ResponseData></ns2:FormResponse></ns2:FormInstance>"
        b'<ns2:Relation OriginatingObjectID="F1" RelatedObjectID="P1">'
        + relation.replace(b"<Relation", b"<ns2:Relation").replace(b"</Relation", b"</ns2:Relation")
        + b"</ns2:Relation></ns2:OLifE></ns2:TXLifeResponse></ns2:TXLife>"
    )
    values = mib_values(document)
    assert values["MIB_TOTAL_RECORDS"] == 1.0
    assert hits == values["MIB_HIT_COUNT"]
    assert tries == values["MIB_TRY_COUNT"]


def test_mib_no_file_replies() -> None:
    """RecordsFound 0 and an NFD-only legacy reply give no records and no warning."""
    acord = (
        b"<TXLife><TXLifeResponse><TransResult><ResultCode tc='1'>Success</ResultCode>"
        b"<RecordsFound>0</RecordsFound></TransResult></TXLifeResponse></TXLife>"
    )
    legacy = b'<MIBResponse><MIBRecord ReplyType="NFD"/></MIBResponse>'
    for document in (acord, legacy):
        vector = extract_features(document, None)
        assert vector.as_dict()["MIB_TOTAL_RECORDS"] == 0.0
        assert (FeatureWarning("missing_document", "RX", 1),) == vector.warnings


def test_mib_flat_record_list() -> None:
    """The MIBResponse/MIBRecord shape reads reply type, company, legacy dates and codes."""
    document = (
        b'<MIBResponse><MIBRecord ReplyType="HIT"><Csy>XA1</Csy><DateReported>20AG21</DateReported>'
        b'<Code FieldId="C001">503D</Code></MIBRecord>'
        b'<MIBRecord ReplyType="TRY"><Csy>QB7</Csy><DateReported>------</DateReported>'
        b'<Code FieldId="C001">311C</Code></MIBRecord></MIBResponse>'
    )
    vector = extract_features(document, None, as_of=None)
    values = vector.as_dict()
    assert (
        values["MIB_HIT_COUNT"],
        values["MIB_TRY_COUNT"],
        values["MIB_UNIQUE_COMPANIES"],
    ) == (1.0, 1.0, 2.0)
    assert values["MIB_UNDATED_RECORDS"] == 1.0
    assert values["META_UNPARSEABLE_DATES"] == 1.0
    assert vector.as_of.isoformat() == "2021-08-20"


@pytest.mark.parametrize(("elements", "rejected"), [(25, False), (26, True)])
def test_element_cap_densest_document(elements: int, rejected: bool) -> None:
    """`<a/>` elements, the densest markup, hit the element cap exactly at its byte bound.

    The cap's XPath count is skipped when bytes / 4 cannot exceed the cap, so these documents
    sit on both sides of that bound.
    """
    document = b"<r>" + b"<a/>" * (elements - 1) + b"</r>"
    limits = ParseLimits(max_elements=25)
    if rejected:
        with pytest.raises(DocumentTooLargeError, match="26 elements") as caught:
            extract_features(None, document, limits=limits)
        assert caught.value.limit == "elements"
    else:
        vector = extract_features(None, document, limits=limits)
        assert FeatureWarning("unrecognized_document", "RX", 1) in vector.warnings


@pytest.mark.parametrize(("depth", "rejected"), [(8, False), (9, True)])
def test_depth_cap_shortest_document(depth: int, rejected: bool) -> None:
    """The shortest document nested one level past the cap is rejected.

    The depth probe is skipped when the byte size cannot hold max_depth + 1 levels, and
    `<a>` * 8 + `<a/>` + `</a>` * 8 is exactly 7 * 8 + 4 bytes.
    """
    document = b"<a>" * (depth - 1) + b"<a/>" + b"</a>" * (depth - 1)
    limits = ParseLimits(max_depth=8)
    if rejected:
        assert len(document) == 7 * 8 + 4
        with pytest.raises(DocumentTooLargeError, match="nested deeper than 8") as caught:
            extract_features(None, document, limits=limits)
        assert caught.value.limit == "depth"
    else:
        vector = extract_features(None, document, limits=limits)
        assert FeatureWarning("unrecognized_document", "RX", 1) in vector.warnings


@pytest.mark.parametrize(
    ("fills", "empty", "counted"),
    [
        ("<DrugFill/>", 1, 0),
        ("<DrugFill>  \n </DrugFill>", 1, 0),
        ('<DrugFill id=" "/>', 1, 0),
        ("<MedicationDispensed/>", 1, 0),
        ('<DrugFill id="7"/>', 0, 1),
        ("<DrugFill><DrugGenericName/></DrugFill>", 1, 0),
        ("<DrugFill><DrugGenericName>METFORMIN</DrugGenericName></DrugFill>", 0, 1),
        ("<DrugFill/><DrugFill/><DrugFill/>" + METFORMIN_FILL, 3, 1),
    ],
)
def test_empty_fill_elements(fills: str, empty: int, counted: int) -> None:
    """Fill elements without non-blank text or attribute in their subtree are skipped, counted."""
    vector = extract_features(None, f"<IntelRXResponse>{fills}</IntelRXResponse>")
    expected_warning = [FeatureWarning("empty_record", "RX", empty)] if empty else []

    assert counted == vector.as_dict()["RX_TOTAL_FILLS"]
    assert expected_warning == [w for w in vector.warnings if w.kind == "empty_record"]


@pytest.mark.parametrize(
    ("records", "empty", "counted"),
    [
        ("<MIBRecord/>", 1, 0),
        ("<MIBRecord> </MIBRecord>", 1, 0),
        ('<MIBRecord ReplyType="HIT"/>', 0, 1),
        ('<MIBRecord/><MIBRecord ReplyType="HIT"><Code>503D</Code></MIBRecord><MIBRecord/>', 2, 1),
    ],
)
def test_empty_flat_mib_records(records: str, empty: int, counted: int) -> None:
    """Empty MIBRecord elements are skipped like empty fills."""
    vector = extract_features(f"<MIBResponse>{records}</MIBResponse>", None)
    expected_warning = [FeatureWarning("empty_record", "MIB", empty)] if empty else []

    assert counted == vector.as_dict()["MIB_TOTAL_RECORDS"]
    assert expected_warning == [w for w in vector.warnings if w.kind == "empty_record"]


@pytest.mark.parametrize(("forms", "counted"), [(0, 0), (1, 0), (3, 1)])
def test_empty_acord_form_instances(forms: int, counted: int) -> None:
    """Empty ACORD FormInstance elements are not records, but a real one next to them still is."""
    real = (
        '<FormInstance id="F9"><SubmitDate>2024-01-01</SubmitDate><FormResponse>'
        "<ResponseData>503D</ResponseData></FormResponse></FormInstance>"
    )
    body = "<FormInstance/>" * forms + (real if counted else "")
    document = (
        '<TXLife xmlns="http://ACORD.org/Standards/Life/2"><TXLifeResponse><OLifE>'
        f"{body}</OLifE></TXLifeResponse></TXLife>"
    )
    vector = extract_features(document, None, as_of=None)
    expected_warning = [FeatureWarning("empty_record", "MIB", forms)] if forms else []

    assert counted == vector.as_dict()["MIB_TOTAL_RECORDS"]
    assert 0.0 == vector.as_dict()["MIB_UNDATED_RECORDS"]
    assert expected_warning == [w for w in vector.warnings if w.kind == "empty_record"]


def attribute_document(count: int, *, names: str = "a{}", separator: str = "=") -> bytes:
    attributes = " ".join(f'{names.format(index)}{separator}"x"' for index in range(count))
    return (
        f"<IntelRXResponse><DrugFill {attributes}><DrugGenericName>METFORMIN</DrugGenericName>"
        "</DrugFill></IntelRXResponse>"
    ).encode()


@pytest.mark.parametrize(("count", "rejected"), [(256, False), (257, True)])
def test_attribute_cap_boundary(count: int, rejected: bool) -> None:
    """One element may carry 256 attributes by default, and one more raises limit "attributes"."""
    document = attribute_document(count)
    if rejected:
        with pytest.raises(DocumentTooLargeError, match="more than 256 attributes") as caught:
            extract_features(None, document)
        assert "attributes" == caught.value.limit
        assert "RX" == caught.value.document
    else:
        assert 1.0 == extract_features(None, document).as_dict()["RX_TOTAL_FILLS"]


def test_attribute_cap_any_element() -> None:
    """The cap covers every element, not only fills, and a custom ParseLimits value."""
    attributes = " ".join(f'a{index}="x"' for index in range(5))
    document = f"<MIBResponse><Extra {attributes}/></MIBResponse>"
    with pytest.raises(DocumentTooLargeError, match="more than 4 attributes") as caught:
        extract_features(document, None, limits=ParseLimits(max_attributes=4))
    assert "MIB" == caught.value.document
    assert "attributes" == caught.value.limit


def test_attribute_cap_utf7_hidden_equals() -> None:
    """UTF-7 can hide every "=" in base64, so the byte pre-check cannot skip the probe there."""
    body = attribute_document(300, separator="+AD0-")
    document = b'<?xml version="1.0" encoding="UTF-7"?>' + body
    assert document.count(b"=") < 256
    with pytest.raises(DocumentTooLargeError) as caught:
        extract_features(None, document)
    assert "attributes" == caught.value.limit


def test_attribute_cap_ignores_namespace_declarations() -> None:
    """Namespace declarations are not attributes, so 300 of them pass the default cap."""
    declarations = " ".join(f'xmlns:p{index}="urn:p{index}"' for index in range(300))
    document = ONE_FILL.replace(b"<DrugFill>", f"<DrugFill {declarations}>".encode())
    assert 1.0 == rx_values(document)["RX_TOTAL_FILLS"]


def test_many_attributes_read_in_linear_time() -> None:
    """40,000 attributes on one fill, with the cap raised, extract at a small multiple of the parse.

    Reading them with element.items() costs time quadratic in their count.
    """
    names = "a{}"
    document = attribute_document(40_000, names=names).replace(
        b'a39999="x"', b'DrugGenericName="LISINOPRIL"'
    )
    document = document.replace(b"<DrugGenericName>METFORMIN</DrugGenericName>", b"")
    limits = ParseLimits(max_attributes=50_000)
    parse_seconds = min(_seconds(lambda: etree.fromstring(document)) for _ in range(3))
    extract_seconds = min(
        _seconds(lambda: extract_features(None, document, limits=limits)) for _ in range(3)
    )

    values = extract_features(None, document, limits=limits).as_dict()
    assert 1.0 == values["RX_TOTAL_FILLS"]
    assert 1.0 == values["RX_UNIQUE_DRUGS"]
    assert extract_seconds < 40 * parse_seconds


def _seconds(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started
