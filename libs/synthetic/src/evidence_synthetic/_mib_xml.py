"""Render MIB records as an ACORD TXLife 401 reply, a flat code list or a legacy record list.

Shapes: `acord` (default namespace), `acord_prefixed` (`ns2:` prefix on every element), `flat`
(`<Response><ResponseData>`, no match type or dates) and `legacy` (`<MIBResponse><MIBRecord>`
with DDMMYY dates and two-letter months). An empty record list renders as a no-file reply.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from evidence_synthetic._encoding import encode_document
from evidence_synthetic._mib_codes import UNMAPPED_BASES
from evidence_synthetic._mib_records import MibRecord
from evidence_synthetic._xmltext import cdata, escape, format_date, shift_years

__all__ = ["ACORD_NAMESPACE", "MIB_QUIRKS", "MIB_SHAPES", "MibReport", "render_mib"]

ACORD_NAMESPACE = "http://ACORD.org/Standards/Life/2"
MIB_SHAPES = ("acord", "acord_prefixed", "flat", "legacy")
MIB_QUIRKS = (
    "duplicate_records",
    "cdata",
    "latin1",
    "utf8_bom",
    "utf16",
    "missing_dates",
    "future_dates",
    "date_formats",
    "role_variants",
    "multi_response",
    "soap",
    "redundant_xmlns",
    "unmapped_codes",
    "whitespace",
    "empty_report",
)
# Quirks that only make sense in the ACORD shapes.
ACORD_ONLY_QUIRKS = frozenset(
    {"role_variants", "multi_response", "soap", "redundant_xmlns", "date_formats"}
)
_EMPTY_REPORTS = (b"", b"\n  \n", b"<r/>", b"<Response/>", b'<?xml version="1.0"?>')
_ROLE_TC = {"HIT": "1001", "TRY": "1002"}


@dataclass(frozen=True, slots=True)
class MibReport:
    """Content of one MIB reply. A reply without records renders as a no-file reply."""

    as_of: date
    first_name: str
    last_name: str
    birth_date: date
    records: tuple[MibRecord, ...]
    inquiries_24m: int | None = None
    quirks: frozenset[str] = field(default_factory=frozenset)


@dataclass(slots=True)
class _RecordText:
    """Per-record text after quirks. A `date` of None omits the element."""

    record: MibRecord
    date: str | None
    codes: list[str]


def _record_texts(rng: np.random.Generator, report: MibReport, style: str) -> list[_RecordText]:
    quirks = report.quirks
    legacy = style == "legacy"
    texts: list[_RecordText] = []
    for record in report.records:
        when = record.submit_date
        # Legacy replies print an unknown date as dashes; the other shapes omit the element.
        unknown = "------" if legacy else None
        text = unknown if when is None else format_date(when, style)
        texts.append(_RecordText(record, text, list(record.codes)))
    if not texts:
        return texts
    if "missing_dates" in quirks:
        index = int(rng.integers(len(texts)))
        texts[index].date = "------" if legacy else (None, "", "unknown")[int(rng.integers(3))]
    if "future_dates" in quirks:
        index = int(rng.integers(len(texts)))
        future = shift_years(report.as_of, int(rng.integers(1, 3)))
        texts[index].date = format_date(future, style)
    if "unmapped_codes" in quirks:
        index = int(rng.integers(len(texts)))
        base = UNMAPPED_BASES[int(rng.integers(len(UNMAPPED_BASES)))]
        texts[index].codes.append(base + ("", "A", "C2")[int(rng.integers(3))])
    if "duplicate_records" in quirks:
        texts.append(texts[int(rng.integers(len(texts)))])
    return texts


def _code_text(code: str, quirks: frozenset[str]) -> str:
    return cdata(code) if "cdata" in quirks else escape(code)


def _acord_body(rng: np.random.Generator, report: MibReport, texts: list[_RecordText]) -> str:
    quirks = report.quirks
    q = quirks
    guid = uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)))
    companies = sorted({text.record.company for text in texts})
    company_ids = {company: f"P_CO{i + 1}" for i, company in enumerate(companies)}

    def role(reply_type: str) -> str:
        tc = _ROLE_TC[reply_type]
        label = reply_type.title()
        if "role_variants" in quirks:
            variant = int(rng.integers(3))
            if variant == 0:
                return f'<RelationRoleCode tc="{tc}"/>'
            if variant == 1:
                text = (reply_type, label)[int(rng.integers(2))]
                return f"<RelationRoleCode>{text}</RelationRoleCode>"
        return f'<RelationRoleCode tc="{tc}">{label}</RelationRoleCode>'

    subject = (
        '      <Party id="P_SUBJ"><Person>'
        f"<FirstName>{_code_text(report.first_name, q)}</FirstName>"
        f"<LastName>{_code_text(report.last_name, q)}</LastName>"
        f"<BirthDate>{report.birth_date.isoformat()}</BirthDate></Person></Party>"
    )
    objects = [
        '      <Holding id="H1"><Policy><LineOfBusiness tc="1">Life</LineOfBusiness>'
        "</Policy></Holding>",
        subject,
    ]
    xmlns_reset = ' xmlns=""' if "redundant_xmlns" in quirks else ""
    for company, party_id in company_ids.items():
        objects.append(
            f'      <Party id="{party_id}"><Carrier{xmlns_reset}>'
            f"<CarrierCode>{company}</CarrierCode></Carrier></Party>"
        )
    relations = []
    for number, text in enumerate(texts, start=1):
        record = text.record
        responses = "".join(
            f'\n        <FormResponse id="FR{number}_{i}">'
            f"<ResponseData>{_code_text(code, q)}</ResponseData>"
            + ('<AssociatedResponseData TopLevelObjectID="H1"/>' if i == 1 else "")
            + "</FormResponse>"
            for i, code in enumerate(text.codes, start=1)
        )
        submit = (
            "" if text.date is None else f"\n        <SubmitDate>{escape(text.date)}</SubmitDate>"
        )
        build = ""
        if record.build is not None:
            build = (
                '\n        <OLifEExtension VendorCode="SYNTH"><Build>'
                f"<HeightIn>{record.build.height_in}</HeightIn>"
                f"<WeightLb>{record.build.weight_lb}</WeightLb>"
                f"<BMI>{record.build.bmi}</BMI></Build></OLifEExtension>"
            )
        objects.append(
            f'      <FormInstance id="F{number}" ProviderPartyID="{company_ids[record.company]}">'
            f"\n        <FormName>MIB</FormName>{submit}{responses}{build}\n      </FormInstance>"
        )
        relations.append(
            f'      <Relation id="R{number}" OriginatingObjectID="F{number}" '
            'RelatedObjectID="P_SUBJ">'
            '<OriginatingObjectType tc="101">FormInstance</OriginatingObjectType>'
            '<RelatedObjectType tc="6">Party</RelatedObjectType>'
            f"{role(record.reply_type)}</Relation>"
        )
    if report.inquiries_24m is not None:
        relations.append(
            '      <OLifEExtension VendorCode="SYNTH"><InsuranceActivity>'
            f"<InquiryCount24M>{report.inquiries_24m}</InquiryCount24M>"
            "</InsuranceActivity></OLifEExtension>"
        )
    if "whitespace" in quirks:
        objects.insert(0, "      <!-- synthetic MIB reply -->\n      <?vendor-trace id=7?>")
    olife = "\n".join(objects + relations)

    def response(olife_text: str, records_found: int) -> str:
        return (
            "  <TXLifeResponse>\n"
            f"    <TransRefGUID>{guid}</TransRefGUID>\n"
            '    <TransType tc="401">MIB Inquiry</TransType>\n'
            f"    <TransExeDate>{report.as_of.isoformat()}</TransExeDate>\n"
            "    <TransExeTime>11:01:15-05:00</TransExeTime>\n"
            '    <TransResult><ResultCode tc="1">Success</ResultCode>'
            f"<RecordsFound>{records_found}</RecordsFound></TransResult>\n"
            f"    <OLifE>\n{olife_text}\n    </OLifE>\n"
            "  </TXLifeResponse>"
        )

    if "multi_response" in quirks:
        empty_follow_up = response(objects[0] + "\n" + subject, 0)
        return response(olife, len(texts)) + "\n" + empty_follow_up
    return response(olife, len(texts))


def _prefix_elements(document: str, prefix: str) -> str:
    """Add a namespace prefix to every element tag (not to comments or processing instructions)."""
    out = document.replace("</", f"</{prefix}:")
    out = out.replace("<", f"<{prefix}:")
    for marker in ("!", "?", "/"):
        out = out.replace(f"<{prefix}:{marker}", f"<{marker}")
    return out.replace(f"</{prefix}:{prefix}:", f"</{prefix}:")


def _acord(rng: np.random.Generator, report: MibReport, shape: str) -> str:
    style = "iso"
    if "date_formats" in report.quirks:
        style = ("ccyymmdd", "us", "iso-datetime-z")[int(rng.integers(3))]
    body = _acord_body(rng, report, _record_texts(rng, report, style))
    if shape == "acord_prefixed":
        document = (
            f'<ns2:TXLife xmlns:ns2="{ACORD_NAMESPACE}" Version="2.43.00">\n'
            f"{_prefix_elements(body, 'ns2')}\n</ns2:TXLife>"
        )
    else:
        document = f'<TXLife xmlns="{ACORD_NAMESPACE}" Version="2.43.00">\n{body}\n</TXLife>'
    if "soap" in report.quirks:
        document = (
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
            f"<soapenv:Body>\n{document}\n</soapenv:Body></soapenv:Envelope>"
        )
    return document


def _flat(rng: np.random.Generator, report: MibReport) -> str:
    texts = _record_texts(rng, report, "iso")
    codes = [code for text in texts for code in text.codes]
    if not codes:
        return "<Response/>"
    items = "\n".join(
        f"  <ResponseData>{_code_text(code, report.quirks)}</ResponseData>" for code in codes
    )
    return f"<Response>\n{items}\n</Response>"


def _legacy(rng: np.random.Generator, report: MibReport) -> str:
    texts = _record_texts(rng, report, "legacy")
    if not texts:
        return '<MIBResponse>\n  <MIBRecord ReplyType="NFD"/>\n</MIBResponse>'
    rows = []
    for text in texts:
        record = text.record
        codes = "".join(
            f'<Code FieldId="C{i:03d}">{_code_text(code, report.quirks)}</Code>'
            for i, code in enumerate(text.codes, start=1)
        )
        when = "" if text.date is None else f"<DateReported>{escape(text.date)}</DateReported>"
        rows.append(
            f'  <MIBRecord ReplyType="{record.reply_type}"><Csy>{record.company}</Csy>'
            f"{when}{codes}</MIBRecord>"
        )
    return "<MIBResponse>\n" + "\n".join(rows) + "\n</MIBResponse>"


def render_mib(rng: np.random.Generator, report: MibReport, shape: str) -> bytes:
    """Render an MIB reply in `shape`, applying the report's quirks, and return the bytes."""
    if shape not in MIB_SHAPES:
        msg = f"unknown MIB shape {shape!r}; use one of {', '.join(MIB_SHAPES)}"
        raise ValueError(msg)
    quirks = report.quirks
    if "empty_report" in quirks:
        return _EMPTY_REPORTS[int(rng.integers(len(_EMPTY_REPORTS)))]
    if shape == "flat":
        document = _flat(rng, report)
    elif shape == "legacy":
        document = _legacy(rng, report)
    else:
        document = _acord(rng, report, shape)
    encoding = "utf-8"
    if "latin1" in quirks:
        encoding = "iso-8859-1"
    elif "utf16" in quirks:
        encoding = "utf-16"
    elif "utf8_bom" in quirks:
        encoding = "utf-8-bom"
    return encode_document(document + "\n", encoding)
