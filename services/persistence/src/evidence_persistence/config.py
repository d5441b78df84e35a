"""Settings of the persistence worker and queue, read from ``PERSISTENCE_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

Synchronous = Literal["FULL", "NORMAL"]


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _upper_case(value: object) -> object:
    # An unknown name stays as it was sent, so the error message quotes the value as set.
    if isinstance(value, str) and value.upper() in _LOG_LEVELS:
        return value.upper()
    return value


# Either case is accepted, as the gateway and the model server take their levels in lower case.
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper_case)]


class Settings(BaseSettings):
    """Configuration of the queue, the worker and the sinks.

    Every field is read from the environment variable ``PERSISTENCE_<FIELD>`` (upper case). The
    Snowflake connection fields also accept the names SPCS sets in a service container
    (``SNOWFLAKE_ACCOUNT``, ``SNOWFLAKE_HOST``, ``SNOWFLAKE_DATABASE``, ...).
    """

    model_config = SettingsConfigDict(env_prefix="PERSISTENCE_", extra="ignore")

    queue_path: Path = Path("var/queue.sqlite3")
    """SQLite file of the durable queue, shared by the gateway and the worker."""
    queue_max_depth: int = Field(default=100_000, ge=1)
    """Appends fail with ``QueueFullError`` once this many records wait in the queue."""
    queue_busy_timeout_ms: int = Field(default=1_000, ge=0)
    """How long one SQLite statement waits for another process's write lock, in milliseconds."""
    queue_lock_retries: int = Field(default=4, ge=1)
    """Attempts per queue transaction when the lock is still held after the busy timeout."""
    queue_synchronous: Synchronous = "NORMAL"
    """SQLite ``PRAGMA synchronous``: NORMAL survives process crashes, FULL also power loss."""

    sink: Literal["sqlite", "snowflake"] = "sqlite"
    """Sink the worker writes the tables to."""
    store_path: Path = Path("var/store.sqlite3")
    """SQLite file of the embedded store, used when ``sink`` is ``sqlite``."""
    store_raw_evidence: bool = False
    """Write ``RAW_EVIDENCE`` rows (raw XML; health data) for records that carry it."""
    store_busy_timeout_ms: int = Field(default=5_000, ge=0)
    """How long one attempt to write the store waits for another process's lock, in ms."""
    store_lock_retries: int = Field(default=4, ge=1)
    """Attempts per store transaction when the lock is still held after the busy timeout.

    NOTE: the batch stays leased while the worker waits. A wait of ``store_busy_timeout_ms``
    times this longer than ``lease_seconds`` lets another worker claim and write the same
    records, which the upserts keep to one row per key."""

    batch_size: int = Field(default=500, ge=1, le=10_000)
    """Records the worker claims and writes per transaction."""
    batch_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Stored bytes (payload, features, raw XML) after which a claim stops taking records.

    It bounds the queue bytes of one batch, not the worker's memory, because the worker also
    keeps the decoded records and the rows built from them. With records of two 1.9 MB
    documents the worker's peak resident set was 281 MB, about four times the default, in one
    measured run. A record larger than the limit is still claimed, alone."""
    lease_seconds: float = Field(default=60.0, gt=0)
    """A claimed batch not deleted within this time is delivered again (worker crash)."""
    max_attempts: int = Field(default=5, ge=1)
    """Claims of a record before a failing record moves to the dead-letter table.

    A lease expiry counts as a failure only for a record that was claimed alone.
    """
    poll_interval_seconds: float = Field(default=0.2, gt=0)
    """Sleep between polls while the queue is empty."""
    retry_backoff_max_seconds: float = Field(default=30.0, gt=0)
    """Upper bound of the exponential back-off after a sink outage."""
    stop_grace_seconds: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    """How long the worker keeps draining the queue after SIGTERM or SIGINT, in seconds.

    0 stops after the batch in progress. The default leaves half of the 10 s that ``docker
    stop`` and the local stack's supervisord wait before SIGKILL for the batch still in
    progress at the deadline and for closing the sink. Kubernetes waits 30 s by default.
    NOTE: the time SPCS waits between SIGTERM and SIGKILL is not documented in the sources this
    default was chosen from, so the drain may be cut short there."""
    clock_skew_tolerance_seconds: float = Field(default=300.0, ge=0)
    """How far a record's ``created_at`` may be ahead of the worker's clock, in seconds.

    A record further ahead is logged and counted, and its ``ONLINE_FEATURES.UPDATED_AT`` is
    cut to the worker's clock plus this tolerance, so it cannot hold back later features of
    its policy for longer than that."""
    metrics_port: int | None = Field(default=None, ge=0, le=65_535)
    """Port of the worker's Prometheus endpoint on ``metrics_host``; unset disables it."""
    metrics_host: str = "127.0.0.1"
    """Interface the worker's Prometheus endpoint binds to."""
    log_level: LogLevel = "INFO"
    """Lowest level the worker logs."""

    snowflake_account: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PERSISTENCE_SNOWFLAKE_ACCOUNT", "SNOWFLAKE_ACCOUNT"),
    )
    snowflake_host: str | None = Field(
        default=None, validation_alias=AliasChoices("PERSISTENCE_SNOWFLAKE_HOST", "SNOWFLAKE_HOST")
    )
    snowflake_user: str | None = None
    snowflake_role: str | None = None
    snowflake_warehouse: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PERSISTENCE_SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_WAREHOUSE"),
    )
    snowflake_database: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PERSISTENCE_SNOWFLAKE_DATABASE", "SNOWFLAKE_DATABASE"),
    )
    snowflake_schema: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PERSISTENCE_SNOWFLAKE_SCHEMA", "SNOWFLAKE_SCHEMA"),
    )
    """Current schema of the worker's session, which contains its temporary staging tables. The
    role needs USAGE and CREATE TABLE on it."""
    snowflake_create_tables: bool = False
    """Run ``CREATE HYBRID TABLE IF NOT EXISTS`` once per session. Off by default, because the
    deployment creates the tables and Snowflake checks CREATE TABLE on the schemas even when
    the tables exist."""
    snowflake_private_key_file: Path | None = None
    """PEM private key of the key-pair user, used when no SPCS token file exists."""
    snowflake_private_key_passphrase: SecretStr | None = None
    snowflake_token_file: Path = Path("/snowflake/session/token")
    """OAuth token file that SPCS mounts into every service container."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process from the environment."""
    return Settings()
