"""Reading numbers from report text, and the plausible range of each numeric field.

Every numeric field a reader takes from a report goes through `parse_number` (or, for the
vendor score, the stricter `parse_plain_number`) with the `NumberRange` of that field. A value
outside the range, or a present text without a readable number, is read as missing, and the
reader counts it as an `implausible_value` warning. So no input value, however extreme, can
push a feature beyond the bounds these ranges imply.

NOTE: the ranges are this library's own judgement of plausible values, not limits taken from a
vendor or NCPDP specification. Widen one if real reports carry values beyond it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "ANY_NUMBER",
    "BMI",
    "DAYS_SUPPLY",
    "HEIGHT_IN",
    "INQUIRY_COUNT",
    "MAX_NUMBER",
    "QUANTITY",
    "STRENGTH",
    "VENDOR_SCORE",
    "WEIGHT_LB",
    "NumberRange",
    "parse_number",
    "parse_plain_number",
]

# No count, quantity, days supply, dose, measurement or score in a report comes near this, and
# sums and products of such values stay far inside the float32 range that tree models read.
MAX_NUMBER = 1e9


class NumberRange(NamedTuple):
    """Inclusive bounds of the plausible values of one numeric field."""

    minimum: float
    maximum: float


ANY_NUMBER = NumberRange(0.0, MAX_NUMBER)
"""Any non-negative number up to `MAX_NUMBER`, for fields without a narrower domain."""
DAYS_SUPPLY = NumberRange(1.0, 999.0)
"""Days supply of one fill: at least one day. The maximum 999 keeps three-digit supplies
readable, and the features clamp them to 365, as the spec defines and the model was trained."""
QUANTITY = NumberRange(0.0, 100_000.0)
"""Dispensed quantity of one fill in units, mL or grams. Zero is a valid quantity that leaves
the fill without an MME."""
STRENGTH = NumberRange(0.0, 10_000.0)
"""Strength of one ingredient per dispensed unit, in mg, mcg or mcg/h, as used for the MME."""
BMI = NumberRange(10.0, 80.0)
"""Body-mass index, as the MIB_*_BMI features document."""
HEIGHT_IN = NumberRange(12.0, 120.0)
"""Height in inches."""
WEIGHT_LB = NumberRange(2.0, 1_500.0)
"""Weight in pounds."""
INQUIRY_COUNT = NumberRange(0.0, 1_000.0)
"""Insurance-activity inquiries in 24 months."""
VENDOR_SCORE = NumberRange(0.0, 1_000_000.0)
"""A vendor's Rx or risk score. No vendor scale reported so far is negative or comes near the
maximum, which keeps every integer score exact in float32. A negative score would also be
indistinguishable from the feature's default of -1, which means "no score"."""

# ASCII digits only: `\d` would also match the digits of other scripts, such as "١٢".
_LEADING_NUMBER = re.compile(r"\s*([0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)")
# The first group has no leading zero, because "0,500" is a decimal comma, not 500.
_THOUSANDS = re.compile(r"[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]*)?")


def _plain_float(text: str) -> float | None:
    # float() also reads Python's digit grouping ("1_200") and the digits of other scripts
    # ("١٢"). Neither is a report number here, so those texts take the stricter path below.
    if not text.isascii() or "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_number(text: str | None, domain: NumberRange = ANY_NUMBER) -> float | None:
    """Read the leading number of a text such as "30", "30.000", "30 EA" or "1,200".

    A comma counts only as a thousands separator between groups of three digits, after a first
    group of one to three digits that does not start with 0 ("1,200" is 1200). Any other comma
    inside the number ("1,20", "30,5", "0,500") makes the text ambiguous.

    Only ASCII digits count, and Python's "1_200" grouping is not a number.

    Returns:
        The number, or None for a missing value, text without a leading number, an ambiguous
        comma, NaN, infinity and any number outside `domain`.
    """
    if text is None:
        return None
    value = _plain_float(text)
    if value is None:
        match = _LEADING_NUMBER.match(text)
        if match is None:
            return None
        # "1_200" and "1٢" must not read as 1.
        following = text[match.end() : match.end() + 1]
        if following == "_" or following.isdigit():
            return None
        # A comma right after the number is punctuation ("30, EA"), not part of it.
        digits = match.group(1).rstrip(",")
        if "," in digits:
            if _THOUSANDS.fullmatch(digits) is None:
                return None
            digits = digits.replace(",", "")
        value = float(digits)
    # NaN fails both comparisons, so it is rejected with the out-of-range values.
    if domain.minimum <= value <= domain.maximum:
        return value
    return None


# One number and nothing else: ASCII digits with an optional sign, decimal point and exponent.
_PLAIN_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


def parse_plain_number(text: str | None, domain: NumberRange = ANY_NUMBER) -> float | None:
    """Read a text that contains one plain number, such as "42", "-0", "7.5", "1e3" or " 12 ".

    Unlike `parse_number`, nothing may follow the number: a unit, a fraction ("7/10"), a hex
    prefix ("0x10"), a thousands comma ("1,000") or any other text makes the whole text
    unreadable. Use it for fields that carry a bare number, where a leading number followed by
    more text is a different value, not the same value with a unit.

    Returns:
        The number, or None for a missing value, any other text, and any number outside
        `domain`. The pattern admits no NaN or infinity, and an exponent that overflows to
        infinity is outside every domain.
    """
    if text is None or _PLAIN_NUMBER.fullmatch(text) is None:
        return None
    try:
        value = float(text)
    except ValueError:
        # `\s` also matches the separators U+001C to U+001F, which float() does not strip.
        return None
    if domain.minimum <= value <= domain.maximum:
        return value
    return None
