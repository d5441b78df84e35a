"""Combined and meta features, columns 91-105 of the spec."""

from __future__ import annotations

from evidence_features._spec import FEATURE_NAMES

__all__ = ["RISK_SIGNALS", "fill_combined_features", "rx_coverage_days"]

_I = {name: index for index, name in enumerate(FEATURE_NAMES)}
_COVERAGE_DAYS = 1826

RISK_SIGNALS = (
    (0.15, "MIB_HAS_HIT"),
    (0.30, "MIB_MAX_SEVERITY / 3"),
    (0.05, "min(MIB_UNIQUE_COMPANIES, 3) / 3"),
    (0.45, "RX_MAX_CLASS_SEVERITY / 10"),
    (0.20, "RX_CONCURRENT_OPIOID_BENZO"),
    (0.25, "RX_MPE_FLAG"),
    (0.20, "min(RX_OPIOID_MAX_DAILY_MME / 90, 1)"),
    (0.10, "RX_POLYPHARMACY_5"),
    (0.15, "XSRC_SUBSTANCE_SIGNAL"),
    (0.15, "min(XSRC_CONDITION_CATEGORY_COUNT / 4, 1)"),
)
"""Weights and signals of COMBINED_RISK_SCORE, in the order `fill_combined_features` uses."""
_MIB_SEVERITY_SCALE = 3.0
_COMPANY_CAP = 3.0
_RX_SEVERITY_SCALE = 10.0
_MME_SCALE = 90.0
_CATEGORY_SCALE = 4.0

# Column indexes, resolved once because fill_combined_features runs on every request.
_RX_CARDIO = (
    "RX_DRUG_ANTICOAGULANT",
    "RX_DRUG_ANTIPLATELET",
    "RX_DRUG_ANTIANGINAL",
    "RX_DRUG_ANTIARRHYTHMIC",
    "RX_DRUG_HEART_FAILURE",
    "RX_DRUG_LOOP_DIURETIC",
)
_RX_DIABETES = ("RX_DRUG_INSULIN", "RX_DRUG_NONINSULIN_ANTIDIABETIC")
_RX_MENTAL = ("RX_DRUG_ANTIDEPRESSANT", "RX_DRUG_ANTIPSYCHOTIC", "RX_DRUG_LITHIUM")
_RX_NEURO = ("RX_DRUG_ANTIEPILEPTIC", "RX_DRUG_DEMENTIA_PARKINSON")
_RX_RENAL_HEPATIC = ("RX_DRUG_CKD_ESRD", "RX_DRUG_HEP_C")
_SUBSTANCE = (
    "MIB_CAT_SUBSTANCE_USE",
    "RX_DRUG_SUD_TREATMENT",
    "RX_MPE_FLAG",
    "RX_CONCURRENT_OPIOID_BENZO",
)
_CANCER = ("MIB_CAT_CANCER", "RX_DRUG_ONCOLOGY", "RX_SPECIALTY_ONCOLOGY")


def rx_coverage_days(periods: list[tuple[int | None, int | None]] | None, as_of: int) -> int:
    """Count days of eligibility (union of periods) within the 1,826 days up to the as-of date.

    An open begin starts at the window start and an open end runs to the as-of date. Returns
    -1 when the report has no eligibility block.
    """
    if periods is None:
        return -1
    window_start = as_of - _COVERAGE_DAYS + 1
    intervals = []
    for begin, end in periods:
        start = max(begin if begin is not None else window_start, window_start)
        stop = min(end if end is not None else as_of, as_of)
        if stop >= start:
            intervals.append((start, stop + 1))
    covered = 0
    current_start = current_stop = None
    for start, stop in sorted(intervals):
        if current_stop is not None and start <= current_stop:
            current_stop = max(current_stop, stop)
            continue
        if current_start is not None and current_stop is not None:
            covered += current_stop - current_start
        current_start, current_stop = start, stop
    if current_start is not None and current_stop is not None:
        covered += current_stop - current_start
    return covered


def _indexes(*names: str) -> tuple[int, ...]:
    return tuple(_I[name] for name in names)


def _any(values: list[float], indexes: tuple[int, ...]) -> bool:
    return any(values[index] > 0 for index in indexes)


_RX_CARDIO_AT = _indexes(*_RX_CARDIO)
_RX_DIABETES_AT = _indexes(*_RX_DIABETES)
_RX_MENTAL_AT = _indexes(*_RX_MENTAL)
_RX_NEURO_AT = _indexes(*_RX_NEURO)
_RX_RENAL_HEPATIC_AT = _indexes(*_RX_RENAL_HEPATIC)
_SUBSTANCE_AT = _indexes(*_SUBSTANCE)
_CANCER_AT = _indexes(*_CANCER)


def fill_combined_features(values: list[float]) -> None:
    """Write the derived combined features from the MIB and Rx columns already in `values`.

    The META_* columns and HAS_* inputs are written by the caller before this runs.
    """
    has_mib = values[_I["MIB_TOTAL_RECORDS"]] > 0
    has_rx = values[_I["RX_TOTAL_FILLS"]] > 0
    values[_I["HAS_MIB_EVIDENCE"]] = float(has_mib)
    values[_I["HAS_RX_EVIDENCE"]] = float(has_rx)
    values[_I["HAS_BOTH_EVIDENCE"]] = float(has_mib and has_rx)

    mib_cardio = values[_I["MIB_CAT_CARDIOVASCULAR"]] > 0
    mib_diabetes = values[_I["MIB_CAT_ENDOCRINE_DIABETES"]] > 0
    mib_mental = values[_I["MIB_CAT_MENTAL_HEALTH"]] > 0
    rx_cardio = _any(values, _RX_CARDIO_AT)
    rx_diabetes = _any(values, _RX_DIABETES_AT)
    rx_mental = _any(values, _RX_MENTAL_AT)
    substance = _any(values, _SUBSTANCE_AT)
    cancer = _any(values, _CANCER_AT)
    values[_I["XSRC_DIABETES_CONCORDANT"]] = float(mib_diabetes and rx_diabetes)
    values[_I["XSRC_CARDIO_CONCORDANT"]] = float(mib_cardio and rx_cardio)
    values[_I["XSRC_MENTAL_CONCORDANT"]] = float(mib_mental and rx_mental)
    values[_I["XSRC_SUBSTANCE_SIGNAL"]] = float(substance)
    values[_I["XSRC_CANCER_SIGNAL"]] = float(cancer)
    categories = (
        mib_cardio or rx_cardio,
        mib_diabetes or rx_diabetes,
        cancer,
        values[_I["MIB_CAT_RESPIRATORY"]] > 0 or values[_I["RX_DRUG_COPD_ASTHMA"]] > 0,
        mib_mental or rx_mental,
        substance,
        values[_I["MIB_CAT_NEURO"]] > 0 or _any(values, _RX_NEURO_AT),
        values[_I["MIB_CAT_RENAL_HEPATIC_GI"]] > 0 or _any(values, _RX_RENAL_HEPATIC_AT),
    )
    category_count = sum(categories)
    values[_I["XSRC_CONDITION_CATEGORY_COUNT"]] = category_count

    signals = (
        values[_I["MIB_HAS_HIT"]],
        values[_I["MIB_MAX_SEVERITY"]] / _MIB_SEVERITY_SCALE,
        min(values[_I["MIB_UNIQUE_COMPANIES"]], _COMPANY_CAP) / _COMPANY_CAP,
        values[_I["RX_MAX_CLASS_SEVERITY"]] / _RX_SEVERITY_SCALE,
        values[_I["RX_CONCURRENT_OPIOID_BENZO"]],
        values[_I["RX_MPE_FLAG"]],
        min(values[_I["RX_OPIOID_MAX_DAILY_MME"]] / _MME_SCALE, 1.0),
        values[_I["RX_POLYPHARMACY_5"]],
        values[_I["XSRC_SUBSTANCE_SIGNAL"]],
        min(category_count / _CATEGORY_SCALE, 1.0),
    )
    survival = 1.0
    for (weight, _), signal in zip(RISK_SIGNALS, signals, strict=True):
        survival *= 1.0 - weight * min(max(signal, 0.0), 1.0)
    values[_I["COMBINED_RISK_SCORE"]] = 1.0 - survival
