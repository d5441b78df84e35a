"""Aggregations behind the panels, computed with pandas from the rows a panel query returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from evidence_dashboard.store import schema

__all__ = [
    "FALLBACK_VERSION",
    "WINDOWS",
    "TimeWindow",
    "bucket_start",
    "latency_percentiles",
    "level_mix",
    "predictions_per_minute",
    "serving_share_over_time",
    "version_counts",
    "warnings_over_time",
]

FALLBACK_VERSION = "RULE_BASED"
# The local model server's built-in rule function, served when it has no artifact.
BUILTIN_VERSION = "REGISTRY_BUILTIN"
REGISTRY_LABEL = "Registry model"
FALLBACK_LABEL = "Rule-based fallback"
BUILTIN_LABEL = "Built-in rules (local model server)"
ALL_SOURCES = "ALL"
PERCENTILES = (50, 95, 99)
LEVEL_ORDER = ("LOW", "MEDIUM", "HIGH")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A look-back window the sidebar offers, and the chart bucket width that suits it."""

    label: str
    span: timedelta | None
    bucket: timedelta

    @property
    def bucket_label(self) -> str:
        """Bucket width as ``1-minute``, ``15-minute`` or ``1-hour``."""
        minutes = int(self.bucket.total_seconds() // 60)
        return f"{minutes // 60}-hour" if minutes % 60 == 0 else f"{minutes}-minute"


WINDOWS: tuple[TimeWindow, ...] = (
    TimeWindow("Last 15 minutes", timedelta(minutes=15), timedelta(minutes=1)),
    TimeWindow("Last hour", timedelta(hours=1), timedelta(minutes=1)),
    TimeWindow("Last 6 hours", timedelta(hours=6), timedelta(minutes=5)),
    TimeWindow("Last 24 hours", timedelta(hours=24), timedelta(minutes=15)),
    TimeWindow("Last 7 days", timedelta(days=7), timedelta(hours=1)),
    TimeWindow("All time", None, timedelta(hours=1)),
)


def bucket_start(times: pd.Series, bucket: timedelta) -> pd.Series:
    """Floor each UTC timestamp to the start of its bucket."""
    return times.dt.floor(pd.Timedelta(bucket))


def predictions_per_minute(traffic: pd.DataFrame, bucket: timedelta) -> pd.DataFrame:
    """Count predictions per bucket and source, and express each count per minute.

    Returns:
        Columns ``bucket_start``, ``source``, ``predictions`` and ``per_minute``.
    """
    columns = ["bucket_start", "source", "predictions", "per_minute"]
    if traffic.empty:
        return pd.DataFrame(columns=columns)
    grouped = (
        traffic.assign(bucket_start=bucket_start(traffic[schema.CREATED_AT], bucket))
        .groupby(["bucket_start", schema.SOURCE])
        .size()
        .reset_index(name="predictions")
        .rename(columns={schema.SOURCE: "source"})
    )
    grouped["per_minute"] = grouped["predictions"] / (bucket.total_seconds() / 60.0)
    return grouped[columns]


def latency_percentiles(traffic: pd.DataFrame) -> pd.DataFrame:
    """Compute p50, p95 and p99 of ``INFERENCE_MS`` per source and over all sources.

    Percentiles use numpy's default linear interpolation between the closest ranks.

    Returns:
        Columns ``source``, ``predictions``, ``p50``, ``p95``, ``p99``; the ``ALL`` row comes
        last. Empty when ``traffic`` is empty.
    """
    columns = ["source", "predictions", *(f"p{q}" for q in PERCENTILES)]
    if traffic.empty:
        return pd.DataFrame(columns=columns)
    groups = [(str(name), group) for name, group in traffic.groupby(schema.SOURCE, sort=True)]
    groups.append((ALL_SOURCES, traffic))
    rows = []
    for name, group in groups:
        values = group[schema.INFERENCE_MS].to_numpy(dtype=np.float64)
        quantiles = np.percentile(values, PERCENTILES)
        rows.append([name, len(values), *(float(q) for q in quantiles)])
    return pd.DataFrame(rows, columns=columns)


def serving_label(model_version: str) -> str:
    """Name who served a prediction: the registry model, the fallback or the built-in rules."""
    if model_version == FALLBACK_VERSION:
        return FALLBACK_LABEL
    # The built-in function scores with the fallback's rules, so it is no registry model.
    if model_version == BUILTIN_VERSION:
        return BUILTIN_LABEL
    return REGISTRY_LABEL


def serving_share_over_time(usage: pd.DataFrame, bucket: timedelta) -> pd.DataFrame:
    """Share of predictions served by the registry model and by the fallback, per bucket.

    Returns:
        Columns ``bucket_start``, ``served_by``, ``predictions`` and ``share`` (0 to 1, the
        shares of one bucket add up to 1).
    """
    columns = ["bucket_start", "served_by", "predictions", "share"]
    if usage.empty:
        return pd.DataFrame(columns=columns)
    frame = usage.assign(
        bucket_start=bucket_start(usage[schema.CREATED_AT], bucket),
        served_by=usage[schema.MODEL_VERSION].astype(str).map(serving_label),
    )
    counts = frame.groupby(["bucket_start", "served_by"]).size().reset_index(name="predictions")
    totals = counts.groupby("bucket_start")["predictions"].transform("sum")
    counts["share"] = counts["predictions"] / totals
    return counts[columns]


def version_counts(usage: pd.DataFrame) -> pd.DataFrame:
    """Count predictions per model name and version, most used first."""
    columns = ["model_name", "model_version", "predictions", "last_seen"]
    if usage.empty:
        return pd.DataFrame(columns=columns)
    grouped = (
        usage.groupby([schema.MODEL_NAME, schema.MODEL_VERSION], dropna=False)
        .agg(predictions=(schema.CREATED_AT, "size"), last_seen=(schema.CREATED_AT, "max"))
        .reset_index()
        .rename(columns={schema.MODEL_NAME: "model_name", schema.MODEL_VERSION: "model_version"})
    )
    return grouped.sort_values(["predictions", "model_version"], ascending=[False, True])[
        columns
    ].reset_index(drop=True)


def level_mix(usage: pd.DataFrame) -> pd.DataFrame:
    """Count predictions per risk level, in LOW, MEDIUM, HIGH order, then any other level."""
    columns = ["risk_level", "predictions", "share"]
    if usage.empty:
        return pd.DataFrame(columns=columns)
    counts = usage[schema.RISK_LEVEL].astype(str).value_counts()
    order = [level for level in LEVEL_ORDER if level in counts.index]
    order += sorted(level for level in counts.index if level not in LEVEL_ORDER)
    frame = pd.DataFrame({"risk_level": order, "predictions": [int(counts[x]) for x in order]})
    frame["share"] = frame["predictions"] / frame["predictions"].sum()
    return frame


def warnings_over_time(warnings: pd.DataFrame, bucket: timedelta) -> pd.DataFrame:
    """Count predictions per bucket and warning kind; a prediction counts once per kind.

    Returns:
        Columns ``bucket_start``, ``kind`` and ``predictions``. Empty when no prediction in the
        frame carried a warning.
    """
    columns = ["bucket_start", "kind", "predictions"]
    if warnings.empty:
        return pd.DataFrame(columns=columns)
    frame = warnings.assign(
        bucket_start=bucket_start(warnings[schema.CREATED_AT], bucket),
        kind=warnings[schema.WARNINGS].map(lambda kinds: sorted(set(kinds))),
    ).explode("kind")
    frame = frame.dropna(subset=["kind"])
    if frame.empty:
        return pd.DataFrame(columns=columns)
    return frame.groupby(["bucket_start", "kind"]).size().reset_index(name="predictions")[columns]
