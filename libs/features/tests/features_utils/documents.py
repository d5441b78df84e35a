"""Builders of MIB and Rx XML documents for tests and benchmarks (invented data only)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape

__all__ = [
    "FillSpec",
    "MibRecordSpec",
    "acord_mib",
    "flat_mib",
    "intelrx",
    "random_fills",
    "random_mib_records",
]


@dataclass(frozen=True)
class MibRecordSpec:
    """One MIB record to render; the build fields are left out of the XML when None."""

    date: str | None
    company: str | None
    codes: tuple[str, ...]
    reply: str | None = "HIT"
    bmi: float | str | None = None
    height: str | None = None
    weight: str | None = None


@dataclass(frozen=True)
class FillSpec:
    """One Rx fill to render; None fields are left out of the XML."""

    generic: str | None
    fill_date: str | None
    quantity: str | None = "30"
    days_supply: str | None = "30"
    strength: str | None = None
    brand: str | None = None
    prescriber: str | None = "1000000001"
    pharmacy: str | None = "0300001"
    specialty: str | None = None
    form: str | None = None


def _tag(name: str, value: str | None) -> str:
    return "" if value is None else f"<{name}>{escape(value)}</{name}>"


def _build_tags(record: MibRecordSpec) -> str:
    bmi = None if record.bmi is None else str(record.bmi)
    return _tag("BMI", bmi) + _tag("HeightIn", record.height) + _tag("WeightLb", record.weight)


def acord_mib(
    records: list[MibRecordSpec],
    *,
    trans_date: str | None = "2024-03-16",
    iai: int | str | None = None,
) -> bytes:
    """Render an ACORD TXLife 401 reply with one FormInstance and Relation per record."""
    parties, forms, relations = [], [], []
    companies = sorted({r.company for r in records if r.company})
    for index, company in enumerate(companies):
        parties.append(
            f'<Party id="P_CO{index}"><Carrier><CarrierCode>{company}</CarrierCode>'
            "</Carrier></Party>"
        )
    party_ids = {company: f"P_CO{index}" for index, company in enumerate(companies)}
    for index, record in enumerate(records):
        provider = f' ProviderPartyID="{party_ids[record.company]}"' if record.company else ""
        codes = "".join(
            f'<FormResponse id="FR{index}_{n}"><ResponseData>{code}</ResponseData></FormResponse>'
            for n, code in enumerate(record.codes)
        )
        build_tags = _build_tags(record)
        build = (
            f'<OLifEExtension VendorCode="SYNTH"><Build>{build_tags}</Build></OLifEExtension>'
            if build_tags
            else ""
        )
        forms.append(
            f'<FormInstance id="F{index}"{provider}><FormName>MIB</FormName>'
            f"{_tag('SubmitDate', record.date)}{codes}{build}</FormInstance>"
        )
        if record.reply is not None:
            tc = {"HIT": "1001", "TRY": "1002"}.get(record.reply, "0")
            relations.append(
                f'<Relation id="R{index}" OriginatingObjectID="F{index}" RelatedObjectID="P_SUBJ">'
                f'<RelationRoleCode tc="{tc}">{record.reply.title()}</RelationRoleCode></Relation>'
            )
    iai_block = (
        '<OLifEExtension VendorCode="SYNTH"><InsuranceActivity>'
        f"{_tag('InquiryCount24M', str(iai))}</InsuranceActivity></OLifEExtension>"
        if iai is not None
        else ""
    )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<TXLife xmlns="http://ACORD.org/Standards/Life/2" Version="2.xx.xx"><TXLifeResponse>'
        '<TransType tc="401">MIB Inquiry</TransType>'
        f"{_tag('TransExeDate', trans_date)}"
        f'<TransResult><ResultCode tc="1">Success</ResultCode><RecordsFound>{len(records)}'
        "</RecordsFound></TransResult><OLifE>"
        '<Party id="P_SUBJ"><Person><FirstName>Pat</FirstName><LastName>Example</LastName>'
        "<BirthDate>1970-01-01</BirthDate></Person></Party>"
        + "".join(parties)
        + "".join(forms)
        + "".join(relations)
        + iai_block
        + "</OLifE></TXLifeResponse></TXLife>"
    )
    return text.encode("utf-8")


def flat_mib(records: list[MibRecordSpec]) -> bytes:
    """Render the flat `<MIBResponse><MIBRecord>` shape, build fields as record children."""
    body = []
    for record in records:
        reply = f' ReplyType="{record.reply}"' if record.reply else ""
        codes = "".join(f'<Code FieldId="C001">{code}</Code>' for code in record.codes)
        body.append(
            f"<MIBRecord{reply}>{_tag('Csy', record.company)}"
            f"{_tag('DateReported', record.date)}{codes}{_build_tags(record)}</MIBRecord>"
        )
    return ("<MIBResponse>" + "".join(body) + "</MIBResponse>").encode("utf-8")


def intelrx(
    fills: list[FillSpec],
    *,
    report_date: str | None = "2024-03-16",
    eligibility: list[tuple[str, str]] | None = None,
    wrapper: bool = True,
    score: str | None = None,
) -> bytes:
    """Render an IntelRX report with one DrugFill per fill."""
    parts = []
    for fill in fills:
        parts.append(
            "<DrugFill>"
            + _tag("FillDate", fill.fill_date)
            + _tag("DrugBrandName", fill.brand)
            + _tag("DrugGenericName", fill.generic)
            + _tag("DrugStrength", fill.strength)
            + _tag("DosageForm", fill.form)
            + _tag("Quantity", fill.quantity)
            + _tag("DaysSupply", fill.days_supply)
            + _tag("PrescriberNPI", fill.prescriber)
            + _tag("PhysicianSpecialty", fill.specialty)
            + _tag("PharmacyNCPDPID", fill.pharmacy)
            + "</DrugFill>"
        )
    periods = ""
    if eligibility is not None:
        periods = (
            "<Eligibility>"
            + "".join(
                f"<Period><BeginDate>{begin}</BeginDate><EndDate>{end}</EndDate></Period>"
                for begin, end in eligibility
            )
            + "</Eligibility>"
        )
    inner = (
        "<IntelRXResponse><Result>HIT</Result>"
        + _tag("ReportDate", report_date)
        + periods
        + _tag("RiskScore", score)
        + "".join(parts)
        + "</IntelRXResponse>"
    )
    text = f"<IntelRX>{inner}</IntelRX>" if wrapper else inner
    return ('<?xml version="1.0" encoding="UTF-8"?>' + text).encode("utf-8")


_DRUGS = (
    ("METFORMIN HCL", "500 MG", None),
    ("LISINOPRIL", "10 MG", None),
    ("ATORVASTATIN CALCIUM", "20 MG", None),
    ("HYDROCODONE-APAP", "5-325 MG", None),
    ("ALPRAZOLAM", "0.5 MG", None),
    ("SERTRALINE HCL", "50 MG", None),
    ("AMLODIPINE BESYLATE", "5 MG", None),
    ("GABAPENTIN", "300 MG", None),
    ("OXYCODONE HCL", "10 MG", None),
    ("FENTANYL", "25 MCG/HR", "PATCH"),
    ("WARFARIN SODIUM", "5 MG", None),
    ("INSULIN GLARGINE", "100 UNIT/ML", None),
    ("ZOLPIDEM TARTRATE", "10 MG", None),
    ("AMOXICILLIN", "500 MG", None),
    ("LOCALCOMPOUNDXYZ", None, None),
    ("QUETIAPINE FUMARATE", "100 MG", None),
)


def random_fills(rng: random.Random, count: int, *, as_of: date) -> list[FillSpec]:
    """Draw `count` plausible fills within five years before `as_of`."""
    fills = []
    for _ in range(count):
        generic, strength, form = rng.choice(_DRUGS)
        day = as_of - timedelta(days=rng.randrange(0, 1800))
        fills.append(
            FillSpec(
                generic=generic,
                fill_date=day.isoformat(),
                quantity=str(rng.choice((30, 60, 90, 10, 120))),
                days_supply=str(rng.choice((30, 90, 7, 5, 0))),
                strength=strength,
                prescriber=f"10000000{rng.randrange(10):02d}",
                pharmacy=f"03000{rng.randrange(8):02d}",
                specialty=rng.choice(("FAMILY MEDICINE", "PSYCHIATRY", "ONCOLOGY", None)),
                form=form,
            )
        )
    return fills


def random_mib_records(rng: random.Random, count: int, *, as_of: date) -> list[MibRecordSpec]:
    """Draw `count` MIB records with invented codes."""
    records = []
    for _ in range(count):
        day = as_of - timedelta(days=rng.randrange(0, 2500))
        codes = tuple(
            rng.choice(("503D", "311C", "911", "150E", "650", "999Z", "420B"))
            for _ in range(rng.randrange(1, 3))
        )
        records.append(
            MibRecordSpec(
                date=day.isoformat(),
                company=rng.choice(("XA1", "QB7", "ZZ3")),
                codes=codes,
                reply=rng.choice(("HIT", "TRY")),
                bmi=rng.choice((None, 27.5, 33.1)),
            )
        )
    return records
