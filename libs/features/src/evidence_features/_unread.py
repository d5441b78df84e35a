"""Reject a report that contains records the readers could not read.

Scored as a report, a document whose records the readers miss has no evidence and looks like a
clean applicant. Three signs show that records were missed:

- an element whose local name equals a record name except for case, such as `<drugfill>` for
  `<DrugFill>`, because XML names are case-sensitive and the readers match them exactly;
- in an Rx report, an element named like a fill field (`DrugGenericName`, `FillDate`, `NDC`,
  in any case) with text, although no fill was read, as when a vendor wraps fills in `<Fill>`;
- in an MIB reply, a `RecordsFound` of 1 or more although no record was read.

The readers walk the whole document only when they read no record, with one exception. An MIB
reply without FormInstance or MIBRecord elements is walked before its flat
`<Response><ResponseData>` codes are read, unless its RecordsFound is 0, because those codes may
sit in a misspelled record element and would then read as flat records. Each MIB record without
codes is checked too, over its own elements only. Messages name elements, which are the
library's own names or case variants of them, and never repeat text from the document.
"""

from __future__ import annotations

from lxml import etree

from evidence_features._memo import MAX_KEY_CHARS
from evidence_features._xml import local_name
from evidence_features.errors import DocumentKind, MalformedDocumentError

__all__ = ["check_unread_elements", "unread_records_error"]


def _element_list(names: tuple[str, ...]) -> str:
    tags = [f"<{name}>" for name in names]
    if len(tags) == 1:
        return tags[0]
    return ", ".join(tags[:-1]) + " or " + tags[-1]


def check_unread_elements(
    document: DocumentKind,
    root: etree._Element,
    record_names: tuple[str, ...],
    records: str,
    field_names: frozenset[str] = frozenset(),
) -> None:
    """Raise `MalformedDocumentError` for elements that show records were left unread.

    Call it only for a document from which no record was read. It raises for an element that
    spells a record name in another case, and for an element with text whose name equals one
    of `field_names` in any case.

    Args:
        document: "MIB" or "RX", named in the message.
        root: The document's root element. The whole tree is walked once.
        record_names: Local names of the record elements, such as `("DrugFill",)`.
        records: The records in words for the message, such as "fill records".
        field_names: Local names of fields that occur only inside records.
    """
    # The walk reads every tag, so each distinct tag is classified once and the result stored:
    # a report repeats a few dozen tags. Iterating with etree.Element skips comments and
    # processing instructions, whose tag is not a string.
    key = (record_names, field_names)
    known = _CLASSES.get(key)
    if known is None or len(known) >= _MAX_TAGS:
        known = _CLASSES[key] = {}
    for element in root.iter(etree.Element):
        tag = element.tag
        found = known.get(tag, _UNKNOWN)
        if found is _UNKNOWN:
            found = _classify(tag, record_names, field_names)
            # The namespace is the document's own text, so a long tag is not kept (see _memo).
            if len(tag) <= MAX_KEY_CHARS:
                known[tag] = found
        if found is None:
            continue
        name, expected = found
        if expected:
            msg = (
                f"{document} document contains a <{name}> element, which is not read as one "
                f"of its {records}. XML element names are case-sensitive, so that element must "
                f"be spelled <{expected}>. Ask the sender to correct the element names"
            )
            raise MalformedDocumentError(document, msg)
        text = element.text
        if text is not None and text.strip():
            msg = (
                f"{document} document has no readable {records} but contains a <{name}> "
                f"element with text, which belongs inside a record. The {records} must be "
                f"{_element_list(record_names)} elements, so check the element names with "
                "the sender"
            )
            raise MalformedDocumentError(document, msg)


# The classification of one tag: None for an element that shows nothing, else the local name
# and either the expected spelling of a misspelled record name or "" for a field name.
_Class = tuple[str, str] | None
_UNKNOWN: _Class = ("", "")
_CLASSES: dict[tuple[tuple[str, ...], frozenset[str]], dict[str, _Class]] = {}
_MAX_TAGS = 1024


def _classify(tag: str, record_names: tuple[str, ...], field_names: frozenset[str]) -> _Class:
    name = local_name(tag)
    folded = name.lower()
    for expected in record_names:
        if folded == expected.lower():
            return None if name == expected else (name, expected)
    if any(folded == field.lower() for field in field_names):
        return name, ""
    return None


def unread_records_error(
    document: DocumentKind,
    claim: str,
    record_names: tuple[str, ...],
    records: str,
    empty_records: int,
) -> MalformedDocumentError:
    """Build the error for a report that states it has records but yielded none.

    Args:
        document: "MIB" or "RX", named in the message.
        claim: Where the report states it has records, in this library's words, such as
            "reports 2 records in RecordsFound". It must never contain document text.
        record_names: Local names of the record elements the readers accept.
        records: The records in words for the message, such as "fill records".
        empty_records: How many record elements were skipped because they carry no data.
    """
    if empty_records == 1:
        found = "its only record element is empty"
    elif empty_records:
        found = f"all {empty_records} of its record elements are empty"
    else:
        found = f"no {records} were found"
    msg = (
        f"{document} document {claim}, but {found}. The {records} must be "
        f"{_element_list(record_names)} elements with data, so check the report with the sender "
        "and send it again"
    )
    return MalformedDocumentError(document, msg)
