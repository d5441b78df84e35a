"""Recognise vendor error replies that keep the outline of a report.

`_xml.py` rejects a document whose root element is an error (`Error`, `Fault`, a SOAP fault).
Vendors also reply with a report whose elements carry an error instead of evidence. Three
shapes are recognised: an ACORD `TransResult` whose `ResultCode` is not a success, an Rx
`<Result>` with error text instead of a hit or no-hit, and an `<Error>` element at the top of
the report. Scored as a report, such a reply has no records and looks like a clean applicant, so
a vendor outage would come back as a low risk. The readers reject it with
`MalformedDocumentError` when it carries no records.

A reply that reports an error but still carries records is scored, because those records are
evidence the vendor did return, and they can only raise the risk above that of an applicant
without evidence. A partial failure may have left records out, so the reader stores the finding
on the report and extraction raises the `partial_error_reply` warning with
`partial_error_message`.
"""

from __future__ import annotations

import re
from typing import Literal

from lxml import etree

from evidence_features._xml import local_name
from evidence_features.errors import DocumentKind, MalformedDocumentError

__all__ = [
    "ERROR_NAMES",
    "ERROR_TAGS",
    "acord_result_failure",
    "check_reply_error",
    "error_reply",
    "is_error_element",
    "partial_error_message",
    "rx_result_answer",
]

ERROR_NAMES = frozenset({"Error", "Errors"})
ERROR_TAGS = tuple(f"{{*}}{name}" for name in sorted(ERROR_NAMES))

# ACORD type code list RESULT_CODES (OLI_LU_RESULTCODE), used by TransResult/ResultCode:
# 1 RESULT_SUCCESS, 2 RESULT_SUCCESSINFO ("processed successfully" with information returned),
# 3 RESULT_RECDPEND and 4 RESULT_RECDPENDINFO ("received pending": not processed yet),
# 5 RESULT_FAILURE ("the transaction was not processed"). Source: the ACORD Life model
# viewer, modelviewers.pilotfishtechnology.com/modelviewers/ACORD/model/typecodes/
# RESULT_CODES.html. Only 1 and 2 mean the vendor processed the inquiry, so any other code,
# including a vendor extension code, means the reply carries no evidence.
_SUCCESS_CODES = frozenset({"1", "2"})
_KNOWN_FAILURES = {
    "3": "Received Pending (tc 3)",
    "4": "Received Pending with information (tc 4)",
    "5": "Failure (tc 5)",
}
# The wordings of a hit and of a no-hit that an Rx `<Result>` may carry, with everything but
# letters and digits removed. The lists are generous, because rejecting one vendor's wording
# would reject every clean applicant of that vendor. Any other text counts as an error.
_RX_HITS = frozenset(
    {"HIT", "HITS", "HITFOUND", "FOUND", "MATCH", "MATCHFOUND", "RECORDFOUND", "RECORDSFOUND"}
)
_RX_NO_HITS = frozenset(
    {
        "NOHIT", "NOHITS", "NOHITFOUND", "NOTFOUND", "NOMATCH", "NOMATCHFOUND", "NORECORD",
        "NORECORDS", "NORECORDFOUND", "NORECORDSFOUND", "NODATA", "NODATAFOUND", "NOTHINGFOUND",
        "NOHISTORY", "NOHISTORYFOUND",
    }
)  # fmt: skip
_RESULT_SEPARATORS = re.compile(r"[\W_]+")
# A `tc` value that messages may repeat. ACORD type codes are integers, and 10 digits admit
# vendor extension codes such as 1000500001. Any other value could be free text from the
# document, which may contain health data.
_NUMERIC_TC = re.compile(r"[0-9]{1,10}")


def error_reply(document: DocumentKind, finding: str) -> MalformedDocumentError:
    """Build the error for a reply that reports a vendor error instead of evidence.

    `finding` must come from this library's own wording, never from the document, because the
    error text of a reply may contain anything, including health data.
    """
    msg = (
        f"{document} document is an error reply, not an evidence report: {finding}; the "
        "vendor could not produce the report, so request it again"
    )
    return MalformedDocumentError(document, msg)


def check_reply_error(
    document: DocumentKind, finding: str | None, records: str, has_records: bool
) -> str | None:
    """Raise `error_reply` for a reply without records that reports an error, else return `finding`.

    `finding` describes the error in this library's words, such as "it has an <Error> element",
    or is None when the reply reports no error. `records` names the records in the message
    ("records", "fills").
    """
    if finding is not None and not has_records:
        raise error_reply(document, f"{finding} and it has no {records}")
    return finding


def partial_error_message(document: DocumentKind, finding: str) -> str:
    """Build the `partial_error_reply` warning message for a reply that carries records.

    `finding` must come from this library's own wording, as for `error_reply`.
    """
    return (
        f"{document} document reports a vendor error but carries records: {finding}. The "
        "records were scored, but the report may be incomplete because the vendor may have "
        "left records out, so request it again"
    )


def acord_result_failure(result_code: etree._Element) -> str | None:
    """Describe a `TransResult/ResultCode` that is not a success, or return None for success.

    The `tc` attribute decides, and the description repeats it only when it is a number. Without
    one, a text that starts with "Success" is a success, and a blank `ResultCode` carries no
    result, so it is not a failure either.
    """
    tc = (result_code.get("tc") or "").strip()
    if tc:
        if tc in _SUCCESS_CODES:
            return None
        if tc in _KNOWN_FAILURES:
            return _KNOWN_FAILURES[tc]
        if _NUMERIC_TC.fullmatch(tc):
            return f"tc {tc}, not Success (tc 1) or Success with information (tc 2)"
        return "not Success (tc 1) or Success with information (tc 2)"
    text = (result_code.text or "").strip()
    if not text or text.upper().startswith("SUCCESS"):
        return None
    return "not Success (tc 1) or Success with information (tc 2)"


def rx_result_answer(result: etree._Element) -> Literal["hit", "no_hit", "error"] | None:
    """Classify an Rx `<Result>` as a hit, a no-hit or an error, or return None when blank.

    Case, spaces and punctuation are ignored, so `No Hit`, `NO_HIT`, `no-hit` and `No hit
    found.` are no-hits; `_RX_HITS` and `_RX_NO_HITS` list the wordings. Any other text is an
    error.
    """
    text = (result.text or "").strip()
    if not text:
        return None
    answer = _RESULT_SEPARATORS.sub("", text).upper()
    if answer in _RX_HITS:
        return "hit"
    if answer in _RX_NO_HITS:
        return "no_hit"
    return "error"


def is_error_element(
    element: etree._Element, root: etree._Element, containers: frozenset[str]
) -> bool:
    """Return whether `element` is an `Error` or `Errors` element that reports an error.

    It counts only directly under the root or under one of the report elements named in
    `containers`, so an `<Error>` field deep inside a record is read as data. An element whose
    whole subtree contains no non-blank text, such as `<Errors/>`, reports nothing.
    """
    parent = element.getparent()
    if parent is None:
        return False
    if parent is not root and local_name(parent.tag) not in containers:
        return False
    return any(text.strip() for text in element.itertext())
