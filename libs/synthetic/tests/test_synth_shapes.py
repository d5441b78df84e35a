"""Every MIB and Rx shape, with and without each edge case, is well-formed XML of the right form."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pytest
from evidence_synthetic import (
    MIB_CODE_CATEGORIES,
    MIB_QUIRKS,
    MIB_SHAPES,
    RX_QUIRKS,
    RX_SHAPES,
    generate_mib_report,
    generate_rx_report,
)
from evidence_synthetic._mib_codes import UNMAPPED_BASES
from lxml import etree

ACORD = "{http://ACORD.org/Standards/Life/2}"
CODE = re.compile(r"^(\d{3})([A-Z0-9#]{0,3})$")
# Empty-report variants without a root element: empty, whitespace or only the declaration.
NO_ROOT = (b"", b"   \n", b"\n  \n", b'<?xml version="1.0"?>')


def _parse(document: bytes) -> etree._Element:
    return etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))


def _local(element: etree._Element) -> str:
    return str(etree.QName(element).localname)


def _codes(root: etree._Element) -> list[str]:
    return [
        (element.text or "").strip()
        for element in root.iter()
        if isinstance(element.tag, str) and _local(element) in ("ResponseData", "Code")
    ]


@pytest.mark.parametrize("shape", MIB_SHAPES)
def test_mib_shape_well_formed(shape: str) -> None:
    for seed in range(5):
        document = generate_mib_report(np.random.default_rng(seed), 10, shape=shape)
        root = _parse(document)
        assert len(_codes(root)) >= 10


@pytest.mark.parametrize("shape", RX_SHAPES)
def test_rx_shape_well_formed(shape: str) -> None:
    document = generate_rx_report(np.random.default_rng(0), 50, shape=shape)
    root = _parse(document)
    fills = [e for e in root.iter() if _local(e) in ("DrugFill", "MedicationDispensed")]
    assert len(fills) == 50


@pytest.mark.parametrize("shape", MIB_SHAPES)
@pytest.mark.parametrize("quirk", MIB_QUIRKS)
def test_mib_quirk_well_formed(shape: str, quirk: str) -> None:
    for seed in range(3):
        document = generate_mib_report(np.random.default_rng(seed), 4, shape=shape, quirks=(quirk,))
        if document in NO_ROOT:
            assert quirk == "empty_report"
            continue
        _parse(document)


@pytest.mark.parametrize("shape", RX_SHAPES)
@pytest.mark.parametrize("quirk", RX_QUIRKS)
def test_rx_quirk_well_formed(shape: str, quirk: str) -> None:
    for seed in range(3):
        document = generate_rx_report(np.random.default_rng(seed), 8, shape=shape, quirks=(quirk,))
        if document in NO_ROOT:
            assert quirk == "empty_report"
            continue
        _parse(document)


def test_acord_default_namespace_and_roles() -> None:
    root = _parse(generate_mib_report(np.random.default_rng(1), 12, shape="acord"))
    assert root.tag == f"{ACORD}TXLife"
    assert root.find(f"{ACORD}TXLifeResponse/{ACORD}TransType").get("tc") == "401"
    roles = root.findall(f".//{ACORD}Relation/{ACORD}RelationRoleCode")
    assert len(roles) == 12
    assert {(r.get("tc"), r.text) for r in roles} <= {("1001", "Hit"), ("1002", "Try")}
    found = root.findtext(f".//{ACORD}RecordsFound")
    assert found == "12"


def test_acord_prefixed_root() -> None:
    document = generate_mib_report(np.random.default_rng(1), 3, shape="acord_prefixed")
    assert document.split(b"\n")[1].startswith(b"<ns2:TXLife xmlns:ns2=")
    root = _parse(document)
    assert root.tag == f"{ACORD}TXLife"
    assert all(e.tag.startswith(ACORD) for e in root.iter() if isinstance(e.tag, str))


def test_acord_no_file_reply() -> None:
    root = _parse(generate_mib_report(np.random.default_rng(1), 0, shape="acord"))
    assert root.findtext(f".//{ACORD}RecordsFound") == "0"
    assert root.find(f".//{ACORD}FormInstance") is None


def test_legacy_no_file_reply_is_nfd() -> None:
    root = _parse(generate_mib_report(np.random.default_rng(1), 0, shape="legacy"))
    records = root.findall("MIBRecord")
    assert [r.get("ReplyType") for r in records] == ["NFD"]


def test_flat_no_file_reply_is_empty_response() -> None:
    document = generate_mib_report(np.random.default_rng(1), 0, shape="flat")
    assert _parse(document).tag == "Response"
    assert len(_parse(document)) == 0


def test_legacy_dates_use_two_letter_months() -> None:
    root = _parse(generate_mib_report(np.random.default_rng(4), 20, shape="legacy"))
    dates = [r.findtext("DateReported") for r in root.findall("MIBRecord")]
    assert len(dates) == 20
    for text in dates:
        assert re.fullmatch(r"\d\d(JA|FB|MR|AP|MY|JU|JL|AG|SP|OC|NV|DC)\d\d", text or "")


def test_legacy_missing_date_is_dashes() -> None:
    documents = [
        generate_mib_report(np.random.default_rng(s), 3, shape="legacy", quirks=("missing_dates",))
        for s in range(5)
    ]
    assert all(b"<DateReported>------</DateReported>" in d for d in documents)


def test_codes_follow_base_and_modifier_form() -> None:
    known = set(MIB_CODE_CATEGORIES) | set(UNMAPPED_BASES)
    for shape in MIB_SHAPES:
        root = _parse(generate_mib_report(np.random.default_rng(2), 30, shape=shape))
        for code in _codes(root):
            match = CODE.fullmatch(code)
            assert match is not None, code
            assert match.group(1) in known


def test_unmapped_quirk_adds_unmapped_base() -> None:
    document = generate_mib_report(
        np.random.default_rng(3), 2, shape="acord", quirks=("unmapped_codes",)
    )
    bases = {code[:3] for code in _codes(_parse(document))}
    assert bases & set(UNMAPPED_BASES)


def test_latin1_quirk_declares_and_uses_latin1() -> None:
    document = generate_rx_report(np.random.default_rng(0), 3, quirks=("latin1",))
    assert document.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
    document.decode("latin-1")
    assert _parse(document).tag == "IntelRX"


def test_utf16_quirk_writes_bom() -> None:
    document = generate_mib_report(np.random.default_rng(0), 2, shape="legacy", quirks=("utf16",))
    assert document.startswith(b"\xff\xfe")
    assert _parse(document).tag == "MIBResponse"


def test_utf8_bom_quirk_writes_bom() -> None:
    document = generate_rx_report(np.random.default_rng(0), 2, quirks=("utf8_bom",))
    assert document.startswith(b"\xef\xbb\xbf<?xml")


def test_cdata_quirk_wraps_names() -> None:
    document = generate_rx_report(np.random.default_rng(0), 2, quirks=("cdata",))
    assert b"<DrugBrandName><![CDATA[" in document


def test_attribute_quirk_puts_quantity_in_attribute() -> None:
    root = _parse(generate_rx_report(np.random.default_rng(0), 4, quirks=("attributes",)))
    quantities = root.findall(".//Quantity")
    assert len(quantities) == 4
    assert all(q.get("value") and q.text is None for q in quantities)


def test_duplicate_quirk_repeats_fills() -> None:
    document = generate_rx_report(np.random.default_rng(0), 10, quirks=("duplicate_fills",))
    fills = [etree.tostring(f, with_tail=False) for f in _parse(document).iter("DrugFill")]
    assert len(fills) > 10
    assert len(set(fills)) == 10


def test_future_quirk_dates_after_as_of() -> None:
    as_of = date(2024, 3, 16)
    document = generate_rx_report(
        np.random.default_rng(0), 5, as_of=as_of, quirks=("future_dates",)
    )
    dates = [date.fromisoformat(d.text) for d in _parse(document).iter("FillDate")]
    assert sum(d > as_of for d in dates) == 1


def test_soap_quirk_wraps_envelope() -> None:
    document = generate_mib_report(np.random.default_rng(0), 2, quirks=("soap",))
    root = _parse(document)
    assert _local(root) == "Envelope"
    assert root.find(f".//{ACORD}TXLife") is not None


def test_ncpdp_shape_uses_script_names() -> None:
    root = _parse(generate_rx_report(np.random.default_rng(0), 3, shape="ncpdp"))
    fill = root.find("MedicationDispensed")
    assert fill is not None
    assert fill.find("LastFillDate/Date") is not None
    assert fill.find("DrugCoded/ProductCode/Qualifier").text == "ND"
    assert fill.find("Quantity/Value") is not None
    assert fill.find("Pharmacy/Identification/NCPDPID") is not None


def test_unknown_shape_rejected() -> None:
    with pytest.raises(ValueError, match="unknown MIB shape 'xml'"):
        generate_mib_report(np.random.default_rng(0), 1, shape="xml")
    with pytest.raises(ValueError, match="unknown Rx shape 'json'"):
        generate_rx_report(np.random.default_rng(0), 1, shape="json")


@pytest.mark.parametrize("shape", ["acord", "legacy"])
def test_mib_future_quirk_on_leap_day(shape: str) -> None:
    leap_day = date(2024, 2, 29)
    for seed in range(20):
        document = generate_mib_report(
            np.random.default_rng(seed), 3, as_of=leap_day, shape=shape, quirks=("future_dates",)
        )
        _parse(document)


def test_rx_future_quirk_on_leap_day() -> None:
    for seed in range(20):
        document = generate_rx_report(
            np.random.default_rng(seed), 5, as_of=date(2024, 2, 29), quirks=("future_dates",)
        )
        _parse(document)
