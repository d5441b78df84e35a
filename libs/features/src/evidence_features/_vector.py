"""The result types of feature extraction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from evidence_features._spec import FEATURE_NAMES
from evidence_features.errors import DocumentKind

__all__ = ["WARNING_KINDS", "FeatureVector", "FeatureWarning"]

WARNING_KINDS = (
    "empty_document",
    "empty_record",
    "encoding_recovered",
    "future_dated",
    "future_document_date",
    "implausible_document_date",
    "implausible_value",
    "missing_document",
    "parse_error",
    "partial_error_reply",
    "undated_record",
    "unknown_drug",
    "unparseable_date",
    "unrecognized_document",
)
"""Every `FeatureWarning.kind` the library emits."""


@dataclass(frozen=True, slots=True)
class FeatureWarning:
    """Something noteworthy met while reading one document, counted, never with its content.

    Kinds (see `WARNING_KINDS`): `missing_document` (None was passed), `empty_document` (blank
    input, a bare XML declaration or an empty root such as `<r/>`), `unrecognized_document`
    (content, but no known report element), `encoding_recovered` (bytes re-read as
    ISO-8859-1), `undated_record`, `unparseable_date`, `future_dated`, `future_document_date`
    (a document date after tomorrow in UTC, not used as the as-of date),
    `implausible_document_date` (a document date before 1998-02-10, or more than one day
    before at least two and most records of its document, not used as the as-of date),
    `unknown_drug`,
    `implausible_value` (a numeric field that is not a readable number or lies outside its
    plausible range, read as missing), `empty_record` (a fill or MIB record element without
    any data, not counted as a record), `partial_error_reply` (a vendor reply that reports an
    error but carries records, which were scored although the report may be incomplete) and,
    in lenient batch mode only, `parse_error`.

    `message` is a sentence in the library's own words, never text from the document. Only
    `partial_error_reply` sets it, naming the error element and, for an ACORD `ResultCode`,
    the numeric code. Every other kind leaves it empty.
    """

    kind: str
    document: DocumentKind
    count: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """The 105 features of one MIB and Rx pair.

    `values` is a read-only float64 array in `FEATURE_NAMES` order; `as_of` is the date the
    windows were counted back from.
    """

    values: npt.NDArray[np.float64]
    warnings: tuple[FeatureWarning, ...]
    as_of: date

    def as_dict(self) -> dict[str, float]:
        """Return the features as a name-to-value mapping in spec order."""
        return dict(zip(FEATURE_NAMES, self.values.tolist(), strict=True))
