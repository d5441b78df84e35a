"""Declared layout of the three prediction tables, derived from ``FEATURE_SPEC``.

The DDL for both dialects and the row builders of both sinks read these declarations, so a change
to the feature spec changes every table definition and every written row together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evidence_features import FEATURE_SPEC

__all__ = [
    "FIRST_SCORING_COLUMNS",
    "MODEL_PREDICTIONS",
    "ONLINE_FEATURES",
    "RAW_EVIDENCE",
    "TABLES",
    "Column",
    "ColumnType",
    "Index",
    "Table",
]

ColumnType = Literal["ID", "KEY", "TEXT", "FLOAT", "TIMESTAMP", "JSON"]
"""Logical column types: ``ID`` is a prediction id, ``KEY`` a policy number, ``TIMESTAMP`` UTC,
``JSON`` a JSON document (``VARIANT`` in Snowflake, text in SQLite)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One table column."""

    name: str
    type: ColumnType
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index of a table."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A table in Snowflake schema ``schema``; SQLite names it ``<schema>__<name>``."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: str
    indexes: tuple[Index, ...] = ()

    @property
    def sqlite_name(self) -> str:
        """Table name in the SQLite store, with the schema as a name prefix."""
        return f"{self.schema}__{self.name}"

    def snowflake_name(self, database: str | None = None) -> str:
        """Qualified Snowflake name, with ``database`` as a prefix when given."""
        qualified = f"{self.schema}.{self.name}"
        return f"{database}.{qualified}" if database else qualified

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in table order."""
        return tuple(column.name for column in self.columns)


# NOTE: every feature column is FLOAT whatever its declared dtype, so the stored value is the
# float64 the model saw, including defaults such as -1.0 for "no record".
FEATURE_COLUMNS = tuple(Column(spec.name.upper(), "FLOAT") for spec in FEATURE_SPEC)

ONLINE_FEATURES = Table(
    schema="FEATURE_STORE",
    name="ONLINE_FEATURES",
    columns=(
        Column("POLICY_NUMBER", "KEY"),
        *FEATURE_COLUMNS,
        Column("FEATURE_SPEC_VERSION", "TEXT"),
        Column("PREDICTION_ID", "ID"),
        Column("UPDATED_AT", "TIMESTAMP"),
    ),
    primary_key="POLICY_NUMBER",
)

MODEL_PREDICTIONS = Table(
    schema="ML_MODELS",
    name="MODEL_PREDICTIONS",
    columns=(
        Column("PREDICTION_ID", "ID"),
        Column("POLICY_NUMBER", "KEY"),
        Column("RISK_SCORE", "FLOAT"),
        Column("RISK_LEVEL", "TEXT"),
        Column("MODEL_NAME", "TEXT"),
        Column("MODEL_VERSION", "TEXT"),
        Column("FEATURE_SPEC_VERSION", "TEXT"),
        Column("SOURCE", "TEXT"),
        Column("INFERENCE_MS", "FLOAT"),
        Column("FALLBACK_REASON", "TEXT", nullable=True),
        Column("WARNINGS", "TEXT"),
        Column("CREATED_AT", "TIMESTAMP"),
        Column("PERSISTED_AT", "TIMESTAMP"),
        # The prediction's feature vector as a JSON object {FEATURE_NAME: value}; see
        # _rows.features_json. It is nullable and after PERSISTED_AT because it was added to
        # existing tables with ALTER TABLE ... ADD COLUMN, which appends a column and leaves
        # older rows NULL.
        Column("FEATURES", "JSON", nullable=True),
        # Scoring time of the response that the row stores: the latest scoring of the
        # prediction id, where CREATED_AT is the first. It was appended like FEATURES, so rows
        # stored before it keep NULL, which both sinks read as CREATED_AT.
        Column("ANSWERED_AT", "TIMESTAMP", nullable=True),
    ),
    primary_key="PREDICTION_ID",
    indexes=(
        Index("IDX_MODEL_PREDICTIONS_POLICY", ("POLICY_NUMBER",)),
        Index("IDX_MODEL_PREDICTIONS_CREATED", ("CREATED_AT",)),
    ),
)

FIRST_SCORING_COLUMNS = ("CREATED_AT", "PERSISTED_AT")
"""``MODEL_PREDICTIONS`` columns that follow the prediction id's first scoring. Every other
non-key column holds the answer with the latest ``ANSWERED_AT``."""

RAW_EVIDENCE = Table(
    schema="FEATURE_STORE",
    name="RAW_EVIDENCE",
    columns=(
        Column("EVIDENCE_ID", "ID"),
        Column("POLICY_NUMBER", "KEY"),
        Column("MIB_XML", "TEXT", nullable=True),
        Column("RX_XML", "TEXT", nullable=True),
        Column("CREATED_AT", "TIMESTAMP"),
    ),
    primary_key="EVIDENCE_ID",
    indexes=(Index("IDX_RAW_EVIDENCE_POLICY", ("POLICY_NUMBER",)),),
)

TABLES: tuple[Table, ...] = (ONLINE_FEATURES, MODEL_PREDICTIONS, RAW_EVIDENCE)
