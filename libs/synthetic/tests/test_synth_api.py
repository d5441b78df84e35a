"""The public surface and the small helpers with hand-computed values."""

from __future__ import annotations

import re
from datetime import date

import evidence_synthetic
import numpy as np
import pytest
from evidence_features import load_code_map
from evidence_synthetic import MIB_CODE_CATEGORIES, MODIFIER_SEVERITY
from evidence_synthetic._mib_codes import make_code
from evidence_synthetic._parties import make_npi, npi_check_digit
from evidence_synthetic._rx_xml import make_ndc
from evidence_synthetic._xmltext import cdata, format_date, format_legacy_date, shift_years


def test_all_sorted_and_complete() -> None:
    exported = evidence_synthetic.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    for name in exported:
        assert hasattr(evidence_synthetic, name), name


def test_npi_check_digit_cms_example() -> None:
    # 1234567893 is the worked example of the NPI check digit.
    assert npi_check_digit("123456789") == "3"


def test_npi_random_draws_pass_luhn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        npi = make_npi(rng)
        assert re.fullmatch(r"[12]\d{9}", npi)
        assert npi_check_digit(npi[:9]) == npi[9]


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("iso", "2021-08-20"),
        ("ccyymmdd", "20210820"),
        ("us", "08/20/2021"),
        ("dd-mon-yy", "20-AUG-21"),
        ("iso-datetime-z", "2021-08-20T00:00:00Z"),
        ("iso-datetime-offset", "2021-08-20T09:30:00-05:00"),
        ("legacy", "20AG21"),
    ],
)
def test_format_date_styles(style: str, expected: str) -> None:
    assert format_date(date(2021, 8, 20), style) == expected


def test_format_date_unknown_style_rejected() -> None:
    with pytest.raises(ValueError, match="unknown date style 'julian'"):
        format_date(date(2021, 8, 20), "julian")


def test_legacy_date_month_letters() -> None:
    assert format_legacy_date(date(2024, 1, 5)) == "05JA24"
    assert format_legacy_date(date(2019, 12, 31)) == "31DC19"


def test_cdata_splits_terminator() -> None:
    assert cdata("a]]>b") == "<![CDATA[a]]]]><![CDATA[>b]]>"


@pytest.mark.parametrize(
    ("style", "pattern"),
    [
        (0, r"\d{5}-\d{4}-\d{2}"),
        (1, r"\d{4}-\d{4}-\d{2}"),
        (2, r"\d{5}-\d{3}-\d{2}"),
        (3, r"\d{5}-\d{4}-\d"),
        (4, r"\d{11}"),
        (5, r"[1-9]\d{0,10}"),
    ],
)
def test_ndc_styles(style: int, pattern: str) -> None:
    assert re.fullmatch(pattern, make_ndc("METFORMIN HCL", "500 MG", style))


def test_ndc_stable_per_product() -> None:
    assert make_ndc("METFORMIN HCL", "500 MG") == make_ndc("METFORMIN HCL", "500 MG")
    assert make_ndc("METFORMIN HCL", "500 MG") != make_ndc("METFORMIN HCL", "1000 MG")


def test_code_map_matches_feature_library() -> None:
    shipped = load_code_map()
    assert {b: c for b, (c, _s) in shipped.bases.items()} == MIB_CODE_CATEGORIES
    assert dict(shipped.modifiers) == MODIFIER_SEVERITY


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_code_severity_reaches_requested_level(severity: int) -> None:
    shipped = load_code_map()
    rng = np.random.default_rng(severity)
    for _ in range(200):
        code = make_code(rng, "503", severity)
        info = shipped.lookup(code)
        base_severity = shipped.bases["503"][1]
        modifier = code[3:]
        expected = base_severity if not modifier else max(base_severity, severity)
        assert info.severity == expected, code


def test_shift_years_leap_day() -> None:
    assert shift_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert shift_years(date(2024, 2, 29), 4) == date(2028, 2, 29)
    assert shift_years(date(2023, 8, 20), 100) == date(2123, 8, 20)
