"""Hardened XML parsing shared by the MIB and Rx readers.

The parser is lxml with entity resolution, DTD loading and network access switched off. On top
of that every document passes these checks, in order:

1. a byte cap;
2. a scan for DOCTYPE and ENTITY declarations, in ASCII-compatible and UTF-16 encodings;
3. the parse itself, from raw bytes so the declared encoding and any byte-order mark apply;
4. caps on element count, depth and attributes per element.

libxml2 itself stops at a nesting depth of 256 when `huge_tree` is off; the configurable depth
and attribute caps are checked after the parse with XPath expressions evaluated in C.

NOTE: lxml 6.2 keeps every element name, attribute name, prefix and namespace URI it parses in
a dictionary of the calling thread until the thread ends, and these caps do not bound it across
documents. A long-running process that parses documents with ever-new names should parse on
threads it replaces from time to time, as the gateway does (`evidence_gateway.recycling`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from lxml import etree

from evidence_features.errors import (
    DocumentKind,
    DocumentTooLargeError,
    HostileDocumentError,
    MalformedDocumentError,
)

__all__ = ["ParseLimits", "attribute_values", "local_name", "parse_document"]

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
# Both markers are matched in ASCII-compatible encodings and, without their first character, in
# UTF-16 of either byte order.
_HOSTILE_MARKERS = (
    b"<!DOCTYPE",
    b"<!ENTITY",
    "!DOCTYPE".encode("utf-16-le"),
    "!ENTITY".encode("utf-16-le"),
)
_ENCODING_ERRORS = frozenset(
    {
        etree.ErrorTypes.ERR_INVALID_ENCODING,
        etree.ErrorTypes.ERR_INVALID_CHAR,
    }
)
_ERROR_NAMES = {
    value: name
    for name, value in vars(etree.ErrorTypes).items()
    if name.isupper() and isinstance(value, int)
}


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Caps applied to each evidence document before any feature is computed.

    Args:
        max_bytes: Largest accepted document, in bytes after encoding a `str` as UTF-8.
        max_depth: Deepest accepted element nesting; the root element is depth 1. The real
            report shapes stay under about 10 levels. libxml2 rejects anything deeper than 256
            regardless of this value.
        max_elements: Largest accepted number of elements in one document.
        max_attributes: Largest accepted number of attributes on one element. The report shapes
            the readers know carry fewer than 10. Namespace declarations do not count.
    """

    max_bytes: int = 2_000_000
    max_depth: int = 64
    max_elements: int = 200_000
    max_attributes: int = 256

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_depth", "max_elements", "max_attributes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                msg = f"ParseLimits.{name} must be a positive int, got {value!r}"
                raise ValueError(msg)
        if self.max_depth > 256:
            msg = (
                f"ParseLimits.max_depth must be at most 256 (libxml2's own cap without "
                f"huge_tree), got {self.max_depth!r}"
            )
            raise ValueError(msg)


def _new_parser(encoding: str | None = None) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        encoding=encoding,
    )


class _ThreadState(threading.local):
    # NOTE: lxml parsers must not be shared between threads, so each thread builds its own.
    def __init__(self) -> None:
        self.parser = _new_parser()
        self.latin1_parser = _new_parser("iso-8859-1")
        self.count = etree.XPath("count(//*)", regexp=False)
        self.attributes = etree.XPath("@*", regexp=False)
        self.depth_probes: dict[int, etree.XPath] = {}
        self.attribute_probes: dict[int, etree.XPath] = {}

    def depth_probe(self, max_depth: int) -> etree.XPath:
        probe = self.depth_probes.get(max_depth)
        if probe is None:
            # From the root (depth 1), max_depth child steps reach depth max_depth + 1.
            probe = etree.XPath("boolean(" + "/".join(["*"] * max_depth) + ")", regexp=False)
            self.depth_probes[max_depth] = probe
        return probe

    def attribute_probe(self, max_attributes: int) -> etree.XPath:
        probe = self.attribute_probes.get(max_attributes)
        if probe is None:
            # The probe is true when some element has an attribute at position max_attributes + 1.
            probe = etree.XPath(f"boolean(//@*[{max_attributes + 1}])", regexp=False)
            self.attribute_probes[max_attributes] = probe
        return probe


_STATE = _ThreadState()


def local_name(tag: str) -> str:
    """Return the tag without its `{namespace}` prefix."""
    if tag[0] == "{":
        return tag[tag.index("}") + 1 :]
    return tag


def attribute_values(element: etree._Element) -> list[etree._ElementUnicodeResult]:
    """Return the attribute values of `element` in document order, in time linear in their count.

    Each value is an lxml string result whose `.attrname` is the `{namespace}name` of its
    attribute. `element.items()` and `element.values()` cost time quadratic in the count.
    """
    values: list[etree._ElementUnicodeResult] = _STATE.attributes(element)
    return values


def _to_bytes(data: object, document: DocumentKind) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        # A str has already been decoded, so its declared encoding no longer applies: drop the
        # declaration and hand lxml UTF-8.
        text = data.removeprefix("\ufeff")
        text = _XML_DECLARATION.sub("", text, count=1)
        return text.encode("utf-8", errors="surrogatepass")
    msg = f"{document} document must be bytes, str or None, got {type(data).__name__}"
    raise TypeError(msg)


def _is_blank(raw: bytes) -> bool:
    body = raw
    for bom in _BOMS:
        if body.startswith(bom):
            body = body[len(bom) :]
            break
    body = body.strip()
    if body.startswith(b"<?xml") and body.endswith(b"?>") and body.count(b"<") == 1:
        return True
    return not body.strip(b"\x00 \t\r\n")


def _syntax_error(
    document: DocumentKind, exc: etree.XMLSyntaxError, limits: ParseLimits, raw: bytes
) -> Exception:
    code = exc.code
    name = _ERROR_NAMES.get(code, str(code))
    where = f"line {exc.lineno}, column {exc.offset}" if exc.lineno else "unknown position"
    if "Excessive depth" in str(exc.msg):
        # libxml2 stops at 256 levels, which is beyond every allowed max_depth, so the
        # document is also deeper than the configured cap that callers know about.
        msg = (
            f"{document} document is nested deeper than {limits.max_depth} elements (the "
            f"parser stopped at 256 levels, {name} at {where}); real reports are under 10 "
            "levels deep, so check the sender"
        )
        return DocumentTooLargeError(document, msg, limit="depth")
    if code == etree.ErrorTypes.ERR_ENTITY_LOOP:
        msg = f"{document} document declares recursive entities ({name}); entities are rejected"
        return HostileDocumentError(document, msg)
    if code == etree.ErrorTypes.ERR_DOCUMENT_EMPTY:
        # libxml2 reports this code for any document in which no root element follows the
        # XML declaration and comments, so JSON or plain text would read as "empty" otherwise.
        return MalformedDocumentError(document, _not_xml_message(document, raw))
    msg = (
        f"{document} document is not well-formed XML ({name} at {where}); "
        "send the complete report exactly as the vendor returned it"
    )
    return MalformedDocumentError(document, msg)


def _not_xml_message(document: DocumentKind, raw: bytes) -> str:
    """Describe a document without a root element, naming only a JSON-like first byte.

    The document is health data, so the message never quotes its text.
    """
    body = raw.removeprefix(_BOMS[0])
    # Only the start is decoded. Each undecodable byte becomes one character, so the match's
    # end is also a byte offset.
    declaration = _XML_DECLARATION.match(body[:1024].decode("ascii", errors="replace"))
    if declaration is not None:
        body = body[declaration.end() :]
    first = body.lstrip()[:1]
    hint = f"; it starts with {first.decode()!r}, as JSON does" if first in (b"{", b"[") else ""
    return (
        f"{document} document is not XML: it does not start with an element ('<') after any "
        f"XML declaration or comments{hint}. Check that the file is the XML report and not "
        "JSON or text"
    )


def parse_document(
    data: bytes | str | None,
    document: DocumentKind,
    limits: ParseLimits,
) -> tuple[etree._Element | None, bool]:
    """Parse one evidence document with the hardened parser.

    Args:
        data: The raw document. `None`, an empty or blank value and a bare XML declaration all
            count as an empty document.
        document: "MIB" or "RX", used in error messages.
        limits: Byte, depth and element caps.

    Returns:
        The root element, or `None` for an empty document, and whether the bytes had to be
        re-read as ISO-8859-1 because they did not match the declared encoding.

    Raises:
        TypeError: `data` is not bytes, str or None.
        DocumentTooLargeError: A cap in `limits` is exceeded.
        HostileDocumentError: The document declares a DOCTYPE or entities.
        MalformedDocumentError: The document is not well-formed XML or is an HTML page.
    """
    if data is None:
        return None, False
    raw = _to_bytes(data, document)
    if len(raw) > limits.max_bytes:
        msg = (
            f"{document} document is {len(raw):,} bytes, over the {limits.max_bytes:,}-byte "
            "limit; raise ParseLimits.max_bytes only if such reports are expected"
        )
        raise DocumentTooLargeError(document, msg, limit="bytes")
    if _is_blank(raw):
        return None, False
    # Every marker contains the byte "!", which is rare in reports, so one memchr-speed scan
    # for it skips the four slower substring searches for most documents.
    for marker in _HOSTILE_MARKERS if b"!" in raw else ():
        if marker in raw:
            # The scan runs before the parse, so it cannot tell a declaration from the same
            # text in a comment or CDATA section, and the message covers both.
            msg = (
                f"{document} document contains the text <!DOCTYPE or <!ENTITY. DTDs and "
                "entities are rejected, and so is that text inside a comment or CDATA section, "
                "so send the report without them"
            )
            raise HostileDocumentError(document, msg)

    state = _STATE
    recovered = False
    try:
        root = etree.fromstring(raw, state.parser)
    except etree.XMLSyntaxError as exc:
        if exc.code not in _ENCODING_ERRORS or raw.startswith(_BOMS):
            raise _syntax_error(document, exc, limits, raw) from exc
        # Latin-1 text in a document declared (or defaulted to) UTF-8 is common in feeds;
        # every byte sequence is valid ISO-8859-1, so only structural errors remain.
        try:
            root = etree.fromstring(raw, state.latin1_parser)
        except etree.XMLSyntaxError as retry_exc:
            raise _syntax_error(document, retry_exc, limits, raw) from retry_exc
        recovered = True

    docinfo = root.getroottree().docinfo
    if docinfo.doctype:
        msg = f"{document} document declares a DOCTYPE; DTDs are rejected"
        raise HostileDocumentError(document, msg)
    _check_shape(root, document, limits, len(raw))
    _check_attributes(root, document, limits, raw, docinfo.encoding)
    return root, recovered


# Minimum size of one element in bytes: `<a/>`. Every encoding libxml2 reads spends at least one
# byte per character, and DOCTYPE and entity declarations are rejected before the parse, so a
# tree never contains more elements than its document's byte size divided by this.
_MIN_ELEMENT_BYTES = 4
# Minimum size in bytes of one more level of nesting: `<a>` plus `</a>`.
_MIN_LEVEL_BYTES = 7


def _check_shape(
    root: etree._Element, document: DocumentKind, limits: ParseLimits, size: int
) -> None:
    # Both XPath probes walk the whole tree, so each runs only when the document's byte size
    # leaves room for its cap to be exceeded. The checks raise exactly as if both always ran.
    element_bound = size // _MIN_ELEMENT_BYTES
    if element_bound > limits.max_elements:
        element_bound = int(_STATE.count(root))
        if element_bound > limits.max_elements:
            msg = (
                f"{document} document has {element_bound:,} elements, over the "
                f"{limits.max_elements:,}-element limit; raise ParseLimits.max_elements only if "
                "such reports are expected"
            )
            raise DocumentTooLargeError(document, msg, limit="elements")
    # Depth max_depth + 1 takes max_depth levels of `<a>...</a>` around one `<a/>`.
    depth_bytes = _MIN_LEVEL_BYTES * limits.max_depth + _MIN_ELEMENT_BYTES
    if (
        size >= depth_bytes
        and element_bound > limits.max_depth
        and _STATE.depth_probe(limits.max_depth)(root)
    ):
        msg = (
            f"{document} document is nested deeper than {limits.max_depth} elements; "
            "real reports are under 10 levels deep, so check the sender"
        )
        raise DocumentTooLargeError(document, msg, limit="depth")
    root_name = local_name(root.tag).lower()
    if root_name == "html":
        msg = (
            f"{document} document is an HTML page, not an evidence report; "
            "the vendor probably returned an error page"
        )
        raise MalformedDocumentError(document, msg)
    if root_name in _ERROR_ROOTS or (
        root_name == "envelope" and root.find("{*}Body/{*}Fault") is not None
    ):
        # Scored as a report, an error reply would carry no evidence and so look like a clean
        # applicant: a vendor outage would come back as a low risk.
        kind = (
            "a SOAP fault"
            if root_name == "envelope"
            else f"an error reply (root element {local_name(root.tag)})"
        )
        msg = (
            f"{document} document is {kind}, not an evidence report; the vendor could not "
            "produce the report, so request it again"
        )
        raise MalformedDocumentError(document, msg)


# Root elements of the error documents that vendors and their gateways send in place of a report.
# Only these exact names count, so an unknown report shape is still read as a report.
_ERROR_ROOTS = frozenset({"error", "errors", "errorresponse", "fault"})


# Encodings in which every "=" of the markup is the byte 0x3D: ASCII supersets and the UTF-16
# and UTF-32 forms. UTF-7 may encode "=" in base64, so no byte count bounds it there.
_EQUALS_IS_BYTE = re.compile(
    r"(?:UTF-?(?:8|16|32)(?:LE|BE)?|UCS-?[24]|US-ASCII|ASCII|ISO-8859-\d+|LATIN-?1|"
    r"(?:WINDOWS-|CP)125\d|SHIFT_JIS|EUC-\w+|GB\w*|BIG5)",
    re.IGNORECASE,
)


def _check_attributes(
    root: etree._Element,
    document: DocumentKind,
    limits: ParseLimits,
    raw: bytes,
    encoding: str | None,
) -> None:
    # Every attribute contains one "=", so in the encodings above a document with no more "="
    # bytes than the cap cannot exceed it, and the tree walk is skipped. That is true for
    # ordinary reports, which carry few attributes.
    if (
        raw.count(b"=") <= limits.max_attributes
        and encoding is not None
        and _EQUALS_IS_BYTE.fullmatch(encoding)
    ):
        return
    if _STATE.attribute_probe(limits.max_attributes)(root):
        msg = (
            f"{document} document has an element with more than {limits.max_attributes:,} "
            "attributes, over the per-element limit. Raise ParseLimits.max_attributes only if "
            "such reports are expected"
        )
        raise DocumentTooLargeError(document, msg, limit="attributes")
