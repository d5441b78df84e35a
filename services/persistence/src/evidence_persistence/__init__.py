"""Durable prediction queue, its worker, and the sinks that write the prediction tables."""

from evidence_persistence._queue import PredictionQueue
from evidence_persistence._record import PredictionRecord, Source
from evidence_persistence.errors import (
    PersistenceError,
    QueueError,
    QueueFullError,
    QueueUnavailableError,
    RecordDecodeError,
    SchemaVersionError,
    SinkConfigurationError,
    SinkError,
    SinkRecordError,
    SinkUnavailableError,
)

__all__ = [
    "PersistenceError",
    "PredictionQueue",
    "PredictionRecord",
    "QueueError",
    "QueueFullError",
    "QueueUnavailableError",
    "RecordDecodeError",
    "SchemaVersionError",
    "SinkConfigurationError",
    "SinkError",
    "SinkRecordError",
    "SinkUnavailableError",
    "Source",
]
