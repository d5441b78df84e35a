"""Gateway exceptions.

Tree::

    GatewayError
    ├── RowError                  one applicant's input cannot be scored (4xx, or an error row)
    ├── BatchTooLargeError        more rows than GATEWAY_MAX_BATCH_ROWS (413)
    ├── PersistenceUnavailableError  the queue append failed, nothing was recorded (503)
    └── ExtractionUnavailableError   the extraction pool crashed twice, nothing was scored (503)

Status codes live in ``handlers.py``; these classes carry none.
"""

from __future__ import annotations

__all__ = [
    "BatchTooLargeError",
    "ExtractionUnavailableError",
    "GatewayError",
    "PersistenceUnavailableError",
    "RowError",
]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class RowError(GatewayError):
    """One applicant's evidence cannot be scored.

    Args:
        kind: Stable machine-readable code, e.g. ``"malformed_document"``.
        message: One sentence naming the field and the fix; never contains the XML.
        document: ``"MIB"``, ``"RX"`` or ``None`` when the problem is not in a document.
    """

    def __init__(self, kind: str, message: str, document: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.document = document


class BatchTooLargeError(GatewayError):
    """A batch request carries more rows than the configured maximum."""

    def __init__(self, rows: int, max_rows: int) -> None:
        self.rows = rows
        self.max_rows = max_rows
        super().__init__(
            f"batch has {rows} rows but GATEWAY_MAX_BATCH_ROWS is {max_rows}; "
            "split the request into smaller batches"
        )


class PersistenceUnavailableError(GatewayError):
    """The prediction could not be appended to the durable queue, so no score is returned."""


class ExtractionUnavailableError(GatewayError):
    """The extraction pool broke again after it was replaced, so the request was not scored.

    A pool breaks when one of its worker processes dies, for example by the out-of-memory
    killer. The gateway replaces a broken pool and retries the rows once.
    """
