"""Read access to the prediction tables: one query per panel, for SQLite and Snowflake."""

from evidence_dashboard.store.base import PolicyLookup, PredictionStore, QueryResult
from evidence_dashboard.store.sqlite import SqliteStore

__all__ = ["PolicyLookup", "PredictionStore", "QueryResult", "SqliteStore"]
