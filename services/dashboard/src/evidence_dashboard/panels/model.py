"""Model: registry versus fallback share, versions in use, score distribution and level mix."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from evidence_dashboard import charts, metrics
from evidence_dashboard.errors import DashboardError
from evidence_dashboard.panels.common import no_rows_message, show_truncation
from evidence_dashboard.runtime import Runtime
from evidence_dashboard.store import schema

__all__ = ["render_model"]


def render_model(runtime: Runtime, window: metrics.TimeWindow, since: datetime | None) -> None:
    """Render who served the predictions and what they scored."""
    st.subheader("Model")
    try:
        result = runtime.store.model_usage(since)
    except DashboardError as exc:
        st.error(str(exc))
        return
    usage = result.frame
    if usage.empty:
        st.info(no_rows_message(window))
        return
    show_truncation(result, runtime.settings.max_rows)

    served_by = usage[schema.MODEL_VERSION].astype(str).map(metrics.serving_label)
    registry_share = float((served_by == metrics.REGISTRY_LABEL).mean())
    fallback_share = float((served_by == metrics.FALLBACK_LABEL).mean())
    registry, fallback, mean_score = st.columns(3)
    registry.metric("Served by registry model", f"{registry_share:.1%}")
    fallback.metric("Served by rule-based fallback", f"{fallback_share:.1%}")
    mean_score.metric("Mean risk score", f"{usage[schema.RISK_SCORE].mean():.3f}")
    builtin_share = float((served_by == metrics.BUILTIN_LABEL).mean())
    if builtin_share:
        # Only the local model server without an artifact serves these, never production.
        st.caption(f"Served by the local model server's built-in rules: {builtin_share:.1%}")

    share_column, score_column = st.columns(2)
    with share_column:
        st.markdown(f"**Registry model vs fallback** ({window.bucket_label} buckets)")
        share = metrics.serving_share_over_time(usage, window.bucket)
        st.altair_chart(charts.serving_share_chart(share, window.bucket))
        st.markdown("**Model versions in use**")
        st.dataframe(metrics.version_counts(usage), hide_index=True)
    with score_column:
        st.markdown("**Risk-score distribution**")
        st.altair_chart(charts.score_histogram(usage))
        st.markdown("**Risk-level mix**")
        levels = metrics.level_mix(usage)
        st.altair_chart(charts.level_mix_chart(levels))

    reasons = usage[schema.FALLBACK_REASON].dropna()
    if not reasons.empty:
        with st.expander("Fallback reasons"):
            st.dataframe(
                reasons.value_counts()
                .rename_axis("fallback_reason")
                .reset_index(name="predictions"),
                hide_index=True,
            )
