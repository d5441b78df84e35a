"""Public API surface, the SQL smoke inputs, result types and the generated docs."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import evidence_features
import numpy as np
import pytest
from evidence_features import (
    FEATURE_NAMES,
    FEATURE_SPEC,
    CodeMap,
    FeatureWarning,
    MalformedDocumentError,
    extract_batch,
    extract_features,
)
from evidence_features.docs import render_feature_docs

REPO_ROOT = Path(__file__).resolve().parents[3]
SMOKE_MIB = b'<?xml version="1.0"?><Response><ResponseData>CODE1</ResponseData></Response>'
SMOKE_RX = (
    b"<IntelRXResponse><DrugFill><DrugGenericName>METFORMIN</DrugGenericName>"
    b"</DrugFill></IntelRXResponse>"
)


def _isort_key(name: str) -> tuple[int, str]:
    if name.isupper():
        return (0, name)
    return (1 if name[0].isupper() else 2, name)


def test_all_sorted_and_complete() -> None:
    """`__all__` is sorted and lists every public name the package defines."""
    exported = evidence_features.__all__
    # isort-style order, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    assert sorted(exported, key=_isort_key) == exported
    public = {
        name
        for name in vars(evidence_features)
        if not name.startswith("_") and name not in {"annotations", "docs", "errors"}
    }
    assert public == set(exported)


def test_spec_has_105_columns() -> None:
    """The spec declares 105 columns: 30 MIB, 60 Rx and 15 combined."""
    groups = [spec.group for spec in FEATURE_SPEC]
    assert len(FEATURE_NAMES) == 105
    assert (groups.count("mib"), groups.count("rx"), groups.count("combined")) == (30, 60, 15)


def test_smoke_mib_flat_response() -> None:
    """The SQL smoke MIB sample gives one record and MIB evidence."""
    values = extract_features(SMOKE_MIB, None).as_dict()
    assert values["HAS_MIB_EVIDENCE"] == 1.0
    assert values["MIB_TOTAL_RECORDS"] == 1.0
    assert values["MIB_HIT_COUNT"] == 0.0
    assert values["MIB_TRY_COUNT"] == 0.0


def test_smoke_rx_metformin() -> None:
    """The SQL smoke Rx sample gives one fill flagged as a non-insulin antidiabetic."""
    values = extract_features(None, SMOKE_RX).as_dict()
    assert values["RX_TOTAL_FILLS"] == 1.0
    assert values["RX_DRUG_NONINSULIN_ANTIDIABETIC"] == 1.0
    assert values["HAS_RX_EVIDENCE"] == 1.0


@pytest.mark.parametrize("document", [b"<r/>", "<r/>"])
def test_smoke_empty_root_is_warning(document: bytes | str) -> None:
    """`<r/>` for both documents is a valid empty report with a warning, not an error."""
    vector = extract_features(document, document)
    expected_defaults = np.array([spec.default for spec in FEATURE_SPEC])
    np.testing.assert_array_equal(expected_defaults, vector.values)
    assert (
        FeatureWarning("empty_document", "MIB", 1),
        FeatureWarning("empty_document", "RX", 1),
    ) == vector.warnings


def test_vector_values_read_only_float64() -> None:
    """`values` is a read-only float64 array of shape (105,)."""
    vector = extract_features(SMOKE_MIB, SMOKE_RX)
    assert np.float64 == vector.values.dtype
    assert vector.values.shape == (105,)
    with pytest.raises(ValueError, match="read-only"):
        vector.values[0] = 5.0


def test_vector_as_dict_spec_order() -> None:
    """`as_dict` keys follow the spec order and hold Python floats."""
    mapping = extract_features(SMOKE_MIB, SMOKE_RX).as_dict()
    assert list(FEATURE_NAMES) == list(mapping)
    assert all(type(value) is float for value in mapping.values())


def test_missing_documents_warn() -> None:
    """None documents give defaults and a missing_document warning each."""
    vector = extract_features(None, None, as_of=date(2024, 1, 1))
    assert date(2024, 1, 1) == vector.as_of
    assert (
        FeatureWarning("missing_document", "MIB", 1),
        FeatureWarning("missing_document", "RX", 1),
    ) == vector.warnings


def test_as_of_datetime_uses_date() -> None:
    """A datetime as_of counts from its date."""
    vector = extract_features(None, None, as_of=datetime(2024, 5, 6, 23, 59))
    assert date(2024, 5, 6) == vector.as_of


def test_as_of_wrong_type_raises() -> None:
    """A string as_of is caller misuse and raises TypeError."""
    with pytest.raises(TypeError, match=r"as_of must be a datetime\.date"):
        extract_features(None, None, as_of="2024-01-01")  # type: ignore[arg-type]


def test_document_wrong_type_raises() -> None:
    """A document that is not bytes, str or None raises TypeError naming the document."""
    with pytest.raises(TypeError, match="RX document must be bytes, str or None"):
        extract_features(None, 42)  # type: ignore[arg-type]


def test_as_of_latest_evidence_fallback() -> None:
    """Without document dates the latest evidence date is the as-of date."""
    rx = (
        b"<IntelRXResponse><DrugFill><FillDate>2023-02-01</FillDate>"
        b"<DrugGenericName>LISINOPRIL</DrugGenericName></DrugFill></IntelRXResponse>"
    )
    vector = extract_features(None, rx)
    assert date(2023, 2, 1) == vector.as_of
    assert vector.as_dict()["RX_DAYS_SINCE_LAST_FILL"] == 0.0


def _rx_report(report_date: str | None, *fill_dates: str) -> bytes:
    head = f"<ReportDate>{report_date}</ReportDate>" if report_date else ""
    fills = "".join(
        f"<DrugFill><FillDate>{day}</FillDate><DrugGenericName>LISINOPRIL</DrugGenericName>"
        "<DaysSupply>30</DaysSupply></DrugFill>"
        for day in fill_dates
    )
    return f"<IntelRXResponse>{head}{fills}</IntelRXResponse>".encode()


def _mib_report(trans_exe_date: str) -> bytes:
    return (
        "<TXLife><TXLifeResponse><TransExeDate>"
        f"{trans_exe_date}</TransExeDate></TXLifeResponse></TXLife>"
    ).encode()


@pytest.mark.parametrize("report_date", ["9999-12-31", "2090-01-01", "2199-06-30"])
def test_as_of_skips_future_report_date(report_date: str) -> None:
    """A report date after tomorrow is not the as-of date, and it raises a warning."""
    vector = extract_features(None, _rx_report(report_date, "2024-03-01", "2023-06-10"))
    features = vector.as_dict()

    assert date(2024, 3, 1) == vector.as_of
    assert FeatureWarning("future_document_date", "RX", 1) in vector.warnings
    assert 2.0 == features["RX_FILLS_LAST_12M"]
    assert 0.0 == features["RX_DAYS_SINCE_LAST_FILL"]
    assert 0.0 == features["META_FUTURE_DATED_RECORDS"]


def test_as_of_future_mib_date_keeps_rx_date() -> None:
    """A wrong MIB date does not move the Rx windows: the Rx report date is used."""
    rx = _rx_report("2024-03-16", "2024-03-01")
    vector = extract_features(_mib_report("2099-01-01"), rx)

    assert date(2024, 3, 16) == vector.as_of
    assert FeatureWarning("future_document_date", "MIB", 1) in vector.warnings
    assert 1.0 == vector.as_dict()["RX_FILLS_LAST_12M"]


def test_as_of_tomorrow_still_used() -> None:
    """A report date of tomorrow in UTC, a time-zone shift, is still the as-of date."""
    tomorrow = date.fromordinal(datetime.now(UTC).date().toordinal() + 1)
    vector = extract_features(None, _rx_report(tomorrow.isoformat(), "2024-03-01"))

    assert tomorrow == vector.as_of
    assert all(warning.kind != "future_document_date" for warning in vector.warnings)


def test_as_of_skips_future_fill_date() -> None:
    """Without report dates, a fill dated in a later century is future-dated, not the as-of date."""
    vector = extract_features(None, _rx_report(None, "2024-03-01", "2124-03-01"))
    features = vector.as_dict()

    assert date(2024, 3, 1) == vector.as_of
    assert 1.0 == features["META_FUTURE_DATED_RECORDS"]
    assert 2.0 == features["RX_TOTAL_FILLS"]
    assert 1.0 == features["RX_FILLS_LAST_12M"]
    assert FeatureWarning("future_dated", "RX", 1) in vector.warnings


def test_as_of_only_future_dates_is_today() -> None:
    """When every date is in a later century, today in UTC is the as-of date."""
    before = datetime.now(UTC).date()
    vector = extract_features(None, _rx_report("2150-01-01", "2150-01-01"))
    after = datetime.now(UTC).date()

    assert before <= vector.as_of <= after
    assert 1.0 == vector.as_dict()["META_FUTURE_DATED_RECORDS"]
    assert FeatureWarning("future_document_date", "RX", 1) in vector.warnings


def test_code_map_object_and_path(tmp_path: Path) -> None:
    """A caller-supplied map, as an object or a TOML path, decides MIB categories."""
    mib = b"<Response><ResponseData>777X</ResponseData></Response>"
    default = extract_features(mib, None).as_dict()
    assert default["MIB_UNMAPPED_CODE_COUNT"] == 1.0
    custom = CodeMap(bases={"777": ("CANCER", 2)}, modifiers={"X": 3})
    mapped = extract_features(mib, None, code_map=custom).as_dict()
    assert mapped["MIB_CAT_CANCER"] == 1.0
    assert mapped["MIB_MAX_SEVERITY"] == 3.0
    path = tmp_path / "map.toml"
    path.write_text('[bases]\n"777" = { category = "NEURO", severity = 1 }\n[modifiers]\n')
    from_file = extract_features(mib, None, code_map=path).as_dict()
    assert from_file["MIB_CAT_NEURO"] == 1.0
    assert from_file["MIB_UNMAPPED_CODE_COUNT"] == 0.0


def test_code_map_bad_category_raises() -> None:
    """A map with an unknown category raises CodeMapError naming it."""
    with pytest.raises(evidence_features.CodeMapError, match="unknown category 'LIVER'"):
        CodeMap(bases={"777": ("LIVER", 1)}, modifiers={})


def test_docs_file_up_to_date() -> None:
    """docs/features.md matches the generator; rerun the --write command when this fails."""
    committed = (REPO_ROOT / "docs" / "features.md").read_text(encoding="utf-8")
    assert render_feature_docs() == committed


def test_docs_cli_check_detects_stale(tmp_path: Path) -> None:
    """`python -m evidence_features.docs --check` exits 1 on a stale file and 0 after --write."""
    target = tmp_path / "features.md"
    target.write_text("stale\n")
    command = [sys.executable, "-m", "evidence_features.docs"]
    stale = subprocess.run([*command, "--check", str(target)], capture_output=True, check=False)
    assert stale.returncode == 1
    assert b"is stale" in stale.stderr
    subprocess.run([*command, "--write", str(target)], check=True)
    fresh = subprocess.run([*command, "--check", str(target)], check=False)
    assert fresh.returncode == 0


SWAPPED_CASES = [
    ("<IntelRXResponse><DrugFill/></IntelRXResponse>", None, "MIB", "IntelRXResponse"),
    ("<IntelRX><IntelRXResponse/></IntelRX>", None, "MIB", "IntelRX"),
    (None, "<TXLife xmlns='http://ACORD.org/Standards/Life/2'/>", "RX", "TXLife"),
    (None, "<MIBResponse><MIBRecord/></MIBResponse>", "RX", "MIBResponse"),
]


@pytest.mark.parametrize(("mib", "rx", "document", "root"), SWAPPED_CASES)
def test_swapped_documents_raise(mib: str | None, rx: str | None, document: str, root: str) -> None:
    """A report of the other type in a slot is rejected instead of scoring as no evidence."""
    with pytest.raises(MalformedDocumentError, match="swapped") as caught:
        extract_features(mib, rx, as_of=date(2024, 3, 16))

    assert document == caught.value.document
    assert f"<{root}>" in str(caught.value)


def test_swapped_documents_lenient_flag() -> None:
    """Lenient batches record a swapped document as a parse error of that document."""
    matrix = extract_batch(
        [("<IntelRXResponse/>", "<MIBResponse/>")], as_of=date(2024, 3, 16), lenient=True
    )
    row = dict(zip(FEATURE_NAMES, matrix[0], strict=True))

    assert 1.0 == row["META_MIB_PARSE_ERROR"]
    assert 1.0 == row["META_RX_PARSE_ERROR"]


def test_generic_response_root_still_mib() -> None:
    """The flat legacy `<Response>` root stays a valid MIB document."""
    vector = extract_features("<Response><ResponseData>CODE1</ResponseData></Response>", None)

    assert 1.0 == vector.as_dict()["MIB_TOTAL_RECORDS"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30", 30.0), ("30 EA", 30.0), ("1e9", 1e9), ("1000000001", None), ("1e39", None),
     ("1e300", None), ("inf", None), ("nan", None), ("-5", None)],
)  # fmt: skip
def test_parse_number_bounds(text: str, expected: float | None) -> None:
    """Numbers above 10**9, which no report field reaches, read as missing."""
    from evidence_features._numbers import parse_number

    assert expected == parse_number(text)


@pytest.mark.parametrize("count", ["1e39", "1e300", "99999999999999999999"])
def test_huge_inquiry_count_stays_in_float32(count: str) -> None:
    """An absurd MIB inquiry count reads as missing, so every value fits a float32 model."""
    sample = REPO_ROOT / "data" / "samples" / "02-diabetic" / "mib.xml"
    mib = sample.read_text(encoding="utf-8")
    assert "<InquiryCount24M>1</InquiryCount24M>" in mib
    huge = mib.replace(
        "<InquiryCount24M>1</InquiryCount24M>", f"<InquiryCount24M>{count}</InquiryCount24M>"
    )

    values = extract_features(huge, None).values

    assert float(np.abs(values).max()) < float(np.finfo(np.float32).max)
    assert 0.0 == extract_features(huge, None).as_dict()["MIB_IAI_INQUIRIES_24M"]
    assert 1.0 == extract_features(mib, None).as_dict()["MIB_IAI_INQUIRIES_24M"]
