"""Plain records the readers produce from any supported XML shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from evidence_features._drugs import DrugInfo

__all__ = ["MibRecord", "MibReport", "RxFill", "RxReport"]


class MibRecord(NamedTuple):
    """One MIB reply record: an earlier report by one member company (a NamedTuple for speed).

    `date` is a date ordinal, `UNPARSEABLE` (0) for a present but unknown or invalid date, or
    None when absent. `date_text` is the stripped date text when `date` is `UNPARSEABLE` and
    None otherwise, so that de-duplication merges two unreadable dates only when their texts
    are identical. `reply` is "HIT", "TRY" or None when the shape carries no match type.
    """

    date: int | None
    company: str | None
    codes: tuple[str, ...]
    reply: str | None
    bmi: float | None
    date_text: str | None


@dataclass(slots=True)
class MibReport:
    """All records of one MIB document plus document-level fields.

    `unparseable_dates` counts document-level date fields only (every `TransExeDate`), because
    the feature code counts record dates after de-duplication. `implausible_values` counts
    numeric values read as missing, and `empty_records` counts record elements skipped because
    they carry no data. `vendor_error` describes, in this library's words, the error that a reply
    with records reports (see `_replies`), and is None when it reports none.
    """

    records: list[MibRecord] = field(default_factory=list)
    document_date: int | None = None
    iai_inquiries: int | None = None
    extra_bmi: list[float] = field(default_factory=list)
    unparseable_dates: int = 0
    implausible_values: int = 0
    empty_records: int = 0
    recognised: bool = False
    vendor_error: str | None = None


class RxFill(NamedTuple):
    """One dispensed prescription (a NamedTuple for speed).

    `date` and `date_text` follow the `MibRecord` convention. Quantity and days supply are None
    when missing or unreadable. `prescriber`, `pharmacy` and `specialty` are normalised keys.
    `written_date` follows the `date` convention and is read only to count unparseable dates.
    """

    drug: DrugInfo
    drug_key: str | None
    date: int | None
    quantity: float | None
    days_supply: float | None
    strength_text: str | None
    prescriber: str | None
    pharmacy: str | None
    specialty: str | None
    date_text: str | None
    written_date: int | None


@dataclass(slots=True)
class RxReport:
    """All fills of one Rx document plus document-level fields.

    `eligibility` is None when the report has no eligibility block, else a list of
    `(begin, end)` ordinals where None means open-ended. `unparseable_dates` counts
    document-level date fields only: every report, order and eligibility date outside a fill.
    `implausible_values` and `empty_records` count as in `MibReport`, over the fills before
    de-duplication. `vendor_error` is as in `MibReport`.
    """

    fills: list[RxFill] = field(default_factory=list)
    document_date: int | None = None
    eligibility: list[tuple[int | None, int | None]] | None = None
    vendor_score: float | None = None
    unparseable_dates: int = 0
    implausible_values: int = 0
    empty_records: int = 0
    recognised: bool = False
    vendor_error: str | None = None
