"""Messages shared by the panels."""

from __future__ import annotations

import streamlit as st

from evidence_dashboard.metrics import TimeWindow
from evidence_dashboard.store.base import QueryResult

__all__ = ["no_rows_message", "show_truncation"]


def no_rows_message(window: TimeWindow) -> str:
    """Return the message that the window contains no predictions, and what to do about it."""
    if window.span is None:
        return (
            "No predictions stored yet. Score evidence through the gateway (POST /v1/predict or "
            "the test form below) and keep the persistence worker running to see them here."
        )
    return (
        f"No predictions in the {window.label.lower()}. Pick a longer window in the sidebar "
        "or score evidence through the gateway."
    )


def show_truncation(result: QueryResult, max_rows: int) -> None:
    """Add a caption when the query hit the row cap."""
    if result.truncated:
        st.caption(
            f"Showing the newest {max_rows:,} rows of this window only "
            "(DASHBOARD_MAX_ROWS); pick a shorter window for exact figures."
        )
