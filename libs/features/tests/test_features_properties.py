"""Property-based tests on generated documents: order, duplicates, finiteness and ranges."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from random import Random

import numpy as np
import pytest
from evidence_features import (
    FEATURE_NAMES,
    FEATURE_SPEC,
    DocumentError,
    FeatureVector,
    extract_features,
)
from evidence_features._dates import parse_date
from evidence_features._drugs import load_drug_catalog
from evidence_features._numbers import BMI, DAYS_SUPPLY, INQUIRY_COUNT, QUANTITY, STRENGTH
from features_utils.documents import FillSpec, MibRecordSpec, acord_mib, flat_mib, intelrx
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

AS_OF = date(2024, 3, 16)
_INDEX = {name: position for position, name in enumerate(FEATURE_NAMES)}
_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dates = st.one_of(
    st.none(),
    st.sampled_from(["------", "0000-00-00", "20AG21", "bad"]),
    st.integers(min_value=-40, max_value=4000).map(
        lambda days: (AS_OF - timedelta(days=days)).isoformat()
    ),
)
fills = st.builds(
    FillSpec,
    generic=st.sampled_from(
        ["METFORMIN HCL", "OXYCODONE HCL", "HYDROCODONE-APAP", "ALPRAZOLAM", "LISINOPRIL",
         "INSULIN GLARGINE", "FOOBARIN", "EMPTY", "GABAPENTIN", "WARFARIN SODIUM", "DOLUTEGRAVIR",
         "HYDROCORTISONE", "FLUTICASONE PROPIONATE", "DOXEPIN HCL"]
    ),
    fill_date=dates,
    quantity=st.sampled_from([None, "0", "30", "60.000", "90 EA", "NaN", "-4"]),
    days_supply=st.sampled_from([None, "0", "7", "30", "90", "999", "Infinity"]),
    strength=st.sampled_from(
        [None, "5 MG", "5-325 MG", "10 MG", "25 MCG/HR", "5 MG/5 ML", "7.5-325 MG/15 ML",
         "20 MG/ML", "5 MG/5 CC", "5 MG/TSP", "5 MG/0.01 ML", "5 MG/ACT"]
    ),
    prescriber=st.sampled_from([None, "P1", "P2", "P3", "P4", "P5", "P6"]),
    pharmacy=st.sampled_from([None, "R1", "R2", "R3", "R4", "R5"]),
    specialty=st.sampled_from([None, "ONCOLOGY", "PSYCHIATRY", "FAMILY MEDICINE"]),
    form=st.sampled_from([None, "TABLET", "ORAL SOLUTION", "CREAM", "SOLN, OPH", "NASAL SPRAY"]),
)  # fmt: skip
records = st.builds(
    MibRecordSpec,
    date=dates,
    company=st.sampled_from([None, "XA1", "QB7", "ZZ3"]),
    codes=st.lists(
        st.sampled_from(["503D", "311C", "911", "650E", "999Z", "150", "CODE1"]), max_size=3
    ).map(tuple),
    reply=st.sampled_from([None, "HIT", "TRY"]),
    bmi=st.sampled_from([None, 24.0, 31.5, 95.0]),
)


def _vector(mib_records: list[MibRecordSpec], rx_fills: list[FillSpec]) -> list[float]:
    mib = acord_mib(mib_records) if mib_records else None
    rx = intelrx(rx_fills, eligibility=[("2020-01-01", "2024-01-01")])
    values: list[float] = extract_features(mib, rx, as_of=AS_OF).values.tolist()
    return values


@_SETTINGS
@given(st.lists(records, max_size=6), st.lists(fills, max_size=12), st.randoms())
def test_record_order_does_not_change_vector(
    mib_records: list[MibRecordSpec], rx_fills: list[FillSpec], random: Random
) -> None:
    """Shuffling MIB records and Rx fills leaves every feature unchanged."""
    shuffled_records = list(mib_records)
    shuffled_fills = list(rx_fills)
    random.shuffle(shuffled_records)
    random.shuffle(shuffled_fills)
    assert _vector(mib_records, rx_fills) == _vector(shuffled_records, shuffled_fills)


@_SETTINGS
@given(st.lists(records, max_size=4), st.lists(fills, min_size=1, max_size=10), st.data())
def test_duplicate_fill_changes_only_duplicate_count(
    mib_records: list[MibRecordSpec], rx_fills: list[FillSpec], data: st.DataObject
) -> None:
    """Repeating one fill raises RX_DUPLICATE_FILLS by one and changes nothing else."""
    repeated = data.draw(st.sampled_from(rx_fills))
    before = _vector(mib_records, rx_fills)
    after = _vector(mib_records, [*rx_fills, repeated])
    duplicate = _INDEX["RX_DUPLICATE_FILLS"]
    assert before[duplicate] + 1 == after[duplicate]
    before[duplicate] = after[duplicate] = 0.0
    assert before == after


def _readable_days(texts: Iterable[str | None]) -> list[int]:
    return [day for day in map(parse_date, texts) if day]


def _single_document(
    document: str, mib_records: list[MibRecordSpec], rx_fills: list[FillSpec]
) -> tuple[list[int], Callable[[str | None], FeatureVector]]:
    """Return the readable record dates of one document and how to extract it alone."""
    if document == "MIB":
        days = _readable_days(record.date for record in mib_records)
        return days, lambda dated: extract_features(acord_mib(mib_records, trans_date=dated), None)
    days = _readable_days(fill.fill_date for fill in rx_fills)
    return days, lambda dated: extract_features(None, intelrx(rx_fills, report_date=dated))


@_SETTINGS
@given(
    st.sampled_from(["MIB", "RX"]),
    st.lists(records, max_size=6),
    st.lists(fills, max_size=10),
    st.integers(min_value=2, max_value=36500),
)
def test_early_document_date_moves_no_record_silently(
    document: str, mib_records: list[MibRecordSpec], rx_fills: list[FillSpec], days_early: int
) -> None:
    """A document date more than a day before its latest record never hides that record.

    Without an as_of argument, either the date is skipped with a warning and the vector equals
    that of the undated document, or the later records are future-dated with a warning. A date
    more than a day before every record of two or more is always skipped.
    """
    days, extract = _single_document(document, mib_records, rx_fills)
    assume(days)
    early_date = date.fromordinal(max(days) - days_early)

    early = extract(early_date.isoformat())
    undated = extract(None)

    kinds = {(warning.kind, warning.document) for warning in early.warnings}
    if ("implausible_document_date", document) in kinds:
        assert early.values.tolist() == undated.values.tolist()
        assert early.as_of == undated.as_of
    else:
        assert early.as_of == early_date
        assert ("future_dated", document) in kinds
        assert early.as_dict()["META_FUTURE_DATED_RECORDS"] >= 1.0
    if len(days) >= 2 and early_date.toordinal() + 1 < min(days):
        assert ("implausible_document_date", document) in kinds


def _check_ranges(values: list[float]) -> None:
    for spec, value in zip(FEATURE_SPEC, values, strict=True):
        assert math.isfinite(value), spec.name
        if spec.dtype == "bool":
            assert value in (0.0, 1.0), spec.name
        elif spec.dtype == "int":
            assert value == int(value), spec.name
            assert value >= min(spec.default, 0.0), spec.name
    named = dict(zip(FEATURE_NAMES, values, strict=True))
    assert 0.0 <= named["COMBINED_RISK_SCORE"] <= 1.0
    assert 0.0 <= named["MIB_HIT_RATIO"] <= 1.0
    assert named["RX_MEAN_PDC_CHRONIC"] == -1.0 or 0.0 <= named["RX_MEAN_PDC_CHRONIC"] <= 1.0
    assert 0 <= named["MIB_DAYS_SINCE_LAST_REPORT"] <= 3650
    assert 0 <= named["RX_DAYS_SINCE_LAST_FILL"] <= 3650
    assert 0 <= named["MIB_MAX_SEVERITY"] <= 3
    assert 0 <= named["RX_MAX_CLASS_SEVERITY"] <= 10
    assert 0 <= named["RX_ANTIHYPERTENSIVE_CLASS_COUNT"] <= 6
    assert 0 <= named["XSRC_CONDITION_CATEGORY_COUNT"] <= 8
    assert -1 <= named["META_RX_COVERAGE_DAYS"] <= 1826
    assert named["MIB_AVG_BMI"] == 0.0 or 10.0 <= named["MIB_AVG_BMI"] <= 80.0
    assert named["MIB_HIT_COUNT"] + named["MIB_TRY_COUNT"] <= named["MIB_TOTAL_RECORDS"]
    assert named["RX_FILLS_LAST_12M"] <= named["RX_FILLS_LAST_24M"] <= named["RX_FILLS_LAST_60M"]
    assert named["RX_FILLS_LAST_60M"] <= named["RX_TOTAL_FILLS"]


@_SETTINGS
@given(st.lists(records, max_size=6), st.lists(fills, max_size=15))
def test_values_finite_and_in_range(
    mib_records: list[MibRecordSpec], rx_fills: list[FillSpec]
) -> None:
    """Every value is finite and inside the range its spec entry documents."""
    _check_ranges(_vector(mib_records, rx_fills))


def _has_data(record: MibRecordSpec) -> bool:
    fields = (record.date, record.company, record.reply, record.bmi, record.height, record.weight)
    return bool(record.codes) or any(field is not None for field in fields)


# A record without any field renders as an empty `<MIBRecord></MIBRecord>`, which is no record,
# but as a FormInstance that still contains a FormName, which is one. Such records are left out.
@_SETTINGS
@given(st.lists(records.filter(_has_data), max_size=6))
def test_flat_and_acord_shapes_agree(mib_records: list[MibRecordSpec]) -> None:
    """ACORD and flat MIBRecord renderings of the same records give the same MIB features."""
    acord = extract_features(acord_mib(mib_records, trans_date=None), None, as_of=AS_OF)
    flat = extract_features(flat_mib(mib_records), None, as_of=AS_OF)
    assert acord.values[:30].tolist() == flat.values[:30].tolist()


# Numeric texts at and beyond every edge: tiny, huge, negative, NaN, infinities, overflow,
# separators, many digits, non-ASCII digits and exponent forms, plus arbitrary floats and ints.
extreme_numbers = st.one_of(
    st.sampled_from(
        ["0", "-0", "1", "30", "999", "1000", "1e-300", "1e-320", "0.0001", "-120", "NaN",
         "nan", "-NaN", "Infinity", "-Infinity", "inf", "1e308", "1e309", "-1e309", "1,200",
         "1,20", "12,345,678", "9" * 40, "0." + "0" * 40 + "1", "1" + "0" * 400, " 30 ",
         "30 EA", "1e5", "0x1A", "1_000", "١٢٠", "１２０", "", "EA", "10,001.5", "1e-5 MG"]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**60), max_value=10**60).map(str),
    st.integers(min_value=0, max_value=10**12).map(lambda number: f"{number:,}"),
)  # fmt: skip
extreme_strengths = st.one_of(
    extreme_numbers,
    extreme_numbers.map(lambda number: f"{number} MG"),
    extreme_numbers.map(lambda number: f"{number}-325 MG"),
    extreme_numbers.map(lambda number: f"{number} MCG/HR"),
    extreme_numbers.map(lambda number: f"{number} MCG"),
    # Liquids: extreme amounts per volumes at and beyond the 0.1-1,000 mL bounds, and plain
    # amounts per extreme volumes.
    st.builds(
        "{} MG/{} {}".format,
        extreme_numbers,
        st.sampled_from(["", "0.001", "0.01", ".05", "0.1", "5", "1000", "1001", "0", "X"]),
        st.sampled_from(["ML", "CC", "TSP"]),
    ),
    extreme_numbers.map(lambda number: f"10 MG/{number} ML"),
)
extreme_fills = st.builds(
    FillSpec,
    generic=st.sampled_from(
        ["OXYCODONE HCL", "HYDROCODONE-APAP", "HYDROMORPHONE", "METHADONE", "FENTANYL",
         "MORPHINE SULFATE ER", "TRAMADOL", "ALPRAZOLAM", "METFORMIN HCL",
         "OXYCODONE HCL 30 MG TABLET"]
    ),
    fill_date=st.integers(min_value=-5, max_value=800).map(
        lambda days: (AS_OF - timedelta(days=days)).isoformat()
    ),
    quantity=st.one_of(st.none(), extreme_numbers),
    days_supply=st.one_of(st.none(), extreme_numbers),
    strength=st.one_of(st.none(), extreme_strengths),
    prescriber=st.sampled_from([None, "P1", "P2", "P3", "P4", "P5", "P6"]),
    pharmacy=st.sampled_from([None, "R1", "R2", "R3", "R4", "R5"]),
    form=st.sampled_from([None, "PATCH", "TABLET", "ORAL SOLUTION", "SOLUTION", "CONCENTRATE"]),
)  # fmt: skip
extreme_records = st.builds(
    MibRecordSpec,
    date=dates,
    company=st.sampled_from([None, "XA1", "QB7"]),
    codes=st.lists(st.sampled_from(["503D", "311C", "911"]), max_size=2).map(tuple),
    reply=st.sampled_from([None, "HIT", "TRY"]),
    bmi=st.one_of(st.none(), extreme_numbers),
    height=st.one_of(st.none(), extreme_numbers),
    weight=st.one_of(st.none(), extreme_numbers),
)
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The MME of one fill is strength * quantity / days supply * factor, each input in its range.
MAX_DAILY_MME = (
    STRENGTH.maximum
    * QUANTITY.maximum
    / DAYS_SUPPLY.minimum
    * max(load_drug_catalog().mme_factors.values())
)


def _check_extreme_ranges(values: list[float]) -> None:
    _check_ranges(values)
    for name, value in zip(FEATURE_NAMES, values, strict=True):
        assert abs(value) <= FLOAT32_MAX, name
    named = dict(zip(FEATURE_NAMES, values, strict=True))
    assert 0.0 <= named["RX_OPIOID_MAX_DAILY_MME"] <= MAX_DAILY_MME
    assert named["RX_TOTAL_DAYS_SUPPLY"] <= 365 * named["RX_TOTAL_FILLS"]
    assert named["RX_OPIOID_DAYS_SUPPLY_12M"] <= 365 * named["RX_OPIOID_FILLS_12M"]
    assert 0 <= named["MIB_IAI_INQUIRIES_24M"] <= INQUIRY_COUNT.maximum
    for column in ("MIB_AVG_BMI", "MIB_MAX_BMI"):
        assert named[column] == 0.0 or BMI.minimum <= named[column] <= BMI.maximum, column
    assert named["RX_VENDOR_SCORE"] == -1.0


# With 60 examples, one of five trial runs against the code without the ranges found no
# failure, so this test draws 150.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(extreme_records, max_size=4),
    st.lists(extreme_fills, max_size=8),
    st.one_of(st.none(), extreme_numbers),
    st.booleans(),
)
def test_extreme_numbers_stay_in_range(
    mib_records: list[MibRecordSpec],
    rx_fills: list[FillSpec],
    inquiries: str | None,
    flat: bool,
) -> None:
    """Extreme numeric texts in every numeric field keep all 105 values finite and in range."""
    mib = flat_mib(mib_records) if flat else acord_mib(mib_records, iai=inquiries)
    vector = extract_features(mib, intelrx(rx_fills), as_of=AS_OF)

    _check_extreme_ranges(vector.values.tolist())


_FRAGMENTS = st.sampled_from(
    ["<IntelRXResponse>", "</IntelRXResponse>", "<DrugFill>", "</DrugFill>", "<FillDate>",
     "</FillDate>", "2024-01-01", "&amp;", "&bogus;", "<![CDATA[x]]>", "<!--c-->", "<?pi x?>",
     "<a b='1'>", "</a>", "\x00", "é", "<", ">", "<!DOCTYPE", "]]>", "<html>"]
)  # fmt: skip


@_SETTINGS
@given(st.one_of(st.binary(max_size=300), st.lists(_FRAGMENTS, max_size=25).map("".join)))
def test_arbitrary_input_raises_only_library_errors(document: bytes | str) -> None:
    """Any input either extracts or raises a DocumentError; no parser exception leaks out."""
    failed_document = None
    try:
        vector = extract_features(document, document)
    except DocumentError as error:
        failed_document = error.document
    else:
        assert all(math.isfinite(value) for value in vector.values)
    assert failed_document in (None, "MIB", "RX")


_OPIOID_FACTORS = {
    generic: load_drug_catalog().mme_factors[generic.split()[0]]
    for generic in ("OXYCODONE HCL", "METHADONE", "HYDROMORPHONE")
}
_VOLUME_UNITS_ML = {"ML": 1.0, "CC": 1.0, "TSP": 5.0}


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted(_OPIOID_FACTORS)),
    st.integers(min_value=0, max_value=int(STRENGTH.maximum)),
    st.floats(min_value=0.0001, max_value=2000.0).map(lambda volume: f"{volume:.4f}"),
    st.sampled_from(sorted(_VOLUME_UNITS_ML)),
    st.integers(min_value=1, max_value=int(QUANTITY.maximum)),
    st.integers(min_value=1, max_value=30),
)
def test_liquid_mme_within_bounds(
    generic: str, amount: int, volume: str, unit: str, quantity: int, days: int
) -> None:
    """A liquid's MME uses its amount per mL only when volume and per-mL amount are in range."""
    fill = FillSpec(
        generic=generic,
        fill_date="2024-03-01",
        quantity=str(quantity),
        days_supply=str(days),
        strength=f"{amount} MG/{volume} {unit}",
    )
    vector = extract_features(None, intelrx([fill]), as_of=AS_OF)
    mme = vector.as_dict()["RX_OPIOID_MAX_DAILY_MME"]
    implausible = sum(w.count for w in vector.warnings if w.kind == "implausible_value")

    volume_ml = float(volume) * _VOLUME_UNITS_ML[unit]
    per_ml = amount / volume_ml
    readable = 0.1 <= volume_ml <= 1000.0 and per_ml <= STRENGTH.maximum
    expected = per_ml * quantity / days * _OPIOID_FACTORS[generic] if readable else 0.0
    assert 0.0 <= mme <= MAX_DAILY_MME
    assert mme == pytest.approx(expected, rel=1e-5)
    assert implausible == (0 if readable else 1)
