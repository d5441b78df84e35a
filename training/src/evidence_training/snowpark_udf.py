"""In-warehouse feature building: the feature library as a Snowpark vectorised UDTF.

The UDTF reads rows of raw evidence (``EVIDENCE_ID``, ``MIB_XML``, ``RX_XML`` and an as-of date)
in pandas batches and returns ``EVIDENCE_ID`` plus the 105 feature columns as DOUBLE, computed by
``evidence_features.extract_batch(lenient=True)``, the same call local training makes. A training
set of millions of stored reports can then be built with a ``CREATE TABLE … AS SELECT`` over
``FEATURE_STORE.RAW_EVIDENCE`` without moving XML out of the account.

It is a UDTF with a vectorised ``end_partition`` rather than a vectorised scalar UDF because it
returns 105 typed columns, not one. Snowflake requires ``PARTITION BY`` for this kind of UDTF, so
:func:`build_feature_frame` partitions rows into hash buckets of the evidence id.

NOTE: Snowpark's local-testing emulator (snowflake-snowpark-python 1.56.0) calls
``end_partition`` once with all input rows and ignores the partition expression, so the bucketing
and per-partition batching are not exercised by the tests. It also runs vectorised scalar UDFs
row by row with plain values (``mock/_plan.py``, ``handle_udf_expression``), and
``join_table_function`` with a vectorised UDTF fails in the emulator, which is why the UDTF
returns ``EVIDENCE_ID`` for a later join instead of being joined laterally.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import evidence_features
import numpy as np
import pandas as pd
from evidence_features import FEATURE_NAMES, extract_batch

__all__ = [
    "FEATURE_UDTF_NAME",
    "INPUT_COLUMNS",
    "RAW_EVIDENCE_TABLE",
    "WAREHOUSE_PACKAGES",
    "EvidenceFeatureHandler",
    "build_feature_frame",
    "compute_feature_frame",
    "register_feature_udtf",
]

FEATURE_UDTF_NAME = "EVIDENCE_FEATURES_UDTF"
RAW_EVIDENCE_TABLE = "FEATURE_STORE.RAW_EVIDENCE"
ID_COLUMN = "EVIDENCE_ID"
INPUT_COLUMNS = (ID_COLUMN, "MIB_XML", "RX_XML", "AS_OF")
# Third-party packages the feature library imports, resolved from the Snowflake Anaconda channel.
WAREHOUSE_PACKAGES = ("lxml", "numpy", "pandas")
_DEFAULT_BUCKETS = 64


def compute_feature_frame(batch: pd.DataFrame) -> pd.DataFrame:
    """Compute ``EVIDENCE_ID`` plus the 105 feature columns for a batch of raw evidence rows.

    This is the UDTF's whole body, kept as a plain function so it can be tested without Snowpark.

    Args:
        batch: columns ``EVIDENCE_ID``, ``MIB_XML``, ``RX_XML`` (str or None) and ``AS_OF``
            (date, datetime, pandas Timestamp or None). None lets ``extract_batch`` choose
            its default: the latest document date, else the latest evidence date, else today.

    Returns:
        A frame with ``EVIDENCE_ID`` first, then ``FEATURE_NAMES`` as float64, one row per input
        row in input order.

    Raises:
        KeyError: a required column is missing.
    """
    missing = [column for column in INPUT_COLUMNS if column not in batch.columns]
    if missing:
        msg = f"raw evidence batch lacks columns {missing}; expected {list(INPUT_COLUMNS)}"
        raise KeyError(msg)
    pairs = list(zip(_documents(batch["MIB_XML"]), _documents(batch["RX_XML"]), strict=True))
    as_of = [_to_date(value) for value in batch["AS_OF"]]
    matrix = np.asarray(extract_batch(pairs, as_of=as_of, lenient=True), dtype=np.float64)
    features = pd.DataFrame(matrix, columns=list(FEATURE_NAMES), index=batch.index)
    features.insert(0, ID_COLUMN, batch[ID_COLUMN].astype(str).to_numpy())
    return features.reset_index(drop=True)


class EvidenceFeatureHandler:
    """Vectorised UDTF handler: one pandas DataFrame per partition in, one feature frame out."""

    def end_partition(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Return the features of every row of the partition (see :func:`compute_feature_frame`)."""
        return compute_feature_frame(batch)

    # Marks end_partition as vectorised for Snowpark's registration and for the emulator.
    end_partition._sf_vectorized_input = pd.DataFrame  # type: ignore[attr-defined]


def register_feature_udtf(
    session: Any,
    *,
    name: str = FEATURE_UDTF_NAME,
    is_permanent: bool = False,
    stage_location: str | None = None,
) -> Any:
    """Register :class:`EvidenceFeatureHandler` as a vectorised UDTF in ``session``.

    The ``evidence_features`` package is uploaded as an import, so the warehouse runs the same
    code and data files (the feature spec, drug and code maps) as local training.

    Args:
        session: a ``snowflake.snowpark.Session`` (a local-testing session works).
        name: the function name, optionally qualified.
        is_permanent: keep the function after the session ends (needs ``stage_location``).
        stage_location: stage for the handler code and imports of a permanent function.

    Returns:
        The ``UserDefinedTableFunction``. Call it on ``INPUT_COLUMNS`` with
        ``over(partition_by=…)``.
    """
    from snowflake.snowpark.types import (
        DateType,
        DoubleType,
        StringType,
        StructField,
        StructType,
    )

    output_schema = StructType(
        [StructField(ID_COLUMN, StringType())]
        + [StructField(feature, DoubleType()) for feature in FEATURE_NAMES]
    )
    package_dir = Path(evidence_features.__file__).parent
    return session.udtf.register(
        EvidenceFeatureHandler,
        output_schema=output_schema,
        input_types=[StringType(), StringType(), StringType(), DateType()],
        input_names=[f'"{column}"' for column in INPUT_COLUMNS],
        name=name,
        replace=True,
        is_permanent=is_permanent,
        stage_location=stage_location,
        packages=list(WAREHOUSE_PACKAGES),
        imports=[(str(package_dir), "evidence_features")],
    )


def build_feature_frame(
    session: Any,
    udtf: Any,
    *,
    table: str = RAW_EVIDENCE_TABLE,
    as_of_column: str = "CREATED_AT",
    buckets: int = _DEFAULT_BUCKETS,
) -> Any:
    """Return a Snowpark DataFrame of ``EVIDENCE_ID`` plus 105 features over a raw evidence table.

    Args:
        session: the Snowpark session that registered ``udtf``.
        udtf: the function :func:`register_feature_udtf` returned.
        table: a table in the ``FEATURE_STORE.RAW_EVIDENCE`` layout.
        as_of_column: the column whose date is the evaluation date of each pair (a DATE, or a
            TIMESTAMP cast to its date). The default is the deployed table's ``CREATED_AT``.
        buckets: number of hash partitions. Each becomes one ``end_partition`` call, so more
            buckets spread the work over more warehouse threads and bound memory per call.

    Raises:
        ValueError: ``buckets`` is smaller than 1.
    """
    from snowflake.snowpark import functions as F  # noqa: N812

    if buckets < 1:
        msg = f"buckets must be at least 1, got {buckets}"
        raise ValueError(msg)
    # The as-of date is selected under the name AS_OF first. Snowpark's local-testing session
    # (snowflake-snowpark-python 1.56) names the handler's input columns after the argument
    # expressions, and the handler reads the names in INPUT_COLUMNS.
    source = session.table(table).select(
        F.col(ID_COLUMN),
        F.col("MIB_XML"),
        F.col("RX_XML"),
        F.to_date(F.col(as_of_column)).alias("AS_OF"),
    )
    bucket = F.abs(F.hash(F.col(ID_COLUMN))) % F.lit(buckets)
    call = udtf(*(F.col(column) for column in INPUT_COLUMNS))
    return source.select(call.over(partition_by=bucket))


def _documents(column: pd.Series) -> Sequence[str | bytes | None]:
    return [None if _is_missing(value) else value for value in column.tolist()]


def _to_date(value: Any) -> date | None:
    if _is_missing(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    converted: date = pd.Timestamp(value).date()
    return converted


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT
