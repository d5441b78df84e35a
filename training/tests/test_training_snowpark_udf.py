"""Tests of the feature UDTF: its body, and the registered UDTF in Snowpark's local emulator."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from evidence_features import FEATURE_NAMES, extract_batch
from evidence_synthetic import generate_pairs
from evidence_training.snowpark_udf import (
    RAW_EVIDENCE_TABLE,
    build_feature_frame,
    compute_feature_frame,
    register_feature_udtf,
)

_HYBRID_TABLES_SQL = Path(__file__).resolve().parents[2] / "deploy/sql/03_hybrid_tables.sql"

_EDGE_ROWS = (
    ("E-MIB-ONLY", "<MIBResponse/>", None),
    ("E-RX-ONLY", None, "<IntelRXResponse/>"),
    ("E-NONE", None, None),
    ("E-MALFORMED", "<MIBResponse><unclosed>", "not xml at all"),
)


@pytest.fixture(scope="module")
def raw_rows() -> pd.DataFrame:
    """Return 40 generated evidence rows plus edge cases in the RAW_EVIDENCE layout."""
    pairs = generate_pairs(40, seed=11)
    records = [
        {
            "EVIDENCE_ID": f"E-{index:04d}",
            "POLICY_NUMBER": pair.policy_number,
            "MIB_XML": _text(pair.mib_xml),
            "RX_XML": _text(pair.rx_xml),
            "AS_OF": pair.as_of,
        }
        for index, pair in enumerate(pairs)
    ]
    records += [
        {
            "EVIDENCE_ID": evidence_id,
            "POLICY_NUMBER": f"P-{evidence_id}",
            "MIB_XML": mib,
            "RX_XML": rx,
            "AS_OF": date(2025, 6, 30),
        }
        for evidence_id, mib, rx in _EDGE_ROWS
    ]
    return pd.DataFrame.from_records(records)


def _text(document: bytes) -> str:
    # VARCHAR columns hold text; the generator's ISO-8859-1 edge case is not valid UTF-8.
    try:
        return document.decode("utf-8")
    except UnicodeDecodeError:
        return document.decode("latin-1")


def _expected(rows: pd.DataFrame) -> np.ndarray:
    pairs = list(zip(rows["MIB_XML"], rows["RX_XML"], strict=True))
    return np.asarray(extract_batch(pairs, as_of=list(rows["AS_OF"]), lenient=True))


def test_compute_feature_frame_equals_extract_batch(raw_rows: pd.DataFrame) -> None:
    """The UDTF body returns the id and exactly the library's lenient batch features."""
    frame = compute_feature_frame(raw_rows)

    assert ["EVIDENCE_ID", *FEATURE_NAMES] == list(frame.columns)
    assert list(raw_rows["EVIDENCE_ID"]) == list(frame["EVIDENCE_ID"])
    np.testing.assert_array_equal(_expected(raw_rows), frame[list(FEATURE_NAMES)].to_numpy())


def test_compute_feature_frame_records_parse_errors(raw_rows: pd.DataFrame) -> None:
    """A malformed pair yields a row with the parse-error flags set instead of an exception."""
    frame = compute_feature_frame(raw_rows).set_index("EVIDENCE_ID")

    assert frame.loc["E-MALFORMED", "META_MIB_PARSE_ERROR"] == 1.0
    assert frame.loc["E-MALFORMED", "META_RX_PARSE_ERROR"] == 1.0
    assert frame.loc["E-0000", "META_MIB_PARSE_ERROR"] == 0.0


def test_compute_feature_frame_missing_column_raises(raw_rows: pd.DataFrame) -> None:
    """A batch without the AS_OF column raises KeyError naming it."""
    with pytest.raises(KeyError, match="AS_OF"):
        compute_feature_frame(raw_rows.drop(columns=["AS_OF"]))


@pytest.fixture
def local_session() -> Iterator[Any]:
    """Yield a Snowpark local-testing session, closed afterwards."""
    from snowflake.snowpark import Session

    session = Session.builder.config("local_testing", True).create()
    yield session
    session.close()


def _deployed_raw_evidence_columns() -> list[tuple[str, str]]:
    """Return (name, type) of each column of RAW_EVIDENCE in the deployment's DDL."""
    text = _HYBRID_TABLES_SQL.read_text(encoding="utf-8")
    block = re.search(r"\.FEATURE_STORE\.RAW_EVIDENCE \((.*?)\n\);", text, re.DOTALL)
    assert block is not None
    column = r"^\s+(?!PRIMARY KEY|INDEX )([A-Z_]+) ([A-Z_]+)"
    return re.findall(column, block.group(1), re.MULTILINE)


def _write_deployed_table(session: Any, raw_rows: pd.DataFrame) -> None:
    """Save the rows as RAW_EVIDENCE with the deployed columns: CREATED_AT instead of AS_OF."""
    from snowflake.snowpark.types import (
        StringType,
        StructField,
        StructType,
        TimestampTimeZone,
        TimestampType,
    )

    types = {"VARCHAR": StringType(), "TIMESTAMP_NTZ": TimestampType(TimestampTimeZone.NTZ)}
    columns = _deployed_raw_evidence_columns()
    schema = StructType([StructField(name, types[kind]) for name, kind in columns])
    # A time of day after noon checks that the UDTF gets the date of CREATED_AT.
    created_at = [datetime.combine(as_of, time(13, 45)) for as_of in raw_rows["AS_OF"]]
    values = {**raw_rows.drop(columns=["AS_OF"]).to_dict("list"), "CREATED_AT": created_at}
    rows = list(zip(*(values[name] for name, _ in columns), strict=True))
    session.create_dataframe(rows, schema=schema).write.save_as_table(
        RAW_EVIDENCE_TABLE, mode="overwrite"
    )


def _collect_features(frame: Any, raw_rows: pd.DataFrame) -> np.ndarray:
    # collect() rather than to_pandas(): the emulator's to_pandas inserts 106 columns one by
    # one, and pandas warns about the fragmented frame, which fails under filterwarnings=error.
    result = pd.DataFrame([row.as_dict() for row in frame.collect()])
    assert ["EVIDENCE_ID", *FEATURE_NAMES] == list(result.columns)
    result = result.set_index("EVIDENCE_ID").loc[list(raw_rows["EVIDENCE_ID"])]
    return np.asarray(result[list(FEATURE_NAMES)].to_numpy())


def test_deployed_raw_evidence_has_no_as_of() -> None:
    """The deployed RAW_EVIDENCE dates rows by CREATED_AT and has no AS_OF column."""
    names = [name for name, _ in _deployed_raw_evidence_columns()]

    assert names == ["EVIDENCE_ID", "POLICY_NUMBER", "MIB_XML", "RX_XML", "CREATED_AT"]


@pytest.mark.parametrize("as_of_column", [None, "CREATED_AT"])
def test_feature_udtf_local_session_equals_extract_batch(
    local_session: Any, raw_rows: pd.DataFrame, as_of_column: str | None
) -> None:
    """The UDTF over a table shaped like the deployed RAW_EVIDENCE returns the library's
    features exactly, with the default as-of column and with the documented call."""
    session = local_session
    _write_deployed_table(session, raw_rows)
    udtf = register_feature_udtf(session)

    if as_of_column is None:
        frame = build_feature_frame(session, udtf)
    else:
        frame = build_feature_frame(session, udtf, as_of_column=as_of_column, buckets=64)

    np.testing.assert_array_equal(_expected(raw_rows), _collect_features(frame, raw_rows))


def test_build_feature_frame_zero_buckets_raises(local_session: Any) -> None:
    """A bucket count below 1 is rejected before any query is built."""
    with pytest.raises(ValueError, match="buckets must be at least 1"):
        build_feature_frame(local_session, udtf=None, buckets=0)
