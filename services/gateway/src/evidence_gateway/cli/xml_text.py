"""Decode an XML file's bytes to text the way an XML parser picks the encoding.

The order follows the XML 1.0 specification, appendix F (autodetection of character
encodings): a byte order mark first, then the ``encoding`` of the XML declaration, then UTF-8.
A UTF-16 or UTF-32 document without a byte order mark is recognised by the zero bytes around
its first ``<``.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["XmlDecodeError", "decode_xml", "detect_xml_encoding"]

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# "<?" in the encoding families that XML allows without a byte order mark.
_PREFIXES = (
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
)
_DECLARED = re.compile(r"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][\w.-]*)["']""")
# "<?xm" in EBCDIC. Only the declaration names the code page. Its letters, digits and marks
# have the same bytes in the EBCDIC code pages that Python ships, except the double quote in
# cp1026 (Turkish), so reading it as cp037 and then as cp1026 finds the name.
_EBCDIC_PREFIX = b"\x4c\x6f\xa7\x94"
_EBCDIC_HEAD_CODECS = ("cp037", "cp1026")


class XmlDecodeError(ValueError):
    """The bytes are not text in the encoding that their byte order mark or declaration names."""


def detect_xml_encoding(data: bytes) -> tuple[str, int]:
    """Return the codec name of ``data`` and the length of its byte order mark.

    Raises:
        XmlDecodeError: an EBCDIC declaration names no encoding.
    """
    for bom, name in _BOMS:
        # The mark decides; a declaration cannot override it.
        if data.startswith(bom):
            return name, len(bom)
    for prefix, name in _PREFIXES:
        if data.startswith(prefix):
            return name, 0
    if data.startswith(_EBCDIC_PREFIX):
        names = (_declared_encoding(data[:200].decode(codec)) for codec in _EBCDIC_HEAD_CODECS)
        declared = next((name for name in names if name is not None), None)
        if declared is None:
            msg = (
                "the file starts with an XML declaration in EBCDIC but names no encoding; add "
                'encoding="IBM037" (or its code page) to the declaration'
            )
            raise XmlDecodeError(msg)
        return declared, 0
    declared = _declared_encoding(data[:200].decode("ascii", errors="replace"))
    return declared or "utf-8", 0


def _declared_encoding(head: str) -> str | None:
    match = _DECLARED.match(head)
    return match.group(1) if match else None


def decode_xml(data: bytes) -> str:
    """Decode an XML document to str, without its byte order mark.

    The declaration stays in the text. ``evidence_features`` drops the declaration of a str
    before parsing, so a declared ISO-8859-1 is not applied a second time.

    Raises:
        XmlDecodeError: the encoding is unknown, or the bytes are not valid in it.
    """
    name, bom_length = detect_xml_encoding(data)
    try:
        codec = codecs.lookup(name)
    except LookupError as exc:
        msg = f"the XML declaration names the unknown encoding {name!r}"
        raise XmlDecodeError(msg) from exc
    try:
        return data[bom_length:].decode(codec.name)
    except UnicodeDecodeError as exc:
        msg = (
            f"the bytes are not valid {codec.name} (first invalid byte at offset "
            f"{exc.start + bom_length}); save the file in the encoding that its XML "
            "declaration names, or declare the encoding it is saved in"
        )
        raise XmlDecodeError(msg) from exc
