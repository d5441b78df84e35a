"""Date formats of MIB and Rx feeds."""

from __future__ import annotations

from datetime import date

import pytest
from evidence_features._dates import UNPARSEABLE, parse_date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-16", date(2024, 3, 16)),
        ("20240316", date(2024, 3, 16)),
        ("03/16/2024", date(2024, 3, 16)),
        ("3/6/24", date(2024, 3, 6)),
        ("16-MAR-24", date(2024, 3, 16)),
        ("16-Mar-2024", date(2024, 3, 16)),
        ("2024-03-16T23:30:00-05:00", date(2024, 3, 16)),
        ("2024-03-16T04:00:00Z", date(2024, 3, 16)),
        ("20AG21", date(2021, 8, 20)),
        ("01JA99", date(1999, 1, 1)),
        ("  2024-03-16  ", date(2024, 3, 16)),
    ],
)
def test_parse_date_formats(text: str, expected: date) -> None:
    """Every supported format gives the date as written."""
    assert expected.toordinal() == parse_date(text)


@pytest.mark.parametrize(
    "text",
    ["------", "0000-00-00", "2024-02-30", "13/01/2024", "yesterday", "16-XYZ-24", "1850-01-01"],
)
def test_parse_date_unparseable(text: str) -> None:
    """Unknown markers, impossible dates and free text are present but unparseable."""
    assert parse_date(text) == UNPARSEABLE


@pytest.mark.parametrize("text", [None, "", "   "])
def test_parse_date_missing(text: str | None) -> None:
    """An absent or blank field is missing, not unparseable."""
    assert parse_date(text) is None


def test_two_digit_year_pivot() -> None:
    """Two-digit years 00-68 are 2000s and 69-99 are 1900s."""
    assert date(2068, 1, 1).toordinal() == parse_date("01/01/68")
    assert date(1969, 1, 1).toordinal() == parse_date("01/01/69")


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-16Z",
        "2024-03-16+05:00",
        "2024-03-16-05:00",
        "2024-03-16+0530",
        "2024-03-16 10:30",
        "2024-03-16T10:30:15.123456Z",
        "2024-03-16 00:00:00,0",
        "2024-03-16T23:59:60Z",
        "2024-03-16+14:00",
        "2024-03-16-1400",
    ],
)
def test_parse_xml_schema_dates_with_zone(text: str) -> None:
    """xs:date with a zone and xs:dateTime forms give the date as written."""
    assert date(2024, 3, 16).toordinal() == parse_date(text)


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-16 junk",
        "2024-03-16T25:00:00",
        "2024-03-16T10:60:00",
        "2024-03-16T10:30:61",
        "2024-03-16T24:30:00",
        "2024-03-16+15:00",
        "2024-03-16+14:01",
        "2024-03-16-1459",
        "2024-03-16T10",
        "2024-03-16X",
    ],
)
def test_parse_iso_date_trailing_junk_invalid(text: str) -> None:
    """A date followed by text that is no valid time or zone is present but unparseable."""
    assert parse_date(text) == UNPARSEABLE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-16T24:00:00", date(2024, 3, 17)),
        ("2021-12-31T24:00:00Z", date(2022, 1, 1)),
        ("2024-02-28T24:00", date(2024, 2, 29)),
    ],
)
def test_parse_end_of_day_is_next_day(text: str, expected: date) -> None:
    """24:00 is the next day's midnight, so the date moves forward by one."""
    assert expected.toordinal() == parse_date(text)


@pytest.mark.parametrize(
    "text",
    [
        "\u0662\u0660\u0662\u0661-\u0660\u0661-\u0660\u0661",
        "\uff12\uff10\uff12\uff11-01-01",
        "\uff12\uff10\uff12\uff11\uff10\uff11\uff10\uff11",
        "\u0660\u0661/01/2021",
        "\u0660\u0661-JAN-21",
        "\u0662\u0660AG21",
    ],
)
def test_parse_date_non_ascii_digits_invalid(text: str) -> None:
    """Digits of other scripts (Arabic-Indic, fullwidth) make a date unparseable."""
    assert parse_date(text) == UNPARSEABLE
