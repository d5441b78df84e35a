"""Settings of the model client (``MODEL_CLIENT_*``) and the model server (``MODEL_SERVER_*``).

The package contains two deployables, so it has two settings classes, each with its own prefix.
Both are built on first use through the cached getters, never at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from evidence_model_client.model_info import model_version_error, spec_hash_error

__all__ = [
    "MAX_DEADLINE_MS",
    "ClientSettings",
    "LogLevel",
    "ServerSettings",
    "get_client_settings",
    "get_server_settings",
]


_LOG_LEVELS = ("debug", "info", "warning", "error")


def _lower_case(value: object) -> object:
    # An unknown name stays as it was sent, so the error message quotes the value as set.
    if isinstance(value, str) and value.lower() in _LOG_LEVELS:
        return value.lower()
    return value


# Either case is accepted, as the persistence worker takes its level in upper case.
LogLevel = Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower_case)]

# Largest MODEL_CLIENT_DEADLINE_MS accepted. The latency buckets in metrics.py reach beyond it.
MAX_DEADLINE_MS = 60_000


class ClientSettings(BaseSettings):
    """Settings of the async model client and the ``RiskScorer`` facade."""

    model_config = SettingsConfigDict(env_prefix="MODEL_CLIENT_", extra="ignore")

    base_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:5000")
    """Model service root; ``/predict-proba`` is appended. In SPCS, the service's ``dns_name``."""

    deadline_ms: float = Field(default=50.0, gt=0, le=MAX_DEADLINE_MS)
    """Total time budget of one model call in milliseconds, retries and pool wait included."""

    max_retries: int = Field(default=1, ge=0, le=5)
    """Extra attempts after a retryable failure (connection refused or dropped, 502/503/504)."""

    retry_backoff_ms: float = Field(default=1.0, ge=0)
    """Pause before each retry in milliseconds."""

    breaker_failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failed calls that open the circuit."""

    breaker_cooldown_seconds: float = Field(default=5.0, gt=0)
    """Time the circuit stays open before one probe call may try the service again."""

    max_connections: int = Field(default=32, ge=1)
    """Pooled connections to the model service; concurrent calls beyond this wait in line."""

    keepalive_expiry_seconds: float = Field(default=4.0, gt=0)
    """Idle time after which a pooled connection is dropped. Keep it below the server's
    keep-alive timeout (5 s by default in uvicorn), so the client never reuses a closing one."""

    model_version: str | None = None
    """Served model version (e.g. ``V2``) for a service without the local server's ``/health``,
    such as the Snowflake inference service, whose scores are otherwise labelled
    ``REGISTRY_UNKNOWN``: 1 to 64 letters, digits, ``_``, ``-`` or ``.``. Unset or empty: read
    from ``GET {base_url}/health`` at start-up, and again after the first successful model call
    while still unknown."""

    health_timeout_ms: float = Field(default=500.0, gt=0, le=60_000)
    """Timeout of one ``GET {base_url}/health`` request made for a readiness check."""

    health_max_age_seconds: float = Field(default=1.0, ge=0)
    """How long a readiness check reuses the last observation of the model service (a health
    request or a model call) before it sends a new ``GET /health``."""

    feature_spec_hash: str | None = None
    """Feature spec hash of the served model when ``/health`` is unavailable: 16 lowercase hex
    digits. Unset or empty with no ``/health``: the hash is not checked."""

    reason_profile_dir: Path | None = Path("var/model")
    """Artifact directory whose ``metadata.json`` supplies importances and training means for
    model reasons. Missing or unset: model scores get the fallback terms as reasons."""

    top_reasons: int = Field(default=5, ge=0, le=105)
    """Reasons returned per score."""

    auth_token: SecretStr | None = None
    """Token sent as ``Authorization: Snowflake Token="..."`` to a public SPCS endpoint; not
    needed inside SPCS."""

    @field_validator("feature_spec_hash", mode="after")
    @classmethod
    def _check_spec_hash(cls, value: str | None) -> str | None:
        # Empty is unset, as compose's ${VAR:-} passes an unset variable. Any other value that
        # is not a hash (such as the placeholder of deploy/snowflake.yml) could never match,
        # so the gateway would stay not ready: stop at start-up instead.
        if not value:
            return None
        if spec_hash_error(value) is not None:
            msg = (
                f"{value!r} is not a feature spec hash (16 lowercase hex digits). Set the hash "
                "that evidence-train register recorded on the model version, or leave it unset"
            )
            raise ValueError(msg)
        return value

    @field_validator("model_version", mode="after")
    @classmethod
    def _check_model_version(cls, value: str | None) -> str | None:
        # The version becomes a Prometheus label value and part of every prediction, so it
        # passes the rule that /health versions pass. Empty is unset, as for the hash.
        if not value:
            return None
        error = model_version_error(value)
        if error is not None:
            msg = (
                f"MODEL_CLIENT_MODEL_VERSION: {error}. Set the registered version name, or unset it"
            )
            raise ValueError(msg)
        return value


class ServerSettings(BaseSettings):
    """Settings of the local model server (``evidence-model-server``)."""

    model_config = SettingsConfigDict(env_prefix="MODEL_SERVER_", extra="ignore")

    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` only inside a container."""

    port: int = Field(default=5000, ge=0, le=65535)
    """TCP port. The local default; in SPCS the deployment reads the inference endpoint's port
    from ``SHOW ENDPOINTS IN SERVICE``."""

    artifact_dir: Path = Path("var/model")
    """Directory holding ``model.joblib`` and ``metadata.json``."""

    allow_builtin: bool = True
    """Serve the deterministic built-in scoring function when the artifact directory is empty,
    so the stack runs before any training. False: refuse to start without an artifact."""

    scoring_threads: int = Field(default=1, ge=1, le=256)
    """OpenMP and BLAS threads one ``predict_proba`` call may use. One thread was fastest for
    batches of 1 and 200 rows in benchmarks/model_client. More threads may help batches of
    thousands of rows on idle cores, which was not measured."""

    max_rows: int = Field(default=10_000, ge=1)
    """Maximum rows in one request; larger requests get 413."""

    max_body_bytes: int = Field(default=32_000_000, ge=1024)
    """Maximum request body size in bytes; larger bodies get 413."""

    max_inflight_body_bytes: int = Field(default=128_000_000, ge=1024)
    """Maximum request body bytes of all requests in progress together. A request that would
    pass it gets 503 with ``Retry-After`` before its body is read. The default admits four
    bodies of the default ``max_body_bytes``. A request's bytes stay counted until its response
    is ready, so the limit also bounds the parsed arrays. They took about four times the
    body's size in one measurement (docs/model-client.md)."""

    body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """Seconds from the start of a request until its whole body must have arrived. A slower
    body gets 408, its connection is closed and its in-flight bytes are released. The largest
    accepted body (``max_body_bytes``, 32 MB by default) takes about 2.6 s at 100 Mbit/s. The
    upper bound keeps a stalled client from holding its share of the in-flight limit for long."""

    busy_log_interval_seconds: float = Field(default=10.0, gt=0, le=3600)
    """Seconds between the log lines that count the 503 rejections for the in-flight limit.
    The first rejection of an overload is logged at once, then a count at most this often,
    and a last line once this long passes without a rejection."""

    log_level: LogLevel = "info"
    """Level of the JSON logs on stdout."""

    @model_validator(mode="after")
    def _check_body_fits_inflight(self) -> ServerSettings:
        if self.max_body_bytes > self.max_inflight_body_bytes:
            msg = (
                f"MODEL_SERVER_MAX_BODY_BYTES={self.max_body_bytes} exceeds "
                f"MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES={self.max_inflight_body_bytes}, so a "
                "body of the largest size could never be accepted; raise the in-flight limit "
                "or lower the body limit"
            )
            raise ValueError(msg)
        return self


@lru_cache(maxsize=1)
def get_client_settings() -> ClientSettings:
    """Build the client settings from the environment once per process."""
    return ClientSettings()


@lru_cache(maxsize=1)
def get_server_settings() -> ServerSettings:
    """Build the server settings from the environment once per process."""
    return ServerSettings()
