"""Gateway settings, read from ``GATEWAY_*`` environment variables."""

from __future__ import annotations

import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from evidence_model_client.config import LogLevel
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Runtime configuration of the gateway.

    Every field maps to ``GATEWAY_<FIELD>``, for example ``GATEWAY_MAX_BATCH_ROWS=500``.
    ``PROMETHEUS_MULTIPROC_DIR`` keeps the name prometheus-client itself reads.
    """

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", extra="ignore", frozen=True, populate_by_name=True
    )

    host: str = Field(default="127.0.0.1", description="Interface uvicorn binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port uvicorn binds to.")
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes.")

    queue_path: Path = Field(
        default=Path("var/queue.sqlite3"),
        description="SQLite file of the durable prediction queue shared with the worker.",
    )
    queue_max_depth: int = Field(
        default=100_000,
        ge=1,
        description="Queue depth at which appends fail and the gateway returns 503.",
    )
    queue_synchronous: Literal["FULL", "NORMAL"] = Field(
        # Snowflake does not resend a service-function batch that got 200. Where the queue file
        # outlives its host, as on the SPCS block volume, a power loss that undoes the last
        # appends loses those predictions for good, so deployments there set FULL. NORMAL stays
        # the default because FULL doubled to tripled the sequential /v1/predict p50 on the
        # development VM (docs/benchmarks.md, "Queue durability: NORMAL against FULL").
        default="NORMAL",
        description=(
            "SQLite PRAGMA synchronous of the gateway's queue appends. FULL fsyncs every "
            "append, so a prediction returned with 200 survives a power loss. NORMAL survives "
            "the crash of any process, but not a power loss or kernel crash."
        ),
    )
    store_raw_evidence: bool = Field(
        default=False,
        description="Put the raw XML on each queued record. It is health data: off by default.",
    )

    max_body_bytes: int = Field(
        default=16_000_000,
        ge=1,
        description="Largest request body in bytes; larger bodies get 413 before being read.",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Time from the start of a request until its whole body must have arrived; a "
            "slower body gets 408 and the connection is closed."
        ),
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        # A request head is a few hundred bytes, so a client that needs minutes for it has stalled.
        le=300,
        description=(
            "Time from the start of a request, or from the connection for its first request, "
            "until its headers must be complete; a slower client gets 408 and the connection "
            "is closed."
        ),
    )
    write_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "Longest time the client's TCP stack may acknowledge no byte while the gateway "
            "holds response bytes for it; past it the connection is reset and its buffers freed."
        ),
    )
    max_header_bytes: int = Field(
        # Real request heads are well under 8 KiB; Snowflake's service-function headers are a
        # few hundred bytes. Without a bound, uvicorn's httptools protocol buffers any size.
        default=65_536,
        ge=1_024,
        le=16 * 1024 * 1024,
        description=(
            "Largest request head (request line and headers) in bytes; a larger one gets 431 "
            "and the connection is closed."
        ),
    )
    max_inflight_body_bytes: int = Field(
        # Room for 16 bodies of the largest size at once. Each body costs about three times its
        # size while it is decoded and extracted, so this bounds that memory per worker.
        default=256_000_000,
        ge=1,
        description=(
            "Bytes of request bodies that one gateway worker holds at once, counted as they "
            "arrive until each response is sent; a request that would pass it gets 503."
        ),
    )
    max_document_bytes: int = Field(
        default=2_000_000,
        ge=1,
        description="Largest single MIB or Rx document in bytes (UTF-8).",
    )
    max_batch_rows: int = Field(
        default=1_000,
        ge=1,
        description="Maximum rows in one /v1/predict/batch or /functions/predict request.",
    )

    extraction_executor: Literal["thread", "process"] = Field(
        default="thread",
        description="Where XML parsing and feature extraction run, off the event loop.",
    )
    extraction_workers: int = Field(
        # Extraction is Python code that holds the GIL for all but the parse, so a second
        # thread scores no faster and only takes GIL turns from the event loop, which delays
        # health probes (docs/gateway.md, "Health probes under load").
        default=1,
        ge=1,
        description=(
            "Threads or processes of the extraction pool. More than one thread adds no "
            "throughput; for the process pool, use the number of cores."
        ),
    )
    gil_switch_interval_ms: float = Field(
        # With CPython's default of 5 ms, the event loop's thread waited up to 5 ms for the GIL
        # after each socket call while extraction threads ran, and a health probe behind large
        # requests waited hundreds of milliseconds (docs/gateway.md, "Health probes under
        # load").
        default=1.0,
        gt=0,
        le=100,
        description=(
            "Milliseconds a thread may hold the GIL while another waits for it "
            "(sys.setswitchinterval), set in each gateway worker process. Smaller values "
            "keep the event loop responsive while extraction threads run."
        ),
    )
    inline_extraction_max_bytes: int = Field(
        # A typical pair (50 KB) takes about 1 ms to extract. A pool thread would hold the GIL,
        # and so keep the loop waiting, for most of that time, and the two hand-offs cost about
        # 0.9 ms more CPU per request under load (docs/benchmarks.md, section Gateway).
        default=65_536,
        ge=0,
        description=(
            "Largest total size of one request's documents, in characters, plus 1 KiB per "
            "row, that is extracted inline, with the event loop blocked until a dedicated "
            "thread has extracted it, instead of on the pool; 0 sends every request to the "
            "pool."
        ),
    )
    extraction_recycle_bytes: int = Field(
        # lxml interns every element, attribute and namespace name it parses in a dictionary
        # that belongs to the parsing thread and lives as long as the thread. Documents with
        # new names each time grow it without bound, so extraction threads are replaced after
        # this much input, which frees their dictionaries.
        default=64 * 1024 * 1024,
        ge=1,
        description=(
            "Characters of documents an extraction thread or process parses before a fresh "
            "one replaces it. Bounds the memory that documents with ever-new element names "
            "can hold."
        ),
    )

    api_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token required on /v1 routes; empty counts as unset. "
            "Required unless local_mode is true."
        ),
    )
    local_mode: bool = Field(
        default=False,
        description="Local stack and tests: the /v1 bearer token is optional.",
    )

    log_format: Literal["json", "console"] = Field(
        default="json", description="structlog renderer: JSON lines or coloured console."
    )
    # The model server's type: either case is accepted, as the worker takes upper case.
    log_level: LogLevel = "info"

    append_status_dir: Path = Field(
        # A memory file system, so the status file stays writable when the queue's disk is full.
        default=Path("/dev/shm"),  # noqa: S108 - the file is created with O_NOFOLLOW and mode 0600
        description=(
            "Directory of the small file in which the workers share the outcome of their queue "
            "appends, for readiness; used only when workers is above 1. Must exist and be "
            "writable."
        ),
    )
    append_status_file: Path | None = Field(
        default=None,
        description=(
            "The status file itself. evidence-gateway sets it for its workers from "
            "append_status_dir and the queue path that it resolves once at start, so that a "
            "restarted worker uses the same file as the others even after a symlink in "
            "queue_path changed; leave it unset."
        ),
    )
    prometheus_multiproc_dir: Path | None = Field(
        default=None,
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="Directory shared by uvicorn workers for aggregated metrics (several workers).",
    )

    @model_validator(mode="after")
    def _check_document_fits_body(self) -> Settings:
        if self.max_document_bytes > self.max_body_bytes:
            msg = (
                f"GATEWAY_MAX_DOCUMENT_BYTES={self.max_document_bytes} exceeds "
                f"GATEWAY_MAX_BODY_BYTES={self.max_body_bytes}; raise the body limit or lower "
                "the document limit"
            )
            raise ValueError(msg)
        if self.max_body_bytes > self.max_inflight_body_bytes:
            msg = (
                f"GATEWAY_MAX_BODY_BYTES={self.max_body_bytes} exceeds "
                f"GATEWAY_MAX_INFLIGHT_BODY_BYTES={self.max_inflight_body_bytes}, so the "
                "largest body could never be accepted; raise the in-flight limit or lower the "
                "body limit"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _check_metrics_dir_for_workers(self) -> Settings:
        # Without the shared directory each worker keeps its own registry, and a scrape reads
        # whichever worker responds, so counters seem to reset between scrapes.
        if self.workers > 1 and self.prometheus_multiproc_dir is None:
            msg = (
                f"GATEWAY_WORKERS={self.workers} needs PROMETHEUS_MULTIPROC_DIR, or /metrics "
                "shows one worker at a time; set it to an empty directory that the workers "
                "share, or set GATEWAY_WORKERS=1"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _check_append_status_dir_for_workers(self) -> Settings:
        if self.workers <= 1:
            return self
        if not self.append_status_dir.is_dir():
            msg = (
                f"GATEWAY_APPEND_STATUS_DIR={self.append_status_dir} is not a directory, and "
                f"GATEWAY_WORKERS={self.workers} needs it to share the outcome of queue appends "
                "between workers; set it to an existing directory on a memory file system such "
                "as /dev/shm, or set GATEWAY_WORKERS=1"
            )
            raise ValueError(msg)
        error = _file_creation_error(self.append_status_dir)
        if error is not None:
            msg = (
                f"GATEWAY_APPEND_STATUS_DIR={self.append_status_dir} is not writable ({error}), "
                f"and GATEWAY_WORKERS={self.workers} needs to create a file in it to share the "
                "outcome of queue appends between workers; set it to a directory that this "
                "user can write, on a memory file system such as /dev/shm, or set "
                "GATEWAY_WORKERS=1"
            )
            raise ValueError(msg)
        return self

    @field_validator("api_token", mode="after")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        # An empty token would match the empty credentials of a bare "Authorization: Bearer".
        if not token.strip():
            return None
        # A client can send only a b64token (RFC 6750) after "Bearer ", so any other token, one
        # with spaces, line breaks or non-ASCII letters, could never be matched.
        if _BEARER_TOKEN.fullmatch(token) is None:
            msg = (
                "GATEWAY_API_TOKEN contains characters that a client cannot send in a bearer "
                "token; use only A-Z a-z 0-9 - . _ ~ + / and trailing =, for example the output "
                "of python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check_token_outside_local_mode(self) -> Settings:
        if not self.local_mode and self.api_token is None:
            msg = (
                "GATEWAY_API_TOKEN is not set or empty; set it to the bearer token /v1 clients "
                "must send, "
                "or set GATEWAY_LOCAL_MODE=true to run without one (local stack and tests only). "
                "The gateway reads the environment only, not a .env file"
            )
            raise ValueError(msg)
        return self


_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*", re.ASCII)


def _file_creation_error(directory: Path) -> str | None:
    """Create and delete a file in ``directory``; return why that failed, or None.

    ``os.access`` is not used because it reports every directory as writable for root, even on
    a read-only mount or in ``/proc``.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=".evidence-gateway-write-check-", dir=directory)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    os.close(fd)
    Path(name).unlink()
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process from the environment."""
    return Settings()
