"""The as-of date of a pair when the caller passes none, and the document dates it skips.

The as-of date is the latest usable document date (MIB `TransExeDate`, Rx `ReportDate` or
`OrderDate`), else the latest record date in either document, else today in UTC. A document
date that cannot be the day its report was made is skipped with a warning, because as the
as-of date it would move real records out of the look-back windows, or mark them future-dated,
without an error.

Two steps apply the rules. `first_as_of` skips document dates after tomorrow or before
`EARLIEST_DOCUMENT_DATE`. After the feature pass, `skip_early_document_dates` skips a document
date more than one day before at least two records, and most records, of its own document.
The feature pass counts the records after the as-of date, so the typical pair needs no further
pass over its records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from operator import attrgetter

from evidence_features._records import MibRecord, MibReport, RxFill, RxReport
from evidence_features.errors import DocumentKind

__all__ = ["EARLIEST_DOCUMENT_DATE", "first_as_of", "skip_early_document_dates", "utc_today"]

EARLIEST_DOCUMENT_DATE = date(1998, 2, 10)
"""The day XML 1.0 became a W3C Recommendation (REC-xml-19980210).

Both report formats are XML, so a report cannot have been made before this day. Earlier
document dates are placeholders such as 1900-01-01 or 1970-01-01, or a wrong century such as
1924 for 2024. Dates before 1900 already read as unparseable in `_dates`.
"""

_EARLIEST_DOCUMENT_ORDINAL = EARLIEST_DOCUMENT_DATE.toordinal()
_RECORD_DATE = attrgetter("date")
# A single record after its report may be a typo of the record itself, which the windows count
# as future-dated, so one record never outweighs the document date.
_MIN_LATER_RECORDS = 2
_WarningCounts = dict[tuple[str, DocumentKind], int]


def utc_today() -> int:
    """Return today's date in UTC as an ordinal."""
    return datetime.now(UTC).date().toordinal()


def _reports(
    mib: MibReport | None, rx: RxReport | None
) -> Iterable[tuple[DocumentKind, MibReport | RxReport]]:
    if mib is not None:
        yield "MIB", mib
    if rx is not None:
        yield "RX", rx


def _records(report: MibReport | RxReport) -> list[MibRecord] | list[RxFill]:
    return report.records if isinstance(report, MibReport) else report.fills


def _latest_record_date(records: Iterable[MibRecord | RxFill], latest_allowed: int) -> int | None:
    # map, filter and max run in C. Absent (None) and unparseable (0) dates are falsy and drop
    # out.
    latest = max(filter(None, map(_RECORD_DATE, records)), default=None)
    if latest is None or latest <= latest_allowed:
        return latest
    # A record dated after tomorrow is future-dated, a typo, so it cannot date the report.
    # Only reports with such a record take this second pass.
    dates = filter(None, map(_RECORD_DATE, records))
    return max((day for day in dates if day <= latest_allowed), default=None)


def _latest_evidence(mib: MibReport | None, rx: RxReport | None, today: int) -> int:
    latest = [
        day
        for _, report in _reports(mib, rx)
        if (day := _latest_record_date(_records(report), today + 1)) is not None
    ]
    return max(latest) if latest else today


def _date_problem(document_date: int, today: int) -> str | None:
    if document_date > today + 1:
        # A date after tomorrow in UTC is a typo (a wrong year or century). One day of slack
        # covers time zones ahead of UTC.
        return "future_document_date"
    if document_date < _EARLIEST_DOCUMENT_ORDINAL:
        return "implausible_document_date"
    return None


def first_as_of(
    mib: MibReport | None, rx: RxReport | None, today: int, warnings: _WarningCounts
) -> int:
    """Return the as-of ordinal the feature pass starts from, and warn for each date it skips.

    That is the latest document date that is neither after tomorrow in UTC
    (`future_document_date`) nor before `EARLIEST_DOCUMENT_DATE` (`implausible_document_date`),
    else the latest record date on or before tomorrow, else `today`.
    """
    # NOTE: the future-date check depends on today, so a document dated a few days ahead gets
    # another as-of date once that day has passed. Callers that need the same vector on every
    # run, as training does, pass as_of.
    document_dates: list[int] = []
    for document, report in _reports(mib, rx):
        if not report.document_date:
            continue
        problem = _date_problem(report.document_date, today)
        if problem is None:
            document_dates.append(report.document_date)
        else:
            warnings[(problem, document)] = 1
    if document_dates:
        return max(document_dates)
    return _latest_evidence(mib, rx, today)


def _mostly_later(
    records: Iterable[MibRecord | RxFill], document_date: int, latest_allowed: int
) -> bool:
    # Records dated after `latest_allowed` are future-dated typos and do not count.
    dates = [day for day in filter(None, map(_RECORD_DATE, records)) if day <= latest_allowed]
    later = sum(1 for day in dates if day > document_date + 1)
    return later >= _MIN_LATER_RECORDS and later * 2 > len(dates)


def skip_early_document_dates(
    as_of: int,
    mib: MibReport | None,
    rx: RxReport | None,
    future_records: Mapping[DocumentKind, int],
    today: int,
    warnings: _WarningCounts,
) -> int:
    """Skip each document date more than one day before most records of its document.

    A report lists records made on or before the day it was made. When at least two, and more
    than half, of its dated records come more than one day later, the document date is the
    typo, such as a wrong year. Otherwise those records are the typos and stay future-dated.
    The day of slack matches the one the windows allow a record after the as-of date
    (`classify_date`). Records after tomorrow in UTC do not count.

    Args:
        as_of: The ordinal `first_as_of` returned, which the feature pass used.
        mib: The MIB report, or None.
        rx: The Rx report, or None.
        future_records: Per document, the records the feature pass found more than one day
            after `as_of`.
        today: The ordinal `first_as_of` was given.
        warnings: Receives `implausible_document_date` for each date skipped here.

    Returns:
        `as_of` when it still holds, else the latest of the kept document dates and, for each
        skipped date, its document's latest record date.
    """
    # NOTE: a wrong document date that precedes one record, or half of the records or fewer,
    # such as a wrong month, is kept. Those records then leave the windows, but they are
    # future-dated and raise `future_dated`.
    kept: list[int] = []
    skipped = False
    for document, report in _reports(mib, rx):
        day = report.document_date
        if not day or _date_problem(day, today) is not None:
            continue
        if day == as_of and not future_records[document]:
            # No record comes more than one day after the as-of date, which is this date.
            kept.append(day)
        elif _mostly_later(_records(report), day, today + 1):
            warnings[("implausible_document_date", document)] = 1
            skipped = True
            # The records showed the date to be too early, so the as-of date must not fall
            # before them: the other document's date alone would push them out of the windows.
            latest = _latest_record_date(_records(report), today + 1)
            if latest is not None:
                kept.append(latest)
        else:
            kept.append(day)
    if not skipped:
        return as_of
    return max(kept) if kept else _latest_evidence(mib, rx, today)
