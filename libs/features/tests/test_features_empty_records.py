"""Empty records: a fill or MIB record whose whole subtree contains no data is not counted."""

from __future__ import annotations

from datetime import date

import pytest
from evidence_features import FeatureWarning, extract_features
from evidence_features import _empty as empty_module
from evidence_features._empty import EmptyRecords
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

AS_OF = date(2024, 3, 16)
METFORMIN = (
    "<DrugFill><FillDate>2024-03-01</FillDate><DrugGenericName>METFORMIN</DrugGenericName>"
    "<Quantity>60</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
)
BLANK_CHILDREN = "<DrugFill><DrugGenericName/><Quantity> </Quantity></DrugFill>"


def rx_document(body: str) -> str:
    return f"<IntelRXResponse><ReportDate>2024-03-16</ReportDate>{body}</IntelRXResponse>"


def empty_warnings(warnings: tuple[FeatureWarning, ...]) -> list[FeatureWarning]:
    return [warning for warning in warnings if warning.kind == "empty_record"]


def test_blank_children_fill_not_counted() -> None:
    """A normal fill and a fill of blank children count as one fill with only empty_record."""
    vector = extract_features(None, rx_document(METFORMIN + BLANK_CHILDREN), as_of=AS_OF)

    assert 1.0 == vector.as_dict()["RX_TOTAL_FILLS"]
    assert 1.0 == vector.as_dict()["RX_UNIQUE_DRUGS"]
    assert (
        FeatureWarning("empty_record", "RX", 1),
        FeatureWarning("missing_document", "MIB", 1),
    ) == vector.warnings


@pytest.mark.parametrize(
    ("fills", "empty", "counted"),
    [
        ("", 0, 0),
        (BLANK_CHILDREN, 1, 0),
        ("<DrugFill>\n  <DrugGenericName>\n  </DrugGenericName>\n  <Quantity/>\n</DrugFill>", 1, 0),
        ('<DrugFill><Quantity value=" "/><DaysSupply Value=""/></DrugFill>', 1, 0),
        ("<DrugFill><Foo><Bar><Baz>\t</Baz></Bar></Foo></DrugFill>", 1, 0),
        ("<DrugFill><DrugGenericName>\u00a0</DrugGenericName></DrugFill>", 1, 0),
        ('<DrugFill xmlns="urn:rx"><DrugGenericName xmlns:p="urn:p"/></DrugFill>', 1, 0),
        ("<DrugFill><DrugGenericName/></DrugFill>tail outside the fill", 1, 0),
        (
            "<MedicationDispensed><Quantity><Value> </Value></Quantity><Prescriber>"
            "<Identification><NPI/></Identification></Prescriber></MedicationDispensed>",
            1,
            0,
        ),
        (BLANK_CHILDREN * 3 + METFORMIN, 3, 1),
        # Data anywhere in the subtree keeps the fill, as before the rule existed.
        ('<DrugFill id="1"/>', 0, 1),
        ("<DrugFill><Foo>bar</Foo></DrugFill>", 0, 1),
        ('<DrugFill><Foo><Bar a="1"/></Foo></DrugFill>', 0, 1),
        ("<DrugFill><Foo/>text between children</DrugFill>", 0, 1),
        ('<DrugFill xml:lang="en"/>', 0, 1),
    ],
)
def test_empty_fill_shapes(fills: str, empty: int, counted: int) -> None:
    """Fills whose subtree has no non-blank text or attribute value are skipped and warned."""
    vector = extract_features(None, rx_document(fills), as_of=AS_OF)
    expected = [FeatureWarning("empty_record", "RX", empty)] if empty else []

    assert counted == vector.as_dict()["RX_TOTAL_FILLS"]
    assert expected == empty_warnings(vector.warnings)


@pytest.mark.parametrize(
    ("fills", "empty", "counted"),
    [
        ("<DrugFill><DrugFill> </DrugFill></DrugFill>", 2, 0),
        # The outer fill contains the inner fill's data, so it counts as a fill without fields.
        ("<DrugFill><DrugFill><DrugGenericName>METFORMIN</DrugGenericName></DrugFill></DrugFill>",
         0, 2),
        # "x" is text of the outer fill, so only the inner fill is empty.
        ("<DrugFill><DrugFill/>x</DrugFill>", 1, 1),
        ("<DrugFill><DrugFill/><DrugFill><DrugGenericName>METFORMIN</DrugGenericName>"
         "</DrugFill><DrugFill> </DrugFill></DrugFill>", 2, 2),
    ],
)  # fmt: skip
def test_nested_fills(fills: str, empty: int, counted: int) -> None:
    """Each nested fill is judged on its own subtree, and an outer fill on its whole subtree."""
    vector = extract_features(None, rx_document(fills), as_of=AS_OF)
    expected = [FeatureWarning("empty_record", "RX", empty)] if empty else []

    assert counted == vector.as_dict()["RX_TOTAL_FILLS"]
    assert expected == empty_warnings(vector.warnings)


@pytest.mark.parametrize(
    ("records", "empty", "counted"),
    [
        ("<MIBRecord><Code/></MIBRecord>", 1, 0),
        ("<MIBRecord><DateReported> </DateReported><Code>\n</Code></MIBRecord>", 1, 0),
        ('<MIBRecord><Build><BMI value=""/></Build></MIBRecord>', 1, 0),
        ("<MIBRecord><Foo>bar</Foo></MIBRecord>", 0, 1),
        (
            '<MIBRecord><Code/></MIBRecord><MIBRecord ReplyType="HIT"><Code>503D</Code>'
            "</MIBRecord><MIBRecord><Company> </Company></MIBRecord>",
            2,
            1,
        ),
    ],
)
def test_empty_flat_mib_records_subtree(records: str, empty: int, counted: int) -> None:
    """An MIBRecord with only blank children is skipped like a blank fill."""
    vector = extract_features(f"<MIBResponse>{records}</MIBResponse>", None, as_of=AS_OF)
    expected = [FeatureWarning("empty_record", "MIB", empty)] if empty else []

    assert counted == vector.as_dict()["MIB_TOTAL_RECORDS"]
    assert expected == empty_warnings(vector.warnings)


def acord_document(forms: str) -> str:
    return (
        '<TXLife xmlns="http://ACORD.org/Standards/Life/2"><TXLifeResponse><OLifE>'
        f"{forms}</OLifE></TXLifeResponse></TXLife>"
    )


REAL_FORM = (
    '<FormInstance id="F9"><SubmitDate>2024-01-01</SubmitDate><FormResponse>'
    "<ResponseData>503D</ResponseData></FormResponse></FormInstance>"
)


@pytest.mark.parametrize(
    ("forms", "empty", "counted"),
    [
        ("<FormInstance><FormResponse><ResponseData> </ResponseData></FormResponse>"
         "</FormInstance>", 1, 0),
        ("<FormInstance><FormName/><SubmitDate/></FormInstance>" * 2 + REAL_FORM, 2, 1),
        ('<FormInstance ProviderPartyID=" "/>', 1, 0),
        ('<FormInstance ProviderPartyID=" "><FormResponse/></FormInstance>', 1, 0),
        # An id, or any other text, keeps the form a record.
        ('<FormInstance id="F1"><FormResponse/></FormInstance>', 0, 1),
        ("<FormInstance><FormName>MIB</FormName></FormInstance>", 0, 1),
    ],
)  # fmt: skip
def test_empty_acord_forms_subtree(forms: str, empty: int, counted: int) -> None:
    """A FormInstance with only blank descendants is no record."""
    vector = extract_features(acord_document(forms), None, as_of=AS_OF)
    expected = [FeatureWarning("empty_record", "MIB", empty)] if empty else []

    assert counted == vector.as_dict()["MIB_TOTAL_RECORDS"]
    assert expected == empty_warnings(vector.warnings)


@pytest.mark.parametrize(
    ("codes", "empty", "counted"),
    [
        ("<ResponseData>503D</ResponseData>", 0, 1),
        ("<ResponseData>503D</ResponseData><ResponseData> </ResponseData>", 1, 1),
        ("<ResponseData/><ResponseData><Extra/></ResponseData><ResponseData>311C</ResponseData>"
         "<ResponseData>911</ResponseData>", 2, 2),
    ],
)  # fmt: skip
def test_empty_legacy_codes(codes: str, empty: int, counted: int) -> None:
    """A blank ResponseData in the bare code list is an empty record, not silently dropped."""
    vector = extract_features(f"<Response>{codes}</Response>", None, as_of=AS_OF)
    expected = [FeatureWarning("empty_record", "MIB", empty)] if empty else []

    assert counted == vector.as_dict()["MIB_TOTAL_RECORDS"]
    assert expected == empty_warnings(vector.warnings)


def test_nested_check_linear_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nested fills with data only at the bottom cost time linear in the element count.

    Checking each of the 60 nested fills on its own subtree would visit 60 + 59 + ... + 1 =
    1830 elements per chain. The shared walk visits each of the 60 at most twice.
    """
    visits = 0
    has_own_data = empty_module._has_own_data

    def counting(element: etree._Element) -> bool:
        nonlocal visits
        visits += 1
        return has_own_data(element)

    monkeypatch.setattr(empty_module, "_has_own_data", counting)
    depth, chains = 60, 5
    chain = "<DrugFill>" * depth + "x" + "</DrugFill>" * depth
    vector = extract_features(None, rx_document(chain * chains), as_of=AS_OF)

    assert [] == empty_warnings(vector.warnings)
    assert 0 < visits <= 2 * depth * chains


def test_blank_nested_chain_all_empty() -> None:
    """Every fill of a blank nested chain is empty and counted once in the warning."""
    chain = "<DrugFill>" * 40 + " " + "</DrugFill>" * 40
    vector = extract_features(None, rx_document(chain * 3 + METFORMIN), as_of=AS_OF)

    assert 1.0 == vector.as_dict()["RX_TOTAL_FILLS"]
    assert [FeatureWarning("empty_record", "RX", 120)] == empty_warnings(vector.warnings)


def subtree_is_blank(element: etree._Element) -> bool:
    """The rule as a plain recursive definition, for comparison."""
    if element.text is not None and element.text.strip():
        return False
    if any(value.strip() for value in element.attrib.values()):
        return False
    for child in element:
        if child.tail is not None and child.tail.strip():
            return False
        if not subtree_is_blank(child):
            return False
    return True


TEXTS = st.sampled_from([None, "", " ", "\n\t", "\u00a0", "x"])


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    element = etree.Element(draw(st.sampled_from(["DrugFill", "DrugFill", "Foo"])))
    element.text = draw(TEXTS)
    if draw(st.booleans()):
        element.set("a", draw(st.sampled_from(["", " ", "1"])))
    if depth < 3:
        for child in draw(st.lists(trees(depth + 1), max_size=3)):
            child.tail = draw(TEXTS)
            element.append(child)
    return element


@settings(max_examples=300, deadline=None)
@given(trees(), st.lists(st.booleans(), min_size=64, max_size=64))
def test_empty_check_matches_definition(root: etree._Element, skipped: list[bool]) -> None:
    """The shared walk agrees with the recursive definition, some records skipped.

    The records are checked in document order. The skipped ones model the readers, which check
    only records without any field.
    """
    root.tail = "outside"
    check = EmptyRecords(frozenset({"DrugFill"}))
    for record, skip in zip(root.iter("DrugFill"), skipped, strict=False):
        if skip:
            continue
        assert subtree_is_blank(record) == check.is_empty(record)
