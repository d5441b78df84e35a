"""Numeric fields: parsing, plausible ranges and the implausible_value warning."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from evidence_features import FeatureWarning, extract_features
from evidence_features._numbers import (
    ANY_NUMBER,
    DAYS_SUPPLY,
    QUANTITY,
    STRENGTH,
    VENDOR_SCORE,
    parse_number,
    parse_plain_number,
)

AS_OF = date(2024, 3, 16)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def oxycodone_fill(
    *,
    quantity: str = "120",
    days: str = "30",
    strength: str = "30 MG",
    fill_date: str = "2024-03-01",
) -> str:
    return (
        f"<DrugFill><FillDate>{fill_date}</FillDate>"
        "<DrugGenericName>OXYCODONE HCL</DrugGenericName>"
        f"<DrugStrength>{strength}</DrugStrength><Quantity>{quantity}</Quantity>"
        f"<DaysSupply>{days}</DaysSupply></DrugFill>"
    )


def rx_document(*fills: str) -> str:
    return "<IntelRXResponse>" + "".join(fills) + "</IntelRXResponse>"


def rx_vector(*fills: str) -> tuple[dict[str, float], tuple[FeatureWarning, ...]]:
    vector = extract_features(None, rx_document(*fills), as_of=AS_OF)
    return vector.as_dict(), vector.warnings


def implausible_count(warnings: tuple[FeatureWarning, ...], document: str) -> int:
    return sum(
        warning.count
        for warning in warnings
        if warning.kind == "implausible_value" and warning.document == document
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,200", 1200.0),
        ("1,200 EA", 1200.0),
        ("12,345,678", 12345678.0),
        ("1,200.5", 1200.5),
        ("30, EA", 30.0),
        ("1,20", None),
        ("30,5", None),
        ("1,2000", None),
        ("12,34,567", None),
        ("1,,200", None),
        ("0,500", None),
        ("00,500", None),
        ("999,999", 999999.0),
        ("30.000", 30.0),
        (" 30 ", 30.0),
        (".5", 0.5),
        ("NaN", None),
        ("-Infinity", None),
        ("1e309", None),
        ("EA", None),
        ("", None),
        (None, None),
        ("1_200", None),
        ("1_200 EA", None),
        ("\u0661\u0662", None),
        ("\uff11\uff12", None),
        ("1\u0662 EA", None),
        ("\u00a030\u00a0", 30.0),
        ("30 comprim\u00e9s", 30.0),
        ("30MG", 30.0),
    ],
)
def test_parse_number_thousands_and_junk(text: str | None, expected: float | None) -> None:
    """A comma reads only as a thousands separator between groups of three digits.

    A first group starting with 0 ("0,500") is a decimal comma, so it is ambiguous as well.
    """
    assert expected == parse_number(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.9999", None), ("1", 1.0), ("30", 30.0), ("999", 999.0), ("999.5", None),
     ("1e-300", None), ("0", None), ("-5", None)],
)  # fmt: skip
def test_parse_number_days_supply_range(text: str, expected: float | None) -> None:
    """Days supply is read only within [1, 999] days, bounds included."""
    assert expected == parse_number(text, DAYS_SUPPLY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0.0), ("100000", 100_000.0), ("100,000", 100_000.0), ("100001", None),
     ("1e-300", 1e-300), ("-120", None)],
)  # fmt: skip
def test_parse_number_quantity_range(text: str, expected: float | None) -> None:
    """Quantity is read within [0, 100,000]. Zero stays a value and negatives are missing."""
    assert expected == parse_number(text, QUANTITY)


def test_number_ranges_ordered_and_finite() -> None:
    """Every declared range is finite, non-negative and has minimum <= maximum."""
    for domain in (ANY_NUMBER, DAYS_SUPPLY, QUANTITY, STRENGTH):
        assert 0.0 <= domain.minimum <= domain.maximum < FLOAT32_MAX


def test_mme_reference_fill() -> None:
    """Oxycodone 30 MG, 120 tablets over 30 days: 30 * 120 / 30 * 1.5 = 180 MME."""
    values, warnings = rx_vector(oxycodone_fill())

    assert 180.0 == values["RX_OPIOID_MAX_DAILY_MME"]
    assert 30.0 == values["RX_TOTAL_DAYS_SUPPLY"]
    assert 0 == implausible_count(warnings, "RX")


@pytest.mark.parametrize("days", ["1e-300", "0.0001", "0.5", "0", "-30", "1000", "1e309", "NaN"])
def test_implausible_days_supply_is_missing(days: str) -> None:
    """A days supply outside [1, 999] reads as missing, with no MME, zero supply and one warning."""
    values, warnings = rx_vector(oxycodone_fill(days=days))

    assert 0.0 == values["RX_OPIOID_MAX_DAILY_MME"]
    assert 0.0 == values["RX_TOTAL_DAYS_SUPPLY"]
    assert 0.0 == values["RX_OPIOID_DAYS_SUPPLY_12M"]
    assert 1.0 == values["RX_TOTAL_FILLS"]
    assert 1 == implausible_count(warnings, "RX")


@pytest.mark.parametrize(
    ("days", "mme", "total_supply"),
    [("1", 5400.0, 1.0), ("999", 30 * 120 / 999 * 1.5, 365.0)],
)
def test_days_supply_range_bounds(days: str, mme: float, total_supply: float) -> None:
    """Days supplies of 1 and 999 are read, and 999 counts as 365 in the supply sums."""
    values, warnings = rx_vector(oxycodone_fill(days=days))

    assert mme == values["RX_OPIOID_MAX_DAILY_MME"]
    assert total_supply == values["RX_TOTAL_DAYS_SUPPLY"]
    assert 0 == implausible_count(warnings, "RX")


@pytest.mark.parametrize(
    ("strength", "mme", "warned"),
    [
        ("10000 MG", 10_000 * 120 / 30 * 1.5, 0),
        ("10001 MG", 0.0, 1),
        ("9" * 40 + " MG", 0.0, 1),
        ("1" + "0" * 400 + " MG", 0.0, 1),
        ("N/A", 0.0, 0),
    ],
)
def test_strength_range(strength: str, mme: float, warned: int) -> None:
    """An opioid strength above 10,000 per unit reads as missing. A text without one is skipped."""
    values, warnings = rx_vector(oxycodone_fill(strength=strength))

    assert mme == values["RX_OPIOID_MAX_DAILY_MME"]
    assert warned == implausible_count(warnings, "RX")


@pytest.mark.parametrize(
    ("strength", "mme", "warned"),
    [
        # 1000 mg x 30 tablets / 30 days x 1.5 for oxycodone.
        ("1,000 MG", 1500.0, 0),
        ("1,000.0 MG", 1500.0, 0),
        ("1000 MG", 1500.0, 0),
        # A comma before a space separates two strengths, so 10 mg x 30 / 30 x 1.5.
        ("10 MG, 325 MG", 15.0, 0),
        ("1,00 MG", 0.0, 1),
        ("30,5 MG", 0.0, 1),
        ("0,500 MG", 0.0, 1),
        ("10,001 MG", 0.0, 1),
    ],
)
def test_strength_thousands_separator(strength: str, mme: float, warned: int) -> None:
    """An opioid strength "1,000 MG" is 1000 mg. An ambiguous comma is missing and warned."""
    values, warnings = rx_vector(oxycodone_fill(strength=strength, quantity="30", days="30"))

    assert mme == values["RX_OPIOID_MAX_DAILY_MME"]
    assert 1.0 == values["RX_DRUG_OPIOID"]
    assert warned == implausible_count(warnings, "RX")


def test_strength_separator_zero_one_many() -> None:
    """Across fills only ambiguous strengths are warned, and the grouped one sets the maximum."""
    plain = oxycodone_fill(strength="30 MG", quantity="30", days="30", fill_date="2024-03-01")
    grouped = oxycodone_fill(strength="1,000 MG", quantity="30", days="30", fill_date="2024-02-01")
    ambiguous = oxycodone_fill(strength="30,5 MG", quantity="30", days="30", fill_date="2024-01-01")
    unclear = oxycodone_fill(strength="1,00 MG", quantity="30", days="30", fill_date="2023-12-01")

    # 30 mg x 30 / 30 x 1.5 = 45, and 1000 mg x 30 / 30 x 1.5 = 1500.
    only_plain, plain_warnings = rx_vector(plain)
    with_grouped, grouped_warnings = rx_vector(plain, grouped)
    with_all, all_warnings = rx_vector(plain, grouped, ambiguous, unclear)

    assert 45.0 == only_plain["RX_OPIOID_MAX_DAILY_MME"]
    assert 0 == implausible_count(plain_warnings, "RX")
    assert 1500.0 == with_grouped["RX_OPIOID_MAX_DAILY_MME"]
    assert 0 == implausible_count(grouped_warnings, "RX")
    assert 1500.0 == with_all["RX_OPIOID_MAX_DAILY_MME"]
    assert 4.0 == with_all["RX_TOTAL_FILLS"]
    assert 2 == implausible_count(all_warnings, "RX")


def test_strength_separator_in_label_fallback() -> None:
    """Without DrugStrength the label's "1,000 MG" is read by the same grouping rule."""
    fill = (
        "<DrugFill><FillDate>2024-03-01</FillDate>"
        "<DrugGenericName>OXYCODONE HCL 1,000 MG TABLET</DrugGenericName>"
        "<Quantity>30</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
    )
    values, warnings = rx_vector(fill)

    assert 1500.0 == values["RX_OPIOID_MAX_DAILY_MME"]
    assert 0 == implausible_count(warnings, "RX")


def test_ambiguous_non_opioid_number_in_combination() -> None:
    """In "5-1,00 MG" hydrocodone is 5 mg. The acetaminophen number is never read or warned."""
    fill = (
        "<DrugFill><FillDate>2024-03-01</FillDate>"
        "<DrugGenericName>HYDROCODONE-ACETAMINOPHEN</DrugGenericName>"
        "<DrugStrength>5-1,00 MG</DrugStrength><Quantity>60</Quantity>"
        "<DaysSupply>30</DaysSupply></DrugFill>"
    )
    values, warnings = rx_vector(fill)

    # 5 mg x 60 / 30 days x 1.0 for hydrocodone.
    assert 10.0 == values["RX_OPIOID_MAX_DAILY_MME"]
    assert 0 == implausible_count(warnings, "RX")


def test_implausible_strength_in_label_fallback() -> None:
    """Without DrugStrength the label's number is the strength, under the same range."""
    fill = (
        "<DrugFill><FillDate>2024-03-01</FillDate>"
        f"<DrugGenericName>OXYCODONE HCL {'9' * 30} MG TABLET</DrugGenericName>"
        "<Quantity>120</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
    )
    values, warnings = rx_vector(fill)

    assert 0.0 == values["RX_OPIOID_MAX_DAILY_MME"]
    assert 1.0 == values["RX_DRUG_OPIOID"]
    assert 1 == implausible_count(warnings, "RX")


def test_non_opioid_strength_not_checked() -> None:
    """A huge strength on a drug without an MME factor is never read, so it raises nothing."""
    fill = (
        "<DrugFill><FillDate>2024-03-01</FillDate><DrugGenericName>METFORMIN</DrugGenericName>"
        f"<DrugStrength>{'9' * 40} MG</DrugStrength><Quantity>60</Quantity>"
        "<DaysSupply>30</DaysSupply></DrugFill>"
    )
    values, warnings = rx_vector(fill)

    assert 1.0 == values["RX_DRUG_NONINSULIN_ANTIDIABETIC"]
    assert 0 == implausible_count(warnings, "RX")


@pytest.mark.parametrize(
    ("quantity", "mme", "warned"),
    [
        ("1,200", 30 * 1200 / 30 * 1.5, 0),
        ("1,200.000", 30 * 1200 / 30 * 1.5, 0),
        ("100000", 30 * 100_000 / 30 * 1.5, 0),
        ("0", 0.0, 0),
        ("1,20", 0.0, 1),
        ("NaN", 0.0, 1),
        ("Infinity", 0.0, 1),
        ("-120", 0.0, 1),
        ("1e309", 0.0, 1),
        ("100001", 0.0, 1),
        ("EA", 0.0, 1),
    ],
)
def test_quantity_range_and_separators(quantity: str, mme: float, warned: int) -> None:
    """Quantity reads "1,200" as 1200, and junk, NaN, inf, negatives and > 100,000 are missing."""
    values, warnings = rx_vector(oxycodone_fill(quantity=quantity))

    assert mme == values["RX_OPIOID_MAX_DAILY_MME"]
    assert warned == implausible_count(warnings, "RX")


def test_quantity_as_attribute_thousands() -> None:
    """`<Quantity value="1,200"/>` reads like the element text "1,200"."""
    fill = oxycodone_fill().replace("<Quantity>120</Quantity>", '<Quantity value="1,200"/>')
    values, _ = rx_vector(fill)

    assert 1800.0 == values["RX_OPIOID_MAX_DAILY_MME"]


def test_implausible_count_zero_one_many() -> None:
    """The warning counts every implausible value of the document, across fills."""
    clean = oxycodone_fill()
    nan_quantity = oxycodone_fill(quantity="NaN", fill_date="2024-02-01")
    negative_quantity_zero_days = oxycodone_fill(quantity="-1", days="0", fill_date="2024-01-01")

    assert 0 == implausible_count(rx_vector(clean)[1], "RX")
    assert 1 == implausible_count(rx_vector(clean, nan_quantity)[1], "RX")
    assert 3 == implausible_count(
        rx_vector(clean, nan_quantity, negative_quantity_zero_days)[1], "RX"
    )


def test_extreme_inputs_keep_vector_in_float32() -> None:
    """Tiny supplies and 40-digit strengths and quantities stay finite and inside float32."""
    fills = [
        oxycodone_fill(days="1e-300"),
        oxycodone_fill(days="0.0001", fill_date="2024-03-02"),
        oxycodone_fill(strength="9" * 40 + " MG", fill_date="2024-03-03"),
        oxycodone_fill(quantity="9" * 40, fill_date="2024-03-04"),
    ]
    vector = extract_features(None, rx_document(*fills), as_of=AS_OF)

    assert bool(np.isfinite(vector.values).all())
    assert float(np.abs(vector.values).max()) < FLOAT32_MAX
    assert 0.0 == vector.as_dict()["RX_OPIOID_MAX_DAILY_MME"]
    assert FeatureWarning("implausible_value", "RX", 4) in vector.warnings


def flat_mib(build: str, *, inquiries: str | None = None) -> str:
    activity = "" if inquiries is None else f"<InquiryCount24M>{inquiries}</InquiryCount24M>"
    return (
        f'<MIBResponse>{activity}<MIBRecord ReplyType="HIT"><DateReported>2024-01-01'
        f"</DateReported><Code>503D</Code>{build}</MIBRecord></MIBResponse>"
    )


def mib_vector(document: str) -> tuple[dict[str, float], tuple[FeatureWarning, ...]]:
    vector = extract_features(document, None, as_of=AS_OF)
    return vector.as_dict(), vector.warnings


@pytest.mark.parametrize("height", ["1e-300", "1e-160", "0.5", "0", "-70", "121", "NaN"])
def test_implausible_height_no_bmi(height: str) -> None:
    """A height outside [12, 120] inches gives no BMI and no division error."""
    values, warnings = mib_vector(
        flat_mib(f"<HeightIn>{height}</HeightIn><WeightLb>150</WeightLb>")
    )

    assert 0.0 == values["MIB_BMI_PRESENT"]
    assert 0.0 == values["MIB_AVG_BMI"]
    assert 1.0 == values["MIB_TOTAL_RECORDS"]
    assert 1 == implausible_count(warnings, "MIB")


def test_bmi_from_height_and_weight() -> None:
    """70 in and 200 lb give BMI 703 * 200 / 70**2."""
    values, warnings = mib_vector(flat_mib("<HeightIn>70</HeightIn><WeightLb>200</WeightLb>"))

    assert 703.0 * 200.0 / 4900.0 == values["MIB_AVG_BMI"]
    assert 1.0 == values["MIB_BMI_PRESENT"]
    assert 0 == implausible_count(warnings, "MIB")


@pytest.mark.parametrize(
    ("build", "bmi", "warned"),
    [
        ("<BMI>31.5</BMI>", 31.5, 0),
        ("<BMI>80</BMI>", 80.0, 0),
        ("<BMI>95</BMI>", 0.0, 1),
        ("<BMI>1,200</BMI>", 0.0, 1),
        ("<BMI>Infinity</BMI>", 0.0, 1),
        ("<BMI>95</BMI><HeightIn>70</HeightIn><WeightLb>200</WeightLb>", 703.0 * 200 / 4900, 1),
        ("<HeightIn>12</HeightIn><WeightLb>1500</WeightLb>", 0.0, 1),
        ("<WeightLb>2000</WeightLb>", 0.0, 1),
    ],
)
def test_bmi_range(build: str, bmi: float, warned: int) -> None:
    """BMI outside [10, 80], from the text or from height and weight, reads as missing."""
    values, warnings = mib_vector(flat_mib(build))

    assert bmi == values["MIB_AVG_BMI"]
    assert warned == implausible_count(warnings, "MIB")


def test_acord_build_height_error_is_missing() -> None:
    """The ACORD Build block follows the same rule as the flat record."""
    document = (
        '<TXLife xmlns="http://ACORD.org/Standards/Life/2"><TXLifeResponse><OLifE>'
        '<FormInstance id="F1"><SubmitDate>2024-01-01</SubmitDate><FormResponse>'
        "<ResponseData>503D</ResponseData></FormResponse><OLifEExtension><Build>"
        "<HeightIn>1e-300</HeightIn><WeightLb>150</WeightLb></Build></OLifEExtension>"
        "</FormInstance></OLifE></TXLifeResponse></TXLife>"
    )
    values, warnings = mib_vector(document)

    assert 1.0 == values["MIB_TOTAL_RECORDS"]
    assert 0.0 == values["MIB_BMI_PRESENT"]
    assert 1 == implausible_count(warnings, "MIB")


def test_legacy_bmi_outside_build_counted_once() -> None:
    """In the legacy shape an implausible BMI inside a Build block is counted once."""
    document = (
        "<Response><ResponseData>503D</ResponseData>"
        "<Build><BMI>95</BMI></Build><BMI>27.5</BMI></Response>"
    )
    values, warnings = mib_vector(document)

    assert 27.5 == values["MIB_AVG_BMI"]
    assert 1 == implausible_count(warnings, "MIB")


@pytest.mark.parametrize(
    ("inquiries", "expected", "warned"),
    [("3", 3.0, 0), ("1000", 1000.0, 0), ("1,000", 1000.0, 0), ("1001", 0.0, 1),
     ("1e39", 0.0, 1), ("-2", 0.0, 1), ("many", 0.0, 1)],
)  # fmt: skip
def test_inquiry_count_range(inquiries: str, expected: float, warned: int) -> None:
    """The insurance-activity inquiry count is read within [0, 1,000]."""
    values, warnings = mib_vector(flat_mib("", inquiries=inquiries))

    assert expected == values["MIB_IAI_INQUIRIES_24M"]
    assert warned == implausible_count(warnings, "MIB")


def vendor_score(*scores: str) -> tuple[float, int]:
    """RX_VENDOR_SCORE and the Rx implausible_value count of a report with these score texts."""
    document = (
        "<IntelRXResponse>"
        + "".join(f"<RiskScore>{score}</RiskScore>" for score in scores)
        + oxycodone_fill()
        + "</IntelRXResponse>"
    )
    vector = extract_features(None, document, as_of=AS_OF)
    return vector.as_dict()["RX_VENDOR_SCORE"], implausible_count(vector.warnings, "RX")


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        ((), (-1.0, 0)),
        (("412.5",), (412.5, 0)),
        (("0",), (0.0, 0)),
        ((" 37 ",), (37.0, 0)),
        (("",), (-1.0, 0)),
        (("NaN",), (-1.0, 1)),
        (("inf",), (-1.0, 1)),
        (("1e300",), (-1.0, 1)),
        (("3e38",), (-1.0, 1)),
        (("-1",), (-1.0, 1)),
        (("-0",), (0.0, 0)),
        (("\u0664\u0661",), (-1.0, 1)),
        (("HIGH",), (-1.0, 1)),
        (("NaN", "88"), (88.0, 1)),
        (("12", "NaN"), (12.0, 0)),
        (("0x10",), (-1.0, 1)),
        (("7/10",), (-1.0, 1)),
        (("1,000",), (-1.0, 1)),
        (("12 pts",), (-1.0, 1)),
        (("+12",), (12.0, 0)),
        (("1e3",), (1000.0, 0)),
        (("0x10", "7/10", "55"), (55.0, 2)),
    ],
    ids=[
        "none",
        "one",
        "zero",
        "spaces",
        "blank",
        "nan",
        "infinity",
        "huge",
        "float32-overflow",
        "negative",
        "negative-zero",
        "arabic-indic-digits",
        "word",
        "unreadable-then-readable",
        "readable-then-unreadable",
        "hex",
        "fraction",
        "thousands-comma",
        "unit",
        "plus-sign",
        "exponent",
        "two-unreadable-then-readable",
    ],
)
def test_vendor_score_reads_or_warns(texts: tuple[str, ...], expected: tuple[float, int]) -> None:
    """A score that is present but unreadable, negative or huge is missing and warned about.

    The first readable score wins; an unreadable one before it still counts, one after it is
    never read.
    """
    score, implausible = vendor_score(*texts)
    assert (score, implausible) == expected
    assert math.copysign(1.0, score) == math.copysign(1.0, expected[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42.0),
        (" 7.5 ", 7.5),
        ("\t12\n", 12.0),
        ("5.", 5.0),
        (".5", 0.5),
        ("+3", 3.0),
        ("-0", 0.0),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        (None, None),
        ("", None),
        ("   ", None),
        ("0x10", None),
        ("7/10", None),
        ("1,000", None),
        ("12 pts", None),
        ("1_000", None),
        ("\u0661\u0662", None),
        ("１２", None),
        ("NaN", None),
        ("inf", None),
        ("1e999", None),
        ("-5", None),
        ("1e", None),
        (".", None),
        ("1.2.3", None),
        ("\x1c5", None),
    ],
)  # fmt: skip
def test_parse_plain_number(text: str | None, expected: float | None) -> None:
    """Only a text that is one plain number inside the domain reads, and anything else is None."""
    assert expected == parse_plain_number(text, VENDOR_SCORE)


def test_parse_plain_number_is_linear() -> None:
    """A long run of digits that ends in a letter is rejected without backtracking blow-up."""
    assert parse_plain_number("1" * 100_000 + "x") is None
    assert parse_plain_number("1" * 5 + "e" + "1" * 100_000) is None
