"""Render fills as an Rx report: IntelRX-style `DrugFill` or NCPDP-style `MedicationDispensed`.

Shapes: `intelrx` (`IntelRX/IntelRXResponse`), `bare` (`IntelRXResponse` root, as the precursor
pipeline sent it) and `ncpdp` (`IntelRXResponse` holding NCPDP SCRIPT field names). Quirks are the
edge cases of real feeds, chosen per document by the caller.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from evidence_synthetic._encoding import encode_document
from evidence_synthetic._fills import Fill
from evidence_synthetic._xmltext import cdata, escape, format_date, shift_years

__all__ = ["RX_QUIRKS", "RX_SHAPES", "RxReport", "make_ndc", "render_rx"]

RX_SHAPES = ("intelrx", "bare", "ncpdp")
RX_QUIRKS = (
    "duplicate_fills",
    "cdata",
    "latin1",
    "utf8_bom",
    "utf16",
    "missing_dates",
    "future_dates",
    "date_formats",
    "numeric_oddities",
    "attributes",
    "strength_in_label",
    "name_variants",
    "ndc_variants",
    "whitespace",
    "empty_report",
)
_EMPTY_REPORTS = (b"", b"   \n", b"<r/>", b"<IntelRXResponse/>", b'<?xml version="1.0"?>')
_ALTERNATE_DATE_STYLES = ("ccyymmdd", "us", "dd-mon-yy", "iso-datetime-z", "iso-datetime-offset")


@dataclass(frozen=True, slots=True)
class RxReport:
    """Report-level content of an Rx reply. No fills with `hit` False is a no-hit reply."""

    as_of: date
    order_reference: str
    first_name: str
    last_name: str
    birth_date: date
    sex: str
    fills: tuple[Fill, ...]
    hit: bool = True
    eligibility: tuple[tuple[date, date], ...] = ()
    vendor_score: int | None = None
    therapeutic_class: bool = False
    quirks: frozenset[str] = field(default_factory=frozenset)


def make_ndc(generic: str, strength: str, style: int = 0) -> str:
    """Derive a stable made-up NDC for a product, hyphenated 5-4-2, 4-4-2, 5-3-2 or 5-4-1.

    `style` 4 returns the 11-digit form without hyphens, and 5 the same after a numeric type
    dropped its leading zeros.
    """
    digits = f"{zlib.crc32(f'{generic}|{strength}'.encode()) % 10**11:011d}"
    if style == 1:
        return f"{digits[1:5]}-{digits[5:9]}-{digits[9:]}"
    if style == 2:
        return f"{digits[:5]}-{digits[6:9]}-{digits[9:]}"
    if style == 3:
        return f"{digits[:5]}-{digits[5:9]}-{digits[10]}"
    if style == 4:
        return digits
    if style == 5:
        return digits.lstrip("0") or "0"
    return f"{digits[:5]}-{digits[5:9]}-{digits[9:]}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(slots=True)
class _FillText:
    """Per-fill text after quirks. A value of None omits the element."""

    fill_date: str | None
    written_date: str | None
    quantity: str | None
    days_supply: str | None
    generic: str | None
    brand: str
    strength: str | None
    ndc: str


def _fill_texts(rng: np.random.Generator, report: RxReport, style: str) -> list[_FillText]:
    quirks = report.quirks
    texts: list[_FillText] = []
    ndc_style = int(rng.integers(4, 6)) if "ndc_variants" in quirks else int(rng.integers(0, 4))
    for fill in report.fills:
        drug = fill.drug
        texts.append(
            _FillText(
                fill_date=format_date(fill.fill_date, style),
                written_date=format_date(fill.written_date, style),
                quantity=_number(fill.quantity),
                days_supply=str(fill.days_supply),
                generic=drug.generic,
                brand=drug.brand,
                strength=fill.strength,
                ndc=make_ndc(drug.generic, fill.strength, ndc_style),
            )
        )
    if not texts:
        return texts

    def chosen(count: int) -> list[int]:
        picked = rng.choice(len(texts), size=min(count, len(texts)), replace=False)
        return [int(i) for i in picked]

    if "missing_dates" in quirks:
        for index in chosen(int(rng.integers(1, 3))):
            texts[index].fill_date = (None, "", "0000-00-00")[int(rng.integers(3))]
    if "future_dates" in quirks:
        index = chosen(1)[0]
        fill_date = report.fills[index].fill_date
        future = shift_years(report.as_of, 1) if rng.random() < 0.5 else shift_years(fill_date, 100)
        texts[index].fill_date = format_date(future, style)
    if "numeric_oddities" in quirks:
        for index in chosen(int(rng.integers(1, 4))):
            text = texts[index]
            text.quantity = (f"{float(text.quantity or 0):.3f}", f"{text.quantity} EA", "0")[
                int(rng.integers(3))
            ]
            text.days_supply = (None, "0", "999", "-5", f" {text.days_supply} ")[
                int(rng.integers(5))
            ]
    if "strength_in_label" in quirks:
        for index in chosen(max(1, len(texts) // 2)):
            text = texts[index]
            fill = report.fills[index]
            label = f"{fill.drug.generic} {fill.strength.split(' ')[0]} {fill.drug.form}"
            text.generic, text.strength = label, None
    if "name_variants" in quirks:
        for index in chosen(int(rng.integers(1, 4))):
            text = texts[index]
            variant = int(rng.integers(4))
            if variant == 0 and text.generic:
                text.generic = text.generic.title()
            elif variant == 1:
                text.generic = None
            elif variant == 2:
                text.generic = "UNKNOWN"
            else:
                text.generic = f"  {(text.generic or '').lower()}  "
    return texts


def _text(value: str, quirks: frozenset[str]) -> str:
    return cdata(value) if "cdata" in quirks else escape(value)


def _value_element(name: str, value: str | None, quirks: frozenset[str]) -> str:
    if value is None:
        return ""
    if "attributes" in quirks:
        return f'<{name} value="{escape(value)}"/>'
    return f"<{name}>{escape(value)}</{name}>"


def _intelrx_fill(fill: Fill, text: _FillText, report: RxReport, indent: str) -> str:
    q = report.quirks
    date_element = (
        ""
        if text.fill_date is None
        else f"<FillDate>{escape(text.fill_date)}</FillDate>"
        if text.fill_date
        else "<FillDate/>"
    )
    parts = [
        date_element,
        f"<WrittenDate>{text.written_date}</WrittenDate>" if text.written_date else "",
        f"<NDC>{text.ndc}</NDC>",
        f"<DrugBrandName>{_text(text.brand, q)}</DrugBrandName>",
        f"<DrugGenericName>{_text(text.generic, q)}</DrugGenericName>" if text.generic else "",
        f"<DrugStrength>{escape(text.strength)}</DrugStrength>" if text.strength else "",
        f"<DosageForm>{escape(fill.drug.form)}</DosageForm>",
        _value_element("Quantity", text.quantity, q),
        _value_element("DaysSupply", text.days_supply, q),
        f"<RefillNumber>{fill.refill_number}</RefillNumber>",
        f"<PrescriberNPI>{fill.prescriber.npi}</PrescriberNPI>",
        f"<PhysicianName>{_text(fill.prescriber.display_name, q)}</PhysicianName>",
        f"<PhysicianSpecialty>{escape(fill.prescriber.specialty)}</PhysicianSpecialty>",
        f"<PharmacyNCPDPID>{fill.pharmacy.ncpdp_id}</PharmacyNCPDPID>",
        f"<PharmacyName>{_text(fill.pharmacy.name, q)}</PharmacyName>",
        f"<PaymentType>{escape(fill.payment_type)}</PaymentType>",
    ]
    if report.therapeutic_class and fill.drug.drug_class != "OTHER":
        parts.append(f'<TherapeuticClass system="LOCAL">{fill.drug.drug_class}</TherapeuticClass>')
    inner = f"\n{indent}  ".join(part for part in parts if part)
    return f"{indent}<DrugFill>\n{indent}  {inner}\n{indent}</DrugFill>"


def _ncpdp_fill(fill: Fill, text: _FillText, report: RxReport, indent: str) -> str:
    q = report.quirks
    description = text.generic or text.brand
    if text.strength:
        description = f"{description} {text.strength} {fill.drug.form}"
    strength_value, _, strength_unit = (text.strength or "").partition(" ")
    fill_date = (
        ""
        if text.fill_date is None
        else f"<LastFillDate><Date>{escape(text.fill_date)}</Date></LastFillDate>"
    )
    quantity = (
        ""
        if text.quantity is None
        else f"<Quantity><Value>{escape(text.quantity)}</Value>"
        "<CodeListQualifier>38</CodeListQualifier></Quantity>"
    )
    parts = [
        f"<DrugDescription>{_text(description, q)}</DrugDescription>",
        "<DrugCoded><ProductCode>"
        f"<Code>{text.ndc.replace('-', '')}</Code><Qualifier>ND</Qualifier></ProductCode>"
        + (
            f"<Strength><StrengthValue>{escape(strength_value)}</StrengthValue>"
            f"<StrengthUnitOfMeasure>{escape(strength_unit)}</StrengthUnitOfMeasure></Strength>"
            if text.strength
            else ""
        )
        + "</DrugCoded>",
        quantity,
        f"<DaysSupply>{escape(text.days_supply)}</DaysSupply>" if text.days_supply else "",
        f"<WrittenDate><Date>{text.written_date}</Date></WrittenDate>",
        fill_date,
        f"<HistorySource><FillNumber>{fill.refill_number}</FillNumber>"
        f"<PaymentType>{escape(fill.payment_type)}</PaymentType>"
        "<SourceReference>PBM</SourceReference></HistorySource>",
        f"<Pharmacy><Identification><NCPDPID>{fill.pharmacy.ncpdp_id}</NCPDPID>"
        f"<NPI>{fill.pharmacy.npi}</NPI></Identification>"
        f"<BusinessName>{_text(fill.pharmacy.name, q)}</BusinessName></Pharmacy>",
        f"<Prescriber><NonVeterinarian><Identification><NPI>{fill.prescriber.npi}</NPI>"
        f"</Identification><Specialty>{escape(fill.prescriber.specialty)}</Specialty>"
        f"<Name><LastName>{_text(fill.prescriber.last_name, q)}</LastName>"
        f"<FirstName>{_text(fill.prescriber.first_name, q)}</FirstName></Name>"
        "</NonVeterinarian></Prescriber>",
    ]
    inner = f"\n{indent}  ".join(part for part in parts if part)
    return f"{indent}<MedicationDispensed>\n{indent}  {inner}\n{indent}</MedicationDispensed>"


def _header(report: RxReport, indent: str) -> list[str]:
    q = report.quirks
    lines = [
        f"<Result>{'HIT' if report.hit else 'NOHIT'}</Result>",
        f"<OrderReference>{report.order_reference}</OrderReference>",
        f"<ReportDate>{report.as_of.isoformat()}</ReportDate>",
        "<Applicant>"
        f"<FirstName>{_text(report.first_name, q)}</FirstName>"
        f"<LastName>{_text(report.last_name, q)}</LastName>"
        f"<BirthDate>{report.birth_date.isoformat()}</BirthDate>"
        f"<Gender>{report.sex}</Gender></Applicant>",
    ]
    if report.eligibility:
        periods = "".join(
            f"<Period><BeginDate>{begin.isoformat()}</BeginDate>"
            f"<EndDate>{end.isoformat()}</EndDate></Period>"
            for begin, end in report.eligibility
        )
        lines.append(f"<Eligibility>{periods}</Eligibility>")
    if report.vendor_score is not None:
        lines.append(f"<RiskScore>{report.vendor_score}</RiskScore>")
    return [indent + line for line in lines]


def render_rx(rng: np.random.Generator, report: RxReport, shape: str) -> bytes:
    """Render an Rx report in `shape`, applying the report's quirks, and return the bytes."""
    if shape not in RX_SHAPES:
        msg = f"unknown Rx shape {shape!r}; use one of {', '.join(RX_SHAPES)}"
        raise ValueError(msg)
    quirks = report.quirks
    if "empty_report" in quirks:
        return _EMPTY_REPORTS[int(rng.integers(len(_EMPTY_REPORTS)))]

    date_style = "iso"
    if "date_formats" in quirks:
        date_style = _ALTERNATE_DATE_STYLES[int(rng.integers(len(_ALTERNATE_DATE_STYLES)))]
    fills = list(report.fills)
    texts = _fill_texts(rng, report, date_style)
    if "duplicate_fills" in quirks and fills:
        for index in rng.choice(len(fills), size=min(len(fills), int(rng.integers(1, 4)))):
            fills.append(fills[int(index)])
            texts.append(texts[int(index)])

    wrapped = shape == "intelrx"
    indent = "    " if wrapped else "  "
    render_fill = _ncpdp_fill if shape == "ncpdp" else _intelrx_fill
    body = _header(report, indent)
    body.extend(render_fill(f, t, report, indent) for f, t in zip(fills, texts, strict=True))
    if "whitespace" in quirks:
        body.insert(1, f"{indent}<!-- synthetic report: comment and PI for parser tests -->")
        body.insert(2, f"{indent}<?vendor-trace id=42?>")
        body.append(f"{indent}<DrugFill/>" if shape != "ncpdp" else "")
    inner = "\n".join(line for line in body if line)
    document = f"<IntelRXResponse>\n{inner}\n{indent[:-2]}</IntelRXResponse>"
    if wrapped:
        document = f"<IntelRX>\n  {document}\n</IntelRX>"
    if "whitespace" in quirks:
        document = document.replace("<Quantity>", "<Quantity>\n   ").replace(
            "</DaysSupply>", "  \n</DaysSupply>"
        )
    return encode_document(document + "\n", _encoding_for(quirks, shape))


def _encoding_for(quirks: frozenset[str], shape: str) -> str:
    if "latin1" in quirks:
        return "iso-8859-1"
    if "utf16" in quirks:
        return "utf-16"
    if "utf8_bom" in quirks:
        return "utf-8-bom"
    return "utf-8-undeclared" if shape == "bare" else "utf-8"
