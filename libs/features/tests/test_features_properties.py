"""Property-based tests on generated documents: order, duplicates, finiteness and ranges."""

from __future__ import annotations

import math
from datetime import date, timedelta

from evidence_features import FEATURE_NAMES, FEATURE_SPEC, DocumentError, extract_features
from features_utils.documents import FillSpec, MibRecordSpec, acord_mib, flat_mib, intelrx
from hypothesis import HealthCheck, given, settings
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
         "INSULIN GLARGINE", "FOOBARIN", "EMPTY", "GABAPENTIN", "WARFARIN SODIUM", "DOLUTEGRAVIR"]
    ),
    fill_date=dates,
    quantity=st.sampled_from([None, "0", "30", "60.000", "90 EA", "NaN", "-4"]),
    days_supply=st.sampled_from([None, "0", "7", "30", "90", "999", "Infinity"]),
    strength=st.sampled_from([None, "5 MG", "5-325 MG", "10 MG", "25 MCG/HR"]),
    prescriber=st.sampled_from([None, "P1", "P2", "P3", "P4", "P5", "P6"]),
    pharmacy=st.sampled_from([None, "R1", "R2", "R3", "R4", "R5"]),
    specialty=st.sampled_from([None, "ONCOLOGY", "PSYCHIATRY", "FAMILY MEDICINE"]),
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
    return extract_features(mib, rx, as_of=AS_OF).values.tolist()


@_SETTINGS
@given(st.lists(records, max_size=6), st.lists(fills, max_size=12), st.randoms())
def test_record_order_does_not_change_vector(
    mib_records: list[MibRecordSpec], rx_fills: list[FillSpec], random: object
) -> None:
    """Shuffling MIB records and Rx fills leaves every feature unchanged."""
    shuffled_records = list(mib_records)
    shuffled_fills = list(rx_fills)
    random.shuffle(shuffled_records)  # type: ignore[attr-defined]
    random.shuffle(shuffled_fills)  # type: ignore[attr-defined]
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


@_SETTINGS
@given(st.lists(records, max_size=6))
def test_flat_and_acord_shapes_agree(mib_records: list[MibRecordSpec]) -> None:
    """ACORD and flat MIBRecord renderings of the same records give the same MIB features."""
    acord = extract_features(acord_mib(mib_records, trans_date=None), None, as_of=AS_OF)
    flat = extract_features(flat_mib(mib_records), None, as_of=AS_OF)
    # BMI travels only in the ACORD rendering, so the three BMI columns are left out.
    assert acord.values[:27].tolist() == flat.values[:27].tolist()


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
