"""The result types of feature extraction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from evidence_features._spec import FEATURE_NAMES
from evidence_features.errors import DocumentKind

__all__ = ["WARNING_GUIDE", "WARNING_KINDS", "FeatureVector", "FeatureWarning", "WarningGuide"]


@dataclass(frozen=True, slots=True)
class WarningGuide:
    """The meaning of one warning kind for the score, and the action it calls for."""

    meaning: str
    action: str


WARNING_GUIDE: dict[str, WarningGuide] = {
    "empty_document": WarningGuide(
        "The document was blank, a bare XML declaration or an empty root such as `<r/>`; it "
        "adds no evidence.",
        "Check that the report was ordered and came back whole; a clean score rests on no "
        "data from this report.",
    ),
    "empty_record": WarningGuide(
        "A fill or MIB record element held no data and was not counted as a record.",
        "None for a few; many point to a vendor format change, so check the report.",
    ),
    "encoding_recovered": WarningGuide(
        "The bytes did not match the declared encoding and were read as ISO-8859-1.",
        "None for the score; tell the sender to declare the encoding it uses.",
    ),
    "future_dated": WarningGuide(
        "Records dated after the as-of date (plus one day) are counted in totals but left "
        "out of windows, recency and spans.",
        "Check the record dates and the as-of date; a mistyped year hides recent evidence.",
    ),
    "future_document_date": WarningGuide(
        "The report date is after tomorrow (UTC), so it was not used as the as-of date.",
        "Check the report date with the vendor; the score used the next date in order.",
    ),
    "implausible_document_date": WarningGuide(
        "The report date is before 1998-02-10, or more than a day before at least two, and "
        "most, of the report's own records, so it was not used as the as-of date.",
        "Check the report date with the vendor; the score used the other report's date or the "
        "evidence dates instead.",
    ),
    "implausible_value": WarningGuide(
        "A numeric field (Rx quantity, days supply, opioid strength or vendor score; MIB "
        "height, weight or BMI, or a BMI computed out of range) was unreadable or outside its "
        "plausible range and was read as missing.",
        "None for a few; features that need the value do without it, and a stated BMI falls "
        "back to height and weight.",
    ),
    "missing_document": WarningGuide(
        "No document was passed (null), so that report adds no evidence.",
        "Score again with the report if it was ordered; a low score without it is not a "
        "clean result.",
    ),
    "parse_error": WarningGuide(
        "Lenient batch mode only: the document could not be read and its "
        "`META_*_PARSE_ERROR` column is 1.",
        "Leave the row out of training or fix the document; serving rejects such documents.",
    ),
    "partial_error_reply": WarningGuide(
        "The vendor reply reported an error but carried records, which were scored.",
        "Order the report again before relying on a low score; it may be incomplete.",
    ),
    "undated_record": WarningGuide(
        "A record's date was missing, unknown (`------`) or unreadable (then "
        "`unparseable_date` is raised too); it counts in totals but in no window or recency "
        "feature.",
        "None for a few; many undated records weaken the time-based features.",
    ),
    "unknown_drug": WarningGuide(
        "A drug name is not in the class table; the fill counts in totals but in no class.",
        "Report the name to the maintainers of the class table if it recurs.",
    ),
    "unparseable_date": WarningGuide(
        "A date was present but in no supported format; the record is treated as undated.",
        "Check the date format with the vendor if it recurs.",
    ),
    "unrecognized_document": WarningGuide(
        "The document had content but no known report element, so it adds no evidence.",
        "Check that the right report was sent in this field; a clean score rests on no data "
        "from it.",
    ),
}
"""Every `FeatureWarning.kind` the library emits, with its meaning and recommended action."""

WARNING_KINDS = tuple(sorted(WARNING_GUIDE))
"""Every `FeatureWarning.kind` the library emits, in alphabetical order."""


@dataclass(frozen=True, slots=True)
class FeatureWarning:
    """Something noteworthy met while reading one document, counted, never with its content.

    Kinds: `WARNING_GUIDE` gives the meaning and recommended action of each.

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
