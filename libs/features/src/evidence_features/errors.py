"""Exceptions raised by the feature library.

Every error the library raises on bad evidence derives from `EvidenceFeaturesError`, which is a
`ValueError`, so callers that treat bad input as a value problem keep working. Caller misuse
(a wrong argument type, an impossible limit) raises the built-in `TypeError` or `ValueError`
instead.

    ValueError
     └── EvidenceFeaturesError
          ├── CodeMapError                (an MIB code map file or object is invalid)
          └── DocumentError               (.document is "MIB" or "RX")
               ├── MalformedDocumentError (not well-formed XML, truncated, an HTML page,
               │                           an error reply, records that cannot be read)
               ├── HostileDocumentError   (DOCTYPE, entity declarations)
               └── DocumentTooLargeError  (.limit is "bytes", "depth", "elements" or
                                           "attributes")

Messages name the document and the problem and never echo document content.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "CodeMapError",
    "DocumentError",
    "DocumentKind",
    "DocumentTooLargeError",
    "EvidenceFeaturesError",
    "HostileDocumentError",
    "MalformedDocumentError",
]

DocumentKind = Literal["MIB", "RX"]


class EvidenceFeaturesError(ValueError):
    """Base class of every error the feature library raises on bad evidence or configuration."""


class CodeMapError(EvidenceFeaturesError):
    """An MIB code map is invalid: a bad category, severity or file format."""


class DocumentError(EvidenceFeaturesError):
    """One evidence document could not be used.

    Args:
        document: Which document failed, "MIB" or "RX".
        message: What is wrong and what to do; never the document content.
    """

    def __init__(self, document: DocumentKind, message: str) -> None:
        super().__init__(message)
        self.document: DocumentKind = document


class MalformedDocumentError(DocumentError):
    """The document is not well-formed XML, an HTML page or an error reply, or hides records."""


class HostileDocumentError(DocumentError):
    """The document declares a DOCTYPE or entities, which the parser never accepts."""


class DocumentTooLargeError(DocumentError):
    """The document exceeds a `ParseLimits` cap.

    Args:
        document: Which document failed, "MIB" or "RX".
        message: The limit, the measured value and what to do.
        limit: The cap that was exceeded: "bytes", "depth", "elements" or "attributes".
    """

    def __init__(
        self,
        document: DocumentKind,
        message: str,
        *,
        limit: Literal["bytes", "depth", "elements", "attributes"],
    ) -> None:
        super().__init__(document, message)
        self.limit = limit
