"""Sinks that write the prediction tables: SQLite (embedded default) and Snowflake."""
