"""Feature extraction for one pair or a batch; both run `_compute_row`."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal, overload

import numpy as np
import numpy.typing as npt
from lxml import etree

from evidence_features._as_of import first_as_of, skip_early_document_dates, utc_today
from evidence_features._codemap import CodeMap, load_code_map
from evidence_features._combined import fill_combined_features, rx_coverage_days
from evidence_features._drugs import DrugCatalog, load_drug_catalog
from evidence_features._mib import read_mib_report
from evidence_features._mib_features import MibSummary, fill_mib_features
from evidence_features._records import MibReport, RxReport
from evidence_features._replies import partial_error_message
from evidence_features._rx import read_rx_report
from evidence_features._rx_features import RxSummary, fill_rx_features
from evidence_features._spec import FEATURE_NAMES, FEATURE_SPEC
from evidence_features._vector import FeatureVector, FeatureWarning
from evidence_features._xml import ParseLimits, parse_document
from evidence_features.errors import DocumentError, DocumentKind, MalformedDocumentError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Document", "extract_batch", "extract_features"]

Document = bytes | str | None
"""One evidence document as the caller has it: raw bytes (preferred), text, or None."""

_I = {name: index for index, name in enumerate(FEATURE_NAMES)}
_DEFAULTS = [spec.default for spec in FEATURE_SPEC]
_DEFAULT_LIMITS = ParseLimits()
_WarningCounts = dict[tuple[str, DocumentKind], int]
_WarningMessages = dict[tuple[str, DocumentKind], str]


def _resolve_code_map(code_map: object) -> CodeMap:
    if code_map is None or isinstance(code_map, CodeMap):
        return code_map or load_code_map()
    if isinstance(code_map, str | os.PathLike):
        return load_code_map(code_map)
    msg = f"code_map must be a CodeMap, a path or None, got {type(code_map).__name__}"
    raise TypeError(msg)


def _as_ordinal(as_of: object) -> int | None:
    if as_of is None:
        return None
    if isinstance(as_of, datetime):
        return as_of.date().toordinal()
    if isinstance(as_of, date):
        return as_of.toordinal()
    msg = f"as_of must be a datetime.date or None, got {type(as_of).__name__}"
    raise TypeError(msg)


# Root elements that identify one report type beyond doubt. `Response` is left out because the
# flat legacy MIB shape uses it and other vendors might too.
_ROOTS: dict[DocumentKind, frozenset[str]] = {
    "MIB": frozenset({"TXLife", "MIBResponse"}),
    "RX": frozenset({"IntelRX", "IntelRXResponse", "RxHistoryResponse"}),
}
_OTHER: dict[DocumentKind, DocumentKind] = {"MIB": "RX", "RX": "MIB"}


def _is_other_report(root: etree._Element, document: DocumentKind) -> bool:
    tag = root.tag
    if not isinstance(tag, str):
        return False
    return etree.QName(tag).localname in _ROOTS[_OTHER[document]]


def _parse(
    data: Document,
    document: DocumentKind,
    limits: ParseLimits,
    lenient: bool,
    warnings: _WarningCounts,
) -> tuple[etree._Element | None, bool]:
    """Parse one document; return (root or None, parse failed)."""
    if data is None:
        warnings[("missing_document", document)] = 1
        return None, False
    try:
        root, recovered = parse_document(data, document, limits)
    except DocumentError:
        if not lenient:
            raise
        warnings[("parse_error", document)] = 1
        return None, True
    if recovered:
        warnings[("encoding_recovered", document)] = 1
    if root is not None and _is_other_report(root, document):
        # Swapped documents would otherwise score as "no evidence" with HTTP 200, which reads
        # as a clean applicant. Only roots that name the other report type are rejected.
        msg = (
            f"{document} document: root element <{etree.QName(root).localname}> belongs to "
            f"{_OTHER[document]} reports; check that the MIB and Rx documents are not swapped"
        )
        if not lenient:
            raise MalformedDocumentError(document, msg)
        warnings[("parse_error", document)] = 1
        return None, True
    if root is None or (len(root) == 0 and not (root.text or "").strip()):
        warnings[("empty_document", document)] = 1
        return None, False
    return root, False


def _reader_failed(warnings: _WarningCounts, document: DocumentKind) -> bool:
    # A reader raises for an error reply that keeps the outline of a report. Lenient batches
    # record it like a parse failure, and the document's features keep their defaults.
    warnings[("parse_error", document)] = 1
    return True


def _count(warnings: _WarningCounts, kind: str, document: DocumentKind, count: int) -> None:
    if count:
        warnings[(kind, document)] = warnings.get((kind, document), 0) + count


def _fill_features(
    values: list[float],
    mib: MibReport | None,
    rx: RxReport | None,
    day: int,
    code_map: CodeMap,
    catalog: DrugCatalog,
) -> tuple[MibSummary | None, RxSummary | None]:
    mib_summary = rx_summary = None
    if mib is not None:
        mib_summary = fill_mib_features(values, mib, day, code_map)
    if rx is not None:
        rx_summary = fill_rx_features(values, rx, day, catalog)
        values[_I["META_RX_COVERAGE_DAYS"]] = rx_coverage_days(rx.eligibility, day)
    return mib_summary, rx_summary


def _fill_documents(
    values: list[float],
    mib: MibReport | None,
    rx: RxReport | None,
    as_of: int | None,
    code_map: CodeMap,
    catalog: DrugCatalog,
    warnings: _WarningCounts,
) -> tuple[int, MibSummary | None, RxSummary | None]:
    """Resolve the as-of date, write the MIB and Rx features, and return it with the summaries."""
    if as_of is not None:
        return as_of, *_fill_features(values, mib, rx, as_of, code_map, catalog)
    today = utc_today()
    day = first_as_of(mib, rx, today, warnings)
    mib_summary, rx_summary = _fill_features(values, mib, rx, day, code_map, catalog)
    # The feature pass counts the records more than one day after the as-of date. Without
    # any, a document dated on the as-of date passes the record check with no further pass.
    future: dict[DocumentKind, int] = {
        "MIB": mib_summary.future if mib_summary else 0,
        "RX": rx_summary.future if rx_summary else 0,
    }
    checked = skip_early_document_dates(day, mib, rx, future, today, warnings)
    if checked == day:
        return day, mib_summary, rx_summary
    # A skipped document date had set the as-of date, so every feature is computed again.
    values[:] = _DEFAULTS
    return checked, *_fill_features(values, mib, rx, checked, code_map, catalog)


def _compute_row(
    mib_xml: Document,
    rx_xml: Document,
    as_of: int | None,
    limits: ParseLimits,
    code_map: CodeMap,
    catalog: DrugCatalog,
    lenient: bool,
) -> tuple[list[float], _WarningCounts, _WarningMessages, int]:
    warnings: _WarningCounts = {}
    messages: _WarningMessages = {}
    mib_root, mib_failed = _parse(mib_xml, "MIB", limits, lenient, warnings)
    rx_root, rx_failed = _parse(rx_xml, "RX", limits, lenient, warnings)
    mib = rx = None
    if mib_root is not None:
        try:
            mib = read_mib_report(mib_root)
        except DocumentError:
            if not lenient:
                raise
            mib_failed = _reader_failed(warnings, "MIB")
    if rx_root is not None:
        try:
            rx = read_rx_report(rx_root, catalog)
        except DocumentError:
            if not lenient:
                raise
            rx_failed = _reader_failed(warnings, "RX")
    reports: tuple[tuple[MibReport | RxReport | None, DocumentKind], ...] = (
        (mib, "MIB"),
        (rx, "RX"),
    )
    for report, document in reports:
        if report is None:
            continue
        if not report.recognised:
            warnings[("unrecognized_document", document)] = 1
        if report.vendor_error is not None:
            # The records are scored, because they are evidence the vendor did return, but a
            # partial failure may have left records out.
            warnings[("partial_error_reply", document)] = 1
            messages[("partial_error_reply", document)] = partial_error_message(
                document, report.vendor_error
            )
    values = list(_DEFAULTS)
    day, mib_summary, rx_summary = _fill_documents(
        values, mib, rx, as_of, code_map, catalog, warnings
    )
    future = unparseable = 0
    if mib is not None and mib_summary is not None:
        _count(warnings, "undated_record", "MIB", mib_summary.undated)
        _count(warnings, "future_dated", "MIB", mib_summary.future)
        _count(warnings, "unparseable_date", "MIB", mib_summary.unparseable + mib.unparseable_dates)
        _count(warnings, "implausible_value", "MIB", mib.implausible_values)
        _count(warnings, "empty_record", "MIB", mib.empty_records)
        future += mib_summary.future
        unparseable += mib_summary.unparseable + mib.unparseable_dates
    if rx is not None and rx_summary is not None:
        _count(warnings, "undated_record", "RX", rx_summary.undated)
        _count(warnings, "future_dated", "RX", rx_summary.future)
        _count(warnings, "unparseable_date", "RX", rx_summary.unparseable + rx.unparseable_dates)
        _count(warnings, "unknown_drug", "RX", rx_summary.unknown_drugs)
        _count(warnings, "implausible_value", "RX", rx.implausible_values)
        _count(warnings, "empty_record", "RX", rx.empty_records)
        future += rx_summary.future
        unparseable += rx_summary.unparseable + rx.unparseable_dates
    values[_I["META_MIB_PARSE_ERROR"]] = float(mib_failed)
    values[_I["META_RX_PARSE_ERROR"]] = float(rx_failed)
    values[_I["META_FUTURE_DATED_RECORDS"]] = future
    values[_I["META_UNPARSEABLE_DATES"]] = unparseable
    fill_combined_features(values)
    # A NaN or infinity anywhere makes the sum non-finite, so one C-level sum skips the
    # per-value check for ordinary vectors.
    if not math.isfinite(sum(values)):
        for index, value in enumerate(values):
            if not math.isfinite(value):
                # NOTE: unreachable with the shipped readers, which drop NaN and infinity;
                # kept so a future feature bug yields its default instead of an invalid vector.
                values[index] = _DEFAULTS[index]  # pragma: no cover
    return values, warnings, messages, day


def _warning_tuple(
    warnings: _WarningCounts, messages: _WarningMessages
) -> tuple[FeatureWarning, ...]:
    return tuple(
        FeatureWarning(kind, document, count, messages.get((kind, document), ""))
        for (kind, document), count in sorted(warnings.items())
    )


def extract_features(
    mib_xml: Document,
    rx_xml: Document,
    *,
    as_of: date | None = None,
    limits: ParseLimits | None = None,
    code_map: CodeMap | str | os.PathLike[str] | None = None,
) -> FeatureVector:
    """Compute the 105 features of one MIB and Rx pair.

    Args:
        mib_xml: The MIB reply (bytes preferred, so the declared encoding is honoured), or None.
        rx_xml: The prescription-history report, or None.
        as_of: The date windows count back from. Default: the latest document date (MIB
            `TransExeDate`, Rx `ReportDate`), else the latest evidence date, else today (UTC).
            A document date after tomorrow, before 1998-02-10, or more than one day before
            at least two and most records of its document is skipped with a warning.
        limits: Byte, depth and element caps; default `ParseLimits()`.
        code_map: The MIB code map, or a path to a TOML map; default the shipped synthetic map.

    Returns:
        The feature vector with its warnings and the as-of date used. A vendor error reply
        that carries records is scored, with a `partial_error_reply` warning.

    Raises:
        MalformedDocumentError: A document is not well-formed XML, is an HTML page, or is a
            vendor error reply (an error root element, a failed ACORD `ResultCode` or an Rx
            `<Result>` that reports neither a hit nor a no-hit, each without records), or
            yields no record although it holds records the readers cannot read (a record name
            in another case, an Rx fill field outside any fill, an MIB `RecordsFound` of 1 or
            more).
        HostileDocumentError: A document declares a DOCTYPE or entities.
        DocumentTooLargeError: A document exceeds `limits`.
        TypeError: An argument has the wrong type.
    """
    values, warnings, messages, day = _compute_row(
        mib_xml,
        rx_xml,
        _as_ordinal(as_of),
        limits or _DEFAULT_LIMITS,
        _resolve_code_map(code_map),
        load_drug_catalog(),
        lenient=False,
    )
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return FeatureVector(array, _warning_tuple(warnings, messages), date.fromordinal(day))


@overload
def extract_batch(
    pairs: Iterable[tuple[Document, Document]],
    *,
    as_of: date | Sequence[date | None] | None = ...,
    lenient: bool = ...,
    as_frame: Literal[False] = ...,
    limits: ParseLimits | None = ...,
    code_map: CodeMap | str | os.PathLike[str] | None = ...,
) -> npt.NDArray[np.float64]: ...


@overload
def extract_batch(
    pairs: Iterable[tuple[Document, Document]],
    *,
    as_of: date | Sequence[date | None] | None = ...,
    lenient: bool = ...,
    as_frame: Literal[True],
    limits: ParseLimits | None = ...,
    code_map: CodeMap | str | os.PathLike[str] | None = ...,
) -> pd.DataFrame: ...


def extract_batch(
    pairs: Iterable[tuple[Document, Document]],
    *,
    as_of: date | Sequence[date | None] | None = None,
    lenient: bool = False,
    as_frame: bool = False,
    limits: ParseLimits | None = None,
    code_map: CodeMap | str | os.PathLike[str] | None = None,
) -> npt.NDArray[np.float64] | pd.DataFrame:
    """Compute features for many pairs with the same code as `extract_features`.

    Args:
        pairs: `(mib_xml, rx_xml)` tuples.
        as_of: One date for every pair, one date (or None) per pair, or None.
        lenient: For bulk training data only: a malformed or hostile document sets its
            `META_*_PARSE_ERROR` column to 1 and takes default features instead of raising.
            Serving must keep the default strict mode.
        as_frame: Return a pandas DataFrame with `FEATURE_NAMES` columns instead of an array.
        limits: Byte, depth and element caps; default `ParseLimits()`.
        code_map: The MIB code map or a path to one; default the shipped synthetic map.

    Returns:
        A float64 array of shape (n, 105), or the DataFrame.

    Raises:
        DocumentError: In strict mode, the first document that cannot be used.
        ValueError: `as_of` is a sequence whose length differs from the number of pairs.
    """
    pair_list = list(pairs)
    if as_of is None or isinstance(as_of, date):
        days: list[int | None] = [_as_ordinal(as_of)] * len(pair_list)
    else:
        days = [_as_ordinal(item) for item in as_of]
        if len(days) != len(pair_list):
            msg = f"as_of has {len(days)} dates for {len(pair_list)} pairs; pass one per pair"
            raise ValueError(msg)
    resolved_limits = limits or _DEFAULT_LIMITS
    resolved_map = _resolve_code_map(code_map)
    catalog = load_drug_catalog()
    matrix = np.empty((len(pair_list), len(FEATURE_NAMES)), dtype=np.float64)
    for row, ((mib_xml, rx_xml), day) in enumerate(zip(pair_list, days, strict=True)):
        values, _, _, _ = _compute_row(
            mib_xml, rx_xml, day, resolved_limits, resolved_map, catalog, lenient
        )
        matrix[row] = values
    if not as_frame:
        return matrix
    import pandas as pd

    return pd.DataFrame(matrix, columns=list(FEATURE_NAMES))
