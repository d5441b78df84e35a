"""Altair chart builders: each takes a frame from ``metrics`` or ``drift`` and returns a chart."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd

from evidence_dashboard.drift import MODERATE_PSI, SIGNIFICANT_PSI
from evidence_dashboard.store import schema

__all__ = [
    "feature_distribution_chart",
    "latency_chart",
    "level_mix_chart",
    "psi_chart",
    "score_histogram",
    "serving_share_chart",
    "throughput_chart",
    "warnings_chart",
]

_LEVEL_COLOURS = alt.Scale(
    domain=["LOW", "MEDIUM", "HIGH"], range=["#4c9a2a", "#f2a541", "#c8553d"]
)


def _time_x() -> alt.X:
    """Return the x encoding of a time-bucket chart: one band per bucket, in time order.

    A band scale gives every bucket a bar of full width. Buckets without rows get no band, so
    the axis skips them.
    """
    return alt.X(
        "bucket_label:O",
        sort=None,
        title="Time (UTC)",
        axis=alt.Axis(labelAngle=0, labelOverlap="greedy"),
    )


def _with_bucket_label(frame: pd.DataFrame, bucket: timedelta) -> pd.DataFrame:
    """Add ``bucket_label``: ``HH:MM`` for buckets under an hour, else ``MM-DD HH:MM``."""
    pattern = "%H:%M" if bucket < timedelta(hours=1) else "%m-%d %H:%M"
    ordered = frame.sort_values("bucket_start", kind="stable")
    return ordered.assign(bucket_label=ordered["bucket_start"].dt.strftime(pattern))


def throughput_chart(per_minute: pd.DataFrame, bucket: timedelta) -> alt.Chart:
    """Stacked bars of predictions per minute, coloured by source."""
    chart: alt.Chart = (
        alt.Chart(_with_bucket_label(per_minute, bucket))
        .mark_bar()
        .encode(
            x=_time_x(),
            y=alt.Y("per_minute:Q", title="Predictions per minute", stack="zero"),
            color=alt.Color("source:N", title="Source"),
            tooltip=["bucket_start:T", "source:N", "predictions:Q", "per_minute:Q"],
        )
        .properties(height=260)
    )
    return chart


def latency_chart(traffic: pd.DataFrame) -> alt.Chart:
    """Distribution of ``inference_ms`` per source as overlaid histograms."""
    frame = traffic[[schema.SOURCE, schema.INFERENCE_MS]].rename(
        columns={schema.SOURCE: "source", schema.INFERENCE_MS: "inference_ms"}
    )
    chart: alt.Chart = (
        alt.Chart(frame)
        .mark_bar(opacity=0.7)
        .encode(
            x=alt.X("inference_ms:Q", bin=alt.Bin(maxbins=40), title="Inference time (ms)"),
            y=alt.Y("count():Q", title="Predictions", stack=None),
            color=alt.Color("source:N", title="Source"),
        )
        .properties(height=260)
    )
    return chart


def serving_share_chart(share: pd.DataFrame, bucket: timedelta) -> alt.Chart:
    """Stacked bars of the registry-model and fallback shares per time bucket."""
    chart: alt.Chart = (
        alt.Chart(_with_bucket_label(share, bucket))
        .mark_bar()
        .encode(
            x=_time_x(),
            y=alt.Y("share:Q", title="Share of predictions", axis=alt.Axis(format="%")),
            color=alt.Color(
                "served_by:N",
                title="Served by",
                scale=alt.Scale(
                    domain=["Registry model", "Rule-based fallback"], range=["#3a6ea5", "#c8553d"]
                ),
            ),
            tooltip=[
                "bucket_start:T",
                "served_by:N",
                "predictions:Q",
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .properties(height=240)
    )
    return chart


def score_histogram(usage: pd.DataFrame) -> alt.Chart:
    """Histogram of risk scores in 20 bins over [0, 1], coloured by risk level."""
    frame = usage[[schema.RISK_SCORE, schema.RISK_LEVEL]].rename(
        columns={schema.RISK_SCORE: "risk_score", schema.RISK_LEVEL: "risk_level"}
    )
    chart: alt.Chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(
                "risk_score:Q",
                bin=alt.Bin(extent=[0, 1], step=0.05),
                title="Risk score",
            ),
            y=alt.Y("count():Q", title="Predictions"),
            color=alt.Color("risk_level:N", title="Level", scale=_LEVEL_COLOURS),
        )
        .properties(height=240)
    )
    return chart


def level_mix_chart(levels: pd.DataFrame) -> alt.Chart:
    """Horizontal bars of the risk-level counts."""
    chart: alt.Chart = (
        alt.Chart(levels)
        .mark_bar()
        .encode(
            y=alt.Y("risk_level:N", title="Risk level", sort=list(levels["risk_level"])),
            x=alt.X("predictions:Q", title="Predictions"),
            color=alt.Color("risk_level:N", scale=_LEVEL_COLOURS, legend=None),
            tooltip=["risk_level:N", "predictions:Q", alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(height=160)
    )
    return chart


def psi_chart(drift: pd.DataFrame, *, top: int) -> alt.LayerChart:
    """Horizontal bars of the ``top`` highest PSI values with the 0.1 and 0.25 thresholds."""
    worst = drift.head(top)
    bars = (
        alt.Chart(worst)
        .mark_bar()
        .encode(
            y=alt.Y("feature:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("psi:Q", title="Population stability index"),
            color=alt.Color(
                "status:N",
                title="Shift",
                scale=alt.Scale(
                    domain=["stable", "moderate", "significant"],
                    range=["#4c9a2a", "#f2a541", "#c8553d"],
                ),
            ),
            tooltip=["feature:N", alt.Tooltip("psi:Q", format=".3f"), "rows:Q", "status:N"],
        )
    )
    thresholds = (
        alt.Chart(pd.DataFrame({"psi": [MODERATE_PSI, SIGNIFICANT_PSI]}))
        .mark_rule(strokeDash=[4, 4], color="#555")
        .encode(x="psi:Q")
    )
    layered: alt.LayerChart = (bars + thresholds).properties(height=max(160, 22 * len(worst)))
    return layered


def feature_distribution_chart(comparison: pd.DataFrame, feature: str) -> alt.Chart:
    """Grouped bars of training and recent bin fractions for one feature."""
    chart: alt.Chart = (
        alt.Chart(comparison)
        .mark_bar()
        .encode(
            x=alt.X("bin:N", title=f"{feature} bin", sort=None),
            xOffset="sample:N",
            y=alt.Y("fraction:Q", title="Share of rows", axis=alt.Axis(format="%")),
            color=alt.Color("sample:N", title="Sample"),
            tooltip=["bin:N", "sample:N", alt.Tooltip("fraction:Q", format=".1%")],
        )
        .properties(height=240)
    )
    return chart


def warnings_chart(counts: pd.DataFrame, bucket: timedelta) -> alt.Chart:
    """Stacked bars of predictions with each feature-warning kind per time bucket."""
    chart: alt.Chart = (
        alt.Chart(_with_bucket_label(counts, bucket))
        .mark_bar()
        .encode(
            x=_time_x(),
            y=alt.Y("predictions:Q", title="Predictions with warning"),
            color=alt.Color("kind:N", title="Warning"),
            tooltip=["bucket_start:T", "kind:N", "predictions:Q"],
        )
        .properties(height=240)
    )
    return chart
