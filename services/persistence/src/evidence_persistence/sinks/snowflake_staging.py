"""Load a batch into temporary staging tables with bind parameters, never as SQL literals.

Snowpark's ``create_dataframe`` writes a batch of fewer than 512 values into the SQL text as
literals (``ARRAY_BIND_THRESHOLD`` in snowflake-snowpark-python 1.56), and Snowflake keeps
the text of every statement in its query history. The rows hold raw XML, policy numbers and
features, which are health data, so the sink stages them itself. Each table's rows go into a
temporary table of this session by ``executemany`` INSERTs, which the connector sends as array
binds under the ``qmark`` parameter style, and the MERGE then reads that table. Only names
and placeholders appear in the SQL text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from snowflake.snowpark import Session

from evidence_persistence._rows import Row
from evidence_persistence._tables import ColumnType
from evidence_persistence._tables import Table as TableSpec
from evidence_persistence.errors import SinkConfigurationError

__all__ = [
    "MAX_INSERT_BYTES",
    "MAX_INSERT_ROWS",
    "BoundStaging",
    "StageRows",
    "stage_table_name",
]

StageRows = Callable[[Session, TableSpec, str, Sequence[Row]], None]
"""Replace the content of the staging table (third argument) with the rows."""

MAX_INSERT_ROWS = 500
"""Rows per INSERT request at most, so a large batch becomes several requests."""
MAX_INSERT_BYTES = 16 * 1024 * 1024
"""Bound text per INSERT request at most (a row larger than this is still sent, alone)."""

# Staging columns carry no constraints: the target's keys and NOT NULL columns check the
# rows when the MERGE writes them. JSON stays text here and PARSE_JSON converts it in the MERGE.
_STAGE_TYPES: dict[ColumnType, str] = {
    "ID": "VARCHAR(128)",
    "KEY": "VARCHAR(64)",
    "TEXT": "VARCHAR",
    "FLOAT": "FLOAT",
    "TIMESTAMP": "TIMESTAMP_NTZ",
    "JSON": "VARCHAR",
}


def stage_table_name(table: TableSpec, database: str | None, schema: str | None) -> str:
    """Return the staging table's name, ``<table>_STAGE`` qualified as far as known.

    The name differs from every target table's name, because Snowflake lets a role create a
    temporary table with the name of a permanent table in the same schema only when the role
    owns that table.
    """
    name = f"{table.name}_STAGE"
    if schema is None:
        return name
    return f"{database}.{schema}.{name}" if database else f"{schema}.{name}"


def render_stage_ddl(table: TableSpec, name: str) -> str:
    """Return the CREATE TEMPORARY TABLE statement of one table's staging table.

    Time Travel is off, so rows deleted before the next batch are not kept for a day.
    """
    columns = ", ".join(f"{column.name} {_STAGE_TYPES[column.type]}" for column in table.columns)
    return (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns}) DATA_RETENTION_TIME_IN_DAYS = 0"
    )


def chunk_rows(rows: Sequence[Row]) -> Iterator[Sequence[Row]]:
    """Split rows into INSERT requests of at most ``MAX_INSERT_ROWS`` rows and about
    ``MAX_INSERT_BYTES`` of text."""
    start = 0
    size = 0
    for index, row in enumerate(rows):
        row_bytes = sum(len(value) for value in row if isinstance(value, str))
        full = index - start >= MAX_INSERT_ROWS or size + row_bytes > MAX_INSERT_BYTES
        if index > start and full:
            yield rows[start:index]
            start, size = index, 0
        size += row_bytes
    if start < len(rows):
        yield rows[start:]


class BoundStaging:
    """Stage rows through the session's connector connection with array binds.

    A temporary table lives as long as its session, so each one is created on the first batch
    of a session and emptied before every later batch. Call ``reset`` when the session is
    replaced.
    """

    def __init__(self) -> None:
        self._created: set[str] = set()

    def reset(self) -> None:
        """Forget the staging tables of the closed session."""
        self._created.clear()

    def __call__(self, session: Session, table: TableSpec, name: str, rows: Sequence[Row]) -> None:
        """Replace the content of staging table ``name`` with ``rows``.

        Raises:
            SinkConfigurationError: The connection uses the ``pyformat`` or ``format``
                parameter style, under which the connector writes bound values into the
                INSERT text.
        """
        connection = session.connection
        if connection.is_pyformat:
            msg = (
                "the Snowflake connection uses the pyformat parameter style, under which the "
                "connector writes bound values into the SQL text; create the session with "
                "paramstyle='qmark'"
            )
            raise SinkConfigurationError(msg)
        # The text holds only declared column names, the configured table name and
        # placeholders; every value travels as a bind.
        columns = ", ".join(table.column_names)
        placeholders = ", ".join("?" for _ in table.columns)
        insert = f"INSERT INTO {name} ({columns}) VALUES ({placeholders})"  # noqa: S608
        cursor = connection.cursor()
        try:
            if name not in self._created:
                cursor.execute(render_stage_ddl(table, name))
                self._created.add(name)
            else:
                # The previous batch's rows are still there, or part of them if it failed.
                cursor.execute(f"DELETE FROM {name}")  # noqa: S608
            for chunk in chunk_rows(rows):
                cursor.executemany(insert, chunk)
        finally:
            cursor.close()
