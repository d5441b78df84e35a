"""The as-of date, look-back windows and the date handling every feature group shares."""

from __future__ import annotations

from evidence_features._dates import UNPARSEABLE

__all__ = [
    "DAYS_6M",
    "DAYS_12M",
    "DAYS_24M",
    "DAYS_60M",
    "MAX_RECENCY_DAYS",
    "DateClass",
    "classify_date",
]

DAYS_6M = 183
DAYS_12M = 365
DAYS_24M = 730
DAYS_60M = 1826
MAX_RECENCY_DAYS = 3650
"""Cap and default of every `*_DAYS_SINCE_*` feature, beyond the 7-year look-back."""


class DateClass:
    """Outcomes of `classify_date` other than a usable ordinal."""

    MISSING = -1
    UNPARSEABLE = -2
    FUTURE = -3


def classify_date(ordinal: int | None, as_of: int) -> int:
    """Map a record date to the ordinal the window features use, or a `DateClass` outcome.

    A date up to one day after the as-of date is treated as the as-of date, which absorbs
    time-zone shifts around midnight. Later dates are future-dated and kept out of windows and
    recency.
    """
    if ordinal is None:
        return DateClass.MISSING
    if ordinal == UNPARSEABLE:
        return DateClass.UNPARSEABLE
    if ordinal > as_of + 1:
        return DateClass.FUTURE
    return min(ordinal, as_of)
