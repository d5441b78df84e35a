"""Read MIB replies of every supported shape into `MibReport`.

Four shapes are read:

- the ACORD TXLife 401 reply: `FormInstance` records with codes in
  `FormResponse/ResponseData`, the match type on the `Relation` that links a `FormInstance` to
  a party, and the company through `@ProviderPartyID` to `Party/Carrier/CarrierCode`;
- the flat `<MIBResponse><MIBRecord>` list;
- the legacy `<Response><ResponseData>` list, where each code is one record without date,
  company or match type;
- no-file replies (`RecordsFound` 0, or `NFD` records, which are not counted).

Elements are matched on local names, so any namespace or prefix works. Records are found at any
depth, for example inside a SOAP envelope.

A document may carry several `TXLifeResponse` elements, each with its own `OLifE` whose ids
(`Party/@id`, `FormInstance/@id`) may repeat those of another reply. With more than one
`TXLifeResponse`, a `ProviderPartyID` or a `Relation` id refers to the elements of its own
`TXLifeResponse` first. Elements outside every `TXLifeResponse` refer to each other first. An id
that its own reply does not define resolves across the whole document, so a form may still
name a `Party` that only another reply defines. With one or no `TXLifeResponse`, ids resolve
across the whole document.

An error reply without records raises `MalformedDocumentError` (see `_replies`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from lxml import etree

from evidence_features._dates import DATE_ORDINALS, UNPARSEABLE, parse_date
from evidence_features._empty import EmptyRecords
from evidence_features._fields import collect_fields
from evidence_features._memo import MAX_KEY_CHARS
from evidence_features._numbers import (
    BMI,
    HEIGHT_IN,
    INQUIRY_COUNT,
    WEIGHT_LB,
    NumberRange,
    parse_number,
)
from evidence_features._records import MibRecord, MibReport
from evidence_features._replies import (
    ERROR_NAMES,
    ERROR_TAGS,
    acord_result_failure,
    check_reply_error,
    is_error_element,
)
from evidence_features._unread import check_unread_elements, unread_records_error
from evidence_features._xml import local_name

__all__ = ["read_mib_report"]

_HIT_TC = "1001"
_TRY_TC = "1002"

_RECORD_FIELDS = {
    "ReplyType": "reply",
    "MatchType": "reply",
    "Csy": "company",
    "CompanySymbol": "company",
    "ReportedBy": "company",
    "Company": "company",
    "CarrierCode": "company",
    "DateReported": "date",
    "SubmitDate": "date",
    "TransmitDate": "date",
    "ReportDate": "date",
    "BMI": "bmi",
    "HeightIn": "height",
    "WeightLb": "weight",
}
_CODE_NAMES = ("Code", "DataItem", "MibCode", "ResponseData")
_CODE_TAGS = tuple(f"{{*}}{name}" for name in _CODE_NAMES)
_DOCUMENT_TAGS = (
    "{*}TXLifeResponse",
    "{*}FormInstance",
    "{*}MIBRecord",
    "{*}Party",
    "{*}Relation",
    "{*}TransExeDate",
    "{*}RecordsFound",
    "{*}TransResult",
    "{*}ResultCode",
    "{*}InquiryCount24M",
    "{*}InquiryCount",
    *ERROR_TAGS,
)
# Record elements of the three shapes, in the order error messages list them.
_RECORD_NAMES = ("FormInstance", "MIBRecord", "ResponseData")
# Report elements under which an Error element reports an error of the whole reply.
_REPLY_CONTAINERS = frozenset({"TXLife", "TXLifeResponse", "MIBResponse", "Response", "Body"})


def read_mib_report(root: etree._Element) -> MibReport:
    """Normalise one parsed MIB document into records and document-level fields.

    An error reply with records is read as usual, and `vendor_error` describes its error.

    Raises:
        MalformedDocumentError: The document is an error reply without records: a
            `TransResult/ResultCode` that is not a success, or an `Error` element at the top of
            the reply (see `_replies`). Or no record was read although an element spells a
            record name in another case or `RecordsFound` is 1 or more (see `_unread`), or a
            record without codes contains a code element spelled in another case.
    """
    report = MibReport()
    # The largest RecordsFound count, or None when the reply states none.
    records_found: int | None = None
    # A RecordsFound with text that is no plain count ("-1", "1e3", "+3") may still claim
    # records, so a reply without any is rejected instead of read as one without evidence.
    unreadable_count = False
    failure: str | None = None
    error_name: str | None = None
    forms: list[etree._Element] = []
    mib_records: list[etree._Element] = []
    parties: list[etree._Element] = []
    relations: list[etree._Element] = []
    responses: list[etree._Element] = []
    # One pass in C over the tags of interest; everything else is never touched from Python.
    # ResponseData is left out: ACORD replies carry one per code inside each FormInstance, and
    # the flat shape needs them only when there are no FormInstance or MIBRecord elements.
    for element in root.iter(*_DOCUMENT_TAGS):
        name = _local_name(element.tag)
        if name == "FormInstance":
            forms.append(element)
        elif name == "MIBRecord":
            mib_records.append(element)
        elif name == "Party":
            parties.append(element)
        elif name == "Relation":
            relations.append(element)
        elif name == "TXLifeResponse":
            responses.append(element)
        elif name == "TransExeDate":
            # Every transaction date is checked, and the first readable one wins.
            ordinal = _count_date(report, element.text)
            if ordinal and not report.document_date:
                report.document_date = ordinal
        elif name == "TransResult":
            report.recognised = True
        elif name == "RecordsFound":
            report.recognised = True
            count = _records_found(element)
            if count is None:
                unreadable_count = unreadable_count or bool((element.text or "").strip())
            else:
                records_found = max(records_found or 0, count)
        elif name == "ResultCode":
            parent = element.getparent()
            if failure is None and parent is not None and _local_name(parent.tag) == "TransResult":
                failure = acord_result_failure(element)
        elif name in ERROR_NAMES:
            if error_name is None and is_error_element(element, root, _REPLY_CONTAINERS):
                error_name = name
        elif report.iai_inquiries is None:
            _read_inquiry_count(element, report)

    record_elements = len(forms) or len(mib_records)
    if forms:
        report.recognised = True
        # `responses` also keeps the lxml proxies of the TXLifeResponse elements alive, so
        # getparent() returns these same objects and they work as dictionary keys.
        if len(responses) > 1:
            form_scopes = [_enclosing_response(form) for form in forms]
            carriers, replies = _scoped_ids(parties, relations, forms, form_scopes)
        else:
            form_scopes = [None] * len(forms)
            carriers, replies = _document_ids(parties, relations)
        empty = EmptyRecords(frozenset({"FormInstance"}))
        for form, scope in zip(forms, form_scopes, strict=True):
            _append_acord_record(form, scope, carriers, replies, report, empty)
    elif mib_records:
        report.recognised = True
        empty = EmptyRecords(frozenset({"MIBRecord"}))
        for element in mib_records:
            _append_flat_record(element, report, empty)
    else:
        # Without FormInstance or MIBRecord elements the flat shape is the last one left, so a
        # misspelled record element would otherwise leave its codes to be read as flat records,
        # without date, company or match type, or leave no record at all.
        #
        # A reply that states RecordsFound 0 is consistent without records, so it skips the
        # walk over its elements, which keeps no-file replies, the most common ones, fast.
        if records_found != 0:
            check_unread_elements("MIB", root, _RECORD_NAMES, "records")
        record_elements = _read_flat_codes(root, report)
    finding = None
    if failure is not None:
        finding = f"its TransResult/ResultCode is {failure}"
    elif error_name is not None:
        finding = f"it has an <{error_name}> element"
    report.vendor_error = check_reply_error("MIB", finding, "records", bool(report.records))
    if not report.records:
        if (forms or mib_records) and records_found != 0:
            check_unread_elements("MIB", root, _RECORD_NAMES, "records")
        # An NFD record is one the reader understood, because it states that no file was
        # found, so the RecordsFound count may include it.
        no_file_records = record_elements - report.empty_records
        if records_found and not no_file_records:
            raise unread_records_error(
                "MIB",
                f"reports {records_found} record{'s' if records_found > 1 else ''} in RecordsFound",
                _RECORD_NAMES,
                "records",
                report.empty_records,
            )
        if unreadable_count and not records_found and not no_file_records:
            raise unread_records_error(
                "MIB",
                "has a RecordsFound that is not a whole number of records",
                _RECORD_NAMES,
                "records",
                report.empty_records,
            )
    return report


def _records_found(element: etree._Element) -> int | None:
    # Only a plain count of up to 10 digits is read, so the message may repeat it. Any other
    # text could be health data, so it reads as None and the caller never repeats it.
    text = (element.text or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None


def _read_flat_codes(root: etree._Element, report: MibReport) -> int:
    """Read the flat `<Response><ResponseData>` shape and return its number of code elements."""
    flat_codes = list(root.iter("{*}ResponseData"))
    if not flat_codes:
        return 0
    report.recognised = True
    empty = EmptyRecords(frozenset({"ResponseData"}))
    for element in flat_codes:
        code = (element.text or "").strip()
        if code:
            report.records.append(MibRecord(None, None, (code,), None, None, None))
        elif empty.is_empty(element):
            report.empty_records += 1
        else:
            # The element carries data, but not as its text (an attribute, a child element), so
            # it counts as a record without a code instead of vanishing from the totals.
            report.records.append(MibRecord(None, None, (), None, None, None))
    report.extra_bmi.extend(_document_bmi(root, report))
    return len(flat_codes)


def _read_inquiry_count(element: etree._Element, report: MibReport) -> None:
    # The first readable count wins, and each unreadable or implausible one before it is counted.
    text = (element.text or "").strip()
    count = _read_number(text, INQUIRY_COUNT, report) if text else None
    if count is not None:
        report.iai_inquiries = int(count)


def _count_date(report: MibReport, text: str | None) -> int | None:
    ordinal = parse_date(text)
    if ordinal == UNPARSEABLE:
        report.unparseable_dates += 1
    return ordinal


def _reply_type(tc: str | None, text: str | None) -> str | None:
    if tc == _HIT_TC:
        return "HIT"
    if tc == _TRY_TC:
        return "TRY"
    word = (text or "").strip().upper()
    if word in ("HIT", "TRY", "NFD"):
        return word
    return None


# An id attribute value paired with the TXLifeResponse it belongs to (None for the whole
# document, or for elements outside every reply), because ids repeat across the replies of one
# document.
_ScopedId = tuple[etree._Element | None, str]
_RELATION_IDS = ("OriginatingObjectID", "RelatedObjectID")


def _document_ids(
    parties: list[etree._Element], relations: list[etree._Element]
) -> tuple[dict[_ScopedId, str], dict[_ScopedId, str]]:
    # With one or no TXLifeResponse every id resolves across the whole document: the last
    # carrier code of a party id wins, and the first match type of an object id.
    carriers: dict[_ScopedId, str] = {}
    replies: dict[_ScopedId, str] = {}
    for party in parties:
        party_id = party.get("id")
        if party_id and (code := _carrier_code(party)) is not None:
            carriers[None, party_id] = code
    for relation in relations:
        reply = _relation_reply(relation)
        if reply is not None:
            for attribute in _RELATION_IDS:
                if object_id := relation.get(attribute):
                    replies.setdefault((None, object_id), reply)
    return carriers, replies


def _scoped_ids(
    parties: list[etree._Element],
    relations: list[etree._Element],
    forms: list[etree._Element],
    form_scopes: list[etree._Element | None],
) -> tuple[dict[_ScopedId, str], dict[_ScopedId, str]]:
    # An id resolves among the elements of its own reply. An id that its own reply does not
    # define falls back to the whole document, resolved as _document_ids does, so a form may
    # name a Party that only another reply (or no reply) defines.
    carriers: dict[_ScopedId, str] = {}
    defined_parties: set[_ScopedId] = set()
    document_carriers: dict[str, str] = {}
    for party in parties:
        party_id = party.get("id")
        if not party_id:
            continue
        scope = _enclosing_response(party)
        defined_parties.add((scope, party_id))
        if (code := _carrier_code(party)) is not None:
            carriers[scope, party_id] = code
            document_carriers[party_id] = code
    defined_forms: dict[str, list[etree._Element | None]] = {}
    for form, scope in zip(forms, form_scopes, strict=True):
        if form_id := form.get("id"):
            defined_forms.setdefault(form_id, []).append(scope)
        provider = form.get("ProviderPartyID")
        if provider and (scope, provider) not in defined_parties and provider in document_carriers:
            carriers[scope, provider] = document_carriers[provider]

    replies: dict[_ScopedId, str] = {}
    fallback: list[tuple[str, str]] = []
    for relation in relations:
        reply = _relation_reply(relation)
        if reply is None:
            continue
        scope = _enclosing_response(relation)
        for attribute in _RELATION_IDS:
            object_id = relation.get(attribute)
            if not object_id:
                continue
            if scope in defined_forms.get(object_id, ()):
                replies.setdefault((scope, object_id), reply)
            else:
                fallback.append((object_id, reply))
    # A Relation whose form is missing from its own reply applies to the forms of that id in
    # the other replies, after their own relations.
    for object_id, reply in fallback:
        for scope in defined_forms.get(object_id, ()):
            replies.setdefault((scope, object_id), reply)
    return carriers, replies


def _enclosing_response(element: etree._Element) -> etree._Element | None:
    # The nearest TXLifeResponse ancestor, or None for an element outside every reply.
    parent = element.getparent()
    while parent is not None:
        if _local_name(parent.tag) == "TXLifeResponse":
            return parent
        parent = parent.getparent()
    return None


def _carrier_code(party: etree._Element) -> str | None:
    for code in party.iter("{*}CarrierCode"):
        text: str | None = code.text
        if text and (text := text.strip()):
            return text
    return None


def _relation_reply(relation: etree._Element) -> str | None:
    # getchildren() and a name test cost less than iterchildren() with a tag filter, whose
    # matcher lxml builds anew on every call.
    for role in relation.getchildren():
        if _local_name(role.tag) == "RelationRoleCode":
            return _reply_type(role.get("tc"), role.text)
    return None


def _append_acord_record(
    form: etree._Element,
    scope: etree._Element | None,
    carriers: dict[_ScopedId, str],
    replies: dict[_ScopedId, str],
    report: MibReport,
    empty: EmptyRecords,
) -> None:
    reply = replies.get((scope, form.get("id") or ""))
    if reply == "NFD":
        return
    provider = form.get("ProviderPartyID")
    company = carriers.get((scope, provider), provider) if provider else None
    date: int | None = None
    date_text: str | None = None
    codes: list[str] = []
    bmi_fields: dict[str, str] = {}
    for element in form.iter(*_FORM_TAGS):
        text = element.text
        if text is None or not (text := text.strip()):
            continue
        name = _local_name(element.tag)
        if name == "ResponseData":
            codes.append(text)
        elif name == "SubmitDate":
            if date is None:
                date = DATE_ORDINALS[text]
                if date == UNPARSEABLE:
                    date_text = text
        else:
            bmi_fields.setdefault(_BMI_FIELDS[name], text)
    if not codes:
        # A record exists to carry codes, so one without codes is checked for a code element
        # spelled in another case, which would otherwise drop its codes without a warning.
        check_unread_elements("MIB", form, ("ResponseData",), "codes")
    # Only a form without any non-blank value read above can be empty, so most forms skip the
    # check.
    has_data = codes or bmi_fields or date is not None or (provider and provider.strip())
    if not has_data and empty.is_empty(form):
        report.empty_records += 1
        return
    company_key = company.upper() if company else None
    bmi = _bmi(bmi_fields, report) if bmi_fields else None
    report.records.append(_new_record((date, company_key, tuple(codes), reply, bmi, date_text)))


_LOCAL_NAMES: dict[str, str] = {}
_MAX_LOCAL_NAMES = 1024


def _local_name(tag: object) -> str:
    # A cached local_name, because ACORD tags carry a long namespace and the readers see the
    # same few tags on every request. A tag that is not a string reads as "", although the
    # hardened parser drops the comments and processing instructions that would carry one.
    if not isinstance(tag, str):
        return ""
    name = _LOCAL_NAMES.get(tag)
    if name is None:
        name = local_name(tag)
        if len(tag) <= MAX_KEY_CHARS:
            if len(_LOCAL_NAMES) >= _MAX_LOCAL_NAMES:
                _LOCAL_NAMES.clear()
            _LOCAL_NAMES[tag] = name
    return name


_BMI_FIELDS = {"BMI": "bmi", "HeightIn": "height", "WeightLb": "weight"}
# Builds a MibRecord from a tuple of its values in C; the NamedTuple constructor is a Python
# function.
_new_record: Callable[[tuple[object, ...]], MibRecord] = partial(tuple.__new__, MibRecord)
_FORM_TAGS = ("{*}SubmitDate", "{*}ResponseData", "{*}BMI", "{*}HeightIn", "{*}WeightLb")


def _append_flat_record(element: etree._Element, report: MibReport, empty: EmptyRecords) -> None:
    fields = collect_fields(element, _RECORD_FIELDS, {})
    reply = _reply_type(None, fields.get("reply"))
    if reply == "NFD":
        return
    codes = tuple(
        text
        for code_element in element.iter(*_CODE_TAGS)
        if code_element is not element and (text := (code_element.text or "").strip())
    )
    if not codes:
        check_unread_elements("MIB", element, _CODE_NAMES, "codes")
    # Only a record without any field or code can be empty, so most records skip the check.
    if not fields and not codes and empty.is_empty(element):
        report.empty_records += 1
        return
    date_text = fields.get("date")
    date = parse_date(date_text)
    company = fields.get("company")
    company_key = company.upper() if company else None
    bmi = _bmi(fields, report)
    unreadable_text = date_text if date == UNPARSEABLE else None
    report.records.append(MibRecord(date, company_key, codes, reply, bmi, unreadable_text))


def _bmi(fields: dict[str, str], report: MibReport) -> float | None:
    # A stated BMI wins, and height and weight are the fallback when it is missing or implausible.
    value = _read_number(fields.get("bmi"), BMI, report)
    if value is not None:
        return value
    height = _read_number(fields.get("height"), HEIGHT_IN, report)
    weight = _read_number(fields.get("weight"), WEIGHT_LB, report)
    if height is None or weight is None:
        return None
    computed = 703.0 * weight / (height * height)
    if not BMI.minimum <= computed <= BMI.maximum:
        report.implausible_values += 1
        return None
    return computed


def _read_number(text: str | None, domain: NumberRange, report: MibReport) -> float | None:
    # Callers pass None or a non-empty text, so a text that reads as None is implausible.
    value = parse_number(text, domain)
    if value is None and text is not None:
        report.implausible_values += 1
    return value


def _document_bmi(root: etree._Element, report: MibReport) -> list[float]:
    values: list[float] = []
    for build in root.iter("{*}Build"):
        fields: dict[str, str] = {}
        for element in build.iter("{*}BMI", "{*}HeightIn", "{*}WeightLb"):
            text = (element.text or "").strip()
            if text:
                fields.setdefault(_BMI_FIELDS[local_name(element.tag)], text)
        value = _bmi(fields, report)
        if value is not None:
            values.append(value)
    if not values:
        # Read only BMI elements outside a Build block, because the loop above read those inside.
        for element in root.iter("{*}BMI"):
            text = (element.text or "").strip()
            if not text or _inside_build(element):
                continue
            value = _bmi({"bmi": text}, report)
            if value is not None:
                values.append(value)
    return values


def _inside_build(element: etree._Element) -> bool:
    return any(_local_name(ancestor.tag) == "Build" for ancestor in element.iterancestors())
