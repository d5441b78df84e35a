"""Traffic and latency: predictions per minute and inference-time percentiles by source."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from evidence_dashboard import charts, metrics
from evidence_dashboard.errors import DashboardError
from evidence_dashboard.panels.common import no_rows_message, show_truncation
from evidence_dashboard.runtime import Runtime

__all__ = ["render_traffic"]


def render_traffic(runtime: Runtime, window: metrics.TimeWindow, since: datetime | None) -> None:
    """Render throughput and latency for the chosen window."""
    st.subheader("Traffic and latency")
    try:
        result = runtime.store.traffic(since)
    except DashboardError as exc:
        st.error(str(exc))
        return
    if result.frame.empty:
        st.info(no_rows_message(window))
        return
    show_truncation(result, runtime.settings.max_rows)

    throughput, latency = st.columns(2)
    with throughput:
        st.markdown(f"**Predictions per minute** ({window.bucket_label} buckets)")
        per_minute = metrics.predictions_per_minute(result.frame, window.bucket)
        st.altair_chart(charts.throughput_chart(per_minute, window.bucket))
    with latency:
        st.markdown("**Inference time percentiles (ms)**")
        percentiles = metrics.latency_percentiles(result.frame)
        st.dataframe(
            percentiles,
            column_config={
                name: st.column_config.NumberColumn(format="%.2f") for name in ("p50", "p95", "p99")
            },
            hide_index=True,
        )
        st.altair_chart(charts.latency_chart(result.frame))
