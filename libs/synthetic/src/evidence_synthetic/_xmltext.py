"""Text helpers for writing XML by hand: escaping, CDATA and the date formats real feeds use."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from xml.sax import saxutils

__all__ = [
    "LEGACY_MONTHS",
    "cdata",
    "element",
    "escape",
    "format_date",
    "format_legacy_date",
    "shift_years",
]

# Two-letter months of the legacy fixed-format MIB reply (DDMMYY with a letter month, e.g. 20AG21).
LEGACY_MONTHS = ("JA", "FB", "MR", "AP", "MY", "JU", "JL", "AG", "SP", "OC", "NV", "DC")
_MONTH_ABBREVIATIONS = (
    "JAN",
    "FEB",
    "MAR",
    "APR",
    "MAY",
    "JUN",
    "JUL",
    "AUG",
    "SEP",
    "OCT",
    "NOV",
    "DEC",
)


@lru_cache(maxsize=16_384)
def escape(text: str) -> str:
    """Escape `&`, `<` and `>` for element text, cached because most texts (drug names) repeat."""
    return saxutils.escape(text)


def shift_years(day: date, years: int) -> date:
    """Move a date by whole years. 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def element(name: str, text: str) -> str:
    """Render `<name>text</name>` with the text escaped."""
    return f"<{name}>{escape(text)}</{name}>"


def cdata(text: str) -> str:
    """Wrap text in a CDATA section, splitting any `]]>` so the section stays well-formed."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def format_legacy_date(day: date) -> str:
    """Format a date as the legacy MIB DDMMYY form with a two-letter month, e.g. `20AG21`."""
    return f"{day.day:02d}{LEGACY_MONTHS[day.month - 1]}{day.year % 100:02d}"


def format_date(day: date, style: str) -> str:
    """Format a date in one of the styles seen in MIB and Rx feeds.

    Styles: `iso` (2024-03-16), `ccyymmdd` (20240316), `us` (03/16/2024), `dd-mon-yy`
    (16-MAR-24), `iso-datetime-z` (2024-03-16T00:00:00Z), `iso-datetime-offset`
    (2024-03-16T09:30:00-05:00) and `legacy` (16MR24).
    """
    if style == "iso":
        return day.isoformat()
    if style == "ccyymmdd":
        return day.strftime("%Y%m%d")
    if style == "us":
        return day.strftime("%m/%d/%Y")
    if style == "dd-mon-yy":
        return f"{day.day:02d}-{_MONTH_ABBREVIATIONS[day.month - 1]}-{day.year % 100:02d}"
    if style == "iso-datetime-z":
        return f"{day.isoformat()}T00:00:00Z"
    if style == "iso-datetime-offset":
        return f"{day.isoformat()}T09:30:00-05:00"
    if style == "legacy":
        return format_legacy_date(day)
    msg = f"unknown date style {style!r}; use one of iso, ccyymmdd, us, dd-mon-yy, legacy"
    raise ValueError(msg)
