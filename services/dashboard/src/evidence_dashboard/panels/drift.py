"""Drift: PSI per feature against the training histograms, and feature warnings over time."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from evidence_dashboard import charts, metrics
from evidence_dashboard.artifact import ArtifactSummary, load_artifact_summary
from evidence_dashboard.drift import bin_fractions, compute_feature_drift
from evidence_dashboard.errors import DashboardError
from evidence_dashboard.panels.common import no_rows_message, show_truncation
from evidence_dashboard.runtime import Runtime

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
    try:
        result = runtime.store.recent_features(since)
    except DashboardError as exc:
        st.error(str(exc))
        return

    recent = result.frame
    if recent.empty:
        st.info(no_rows_message(window))
        return
    show_truncation(result, runtime.settings.max_rows)

    drift = compute_feature_drift(recent, summary.bins)
    st.caption(
        f"PSI of the latest features of {len(recent):,} policies updated in the window against "
        f"the training histograms of {summary.model_name} {summary.model_version}. "
        "Below 0.1 stable, 0.1 to 0.25 moderate, 0.25 and above significant."
    )
    if len(recent) < _MIN_ROWS_FOR_PSI:
        st.warning(
            f"Only {len(recent)} policies in the window; PSI from fewer than "
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
