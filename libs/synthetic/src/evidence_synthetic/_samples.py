"""The curated sample evidence under `data/samples/`: six applicants and three smoke inputs.

Each sample is written out by hand (drugs, dates, prescribers, MIB records) so that its README
description stays exact; only NDC styles and ids come from a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from evidence_synthetic._catalog import DRUGS
from evidence_synthetic._fills import Fill, make_fill
from evidence_synthetic._mib_records import Build, MibRecord
from evidence_synthetic._mib_xml import MibReport, render_mib
from evidence_synthetic._parties import Pharmacy, Prescriber, make_npi
from evidence_synthetic._rx_xml import RxReport, render_rx

__all__ = ["SAMPLE_AS_OF", "SMOKE_INPUTS", "Sample", "build_samples", "write_samples"]

SAMPLE_AS_OF = date(2024, 3, 16)
_SEED = 20240316

# The three inputs of the SQL smoke tests, byte for byte.
SMOKE_INPUTS: dict[str, bytes] = {
    "mib_code1.xml": b'<?xml version="1.0"?><Response><ResponseData>CODE1</ResponseData></Response>',
    "rx_metformin.xml": (
        b"<IntelRXResponse><DrugFill><DrugGenericName>METFORMIN</DrugGenericName>"
        b"</DrugFill></IntelRXResponse>"
    ),
    "empty.xml": b"<r/>",
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One curated applicant: folder name, README text and the two documents."""

    name: str
    description: str
    mib_xml: bytes
    rx_xml: bytes


class _Builder:
    """Deterministic helpers for writing fills by hand."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def prescriber(self, last: str, specialty: str) -> Prescriber:
        return Prescriber(make_npi(self.rng), "SAMPLE", last, specialty)

    def pharmacy(self, name: str) -> Pharmacy:
        ncpdp = f"{int(self.rng.integers(0, 10_000_000)):07d}"
        return Pharmacy(ncpdp, make_npi(self.rng), name)

    def series(
        self,
        key: str,
        strength: str,
        *,
        first: date,
        days_supply: int,
        count: int,
        prescriber: Prescriber,
        pharmacy: Pharmacy,
        interval: int | None = None,
        payment: str = "COMMERCIAL",
    ) -> list[Fill]:
        """Fill `count` times, every `interval` days (default: the days supply)."""
        step = interval or days_supply
        return [
            make_fill(
                self.rng, DRUGS[key], fill_date=first + timedelta(days=i * step),
                days_supply=days_supply, prescriber=prescriber, pharmacy=pharmacy,
                strength=strength, refill_number=i % 4, payment_type=payment,
            )
            for i in range(count)
            if first + timedelta(days=i * step) <= SAMPLE_AS_OF
        ]  # fmt: skip

    def rx(self, last: str, birth: date, sex: str, fills: list[Fill], shape: str, **extra: object) -> bytes:
        fills.sort(key=lambda fill: fill.fill_date, reverse=True)
        report = RxReport(
            as_of=SAMPLE_AS_OF,
            order_reference=f"ORD_SAMPLE_{last.replace(' ', '_')}",
            first_name="SAMPLE",
            last_name=last,
            birth_date=birth,
            sex=sex,
            fills=tuple(fills),
            eligibility=((date(2019, 3, 16), SAMPLE_AS_OF),),
            **extra,  # type: ignore[arg-type]
        )
        return render_rx(self.rng, report, shape)

    def mib(self, last: str, birth: date, records: list[MibRecord], shape: str, iai: int | None = None) -> bytes:
        report = MibReport(SAMPLE_AS_OF, "SAMPLE", last, birth, tuple(records), iai)
        return render_mib(self.rng, report, shape)


def build_samples() -> list[Sample]:
    """Build the six curated applicants, always with the same bytes."""
    b = _Builder(_SEED)
    family = b.prescriber("FAMILYDOC", "FAMILY MEDICINE")
    corner = b.pharmacy("CORNER DRUG & WELLNESS #0001")
    mail = b.pharmacy("NORTHGATE MAIL ORDER RX #0002")
    samples: list[Sample] = []

    clean_fills = [
        *b.series("amoxicillin", "500 MG", first=date(2023, 2, 9), days_supply=10, count=1,
                  prescriber=b.prescriber("URGENTCARE", "URGENT CARE"), pharmacy=corner),
        *b.series("ibuprofen", "800 MG", first=date(2022, 7, 21), days_supply=7, count=1,
                  prescriber=family, pharmacy=corner),
    ]  # fmt: skip
    samples.append(Sample(
        "01-clean",
        "Healthy 34-year-old. Rx: two acute fills (amoxicillin, ibuprofen) in five years of "
        "coverage. MIB: ACORD 401 no-file reply (RecordsFound 0).",
        b.mib("CLEAN", date(1990, 1, 1), [], "acord"),
        b.rx("CLEAN", date(1990, 1, 1), "F", clean_fills, "intelrx"),
    ))  # fmt: skip

    endo = b.prescriber("ENDOCRINOLOGIST", "ENDOCRINOLOGY")
    diabetic_fills = [
        *b.series("metformin", "1000 MG", first=date(2020, 4, 2), days_supply=90, count=16,
                  prescriber=endo, pharmacy=mail, interval=96),
        *b.series("glipizide", "5 MG", first=date(2022, 5, 10), days_supply=30, count=23,
                  prescriber=endo, pharmacy=corner, interval=31),
        *b.series("atorvastatin", "20 MG", first=date(2020, 4, 2), days_supply=90, count=16,
                  prescriber=family, pharmacy=mail, interval=97),
        *b.series("lisinopril", "10 MG", first=date(2021, 1, 15), days_supply=90, count=13,
                  prescriber=family, pharmacy=mail, interval=92),
    ]  # fmt: skip
    samples.append(Sample(
        "02-diabetic",
        "Type 2 diabetes with hypertension, 58. Rx: metformin 1000 mg and atorvastatin since 2020, "
        "lisinopril since 2021, glipizide since 2022; endocrinologist and family doctor; "
        "vendor RiskScore 41. MIB: ACORD 401, one Hit from XA1 on 2021-08-20 with codes 503D and "
        "311C, and a Build extension (BMI 32.3).",
        b.mib("DIABETIC", date(1966, 1, 1), [
            MibRecord("HIT", "XA1", date(2021, 8, 20), ("503D", "311C"), "Life",
                      Build(70, 225, 32.3)),
        ], "acord", iai=1),
        b.rx("DIABETIC", date(1966, 1, 1), "M", diabetic_fills, "intelrx", vendor_score=41),
    ))  # fmt: skip

    cardio = b.prescriber("CARDIOLOGIST", "CARDIOLOGY")
    cardiac_fills = [
        *b.series("apixaban", "5 MG", first=date(2022, 6, 20), days_supply=30, count=21,
                  prescriber=cardio, pharmacy=corner, interval=30),
        *b.series("metoprolol_er", "50 MG", first=date(2021, 3, 1), days_supply=90, count=12,
                  prescriber=cardio, pharmacy=mail, interval=92),
        *b.series("atorvastatin", "80 MG", first=date(2021, 3, 1), days_supply=90, count=12,
                  prescriber=cardio, pharmacy=mail, interval=91),
        *b.series("clopidogrel", "75 MG", first=date(2021, 3, 1), days_supply=90, count=12,
                  prescriber=cardio, pharmacy=mail, interval=93),
        *b.series("furosemide", "40 MG", first=date(2023, 1, 5), days_supply=30, count=14,
                  prescriber=cardio, pharmacy=corner, interval=30),
        *b.series("entresto", "49-51 MG", first=date(2023, 1, 5), days_supply=30, count=14,
                  prescriber=cardio, pharmacy=corner, interval=31),
        *b.series("nitroglycerin", "0.4 MG", first=date(2021, 3, 1), days_supply=30, count=3,
                  prescriber=cardio, pharmacy=corner, interval=300),
    ]  # fmt: skip
    samples.append(Sample(
        "03-cardiac",
        "Coronary disease with heart failure and atrial fibrillation, 67. Rx: apixaban, "
        "metoprolol succinate, atorvastatin 80 mg, clopidogrel, furosemide, sacubitril-valsartan "
        "and nitroglycerin from a cardiologist. MIB: legacy MIBResponse list, Hit from QB7 "
        "(14JU22, codes 320E and 330C) and a Try from KD9 with an unknown date (------).",
        b.mib("CARDIAC", date(1957, 1, 1), [
            MibRecord("HIT", "QB7", date(2022, 6, 14), ("320E", "330C")),
            MibRecord("TRY", "KD9", None, ("311A",)),
        ], "legacy"),
        b.rx("CARDIAC", date(1957, 1, 1), "M", cardiac_fills, "intelrx", therapeutic_class=True),
    ))  # fmt: skip

    specialties = ("EMERGENCY MEDICINE", "DENTIST", "PAIN MEDICINE", "FAMILY MEDICINE",
                   "ORTHOPAEDIC SURGERY", "URGENT CARE")  # fmt: skip
    doctors = [b.prescriber(f"PRESCRIBER{i + 1}", s) for i, s in enumerate(specialties)]
    stores = [b.pharmacy(f"SYNTHMART PHARMACY #{i + 10:04d}") for i in range(5)]
    misuse_fills: list[Fill] = []
    start = date(2023, 12, 1)
    for i in range(8):
        misuse_fills += b.series("oxycodone", "30 MG", first=start + timedelta(days=i * 13),
                                 days_supply=30, count=1, prescriber=doctors[i % 6],
                                 pharmacy=stores[i % 5], payment="CASH")  # fmt: skip
    misuse_fills += b.series("alprazolam", "2 MG", first=date(2023, 11, 20), days_supply=30,
                             count=5, prescriber=doctors[3], pharmacy=stores[0], interval=20)
    misuse_fills += b.series("carisoprodol", "350 MG", first=date(2024, 1, 4), days_supply=30,
                             count=2, prescriber=doctors[4], pharmacy=stores[2], interval=21)
    samples.append(Sample(
        "04-opioid-benzo",
        "Opioid and benzodiazepine misuse, 41. Rx: eight cash-paid oxycodone 30 mg fills (30 days "
        "supply each, 13 days apart) from six prescribers at five pharmacies in 91 days, "
        "alprazolam 2 mg refilled every 20 days, carisoprodol. MIB: ACORD 401 with ns2-prefixed "
        "elements, Hits from ZC3 and MT4 with 650D, an insurance-activity count of 4.",
        b.mib("MISUSE", date(1983, 1, 1), [
            MibRecord("HIT", "ZC3", date(2023, 10, 2), ("650D",)),
            MibRecord("HIT", "MT4", date(2022, 4, 11), ("650D", "620B")),
        ], "acord_prefixed", iai=4),
        b.rx("MISUSE", date(1983, 1, 1), "M", misuse_fills, "intelrx"),
    ))  # fmt: skip

    oncology = b.prescriber("ONCOLOGIST", "HEMATOLOGY/ONCOLOGY")
    cancer_fills = [
        *b.series("anastrozole", "1 MG", first=date(2022, 9, 1), days_supply=30, count=19,
                  prescriber=oncology, pharmacy=corner, interval=30),
        *b.series("ondansetron", "8 MG", first=date(2022, 5, 3), days_supply=10, count=4,
                  prescriber=oncology, pharmacy=corner, interval=21),
        *b.series("dexamethasone", "4 MG", first=date(2022, 5, 3), days_supply=5, count=4,
                  prescriber=oncology, pharmacy=corner, interval=21),
        *b.series("oxycodone", "5 MG", first=date(2022, 5, 20), days_supply=7, count=2,
                  prescriber=oncology, pharmacy=corner, interval=40),
    ]  # fmt: skip
    samples.append(Sample(
        "05-cancer",
        "Breast cancer under hormonal therapy, 52. Rx in NCPDP SCRIPT field names "
        "(MedicationDispensed): anastrozole since 2022 after chemotherapy support drugs "
        "(ondansetron, dexamethasone) and two short oxycodone 5 mg fills, all from a "
        "hematology/oncology prescriber. MIB: flat Response list with one code, 160E.",
        b.mib("CANCER", date(1972, 1, 1), [
            MibRecord("HIT", "WP2", date(2022, 11, 30), ("160E",)),
        ], "flat"),
        b.rx("CANCER", date(1972, 1, 1), "F", cancer_fills, "ncpdp"),
    ))  # fmt: skip

    try_fills = [
        *b.series("sertraline", "50 MG", first=date(2022, 2, 14), days_supply=30, count=25,
                  prescriber=family, pharmacy=corner, interval=31),
        *b.series("levothyroxine", "75 MCG", first=date(2020, 1, 10), days_supply=90, count=17,
                  prescriber=family, pharmacy=mail, interval=91),
    ]  # fmt: skip
    samples.append(Sample(
        "06-try-only",
        "Treated depression and hypothyroidism, 45. Rx: bare IntelRXResponse root with sertraline "
        "and levothyroxine. MIB: ACORD 401 with only Try records (610C from LR8, 911 from JN5), "
        "which may belong to another person.",
        b.mib("TRYONLY", date(1979, 1, 1), [
            MibRecord("TRY", "LR8", date(2020, 9, 8), ("610C",)),
            MibRecord("TRY", "JN5", date(2019, 2, 27), ("911",)),
        ], "acord"),
        b.rx("TRYONLY", date(1979, 1, 1), "F", try_fills, "bare"),
    ))  # fmt: skip
    return samples


def _readme(samples: list[Sample]) -> str:
    lines = [
        "# Sample evidence",
        "",
        "Synthetic MIB and Rx reports for the README, the demo and smoke tests. Every person,",
        "prescriber, pharmacy, carrier and MIB code here is made up; birth dates are all 1 January.",
        f"All reports are dated {SAMPLE_AS_OF.isoformat()}. Regenerate with",
        "`evidence-synth --samples --out data/samples`; a test fails when these files are stale.",
        "",
        "| folder | applicant and evidence |",
        "|---|---|",
    ]
    lines += [f"| `{sample.name}/` | {sample.description} |" for sample in samples]
    lines += [
        "",
        "`smoke/` holds the three inputs of the SQL smoke tests, byte for byte:",
        "",
        "| file | content | expected |",
        "|---|---|---|",
        "| `mib_code1.xml` | flat MIB list with one code `CODE1` | one MIB record, no Hit or Try |",
        "| `rx_metformin.xml` | one `DrugFill` with generic name METFORMIN | one fill, "
        "non-insulin antidiabetic |",
        "| `empty.xml` | `<r/>` | a well-formed report without evidence |",
        "",
    ]
    return "\n".join(lines)


def write_samples(directory: str | Path) -> list[Path]:
    """Write the curated samples, the smoke inputs and a README into `directory`.

    Returns the written files, sorted. Existing files with the same names are overwritten.
    """
    root = Path(directory)
    samples = build_samples()
    written: list[Path] = []
    for sample in samples:
        folder = root / sample.name
        folder.mkdir(parents=True, exist_ok=True)
        for filename, content in (("mib.xml", sample.mib_xml), ("rx.xml", sample.rx_xml)):
            (folder / filename).write_bytes(content)
            written.append(folder / filename)
    smoke = root / "smoke"
    smoke.mkdir(parents=True, exist_ok=True)
    for filename, content in SMOKE_INPUTS.items():
        (smoke / filename).write_bytes(content)
        written.append(smoke / filename)
    readme = root / "README.md"
    readme.write_text(_readme(samples), encoding="utf-8")
    written.append(readme)
    return sorted(written)
