"""Read prescription-history reports of every supported shape into `RxReport`.

Shapes: `IntelRX/IntelRXResponse` or a bare `IntelRXResponse` with `DrugFill` records, and the
NCPDP SCRIPT medication-history names (`MedicationDispensed`, `LastFillDate` with a nested
`Date`, `DrugDescription`, `DrugCoded/ProductCode/Code`, `Quantity/Value`, `Prescriber/…` and
`Pharmacy/…` blocks). Elements are matched on local names, so namespaces and prefixes work.

An error reply without fills raises `MalformedDocumentError` (see `_replies`). With fills, the
fills are read and the error is not reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

from lxml import etree

from evidence_features._dates import DATE_ORDINALS, UNPARSEABLE, parse_date
from evidence_features._drugs import DrugCatalog, DrugInfo, opioid_dose
from evidence_features._empty import EmptyRecords
from evidence_features._fields import collect_fields
from evidence_features._memo import TextMemo
from evidence_features._numbers import (
    DAYS_SUPPLY,
    QUANTITY,
    VENDOR_SCORE,
    parse_number,
    parse_plain_number,
)
from evidence_features._records import RxFill, RxReport
from evidence_features._replies import (
    ERROR_NAMES,
    ERROR_TAGS,
    check_reply_error,
    is_error_element,
    rx_result_answer,
)
from evidence_features._unread import check_unread_elements
from evidence_features._xml import local_name

__all__ = ["read_rx_report"]

_FILL_FIELDS = {
    "FillDate": "date",
    "LastFillDate": "date",
    "DateFilled": "date",
    "DispenseDate": "date",
    "DispensedDate": "date",
    "ServiceDate": "date",
    "fill_date": "date",
    "WrittenDate": "written_date",
    "DrugGenericName": "generic",
    "GenericName": "generic",
    "generic": "generic",
    "DrugBrandName": "brand",
    "BrandName": "brand",
    "brand": "brand",
    "DrugDescription": "description",
    "DrugName": "description",
    "LabelName": "description",
    "generic_and_dosage": "description",
    "NDC": "ndc",
    "ndc": "ndc",
    "DrugStrength": "strength",
    "Strength": "strength",
    "DosageForm": "form",
    "Quantity": "quantity",
    "Qty": "quantity",
    "QuantityDispensed": "quantity",
    "quantity": "quantity",
    "DaysSupply": "days",
    "days_supply": "days",
    "PrescriberNPI": "prescriber_id",
    "PhysicianNPI": "prescriber_id",
    "PrescriberID": "prescriber_id",
    "PhysicianName": "prescriber_name",
    "PrescriberName": "prescriber_name",
    "PhysicianSpecialty": "specialty",
    "PrescriberSpecialty": "specialty",
    "Specialty": "specialty",
    "PharmacyNCPDPID": "pharmacy_id",
    "NCPDPID": "pharmacy_id",
    "PharmacyNPI": "pharmacy_id",
    "PharmacyID": "pharmacy_id",
    "PharmacyName": "pharmacy_name",
    "BusinessName": "pharmacy_name",
    "TherapeuticClass": "vendor_class",
}
_NESTED_FIELDS = {
    ("Prescriber", "Specialty"): "specialty",
    ("LastFillDate", "Date"): "date",
    ("WrittenDate", "Date"): "written_date",
    ("Quantity", "Value"): "quantity",
    ("ProductCode", "Code"): "ndc",
    ("DrugCoded", "Code"): "ndc",
    ("Prescriber", "NPI"): "prescriber_id",
    ("Prescriber", "LastName"): "prescriber_name",
    ("Pharmacy", "NPI"): "pharmacy_id",
}
_SCORE_TAGS = ("{*}RiskScore", "{*}Score", "{*}HighestRiskSeverity")
_FILL_TAGS = ("{*}DrugFill", "{*}MedicationDispensed")
_FILL_NAME_ORDER = ("DrugFill", "MedicationDispensed")
_FILL_NAMES = frozenset(_FILL_NAME_ORDER)
# Fields of `_FILL_FIELDS` that occur only inside a fill: fill dates, drug names, NDCs and days
# supply. One of them with text in a report without fills shows fills in elements the reader
# does not know.
_FILL_ONLY_FIELDS = frozenset(
    {
        "FillDate", "LastFillDate", "DateFilled", "DispenseDate", "DispensedDate", "fill_date",
        "DrugGenericName", "GenericName", "DrugBrandName", "BrandName", "DrugDescription",
        "DrugName", "LabelName", "generic_and_dosage", "NDC", "DaysSupply", "days_supply",
    }
)  # fmt: skip
_DOCUMENT_DATE_TAGS = ("{*}ReportDate", "{*}OrderDate")
_DOCUMENT_DATE_NAMES = ("ReportDate", "OrderDate")
_DOCUMENT_TAGS = (*_DOCUMENT_DATE_TAGS, "{*}Eligibility", "{*}Result", *ERROR_TAGS, *_SCORE_TAGS)
# Report elements whose `Result` and `Error` children describe the whole reply.
_REPORT_CONTAINERS = frozenset({"IntelRX", "IntelRXResponse", "RxHistoryResponse", "Body"})
_NON_DIGIT = re.compile(r"\D")


def read_rx_report(root: etree._Element, catalog: DrugCatalog) -> RxReport:
    """Normalise one parsed Rx document into fills and document-level fields.

    An error reply with fills is read as usual, and `vendor_error` describes its error.

    Raises:
        MalformedDocumentError: The document is an error reply without fills: a `<Result>`
            that reports neither a hit nor a no-hit, or an `Error` element at the top of the report
            (see `_replies`). Or no fill was read although an element spells a fill name in
            another case or a fill field has text outside any fill (see `_unread`).
    """
    report = RxReport()
    fill_elements = list(root.iter(*_FILL_TAGS))
    report.recognised = bool(fill_elements) or local_name(root.tag) in (
        "IntelRX",
        "IntelRXResponse",
        "RxHistoryResponse",
    )
    empty = EmptyRecords(_FILL_NAMES)
    for element in fill_elements:
        fill = _read_fill(element, catalog, report, empty)
        if fill is not None:
            report.fills.append(fill)

    # One pass over the document-level tags. The first readable report date and the first
    # readable vendor score outside a fill win. Every eligibility block counts, every report
    # date outside a fill is checked, and so is every score up to the first readable one.
    date_found = score_found = False
    answers: set[str] = set()
    error_name: str | None = None
    for element in root.iter(*_DOCUMENT_TAGS):
        name = local_name(element.tag)
        if name == "Eligibility":
            _read_eligibility(element, report)
        elif name == "Result":
            if _in_report(element, root) and (answer := rx_result_answer(element)):
                answers.add(answer)
        elif name in ERROR_NAMES:
            if error_name is None and is_error_element(element, root, _REPORT_CONTAINERS):
                error_name = name
        elif name in _DOCUMENT_DATE_NAMES:
            if _inside_fill(element):
                continue
            ordinal = _count_date(report, element.text)
            if ordinal and not date_found:
                report.document_date = ordinal
                date_found = True
        elif not score_found and not _inside_fill(element):
            text = (element.text or "").strip()
            if not text:
                continue
            # Like every numeric field, a score that is present but not a plausible number
            # counts as an implausible value, so the caller can tell why the feature is missing.
            # The score must be one plain number: "7/10" or "0x10" is not a score of 7 or 0.
            score = parse_plain_number(text, VENDOR_SCORE)
            if score is None:
                report.implausible_values += 1
            else:
                # Adding 0.0 turns a "-0" into 0.0, the same score without the sign.
                report.vendor_score = score + 0.0
                score_found = True
    finding = None
    if "error" in answers:
        finding = "its <Result> reports neither a hit nor a no-hit"
    elif error_name is not None:
        finding = f"it has an <{error_name}> element"
    report.vendor_error = check_reply_error("RX", finding, "fills", bool(report.fills))
    if not report.fills and "no_hit" not in answers:
        # A report that states no hit is consistent without fills, so it skips the walk over
        # its elements, which keeps clean applicants, the most common reports, fast. A hit without
        # fills is consistent too, because a hit means the applicant was found, and an
        # applicant with coverage may have had no prescriptions.
        # NOTE: so a hit whose fills were dropped whole, or wrapped in an unknown element with
        # only unknown field names, still scores as a report without evidence.
        check_unread_elements("RX", root, _FILL_NAME_ORDER, "fill records", _FILL_ONLY_FIELDS)
    return report


def _in_report(element: etree._Element, root: etree._Element) -> bool:
    # A Result describes the reply only directly under the root or a report element. One
    # inside a fill or another block is a field of that block.
    parent = element.getparent()
    return parent is not None and (parent is root or local_name(parent.tag) in _REPORT_CONTAINERS)


def _read_eligibility(eligibility: etree._Element, report: RxReport) -> None:
    report.recognised = True
    if report.eligibility is None:
        report.eligibility = []
    periods = list(eligibility.iter("{*}Period")) or [eligibility]
    for period in periods:
        begin = _child_date(report, period, ("BeginDate", "StartDate", "begin"))
        end = _child_date(report, period, ("EndDate", "end"))
        if begin is not None or end is not None:
            report.eligibility.append((begin, end))


def _inside_fill(element: etree._Element) -> bool:
    return any(
        local_name(ancestor.tag) in ("DrugFill", "MedicationDispensed")
        for ancestor in element.iterancestors()
    )


def _count_date(report: RxReport, text: str | None) -> int | None:
    ordinal = parse_date(text)
    if ordinal == UNPARSEABLE:
        report.unparseable_dates += 1
    return ordinal


def _child_date(report: RxReport, period: etree._Element, names: tuple[str, ...]) -> int | None:
    for child in period:
        if local_name(child.tag) in names:
            ordinal = _count_date(report, child.text or child.get("value"))
            return ordinal or None
    for name in names:
        if (value := period.get(name)) is not None:
            return _count_date(report, value) or None
    return None


def _ndc_key(text: str) -> str | None:
    # Hyphenated 10-digit NDCs (4-4-2, 5-3-2, 5-4-1) pad to the 11-digit 5-4-2 form segment by
    # segment; an unhyphenated 10-digit code is ambiguous and is left-padded.
    segments = [_NON_DIGIT.sub("", part) for part in text.split("-")]
    if len(segments) == 3 and all(segments):
        digits = segments[0].zfill(5) + segments[1].zfill(4) + segments[2].zfill(2)
    else:
        digits = "".join(segments).zfill(11)
    return "NDC:" + digits if digits.strip("0") else None


# Builds an RxFill from a tuple of its values in C; the NamedTuple constructor is a Python
# function, and _read_fill runs once per fill.
_new_fill: Callable[[tuple[object, ...]], RxFill] = partial(tuple.__new__, RxFill)


def _normalised_key(text: str) -> str | None:
    return " ".join(text.upper().split()) or None


_KEYS: TextMemo[str, str | None] = TextMemo(_normalised_key, 8192)


def _read_fill(
    element: etree._Element, catalog: DrugCatalog, report: RxReport, empty: EmptyRecords
) -> RxFill | None:
    """Read one fill element. An element without any data is counted and returns None."""
    fields = collect_fields(element, _FILL_FIELDS, _NESTED_FIELDS)
    # Only an element without any expected field can be empty, so most fills skip the check.
    if not fields and empty.is_empty(element):
        report.empty_records += 1
        return None
    get = fields.get
    generic, brand, description = get("generic"), get("brand"), get("description")
    drug = catalog.describe(generic, brand, description, get("form"), get("vendor_class"))
    drug_key = drug.key
    if drug_key is None and (ndc := get("ndc")):
        drug_key = _ndc_key(ndc)
    strength = get("strength") or generic or description or brand
    if (
        drug.opioid_position >= 0
        and strength is not None
        and not _plausible_strength(drug, strength)
    ):
        report.implausible_values += 1
        strength = None
    quantity_text, days_text = get("quantity"), get("days")
    quantity = _QUANTITIES[quantity_text]
    days = _DAYS_SUPPLIES[days_text]
    # collect_fields returns only non-empty texts, so a None here means the text was unusable.
    if quantity is None and quantity_text is not None:
        report.implausible_values += 1
    if days is None and days_text is not None:
        report.implausible_values += 1
    prescriber = get("prescriber_id") or get("prescriber_name")
    pharmacy = get("pharmacy_id") or get("pharmacy_name")
    specialty = get("specialty")
    # collect_fields returns stripped, non-empty texts, so the dates skip parse_date's checks.
    date_text = get("date")
    day = DATE_ORDINALS[date_text] if date_text is not None else None
    written_text = get("written_date")
    # Values in RxFill field order.
    return _new_fill(
        (
            drug,
            drug_key,
            day,
            quantity,
            days,
            strength,
            _KEYS[prescriber] if prescriber else None,
            _KEYS[pharmacy] if pharmacy else None,
            _KEYS[specialty] if specialty else None,
            date_text if day == UNPARSEABLE else None,
            DATE_ORDINALS[written_text] if written_text is not None else None,
        )
    )


_QUANTITIES: TextMemo[str | None, float | None] = TextMemo(
    partial(parse_number, domain=QUANTITY), 4096
)
_DAYS_SUPPLIES: TextMemo[str | None, float | None] = TextMemo(
    partial(parse_number, domain=DAYS_SUPPLY), 4096
)


def _plausible_strength(drug: DrugInfo, text: str) -> bool:
    # Only an opioid's strength is ever read, for the MME. A text with no number for the
    # opioid is not counted, because the MME skips such fills as the spec describes. A number,
    # or a liquid's amount per mL, that is ambiguous or outside the STRENGTH range reads as None,
    # and so does a strength that opioid_dose cannot read (an implausible volume, "5 MG/ACT").
    dose = opioid_dose(drug, text)
    return dose is None or dose[0] is not None
