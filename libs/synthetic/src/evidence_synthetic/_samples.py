"""The curated sample evidence under `data/samples/`: six applicants and three smoke inputs.

Each sample is written out by hand (drugs, dates, prescribers, MIB records), so that its README
description stays exact. Only NDC styles, NPIs and ids come from a fixed seed.
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
from evidence_synthetic._output import check_no_symlinks, make_folder, write_new_file
from evidence_synthetic._parties import Pharmacy, Prescriber, make_npi
from evidence_synthetic._rx_xml import RxReport, render_rx

__all__ = ["SAMPLE_AS_OF", "SMOKE_INPUTS", "Sample", "build_samples", "write_samples"]

SAMPLE_AS_OF = date(2024, 3, 16)
_SEED = 20240316
_ELIGIBILITY = ((date(2019, 3, 16), SAMPLE_AS_OF),)

# The three inputs of the SQL smoke tests, byte for byte.
SMOKE_INPUTS: dict[str, bytes] = {
    "mib_code1.xml": (
        b'<?xml version="1.0"?><Response><ResponseData>CODE1</ResponseData></Response>'
    ),
    "rx_metformin.xml": (
        b"<IntelRXResponse><DrugFill><DrugGenericName>METFORMIN</DrugGenericName>"
        b"</DrugFill></IntelRXResponse>"
    ),
    "empty.xml": b"<r/>",
}

# Prescriber key -> (last name, specialty); pharmacy key -> name. First names are all SAMPLE.
_PRESCRIBERS = {
    "family": ("FAMILYDOC", "FAMILY MEDICINE"),
    "urgent": ("URGENTCARE", "URGENT CARE"),
    "endo": ("ENDOCRINOLOGIST", "ENDOCRINOLOGY"),
    "cardio": ("CARDIOLOGIST", "CARDIOLOGY"),
    "onc": ("ONCOLOGIST", "HEMATOLOGY/ONCOLOGY"),
    "er": ("PRESCRIBER1", "EMERGENCY MEDICINE"),
    "dentist": ("PRESCRIBER2", "DENTIST"),
    "pain": ("PRESCRIBER3", "PAIN MEDICINE"),
    "gp": ("PRESCRIBER4", "FAMILY MEDICINE"),
    "ortho": ("PRESCRIBER5", "ORTHOPAEDIC SURGERY"),
    "clinic": ("PRESCRIBER6", "URGENT CARE"),
}
_PHARMACIES = {
    "corner": "CORNER DRUG & WELLNESS #0001",
    "mail": "NORTHGATE MAIL ORDER RX #0002",
    **{f"store{i}": f"SYNTHMART PHARMACY #{i + 10:04d}" for i in range(5)},
}


@dataclass(frozen=True, slots=True)
class _Series:
    """`count` fills of one product, every `interval` days (default: the days supply)."""

    drug: str
    strength: str
    first: date
    days_supply: int
    count: int
    prescriber: str
    pharmacy: str
    interval: int | None = None
    payment: str = "COMMERCIAL"


@dataclass(frozen=True, slots=True)
class _Spec:
    """Everything that defines one curated applicant."""

    name: str
    description: str
    last_name: str
    birth_date: date
    sex: str
    series: tuple[_Series, ...]
    rx_shape: str
    mib_records: tuple[MibRecord, ...]
    mib_shape: str
    inquiries_24m: int | None = None
    vendor_score: int | None = None
    therapeutic_class: bool = False


@dataclass(frozen=True, slots=True)
class Sample:
    """One curated applicant: folder name, README text and the two documents."""

    name: str
    description: str
    mib_xml: bytes
    rx_xml: bytes


def _misuse_series() -> tuple[_Series, ...]:
    """Eight oxycodone fills 13 days apart, rotating six prescribers and five pharmacies."""
    doctors = ("er", "dentist", "pain", "gp", "ortho", "clinic")
    return tuple(
        _Series(
            "oxycodone",
            "30 MG",
            date(2023, 12, 1) + timedelta(days=13 * i),
            30,
            1,
            doctors[i % 6],
            f"store{i % 5}",
            payment="CASH",
        )
        for i in range(8)
    )


_S = _Series
_SPECS = (
    _Spec(
        "01-clean",
        "Healthy 34-year-old. Rx: two acute fills (amoxicillin, ibuprofen) in five years of "
        "coverage. MIB: ACORD 401 no-file reply (RecordsFound 0).",
        "CLEAN", date(1990, 1, 1), "F",
        (
            _S("amoxicillin", "500 MG", date(2023, 2, 9), 10, 1, "urgent", "corner"),
            _S("ibuprofen", "800 MG", date(2022, 7, 21), 7, 1, "family", "corner"),
        ),
        "intelrx", (), "acord",
    ),
    _Spec(
        "02-diabetic",
        "Type 2 diabetes with hypertension, 58. Rx: metformin 1000 mg and atorvastatin since "
        "2020, lisinopril since 2021, glipizide since 2022; endocrinologist and family doctor; "
        "vendor RiskScore 41. MIB: ACORD 401, one Hit from XA1 on 2021-08-20 with codes 503D "
        "and 311C, and a Build extension (BMI 32.3).",
        "DIABETIC", date(1966, 1, 1), "M",
        (
            _S("metformin", "1000 MG", date(2020, 4, 2), 90, 16, "endo", "mail", 96),
            _S("glipizide", "5 MG", date(2022, 5, 10), 30, 23, "endo", "corner", 31),
            _S("atorvastatin", "20 MG", date(2020, 4, 2), 90, 16, "family", "mail", 97),
            _S("lisinopril", "10 MG", date(2021, 1, 15), 90, 13, "family", "mail", 92),
        ),
        "intelrx",
        (
            MibRecord(
                "HIT", "XA1", date(2021, 8, 20), ("503D", "311C"), "Life", Build(70, 225, 32.3)
            ),
        ),
        "acord", inquiries_24m=1, vendor_score=41,
    ),
    _Spec(
        "03-cardiac",
        "Coronary disease with heart failure and atrial fibrillation, 67. Rx: apixaban, "
        "metoprolol succinate, atorvastatin 80 mg, clopidogrel, furosemide, "
        "sacubitril-valsartan and nitroglycerin from a cardiologist, with a vendor "
        "TherapeuticClass on each fill. MIB: legacy MIBResponse list, Hit from QB7 (14JU22, "
        "codes 320E and 330C) and a Try from KD9 with an unknown date (------).",
        "CARDIAC", date(1957, 1, 1), "M",
        (
            _S("apixaban", "5 MG", date(2022, 6, 20), 30, 21, "cardio", "corner"),
            _S("metoprolol_er", "50 MG", date(2021, 3, 1), 90, 12, "cardio", "mail", 92),
            _S("atorvastatin", "80 MG", date(2021, 3, 1), 90, 12, "cardio", "mail", 91),
            _S("clopidogrel", "75 MG", date(2021, 3, 1), 90, 12, "cardio", "mail", 93),
            _S("furosemide", "40 MG", date(2023, 1, 5), 30, 14, "cardio", "corner"),
            _S("entresto", "49-51 MG", date(2023, 1, 5), 30, 14, "cardio", "corner", 31),
            _S("nitroglycerin", "0.4 MG", date(2021, 3, 1), 30, 3, "cardio", "corner", 300),
        ),
        "intelrx",
        (
            MibRecord("HIT", "QB7", date(2022, 6, 14), ("320E", "330C")),
            MibRecord("TRY", "KD9", None, ("311A",)),
        ),
        "legacy", therapeutic_class=True,
    ),
    _Spec(
        "04-opioid-benzo",
        "Opioid and benzodiazepine misuse, 41. Rx: eight cash-paid oxycodone 30 mg fills "
        "(30 days supply each, 13 days apart) from six prescribers at five pharmacies within "
        "91 days, alprazolam 2 mg refilled every 20 days, carisoprodol. MIB: ACORD 401 with "
        "ns2-prefixed elements, Hits from ZC3 (650D) and MT4 (650D, 620B), an "
        "insurance-activity count of 4.",
        "MISUSE", date(1983, 1, 1), "M",
        (
            *_misuse_series(),
            _S("alprazolam", "2 MG", date(2023, 11, 20), 30, 5, "gp", "store0", 20),
            _S("carisoprodol", "350 MG", date(2024, 1, 4), 30, 2, "ortho", "store2", 21),
        ),
        "intelrx",
        (
            MibRecord("HIT", "ZC3", date(2023, 10, 2), ("650D",)),
            MibRecord("HIT", "MT4", date(2022, 4, 11), ("650D", "620B")),
        ),
        "acord_prefixed", inquiries_24m=4,
    ),
    _Spec(
        "05-cancer",
        "Breast cancer under hormonal therapy, 52. Rx in NCPDP SCRIPT field names "
        "(MedicationDispensed): anastrozole since 2022 after chemotherapy support drugs "
        "(ondansetron, dexamethasone) and two short oxycodone 5 mg fills, all from a "
        "hematology/oncology prescriber. MIB: flat Response list with one code, 160E.",
        "CANCER", date(1972, 1, 1), "F",
        (
            _S("anastrozole", "1 MG", date(2022, 9, 1), 30, 19, "onc", "corner"),
            _S("ondansetron", "8 MG", date(2022, 5, 3), 10, 4, "onc", "corner", 21),
            _S("dexamethasone", "4 MG", date(2022, 5, 3), 5, 4, "onc", "corner", 21),
            _S("oxycodone", "5 MG", date(2022, 5, 20), 7, 2, "onc", "corner", 40),
        ),
        "ncpdp", (MibRecord("HIT", "WP2", date(2022, 11, 30), ("160E",)),), "flat",
    ),
    _Spec(
        "06-try-only",
        "Treated depression and hypothyroidism, 45. Rx: bare IntelRXResponse root with "
        "sertraline and levothyroxine. MIB: ACORD 401 with only Try records (610C from LR8, "
        "911 from JN5), which may belong to another person.",
        "TRYONLY", date(1979, 1, 1), "F",
        (
            _S("sertraline", "50 MG", date(2022, 2, 14), 30, 25, "family", "corner", 31),
            _S("levothyroxine", "75 MCG", date(2020, 1, 10), 90, 17, "family", "mail", 91),
        ),
        "bare",
        (
            MibRecord("TRY", "LR8", date(2020, 9, 8), ("610C",)),
            MibRecord("TRY", "JN5", date(2019, 2, 27), ("911",)),
        ),
        "acord",
    ),
)  # fmt: skip


class _Builder:
    """Turns specs into documents with one seeded generator, so the bytes never change."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.prescribers = {
            key: Prescriber(make_npi(self.rng), "SAMPLE", last, specialty)
            for key, (last, specialty) in _PRESCRIBERS.items()
        }
        self.pharmacies = {
            key: Pharmacy(f"{int(self.rng.integers(0, 10**7)):07d}", make_npi(self.rng), name)
            for key, name in _PHARMACIES.items()
        }

    def fills(self, series: _Series) -> list[Fill]:
        step = series.interval or series.days_supply
        days = [series.first + timedelta(days=i * step) for i in range(series.count)]
        return [
            make_fill(
                self.rng,
                DRUGS[series.drug],
                fill_date=day,
                days_supply=series.days_supply,
                prescriber=self.prescribers[series.prescriber],
                pharmacy=self.pharmacies[series.pharmacy],
                strength=series.strength,
                refill_number=i % 4,
                payment_type=series.payment,
            )
            for i, day in enumerate(days)
            if day <= SAMPLE_AS_OF
        ]

    def sample(self, spec: _Spec) -> Sample:
        fills = [fill for series in spec.series for fill in self.fills(series)]
        fills.sort(key=lambda fill: fill.fill_date, reverse=True)
        rx_report = RxReport(
            as_of=SAMPLE_AS_OF,
            order_reference=f"ORD_SAMPLE_{spec.last_name}",
            first_name="SAMPLE",
            last_name=spec.last_name,
            birth_date=spec.birth_date,
            sex=spec.sex,
            fills=tuple(fills),
            eligibility=_ELIGIBILITY,
            vendor_score=spec.vendor_score,
            therapeutic_class=spec.therapeutic_class,
        )
        mib_report = MibReport(
            SAMPLE_AS_OF,
            "SAMPLE",
            spec.last_name,
            spec.birth_date,
            spec.mib_records,
            spec.inquiries_24m,
        )
        return Sample(
            name=spec.name,
            description=spec.description,
            mib_xml=render_mib(self.rng, mib_report, spec.mib_shape),
            rx_xml=render_rx(self.rng, rx_report, spec.rx_shape),
        )


def build_samples() -> list[Sample]:
    """Build the six curated applicants, always with the same bytes."""
    builder = _Builder(_SEED)
    return [builder.sample(spec) for spec in _SPECS]


def _readme(samples: list[Sample]) -> str:
    lines = [
        "# Sample evidence",
        "",
        "Synthetic MIB and Rx reports for the README, the demo and smoke tests. Every person,",
        "prescriber, pharmacy, carrier and MIB code here is made up, and every birth date",
        f"is 1 January. All reports are dated {SAMPLE_AS_OF.isoformat()}. Regenerate with",
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

    Returns the written files, sorted. Existing files with the same names are replaced by new
    files, and other files stay. `directory` itself may be a symbolic link.

    Raises:
        SymlinkInOutputError: an OSError, when any folder or file this would write is a
            symbolic link. It lists every such link, and nothing is written.
    """
    root = Path(directory)
    samples = build_samples()
    contents: dict[str, dict[str, bytes]] = {
        sample.name: {"mib.xml": sample.mib_xml, "rx.xml": sample.rx_xml} for sample in samples
    }
    contents["smoke"] = SMOKE_INPUTS
    readme = root / "README.md"

    planned: list[Path] = []
    for folder, files in contents.items():
        planned += [root / folder, *(root / folder / filename for filename in files)]
    check_no_symlinks([*planned, readme])

    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for folder, files in contents.items():
        make_folder(root / folder)
        for filename, content in files.items():
            write_new_file(root / folder / filename, content)
            written.append(root / folder / filename)
    write_new_file(readme, _readme(samples).encode("utf-8"))
    written.append(readme)
    return sorted(written)
