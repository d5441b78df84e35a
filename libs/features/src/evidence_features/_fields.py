"""One accessor for record fields, whatever the XML shape (attribute, child, nested block).

A field may arrive as an attribute of the record (`<MIBRecord ReplyType="HIT">`), as a child
element with text (`<Quantity>30</Quantity>`), as a self-closing child with a `value` attribute
(`<Quantity value="30"/>`), or nested in an NCPDP block (`<Quantity><Value>30</Value></Quantity>`,
`<Prescriber><Identification><NPI>…`). Empty and whitespace-only values count as missing. When a
field occurs twice, the first occurrence in document order wins.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from evidence_features._memo import MAX_KEY_CHARS
from evidence_features._xml import attribute_values, local_name

__all__ = ["collect_fields", "field_for_tag"]

_MAX_CACHED_TAGS = 4096
_TAG_CACHE: dict[tuple[int, str], str | None] = {}


def field_for_tag(tag: str, names: Mapping[str, str]) -> str | None:
    """Map a full tag (possibly `{namespace}local`) to a field name through `names`."""
    field = names.get(tag)
    if field is not None or tag[0] != "{":
        return field
    key = (id(names), tag)
    if key in _TAG_CACHE:
        return _TAG_CACHE[key]
    field = names.get(tag[tag.index("}") + 1 :])
    # The namespace is the document's own text, so a long one is not kept (see _memo).
    if len(tag) <= MAX_KEY_CHARS:
        if len(_TAG_CACHE) >= _MAX_CACHED_TAGS:
            _TAG_CACHE.clear()
        _TAG_CACHE[key] = field
    return field


def collect_fields(
    record: etree._Element,
    names: Mapping[str, str],
    nested: Mapping[tuple[str, str], str],
) -> dict[str, str]:
    """Collect the wanted fields of one record element.

    Args:
        record: The record element (a fill or an MIB record).
        names: Local element or attribute name to field name.
        nested: `(ancestor local name, leaf local name)` to field name, for leaves such as
            `NPI` or `Value` whose meaning depends on the block they sit in.

    Returns:
        Field name to stripped, non-empty text.
    """
    fields: dict[str, str] = {}
    # record.items() looks each value up by name in the element's attribute list, which is
    # quadratic in the attribute count, so the values come from attribute_values in one pass.
    if record.attrib:
        for value in attribute_values(record):
            field = names.get(local_name(value.attrname))
            if field is not None and field not in fields and value.strip():
                fields[field] = value.strip()
    # Direct children first, because most reports are flat. A child that maps to no field is
    # skipped without reading its text, unless it opens a block named in `nested`. A mapped
    # child without text carries its value in a `value` attribute or in its descendants.
    blocks = _BLOCK_CACHE.get(id(nested)) or _block_names(nested)
    names_get = names.get
    # NOTE: getchildren() is documented as deprecated in favour of iterating the element, but
    # lxml 6.2 builds the list in one C call, about twice as fast as iteration for a
    # typical 8-child fill, and it emits no warning.
    for child in record.getchildren():
        tag = child.tag
        field = names_get(tag)
        if field is None and tag[0] == "{":
            field = field_for_tag(tag, names)
        if field is None:
            if blocks and local_name(tag) in blocks:
                _collect_block(child, names, nested, fields)
            continue
        if field in fields:
            continue
        text = child.text
        if text is not None:
            text = text.strip()
            if text:
                fields[field] = text
                continue
        if len(child):
            _collect_block(child, names, nested, fields)
        else:
            value = (child.get("value") or child.get("Value") or "").strip()
            if value:
                fields[field] = value
    return fields


_BLOCK_CACHE: dict[int, frozenset[str]] = {}


def _block_names(nested: Mapping[tuple[str, str], str]) -> frozenset[str]:
    if not nested:
        return frozenset()
    blocks = _BLOCK_CACHE.get(id(nested))
    if blocks is None:
        blocks = frozenset(ancestor for ancestor, _ in nested)
        # NOTE: keyed by id(), so only long-lived module-level mappings belong here.
        if len(_BLOCK_CACHE) < 64:
            _BLOCK_CACHE[id(nested)] = blocks
    return blocks


def _collect_block(
    block: etree._Element,
    names: Mapping[str, str],
    nested: Mapping[tuple[str, str], str],
    fields: dict[str, str],
) -> None:
    for element in block.iter():
        tag = local_name(element.tag)
        field = names.get(tag) if element is not block else None
        if field is None or field in ("prescriber_id", "pharmacy_id"):
            nested_field = _nested_field(element, block, tag, nested)
            field = nested_field or field
        if field is None or field in fields:
            continue
        text = (element.text or "").strip()
        if not text:
            text = (element.get("value") or element.get("Value") or "").strip()
        if text:
            fields[field] = text


def _nested_field(
    element: etree._Element,
    record: etree._Element,
    tag: str,
    nested: Mapping[tuple[str, str], str],
) -> str | None:
    ancestor: etree._Element | None = element
    while ancestor is not None:
        field = nested.get((local_name(ancestor.tag), tag))
        if field is not None:
            return field
        if ancestor is record:
            return None
        ancestor = ancestor.getparent()
    return None
