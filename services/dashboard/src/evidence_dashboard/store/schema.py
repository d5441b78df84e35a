"""Table and column names the dashboard reads, as the persistence worker's DDL creates them.

Snowflake keeps the tables in the ``FEATURE_STORE`` and ``ML_MODELS`` schemas; the SQLite sink
uses the same names with the schema as a table-name prefix (``ML_MODELS__MODEL_PREDICTIONS``).
"""

from __future__ import annotations

from evidence_features import FEATURE_NAMES

__all__ = [
    "FEATURES_TABLE",
    "FEATURE_COLUMNS",
    "PREDICTIONS_TABLE",
    "sqlite_table",
]

PREDICTIONS_TABLE = ("ML_MODELS", "MODEL_PREDICTIONS")
FEATURES_TABLE = ("FEATURE_STORE", "ONLINE_FEATURES")

PREDICTION_ID = "PREDICTION_ID"
POLICY_NUMBER = "POLICY_NUMBER"
RISK_SCORE = "RISK_SCORE"
RISK_LEVEL = "RISK_LEVEL"
MODEL_NAME = "MODEL_NAME"
MODEL_VERSION = "MODEL_VERSION"
FEATURE_SPEC_VERSION = "FEATURE_SPEC_VERSION"
SOURCE = "SOURCE"
INFERENCE_MS = "INFERENCE_MS"
CREATED_AT = "CREATED_AT"
FALLBACK_REASON = "FALLBACK_REASON"
WARNINGS = "WARNINGS"
UPDATED_AT = "UPDATED_AT"
# JSON object {FEATURE_NAME: value} of each prediction: VARIANT in Snowflake, text in SQLite.
FEATURES = "FEATURES"

FEATURE_COLUMNS: tuple[str, ...] = tuple(FEATURE_NAMES)

TRAFFIC_COLUMNS = (CREATED_AT, SOURCE, INFERENCE_MS)
MODEL_COLUMNS = (CREATED_AT, MODEL_NAME, MODEL_VERSION, RISK_SCORE, RISK_LEVEL, FALLBACK_REASON)
WARNING_COLUMNS = (CREATED_AT, WARNINGS)
LOOKUP_PREDICTION_COLUMNS = (
    PREDICTION_ID,
    CREATED_AT,
    RISK_SCORE,
    RISK_LEVEL,
    MODEL_VERSION,
    SOURCE,
    INFERENCE_MS,
    FALLBACK_REASON,
    WARNINGS,
)


def sqlite_table(schema_and_name: tuple[str, str]) -> str:
    """Return the SQLite table name for a Snowflake ``(schema, table)`` pair."""
    schema, name = schema_and_name
    return f"{schema}__{name}"
