"""The interface every sink implements, and the sink chosen by settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from evidence_persistence._record import PredictionRecord

if TYPE_CHECKING:
    from evidence_persistence.config import Settings
    from evidence_persistence.metrics import WorkerMetrics

__all__ = ["Sink", "WriteResult", "open_sink"]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Rows upserted per table by one batch write."""

    online_features: int
    model_predictions: int
    raw_evidence: int
    online_features_skipped: tuple[str, ...] = ()
    """Prediction ids whose ``ONLINE_FEATURES`` row was not written, because the stored row of
    the policy has a newer ``UPDATED_AT``. Empty when the sink cannot tell which rows."""

    @property
    def total(self) -> int:
        """Rows upserted across the three tables."""
        return self.online_features + self.model_predictions + self.raw_evidence


class Sink(Protocol):
    """A store of the three prediction tables.

    ``write_batch`` must be idempotent: writing the same records again leaves one row per key.
    It raises ``SinkUnavailableError`` for failures worth retrying unchanged (the store is
    unreachable or locked) and any other exception for failures that may be the records' fault.
    """

    def write_batch(self, records: Sequence[PredictionRecord]) -> WriteResult:
        """Upsert the records into the tables."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def open_sink(settings: Settings, metrics: WorkerMetrics | None = None) -> Sink:
    """Create the sink named by ``settings.sink``.

    ``metrics`` receives the SQLite sink's count of failed store attempts.

    Raises:
        SinkConfigurationError: The Snowflake sink lacks credentials.
    """
    if settings.sink == "snowflake":
        # Imported here so that producers of the queue never load Snowpark.
        from evidence_persistence.sinks.snowflake import SnowflakeSink, session_factory

        return SnowflakeSink(
            session_factory(settings),
            database=settings.snowflake_database,
            schema=settings.snowflake_schema,
            store_raw_evidence=settings.store_raw_evidence,
            create_tables=settings.snowflake_create_tables,
            clock_skew_tolerance_seconds=settings.clock_skew_tolerance_seconds,
        )
    from evidence_persistence.sinks.sqlite import SqliteSink

    return SqliteSink(
        settings.store_path,
        store_raw_evidence=settings.store_raw_evidence,
        busy_timeout_ms=settings.store_busy_timeout_ms,
        lock_retries=settings.store_lock_retries,
        clock_skew_tolerance_seconds=settings.clock_skew_tolerance_seconds,
        metrics=metrics,
    )
