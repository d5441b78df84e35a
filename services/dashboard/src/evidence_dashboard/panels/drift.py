"""Drift: PSI per feature against the training histograms, and feature warnings over time."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from evidence_dashboard import charts, metrics
from evidence_dashboard.artifact import ArtifactSummary, load_artifact_summary
from evidence_dashboard.drift import bin_fractions, compute_feature_drift
from evidence_dashboard.errors import DashboardError
from evidence_dashboard.panels.common import no_rows_message
from evidence_dashboard.runtime import Runtime
from evidence_dashboard.store.base import FeatureSample

__all__ = ["render_drift"]

_MIN_ROWS_FOR_PSI = 100


def _bin_comparison(summary: ArtifactSummary, recent: pd.DataFrame, feature: str) -> pd.DataFrame:
    bins = summary.bins[feature]
    recent_fractions = bin_fractions(recent[feature].to_numpy(dtype="float64"), bins.edges)
    labels = [
        f"[{low:g}, {high:g}{']' if i == len(bins.fractions) - 1 else ')'}"
        for i, (low, high) in enumerate(zip(bins.edges, bins.edges[1:], strict=False))
    ]
    return pd.DataFrame(
        {
            "bin": labels * 2,
            "sample": ["training"] * len(labels) + ["recent"] * len(labels),
            "fraction": list(bins.fractions) + [float(x) for x in recent_fractions],
        }
    )


def _describe_sample(sample: FeatureSample, rows: int, summary: ArtifactSummary) -> str:
    if sample.per_prediction:
        source = (
            f"the features of {rows:,} predictions made in the window (MODEL_PREDICTIONS.FEATURES)"
        )
    else:
        source = (
            f"the latest features of {rows:,} policies updated in the window (ONLINE_FEATURES, "
            "because MODEL_PREDICTIONS has no FEATURES column)"
        )
    return (
        f"PSI of {source} against the training histograms of {summary.model_name} "
        f"{summary.model_version}. Below 0.1 stable, 0.1 to 0.25 moderate, 0.25 and above "
        "significant."
    )


def render_drift(runtime: Runtime, window: metrics.TimeWindow, since: datetime | None) -> None:
    """Render the PSI ranking, one feature's histograms and the warnings chart."""
    st.subheader("Drift")
    _render_psi(runtime, window, since)
    _render_warnings(runtime, window, since)


def _render_psi(runtime: Runtime, window: metrics.TimeWindow, since: datetime | None) -> None:
    try:
        summary = load_artifact_summary(runtime.settings.artifact_dir)
    except DashboardError as exc:
        st.warning(f"Feature drift is unavailable: {exc}")
        return
    cap = runtime.settings.drift_max_rows
    try:
        sample = runtime.store.drift_features(since, max_rows=cap)
    except DashboardError as exc:
        st.error(str(exc))
        return

    recent = sample.result.frame
    if sample.invalid:
        st.warning(
            f"{sample.invalid:,} stored FEATURES values in the window are not JSON objects and "
            "were left out of the PSI."
        )
    if recent.empty:
        st.info(no_rows_message(window))
        return
    if sample.result.truncated:
        limit = cap if sample.per_prediction else runtime.settings.max_rows
        setting = "DASHBOARD_DRIFT_MAX_ROWS" if sample.per_prediction else "DASHBOARD_MAX_ROWS"
        st.caption(f"PSI uses the newest {limit:,} rows of this window only ({setting}).")

    drift = compute_feature_drift(recent, summary.bins)
    st.caption(_describe_sample(sample, len(recent), summary))
    if len(recent) < _MIN_ROWS_FOR_PSI:
        unit = "predictions" if sample.per_prediction else "policies"
        st.warning(
            f"Only {len(recent)} {unit} in the window; PSI from fewer than "
            f"{_MIN_ROWS_FOR_PSI} rows is noisy. Pick a longer window for a steadier reading."
        )

    shifted = int((drift["status"] != "stable").sum())
    st.metric("Features with moderate or significant shift", f"{shifted} of {len(drift)}")
    top = st.slider("Features plotted", min_value=5, max_value=40, value=15, key="drift_top")
    chart_column, detail_column = st.columns(2)
    with chart_column:
        st.altair_chart(charts.psi_chart(drift, top=top))
    with detail_column:
        feature = st.selectbox("Compare one feature", list(drift["feature"]), key="drift_feature")
        if feature:
            comparison = _bin_comparison(summary, recent, feature)
            st.altair_chart(charts.feature_distribution_chart(comparison, feature))
    with st.expander("PSI of every feature"):
        st.dataframe(drift, hide_index=True)


def _render_warnings(runtime: Runtime, window: metrics.TimeWindow, since: datetime | None) -> None:
    st.markdown(f"**Feature warnings** ({window.bucket_label} buckets)")
    try:
        result = runtime.store.feature_warnings(since)
    except DashboardError as exc:
        st.error(str(exc))
        return
    counts = metrics.warnings_over_time(result.frame, window.bucket)
    if counts.empty:
        st.info("No prediction in the window carried a feature warning.")
        return
    st.altair_chart(charts.warnings_chart(counts, window.bucket))
