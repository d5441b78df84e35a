"""Panel aggregations on small frames whose results are counted by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pandas as pd
import pytest
from evidence_dashboard.metrics import (
    WINDOWS,
    latency_percentiles,
    level_mix,
    predictions_per_minute,
    serving_share_over_time,
    version_counts,
    warnings_over_time,
)
from evidence_dashboard.store.base import parse_warning_kinds

T0 = pd.Timestamp("2026-01-01T10:00:00Z")


def frame(**columns: Sequence[object]) -> pd.DataFrame:
    """Build a frame whose CREATED_AT column contains UTC timestamps at the given offsets (s)."""
    data = dict(columns)
    data["CREATED_AT"] = [T0 + pd.Timedelta(seconds=s) for s in data.pop("seconds")]
    return pd.DataFrame(data)


def test_predictions_per_minute_by_bucket_and_source() -> None:
    """Counts per 5-minute bucket and source are divided by 5 for the per-minute rate."""
    traffic = frame(seconds=[0, 10, 299, 300, 310], SOURCE=["API", "API", "SQL", "API", "API"])

    result = predictions_per_minute(traffic, timedelta(minutes=5))

    assert list(result["predictions"]) == [2, 1, 2]
    assert list(result["source"]) == ["API", "SQL", "API"]
    assert pytest.approx(list(result["per_minute"])) == [0.4, 0.2, 0.4]


def test_latency_percentiles_per_source_and_all() -> None:
    """p50 of 1..4 is 2.5 (linear interpolation); the ALL row covers every source."""
    traffic = frame(
        seconds=[0, 1, 2, 3, 4],
        SOURCE=["API"] * 4 + ["SQL"],
        INFERENCE_MS=[1.0, 2.0, 3.0, 4.0, 10.0],
    )

    result = latency_percentiles(traffic).set_index("source")

    assert result.loc["API", "p50"] == 2.5
    assert pytest.approx(result.loc["API", "p99"]) == 1.0 + 0.99 * 3
    assert result.loc["SQL", "p95"] == 10.0
    assert result.loc["ALL", "predictions"] == 5
    assert result.loc["ALL", "p50"] == 3.0


def test_serving_share_adds_up_per_bucket() -> None:
    """One of four predictions in the bucket came from the fallback: shares 0.75 and 0.25."""
    usage = frame(seconds=[0, 5, 10, 15], MODEL_VERSION=["REGISTRY_V2"] * 3 + ["RULE_BASED"])

    result = serving_share_over_time(usage, timedelta(minutes=1)).set_index("served_by")

    assert result.loc["Registry model", "share"] == 0.75
    assert result.loc["Rule-based fallback", "share"] == 0.25


def test_serving_share_builtin_apart() -> None:
    """The local server's built-in rules count apart from the registry model."""
    usage = frame(seconds=[0, 5, 10, 15], MODEL_VERSION=["REGISTRY_V2", "REGISTRY_BUILTIN"] * 2)

    result = serving_share_over_time(usage, timedelta(minutes=1)).set_index("served_by")

    assert result.loc["Registry model", "share"] == 0.5
    assert result.loc["Built-in rules (local model server)", "share"] == 0.5


def test_version_counts_most_used_first() -> None:
    """Versions are counted per model name and sorted by use."""
    usage = frame(
        seconds=[0, 1, 2],
        MODEL_NAME=["M", "M", "M"],
        MODEL_VERSION=["RULE_BASED", "REGISTRY_V2", "REGISTRY_V2"],
    )

    result = version_counts(usage)

    assert list(result["model_version"]) == ["REGISTRY_V2", "RULE_BASED"]
    assert list(result["predictions"]) == [2, 1]


def test_level_mix_orders_known_levels_first() -> None:
    """LOW, MEDIUM, HIGH come in that order, then unknown levels alphabetically."""
    usage = frame(seconds=[0, 1, 2, 3], RISK_LEVEL=["HIGH", "LOW", "ZED", "LOW"])

    result = level_mix(usage)

    assert list(result["risk_level"]) == ["LOW", "HIGH", "ZED"]
    assert list(result["predictions"]) == [2, 1, 1]
    assert result.loc[0, "share"] == 0.5


def test_warnings_over_time_counts_each_kind_once() -> None:
    """A prediction with a repeated kind counts once; predictions without warnings count 0."""
    warnings = frame(
        seconds=[0, 1, 2], WARNINGS=[["unknown_drug", "unknown_drug"], [], ["undated_record"]]
    )

    result = warnings_over_time(warnings, timedelta(minutes=1)).set_index("kind")

    assert result.loc["unknown_drug", "predictions"] == 1
    assert result.loc["undated_record", "predictions"] == 1


def test_warnings_over_time_without_warnings_is_empty() -> None:
    """Predictions that carry no warning give an empty frame."""
    assert warnings_over_time(frame(seconds=[0], WARNINGS=[[]]), timedelta(minutes=1)).empty


@pytest.mark.parametrize(
    ("raw", "kinds"),
    [
        ('["unknown_drug", "future_dated"]', ["unknown_drug", "future_dated"]),
        ("[]", []),
        (None, []),
        ("", []),
        ("unknown_drug, undated_record", ["unknown_drug", "undated_record"]),
        (["a"], ["a"]),
    ],
)
def test_parse_warning_kinds_forms(raw: object, kinds: list[str]) -> None:
    """JSON text, NULL, empty text, comma lists and lists all parse into kinds."""
    assert kinds == parse_warning_kinds(raw)


def test_windows_bucket_labels() -> None:
    """Each window names its bucket width for the chart captions."""
    labels = {window.label: window.bucket_label for window in WINDOWS}

    assert labels["Last hour"] == "1-minute"
    assert labels["Last 24 hours"] == "15-minute"
    assert labels["All time"] == "1-hour"
