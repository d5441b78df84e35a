"""Service state: gateway readiness and circuit, queue backlog, dead letters, stored rows."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evidence_dashboard.errors import DashboardError
from evidence_dashboard.gateway import GatewayReadiness
from evidence_dashboard.queue_status import QueueStatus
from evidence_dashboard.runtime import Runtime

__all__ = ["format_age", "render_service_state"]

_READY_LABELS = {"ready": "Ready", "degraded": "Degraded", "not_ready": "Not ready"}
# Named, so that a column added to QueueStatus later is not shown without a decision.
_DEAD_LETTER_COLUMNS = ["prediction_id", "failed_at", "attempts", "error_type"]


def format_age(seconds: float) -> str:
    """Format an age in seconds as ``42 s``, ``3.5 min`` or ``2.1 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _gateway_label(readiness: GatewayReadiness) -> str:
    if not readiness.reachable:
        return "Unreachable"
    return _READY_LABELS.get(readiness.status or "", readiness.status or "Unknown")


def render_service_state(runtime: Runtime, stored: int | None) -> None:
    """Render the service-state row; ``stored`` is the stored prediction count, if known."""
    st.subheader("Service state")
    readiness = runtime.services.readiness()
    queue_error: str | None = None
    queue: QueueStatus | None
    try:
        queue = runtime.services.queue_status()
    except DashboardError as exc:
        queue, queue_error = None, str(exc)

    gateway, circuit, depth, oldest, dead, stored_column = st.columns([1.4, 1.4, 1, 1, 1, 1.2])
    gateway.metric("Gateway", _gateway_label(readiness))
    circuit.metric("Model circuit", readiness.circuit_state or "n/a")
    depth.metric("Queue depth", "n/a" if queue is None else f"{queue.depth:,}")
    oldest.metric("Oldest queued", "n/a" if queue is None else format_age(queue.oldest_age_seconds))
    dead.metric("Dead letters", "n/a" if queue is None else f"{queue.dead_letters:,}")
    stored_column.metric("Stored predictions", "n/a" if stored is None else f"{stored:,}")

    if not readiness.reachable:
        st.error(
            f"Gateway unreachable at {runtime.services.location}: {readiness.error}. "
            "Start the stack (evidence-stack) or set DASHBOARD_GATEWAY_URL."
        )
    elif readiness.status != "ready":
        st.warning(
            f"Gateway at {runtime.services.location} reports "
            f"{_gateway_label(readiness).lower()} (HTTP {readiness.http_status}); "
            "see the readiness checks below."
        )
    if queue_error is not None:
        st.warning(queue_error)
    elif queue is None:
        st.caption("The queue lives inside the gateway service, so its depth is not shown here.")

    if readiness.checks:
        with st.expander("Readiness checks"):
            rows = [
                {"check": name, "ok": bool(check.get("ok")), "detail": str(check.get("detail"))}
                for name, check in readiness.checks.items()
                if isinstance(check, dict)
            ]
            st.dataframe(pd.DataFrame(rows), hide_index=True)
    if queue is not None and queue.dead_letters:
        with st.expander(f"Latest dead letters ({queue.dead_letters:,} in total)"):
            st.caption(
                "Only the error type is shown, because the full message may quote the record's "
                "values. Read the messages with evidence-persistence dead-letters list "
                "--show-errors, and replay the records with evidence-persistence dead-letters "
                "replay."
            )
            st.dataframe(queue.recent_dead_letters[_DEAD_LETTER_COLUMNS], hide_index=True)
