"""Render the CREATE statements of the prediction tables for SQLite or Snowflake.

Run ``python -m evidence_persistence.ddl --dialect snowflake`` to print the Snowflake script.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Literal

from evidence_persistence._tables import TABLES, Column, ColumnType, Table

__all__ = ["Dialect", "render_add_column", "render_ddl"]

Dialect = Literal["sqlite", "snowflake"]

_SQLITE_TYPES: dict[ColumnType, str] = {
    "ID": "TEXT",
    "KEY": "TEXT",
    "TEXT": "TEXT",
    "FLOAT": "REAL",
    "TIMESTAMP": "TEXT",
    "JSON": "TEXT",
}
# Hybrid-table keys and indexed columns get bounded VARCHARs; other text is unbounded VARCHAR,
# which costs nothing extra in Snowflake. Every timestamp is UTC, so it is stored without a zone.
_SNOWFLAKE_TYPES: dict[ColumnType, str] = {
    "ID": "VARCHAR(128)",
    "KEY": "VARCHAR(64)",
    "TEXT": "VARCHAR",
    "FLOAT": "FLOAT",
    "TIMESTAMP": "TIMESTAMP_NTZ",
    # Hybrid tables accept VARIANT columns but cannot index them; no index uses one.
    "JSON": "VARIANT",
}


def render_ddl(dialect: Dialect, *, database: str | None = None) -> list[str]:
    """Return the idempotent CREATE statements of the three tables, without trailing semicolons.

    Args:
        dialect: ``"sqlite"`` for the embedded store, ``"snowflake"`` for hybrid tables.
        database: Snowflake database to prefix table names with; ignored for SQLite.

    Raises:
        ValueError: ``dialect`` is neither ``"sqlite"`` nor ``"snowflake"``.
    """
    name: str = dialect
    if name == "sqlite":
        return [statement for table in TABLES for statement in _render_sqlite(table)]
    if name == "snowflake":
        return [_render_snowflake(table, database) for table in TABLES]
    msg = f"dialect={name!r} is not supported; use 'sqlite' or 'snowflake'"
    raise ValueError(msg)


def render_add_column(
    dialect: Dialect, table: Table, column: Column, *, database: str | None = None
) -> str:
    """Return the ALTER TABLE statement that adds ``column`` to an existing ``table``.

    The column is added as nullable in both dialects, because rows that already exist have no
    value for it. Snowflake's form has ``IF NOT EXISTS``. SQLite has no such clause, so its
    caller must check the table's columns first.

    Raises:
        ValueError: ``dialect`` is not supported, or ``column`` is not declared in ``table``.
    """
    if column not in table.columns:
        msg = f"column {column.name!r} is not declared in table {table.name!r}"
        raise ValueError(msg)
    name: str = dialect
    if name == "sqlite":
        return (
            f"ALTER TABLE {table.sqlite_name} ADD COLUMN {column.name} {_SQLITE_TYPES[column.type]}"
        )
    if name == "snowflake":
        return (
            f"ALTER TABLE {table.snowflake_name(database)} ADD COLUMN IF NOT EXISTS "
            f"{column.name} {_SNOWFLAKE_TYPES[column.type]}"
        )
    msg = f"dialect={name!r} is not supported; use 'sqlite' or 'snowflake'"
    raise ValueError(msg)


def _column_lines(table: Table, types: dict[ColumnType, str]) -> list[str]:
    return [
        f"    {column.name} {types[column.type]}{'' if column.nullable else ' NOT NULL'}"
        for column in table.columns
    ]


def _render_sqlite(table: Table) -> list[str]:
    lines = [*_column_lines(table, _SQLITE_TYPES), f"    PRIMARY KEY ({table.primary_key})"]
    create = f"CREATE TABLE IF NOT EXISTS {table.sqlite_name} (\n" + ",\n".join(lines) + "\n)"
    indexes = [
        f"CREATE INDEX IF NOT EXISTS {index.name} ON {table.sqlite_name} "
        f"({', '.join(index.columns)})"
        for index in table.indexes
    ]
    return [create, *indexes]


def _render_snowflake(table: Table, database: str | None) -> str:
    lines = [*_column_lines(table, _SNOWFLAKE_TYPES), f"    PRIMARY KEY ({table.primary_key})"]
    lines += [f"    INDEX {index.name} ({', '.join(index.columns)})" for index in table.indexes]
    return (
        f"CREATE HYBRID TABLE IF NOT EXISTS {table.snowflake_name(database)} (\n"
        + ",\n".join(lines)
        + "\n)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the DDL script of one dialect, statements separated by ``;`` and a blank line."""
    parser = argparse.ArgumentParser(
        prog="python -m evidence_persistence.ddl",
        description="Print the CREATE statements of the prediction tables.",
    )
    parser.add_argument("--dialect", choices=("sqlite", "snowflake"), default="snowflake")
    parser.add_argument(
        "--database", default=None, help="Snowflake database to qualify table names with."
    )
    args = parser.parse_args(argv)
    statements = render_ddl(args.dialect, database=args.database)
    sys.stdout.write(";\n\n".join(statements) + ";\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
