"""Date parsing for every date format seen in MIB and Rx feeds.

Dates become proleptic Gregorian ordinals (`date.toordinal()`), so window arithmetic is integer
subtraction. Accepted forms: `YYYY-MM-DD` and XML Schema dates and date-times with or without a
zone (the date as written, zone ignored, and 24:00 as the next day's midnight; a time or zone
out of range makes the date invalid),
`YYYYMMDD`, `MM/DD/YYYY` and `MM/DD/YY`, `DD-MON-YY` and `DD-MON-YYYY`, and the legacy MIB
`DDMMYY` with a two-letter month such as `20AG21`. Two-digit years 00-68 mean 2000-2068 and 69-99
mean 1969-1999, the pivot of C `strptime("%y")`. Only ASCII digits count: a date written with
digits of another script is invalid rather than read as a number.
"""

from __future__ import annotations

import re
from datetime import date

from evidence_features._memo import TextMemo

__all__ = ["DATE_ORDINALS", "UNPARSEABLE", "parse_date", "parse_date_text"]

UNPARSEABLE = 0
"""Ordinal returned for a date that is present but unknown or invalid; real ordinals are >= 1."""

_MIN_YEAR = 1900
_THREE_LETTER_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
# The legacy MIB interface writes months as two letters.
_TWO_LETTER_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JA", "FB", "MR", "AP", "MY", "JU", "JL", "AG", "SP", "OC", "NV", "DC"), start=1
    )
}
# An XML Schema date or date-time: `YYYY-MM-DD`, then an optional time `hh:mm[:ss[.fff]]`
# after `T` or a space, then an optional zone `Z`, `+hh:mm` or `+hhmm` (an `xs:date` may carry
# a zone too). The groups after the day are checked for range in `_iso_ordinal`.
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?)?"
    r"(?:Z|[+-](\d{2}):?(\d{2}))?",
    re.ASCII,
)
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})", re.ASCII)
_SLASHED = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})", re.ASCII)
_MONTH_NAME = re.compile(r"(\d{1,2})[- ]?([A-Z]{3})[- ]?(\d{2}|\d{4})", re.ASCII)
_LEGACY_MIB = re.compile(r"(\d{2})([A-Z]{2})(\d{2})", re.ASCII)


def _full_year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        return 2000 + year if year <= 68 else 1900 + year
    return year


def _ordinal(year: int, month: int, day: int) -> int:
    if year < _MIN_YEAR:
        return UNPARSEABLE
    try:
        return date(year, month, day).toordinal()
    except ValueError:
        return UNPARSEABLE


def _iso_ordinal(match: re.Match[str]) -> int:
    year, month, day, hour, minute, second, zone_hours, zone_minutes = match.groups()
    # 24:00 is midnight at the end of the day in ISO 8601 (the next day's 00:00), and :60 a
    # leap second.
    end_of_day = hour == "24" and minute == "00" and second in (None, "00")
    if hour is not None and not (
        (int(hour) <= 23 or end_of_day)
        and int(minute) <= 59
        and (second is None or int(second) <= 60)
    ):
        return UNPARSEABLE
    # XML Schema allows zones from -14:00 to +14:00.
    if zone_hours is not None and (
        int(zone_minutes) > 59 or int(zone_hours) * 60 + int(zone_minutes) > 14 * 60
    ):
        return UNPARSEABLE
    # The date as written: a zone names where the day was, not a day to convert to.
    ordinal = _ordinal(int(year), int(month), int(day))
    return ordinal + 1 if end_of_day and ordinal != UNPARSEABLE else ordinal


def parse_date_text(text: str) -> int:
    """Parse a stripped, non-empty date text; return its ordinal or `UNPARSEABLE`."""
    if match := _ISO.fullmatch(text):
        return _iso_ordinal(match)
    if match := _COMPACT.fullmatch(text):
        year, month, day = match.groups()
        return _ordinal(int(year), int(month), int(day))
    if match := _SLASHED.fullmatch(text):
        month, day, year = match.groups()
        return _ordinal(_full_year(year), int(month), int(day))
    upper = text.upper()
    if match := _MONTH_NAME.fullmatch(upper):
        day, month_name, year = match.groups()
        month_number = _THREE_LETTER_MONTHS.get(month_name)
        if month_number is None:
            return UNPARSEABLE
        return _ordinal(_full_year(year), month_number, int(day))
    if match := _LEGACY_MIB.fullmatch(upper):
        day, month_name, year = match.groups()
        month_number = _TWO_LETTER_MONTHS.get(month_name)
        if month_number is None:
            return UNPARSEABLE
        return _ordinal(_full_year(year), month_number, int(day))
    return UNPARSEABLE


DATE_ORDINALS: TextMemo[str, int] = TextMemo(parse_date_text, 8192)
"""Ordinals of stripped, non-empty date texts: ``DATE_ORDINALS[text]``, cached."""


def parse_date(text: str | None) -> int | None:
    """Parse one date field.

    Args:
        text: The field text, or `None` when the field is absent.

    Returns:
        `None` when the field is absent or blank, `UNPARSEABLE` (0) when it is present but
        unknown (`------`, `0000-00-00`) or invalid, otherwise the date's ordinal.
    """
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return None
    return DATE_ORDINALS[stripped]
