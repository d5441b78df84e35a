"""Find record elements that carry no data, in time linear in the document size.

A record (an Rx fill or an MIB record, in any shape the readers know) is empty when its subtree
contains no non-blank text and no non-blank attribute value, as in `<DrugFill/>`,
`<MIBRecord> </MIBRecord>` or `<DrugFill><DrugGenericName/><Quantity> </Quantity></DrugFill>`.
The record's own tail lies outside its subtree. Namespace declarations are not attributes in
lxml, so they never count. Blank means empty after `str.strip()`, as in `collect_fields`. The
readers skip an empty record and count it as an `empty_record` warning.
"""

from __future__ import annotations

from lxml import etree

from evidence_features._xml import attribute_values, local_name

__all__ = ["EmptyRecords"]


class EmptyRecords:
    """The emptiness check for the records of one document.

    Records may nest, as in a hostile `<DrugFill><DrugFill>…</DrugFill></DrugFill>`, so walking
    each record's subtree separately would cost time quadratic in the nesting depth. Instead a
    walk stops at the first non-blank value, and the result for each nested record that the walk
    has already decided is stored for that record's own check. When the records are checked in
    document order, each element is walked at most twice, so the total cost is linear in the
    document size.

    Args:
        record_names: Local names of the record elements, such as `{"DrugFill"}`.
    """

    __slots__ = ("_decided", "_record_names")

    def __init__(self, record_names: frozenset[str]) -> None:
        self._record_names = record_names
        self._decided: dict[etree._Element, bool] = {}

    def is_empty(self, record: etree._Element) -> bool:
        """Return whether the subtree of `record` contains no non-blank text or attribute value."""
        decided = self._decided.pop(record, None)
        if decided is not None:
            return decided

        # Walk the subtree in document order up to the first element that owns a non-blank
        # value. A non-blank tail belongs to the parent, and the element whose tail it is stays
        # undecided because the walk has not entered its descendants yet.
        nested: list[etree._Element] = []
        owner: etree._Element | None = None
        for element in record.iter():
            is_nested_record = element is not record and (
                local_name(element.tag) in self._record_names
            )
            if is_nested_record:
                nested.append(element)
            if _has_own_data(element):
                owner = element
                break
            tail = element.tail
            if element is not record and tail is not None and tail.strip():
                owner = element.getparent()
                if is_nested_record:
                    nested.pop()
                break

        # Every nested record the walk passed is empty unless it contains the owner. lxml keeps
        # one proxy per node while it is referenced, so identity tests on elements are sound.
        containing: set[etree._Element] = set()
        node = owner
        while node is not None and node is not record:
            containing.add(node)
            node = node.getparent()
        for element in nested:
            self._decided[element] = element not in containing
        return owner is None


def _has_own_data(element: etree._Element) -> bool:
    text = element.text
    if text is not None and text.strip():
        return True
    # attribute_values reads all values in one pass, where element.values() is quadratic.
    return bool(element.attrib) and any(value.strip() for value in attribute_values(element))
