"""Exceptions raised by the model client, the artifact loader and the local model server.

Every error the package raises on purpose derives from one base::

    ModelClientError
    ├── ArtifactError                 the model artifact directory is missing or invalid
    │   └── SpecHashMismatchError     the artifact was trained on another feature spec
    ├── ModelTimeoutError             the call did not finish within its deadline
    ├── ModelOverloadedError          no pooled connection became free in time, or one became
    │                                 free too late for the request (local overload)
    ├── ModelUnavailableError         the service was unreachable or returned 5xx or another
    │                                 4xx (401, 403, 404, 408, 429, ...)
    │   └── CircuitOpenError          the breaker is open, so no request was sent
    ├── ModelRequestRejectedError     the service returned 400, 413, 415 or 422: it is up and
    │                                 rejected this body (the circuit breaker does not count it)
    └── InvalidModelResponseError     the service returned 200 with an unusable or compressed
        │                             body
        └── InvalidModelInfoError     its /health reports a model fact (version, name, spec
                                      hash) in an invalid format (model_info.py)

Calling the client with a bad feature matrix (wrong shape, NaN) is caller misuse and raises the
built-in ``ValueError`` instead.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CircuitOpenError",
    "InvalidModelInfoError",
    "InvalidModelResponseError",
    "ModelClientError",
    "ModelOverloadedError",
    "ModelRequestRejectedError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "SpecHashMismatchError",
]


class ModelClientError(Exception):
    """Base of every error raised by ``evidence_model_client``."""

    #: Short machine-readable name used as the fallback reason and in metrics labels.
    kind: str = "model_error"
    #: Whether the circuit breaker counts this error as a failure of the service.
    counts_as_outage: bool = True

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
    """Local overload: the call got no pooled connection in time, and the service may be fine.

    Raised when the deadline passed during the wait for a pooled connection, or when the wait
    left the request less than half the deadline and the request then timed out
    (``deadline_errors.error_for_deadline``). The circuit breaker does not count it.
    """

    kind = "model_overloaded"
    counts_as_outage = False


class ModelUnavailableError(ModelClientError):
    """The model service refused the connection, dropped it, or returned an error status."""

    kind = "model_unavailable"


class ModelRequestRejectedError(ModelClientError):
    """Error for a 400, 413, 415 or 422 response from the model service.

    The service is up and rejected this request's body, for example a value beyond the float32
    range (400) or a body over its size limit (413), so the circuit breaker does not count it.
    A 401, 403 or 404 would fail every request alike (wrong token or URL), so those remain
    ``ModelUnavailableError`` and open the circuit.
    ``status`` is the HTTP status.
    """

    kind = "model_request_rejected"
    counts_as_outage = False

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, retryable=False)
        self.status = status


class CircuitOpenError(ModelUnavailableError):
    """The circuit breaker is open, so the call was rejected without a request."""

    kind = "circuit_open"


class InvalidModelResponseError(ModelClientError):
    """The model service returned 200, but the body is not a valid prediction for the batch."""

    kind = "invalid_response"


class InvalidModelInfoError(InvalidModelResponseError):
    """The service's ``/health`` reports a model version, name or spec hash in an invalid format.

    The message names the field and quotes at most a short escaped prefix of its value.
    """

    kind = "model_info_invalid"
