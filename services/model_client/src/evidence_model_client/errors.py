"""Exceptions raised by the model client, the artifact loader and the local model server.

Every error the package raises on purpose derives from one base::

    ModelClientError
    ├── ArtifactError                 the model artifact directory is missing or invalid
    │   └── SpecHashMismatchError     the artifact was trained on another feature spec
    ├── ModelTimeoutError             the call did not finish within its deadline
    ├── ModelOverloadedError          no pooled connection became free in time (local overload)
    ├── ModelUnavailableError         the service was unreachable or returned 5xx/4xx
    │   └── CircuitOpenError          the breaker is open, so no request was sent
    └── InvalidModelResponseError     the service returned 200 with an unusable body

Calling the client with a bad feature matrix (wrong shape, NaN) is caller misuse and raises the
built-in ``ValueError`` instead.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CircuitOpenError",
    "InvalidModelResponseError",
    "ModelClientError",
    "ModelOverloadedError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "SpecHashMismatchError",
]


class ModelClientError(Exception):
    """Base of every error raised by ``evidence_model_client``."""

    #: Short machine-readable name used as the fallback reason and in metrics labels.
    kind: str = "model_error"

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        #: True when repeating the same request may succeed (scoring is idempotent).
        self.retryable = retryable


class ArtifactError(ModelClientError):
    """The model artifact directory is missing, incomplete or inconsistent."""

    kind = "artifact_invalid"


class SpecHashMismatchError(ArtifactError):
    """The artifact's feature spec hash differs from the installed feature library's."""

    kind = "spec_hash_mismatch"


class ModelTimeoutError(ModelClientError):
    """The model call, retries included, did not finish within its total deadline."""

    kind = "model_timeout"


class ModelOverloadedError(ModelClientError):
    """No pooled connection became free before the deadline; the service itself may be fine."""

    kind = "model_overloaded"


class ModelUnavailableError(ModelClientError):
    """The model service refused the connection, dropped it, or returned an error status."""

    kind = "model_unavailable"


class CircuitOpenError(ModelUnavailableError):
    """The circuit breaker is open, so the call was rejected without a request."""

    kind = "circuit_open"


class InvalidModelResponseError(ModelClientError):
    """The model service returned 200, but the body is not a valid prediction for the batch."""

    kind = "invalid_response"
