"""Helpers for tests of the Snowflake sink in Snowpark's local-testing session."""

from __future__ import annotations

from collections.abc import Sequence

from evidence_persistence._rows import Row
from evidence_persistence._tables import Table as TableSpec
from evidence_persistence.sinks.snowflake import struct_type
from snowflake.snowpark import Session

__all__ = ["stage_with_dataframe"]


def stage_with_dataframe(
    session: Session, table: TableSpec, name: str, rows: Sequence[Row]
) -> None:
    """Fill the staging table through the DataFrame API, which the emulator supports.

    Real Snowflake would receive these values as SQL literals, so only tests use it.
    """
    source = session.create_dataframe(list(rows), schema=struct_type(table, json_as_text=True))
    source.write.save_as_table(name, mode="overwrite", table_type="temporary")
