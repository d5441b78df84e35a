"""Turn a rendered document into bytes with the declared encoding, BOMs included."""

from __future__ import annotations

__all__ = ["ENCODINGS", "encode_document"]

# Encoding name -> (declaration value or None for no declaration, codec, byte-order mark).
ENCODINGS: dict[str, tuple[str | None, str, bytes]] = {
    "utf-8": ("UTF-8", "utf-8", b""),
    "utf-8-undeclared": (None, "utf-8", b""),
    "utf-8-bom": ("UTF-8", "utf-8", b"\xef\xbb\xbf"),
    "iso-8859-1": ("ISO-8859-1", "latin-1", b""),
    "utf-16": ("UTF-16", "utf-16-le", b"\xff\xfe"),
}


def encode_document(body: str, encoding: str = "utf-8") -> bytes:
    """Prefix the XML declaration for `encoding` and encode `body` with that codec.

    `utf-16` writes little-endian bytes after a byte-order mark, which is what the UTF-16
    declaration requires of a parser.
    """
    declared, codec, bom = ENCODINGS[encoding]
    declaration = "" if declared is None else f'<?xml version="1.0" encoding="{declared}"?>\n'
    return bom + (declaration + body).encode(codec)
