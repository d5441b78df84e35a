"""Helpers for tests of the Snowflake sink in Snowpark's local-testing session."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from evidence_persistence._rows import Row
from evidence_persistence._tables import TABLES
from evidence_persistence._tables import Table as TableSpec
from evidence_persistence.sinks.snowflake import struct_type
from snowflake.snowpark import Session

__all__ = ["create_empty_tables", "open_local_session", "stage_with_dataframe"]


def open_local_session() -> Session:
    """Open a Snowpark local-testing session, without its warnings about the emulator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session: Session = Session.builder.config("local_testing", True).create()
    return session


def create_empty_tables(session: Session) -> None:
    """Create the three tables, empty, replacing any that exist."""
    for table in TABLES:
        empty = session.create_dataframe([], schema=struct_type(table))
        empty.write.save_as_table(table.snowflake_name(), mode="overwrite")


def stage_with_dataframe(
    session: Session, table: TableSpec, name: str, rows: Sequence[Row]
) -> None:
    """Fill the staging table through the DataFrame API, which the emulator supports.

    Real Snowflake would receive these values as SQL literals, so only tests use it.
    """
    source = session.create_dataframe(list(rows), schema=struct_type(table, json_as_text=True))
    source.write.save_as_table(name, mode="overwrite", table_type="temporary")
