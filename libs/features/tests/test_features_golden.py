"""Hand-computed feature values for the hand-written MIB and Rx files in tests/data.

Each expected value was derived by hand from the XML, with dates counted back from the report
date 2024-03-16. The comments give the reasoning, so a failure points to the rule that changed.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from evidence_features import FEATURE_NAMES, FeatureWarning, extract_features

DATA = Path(__file__).parent / "data"

MIB_EXPECTED = {
    "MIB_TOTAL_RECORDS": 5,  # F1..F7 minus F4 (duplicate of F1) minus F6 (NFD)
    "MIB_HIT_COUNT": 3,  # F1 tc 1001, F3 tc only, F7 text only
    "MIB_TRY_COUNT": 2,  # F2 tc 1002 with text, F5 tc only
    "MIB_HAS_HIT": 1,
    "MIB_HIT_RATIO": 0.6,
    "MIB_CODE_COUNT": 7,  # 503D 911 | 311C | 650E 503D | 999Z | 610A
    "MIB_UNIQUE_CODES": 6,  # bases 503 911 311 650 999 610
    "MIB_DUPLICATE_CODE_COUNT": 1,  # 503D twice
    "MIB_UNIQUE_COMPANIES": 3,  # XA1 QB7 ZZ3
    "MIB_IAI_INQUIRIES_24M": 3,
    "MIB_RECORDS_LAST_12M": 2,  # F3 66 days, F2 136 days
    "MIB_RECORDS_LAST_24M": 2,  # F1 is 939 days old
    "MIB_RECORDS_LAST_60M": 3,
    "MIB_DAYS_SINCE_LAST_REPORT": 66,
    "MIB_REPORT_SPAN_DAYS": 873,  # 2021-08-20 .. 2024-01-10; F7 is future-dated
    "MIB_UNDATED_RECORDS": 1,  # F5 "------"
    "MIB_MAX_SEVERITY": 3,  # 650 has base severity 3 in the shipped map
    "MIB_CAT_CARDIOVASCULAR": 1,
    "MIB_CAT_ENDOCRINE_DIABETES": 1,
    "MIB_CAT_CANCER": 0,  # 150E sits on the NFD record only
    "MIB_CAT_RESPIRATORY": 0,
    "MIB_CAT_MENTAL_HEALTH": 1,  # 610A, future-dated but kept in totals
    "MIB_CAT_SUBSTANCE_USE": 1,
    "MIB_CAT_NEURO": 0,
    "MIB_CAT_RENAL_HEPATIC_GI": 0,
    "MIB_CAT_AVOCATION_DRIVING": 1,
    "MIB_UNMAPPED_CODE_COUNT": 1,  # 999Z
    "MIB_AVG_BMI": (32.3 + 703 * 225 / 70**2) / 2,
    "MIB_MAX_BMI": 32.3,
    "MIB_BMI_PRESENT": 1,
}

RX_EXPECTED = {
    "RX_TOTAL_FILLS": 11,  # 12 DrugFill elements, the 20240215 one repeats the first
    "RX_UNIQUE_DRUGS": 8,  # metformin, hydrocodone/APAP, oxycodone, alprazolam (XANAX),
    # lisinopril, FOOBARIN, semaglutide, atorvastatin
    "RX_UNIQUE_PRESCRIBERS": 5,  # four NPIs and "DR WHO"
    "RX_UNIQUE_PHARMACIES": 4,  # three NCPDP ids and "CORNER DRUG & GIFT"
    "RX_UNIQUE_SPECIALTIES": 3,  # the duplicate keeps ENDOCRINOLOGY
    "RX_UNIQUE_CLASSES": 5,  # noninsulin, opioid, benzo, ACE inhibitor, statin
    "RX_DUPLICATE_FILLS": 1,
    "RX_FILLS_LAST_12M": 8,
    "RX_FILLS_LAST_24M": 8,
    "RX_FILLS_LAST_60M": 8,  # lisinopril 2019-01-01 is 1,901 days old
    "RX_UNIQUE_DRUGS_LAST_12M": 5,
    "RX_DAYS_SINCE_LAST_FILL": 4,  # alprazolam 2024-03-12
    "RX_HISTORY_SPAN_DAYS": 1897,  # 2019-01-01 .. 2024-03-12
    "RX_NEW_DRUGS_LAST_6M": 3,  # metformin (90 days), hydrocodone, alprazolam
    "RX_TOTAL_DAYS_SUPPLY": 343,
    "RX_CHRONIC_DRUG_COUNT": 2,  # metformin 3 fills, atorvastatin 90 days
    "RX_ACUTE_ONLY_DRUG_COUNT": 5,  # hydrocodone, oxycodone, lisinopril, FOOBARIN, semaglutide
    "RX_ACTIVE_DRUGS_ASOF": 3,  # metformin, hydrocodone, alprazolam
    "RX_MEAN_PDC_CHRONIC": (80 / 90 + 1.0) / 2,  # metformin 10-day gap; atorvastatin full
    "RX_POLYPHARMACY_5": 1,
    "RX_DRUG_OPIOID": 1,
    "RX_DRUG_BENZO": 1,
    "RX_DRUG_NONINSULIN_ANTIDIABETIC": 1,  # metformin; WEGOVY is a weight-loss brand
    "RX_DRUG_STATIN": 1,
    "RX_ANTIHYPERTENSIVE_CLASS_COUNT": 1,
    "RX_OPIOID_FILLS_12M": 2,
    "RX_OPIOID_DAYS_SUPPLY_12M": 45,
    "RX_OPIOID_MAX_DAILY_MME": 60.0,  # oxycodone 10 mg x 120 / 30 days x 1.5
    "RX_OPIOID_PRESCRIBERS_12M": 2,
    "RX_CONCURRENT_OPIOID_BENZO": 1,  # [03-01, 03-16) and [03-05, 04-04)
    "RX_CONTROLLED_EARLY_REFILLS": 1,  # alprazolam again after 7 of 30 days
    "RX_MPE_FLAG": 0,
    "RX_SPECIALTY_ONCOLOGY": 0,
    "RX_SPECIALTY_PSYCHIATRY": 1,
    "RX_MAX_CLASS_SEVERITY": 5,
    "RX_VENDOR_SCORE": 412.5,
}

COMBINED_EXPECTED = {
    "HAS_MIB_EVIDENCE": 1,
    "HAS_RX_EVIDENCE": 1,
    "HAS_BOTH_EVIDENCE": 1,
    "META_MIB_PARSE_ERROR": 0,
    "META_RX_PARSE_ERROR": 0,
    "META_RX_COVERAGE_DAYS": 365 + 290,  # 2022 in full, 2023-06-01 .. 2024-03-16
    "META_FUTURE_DATED_RECORDS": 2,
    "META_UNPARSEABLE_DATES": 1,
    "XSRC_DIABETES_CONCORDANT": 1,
    "XSRC_CARDIO_CONCORDANT": 0,
    "XSRC_MENTAL_CONCORDANT": 0,
    "XSRC_SUBSTANCE_SIGNAL": 1,
    "XSRC_CANCER_SIGNAL": 0,
    "XSRC_CONDITION_CATEGORY_COUNT": 4,  # cardio, endocrine, mental, substance
    # 1 - 0.85 * 0.70 * 0.95 * (1 - 0.45 * 0.5) * 0.80 * (1 - 0.2 * 60 / 90) * 0.90 * 0.85 * 0.85
    "COMBINED_RISK_SCORE": 0.80250108475,
}


@pytest.fixture(scope="module")
def golden() -> dict[str, float]:
    mib = (DATA / "acord_mib_full.xml").read_bytes()
    rx = (DATA / "intelrx_full.xml").read_bytes()
    return extract_features(mib, rx).as_dict()


@pytest.mark.parametrize("name", sorted(MIB_EXPECTED))
def test_golden_mib_feature(golden: dict[str, float], name: str) -> None:
    """Each MIB feature of the hand-written ACORD reply has its hand-computed value."""
    assert MIB_EXPECTED[name] == pytest.approx(golden[name])


@pytest.mark.parametrize("name", sorted(RX_EXPECTED))
def test_golden_rx_feature(golden: dict[str, float], name: str) -> None:
    """Each listed Rx feature of the hand-written IntelRX report has its hand-computed value."""
    assert RX_EXPECTED[name] == pytest.approx(golden[name])


def test_golden_rx_unlisted_flags_zero(golden: dict[str, float]) -> None:
    """Every Rx class flag not listed as expected is 0 for the hand-written report."""
    unlisted = [
        name for name in FEATURE_NAMES if name.startswith("RX_DRUG_") and name not in RX_EXPECTED
    ]
    assert len(unlisted) == 24
    assert dict.fromkeys(unlisted, 0.0) == {name: golden[name] for name in unlisted}


@pytest.mark.parametrize("name", sorted(COMBINED_EXPECTED))
def test_golden_combined_feature(golden: dict[str, float], name: str) -> None:
    """Each combined and meta feature of the hand-written pair has its hand-computed value."""
    assert COMBINED_EXPECTED[name] == pytest.approx(golden[name])


def test_golden_every_feature_covered() -> None:
    """The expected tables cover all 105 features."""
    covered = set(MIB_EXPECTED) | set(RX_EXPECTED) | set(COMBINED_EXPECTED)
    missing = set(FEATURE_NAMES) - covered - {n for n in FEATURE_NAMES if n.startswith("RX_DRUG_")}
    assert set() == missing


def test_golden_warnings_and_as_of() -> None:
    """The pair reports counted warnings and takes its as-of date from the documents."""
    vector = extract_features(
        (DATA / "acord_mib_full.xml").read_bytes(), (DATA / "intelrx_full.xml").read_bytes()
    )
    assert date(2024, 3, 16) == vector.as_of
    assert (
        FeatureWarning("future_dated", "MIB", 1),
        FeatureWarning("future_dated", "RX", 1),
        FeatureWarning("undated_record", "MIB", 1),
        FeatureWarning("undated_record", "RX", 1),
        FeatureWarning("unknown_drug", "RX", 1),
        FeatureWarning("unparseable_date", "MIB", 1),
    ) == vector.warnings
