"""The shipped `data/samples/` files parse, match the generator and show what the README lists."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from evidence_features import extract_features
from evidence_synthetic import SMOKE_INPUTS, write_samples
from lxml import etree

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples"
APPLICANTS = (
    "01-clean",
    "02-diabetic",
    "03-cardiac",
    "04-opioid-benzo",
    "05-cancer",
    "06-try-only",
)


def _features(folder: str) -> dict[str, float]:
    mib = (SAMPLES / folder / "mib.xml").read_bytes()
    rx = (SAMPLES / folder / "rx.xml").read_bytes()
    return extract_features(mib, rx, as_of=date(2024, 3, 16)).as_dict()


def test_samples_directory_lists_six_applicants() -> None:
    folders = sorted(p.name for p in SAMPLES.iterdir() if p.is_dir() and p.name != "smoke")
    assert folders == list(APPLICANTS)


@pytest.mark.parametrize("folder", APPLICANTS)
def test_sample_documents_parse(folder: str) -> None:
    for name in ("mib.xml", "rx.xml"):
        etree.fromstring((SAMPLES / folder / name).read_bytes())


def test_samples_match_generator(tmp_path: Path) -> None:
    write_samples(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    shipped = sorted(p.relative_to(SAMPLES) for p in SAMPLES.rglob("*") if p.is_file())
    assert generated == shipped
    for relative in generated:
        assert (tmp_path / relative).read_bytes() == (SAMPLES / relative).read_bytes(), relative


def test_smoke_inputs_exact_bytes() -> None:
    assert (SAMPLES / "smoke" / "mib_code1.xml").read_bytes() == (
        b'<?xml version="1.0"?><Response><ResponseData>CODE1</ResponseData></Response>'
    )
    assert (SAMPLES / "smoke" / "rx_metformin.xml").read_bytes() == (
        b"<IntelRXResponse><DrugFill><DrugGenericName>METFORMIN</DrugGenericName>"
        b"</DrugFill></IntelRXResponse>"
    )
    assert (SAMPLES / "smoke" / "empty.xml").read_bytes() == b"<r/>"
    assert set(SMOKE_INPUTS) == {p.name for p in (SAMPLES / "smoke").iterdir()}


def test_sample_people_obviously_fake() -> None:
    first_names: set[str | None] = set()
    birth_dates: set[str | None] = set()
    for folder in APPLICANTS:
        for name in ("mib.xml", "rx.xml"):
            root = etree.fromstring((SAMPLES / folder / name).read_bytes())
            for element in root.iter("{*}FirstName"):
                first_names.add(element.text)
            for element in root.iter("{*}BirthDate"):
                birth_dates.add(element.text)
    assert first_names == {"SAMPLE"}
    assert len(birth_dates) == 6
    assert all(text is not None and text.endswith("-01-01") for text in birth_dates)


def test_readme_describes_every_sample() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for folder in (*APPLICANTS, "smoke"):
        assert f"`{folder}/`" in readme


def test_clean_sample_has_no_mib_evidence() -> None:
    features = _features("01-clean")
    assert features["HAS_MIB_EVIDENCE"] == 0
    assert features["RX_TOTAL_FILLS"] == 2
    assert features["RX_ACUTE_ONLY_DRUG_COUNT"] == 2


def test_diabetic_sample_concordant() -> None:
    features = _features("02-diabetic")
    assert features["XSRC_DIABETES_CONCORDANT"] == 1
    assert features["RX_DRUG_NONINSULIN_ANTIDIABETIC"] == 1
    assert features["MIB_HIT_COUNT"] == 1
    assert features["MIB_AVG_BMI"] == pytest.approx(32.3)
    assert features["RX_VENDOR_SCORE"] == 41


def test_cardiac_sample_flags_cardiac_classes() -> None:
    features = _features("03-cardiac")
    for name in (
        "RX_DRUG_ANTICOAGULANT",
        "RX_DRUG_HEART_FAILURE",
        "RX_DRUG_LOOP_DIURETIC",
        "RX_DRUG_ANTIPLATELET",
        "XSRC_CARDIO_CONCORDANT",
    ):
        assert features[name] == 1, name
    assert features["MIB_TRY_COUNT"] == 1
    assert features["MIB_UNDATED_RECORDS"] == 1


def test_misuse_sample_flags_misuse() -> None:
    features = _features("04-opioid-benzo")
    assert features["RX_MPE_FLAG"] == 1
    assert features["RX_CONCURRENT_OPIOID_BENZO"] == 1
    assert features["RX_CONTROLLED_EARLY_REFILLS"] > 0
    # Oxycodone 30 mg x 30 tablets / 30 days x 1.5 = 45, at 6 tablets a day 270 MME.
    assert features["RX_OPIOID_MAX_DAILY_MME"] >= 90
    assert features["MIB_CAT_SUBSTANCE_USE"] == 1
    assert features["MIB_IAI_INQUIRIES_24M"] == 4


def test_cancer_sample_flags_oncology() -> None:
    features = _features("05-cancer")
    assert features["RX_DRUG_ONCOLOGY"] == 1
    assert features["RX_SPECIALTY_ONCOLOGY"] == 1
    assert features["MIB_CAT_CANCER"] == 1
    assert features["MIB_HIT_COUNT"] == 0


def test_try_only_sample_has_no_hit() -> None:
    features = _features("06-try-only")
    assert features["MIB_HAS_HIT"] == 0
    assert features["MIB_TRY_COUNT"] == 2
    assert features["RX_DRUG_ANTIDEPRESSANT"] == 1
