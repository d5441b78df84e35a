"""The dashboard page: sidebar, monitoring sections, policy lookup and the test form."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import streamlit as st
from evidence_logging import describe_invalid_settings
from pydantic import ValidationError

from evidence_dashboard.config import Settings, get_settings
from evidence_dashboard.errors import DashboardError
from evidence_dashboard.logs import configure_logging, redact_streamlit_loggers
from evidence_dashboard.metrics import WINDOWS, TimeWindow
from evidence_dashboard.panels.drift import render_drift
from evidence_dashboard.panels.lookup import render_lookup
from evidence_dashboard.panels.model import render_model
from evidence_dashboard.panels.service_state import render_service_state
from evidence_dashboard.panels.test_form import render_test_form
from evidence_dashboard.panels.traffic import render_traffic
from evidence_dashboard.runtime import Runtime, build_runtime
from evidence_dashboard.sections import guarded_section

__all__ = ["render_page"]

TITLE = "Evidence risk pipeline monitor"
AUTO_REFRESH_SECONDS = 30
_DEFAULT_WINDOW = "Last hour"


def _sidebar(runtime: Runtime) -> tuple[TimeWindow, bool]:
    with st.sidebar:
        st.header("Window")
        labels = [window.label for window in WINDOWS]
        label = st.selectbox(
            "Look-back window", labels, index=labels.index(_DEFAULT_WINDOW), key="window"
        )
        auto_refresh = st.toggle(f"Refresh every {AUTO_REFRESH_SECONDS} s", key="auto_refresh")
        st.button("Refresh now", key="refresh")
        st.divider()
        st.caption(f"Store: {runtime.store.backend_name}")
        if runtime.store.backend_name == "SQLite":
            st.caption(f"Store file: {runtime.settings.store_path}")
            st.caption(f"Queue file: {runtime.settings.queue_path}")
        st.caption(f"Gateway: {runtime.services.location}")
        st.caption(f"Model artifact: {runtime.settings.artifact_dir}")
    window = next(window for window in WINDOWS if window.label == label)
    return window, auto_refresh


def _render_monitor(runtime: Runtime, window: TimeWindow) -> None:
    # A fragment reruns on its own with auto-refresh, outside the guard of the whole page.
    with guarded_section("Monitor"):
        _render_monitor_sections(runtime, window)


def _render_monitor_sections(runtime: Runtime, window: TimeWindow) -> None:
    now = datetime.now(UTC)
    since = None if window.span is None else now - window.span
    st.caption(f"Updated {now:%Y-%m-%d %H:%M:%S} UTC · window: {window.label.lower()}")
    stored: int | None = None
    store_error: str | None = None
    try:
        stored = runtime.store.count_predictions()
    except DashboardError as exc:
        store_error = str(exc)
    render_service_state(runtime, stored)
    if store_error is not None:
        st.error(store_error)
        return
    if stored == 0:
        st.info(
            "No predictions stored yet. Score evidence through the gateway (POST /v1/predict or "
            "the Test prediction tab) and keep the persistence worker running; the traffic, "
            "model and drift sections appear once the worker has written predictions."
        )
        return
    render_traffic(runtime, window, since)
    render_model(runtime, window, since)
    render_drift(runtime, window, since)


def render_page(
    *,
    backend: Literal["sqlite", "snowflake"] | None = None,
    artifact_dir: Path | None = None,
) -> None:
    """Render the whole page for one Streamlit run.

    Args:
        backend: Overrides ``DASHBOARD_BACKEND``; the Streamlit-in-Snowflake entry file passes
            ``"snowflake"``.
        artifact_dir: Overrides ``DASHBOARD_ARTIFACT_DIR``; the Streamlit-in-Snowflake entry
            file passes the ``model`` directory bundled beside it.
    """
    configure_logging()
    redact_streamlit_loggers()
    st.set_page_config(page_title=TITLE, layout="wide")
    with guarded_section("page"):
        _render_page_body(backend, artifact_dir)


def _render_page_body(
    backend: Literal["sqlite", "snowflake"] | None, artifact_dir: Path | None
) -> None:
    try:
        settings = get_settings()
    except ValidationError as exc:
        # pydantic's own message quotes every rejected value, DASHBOARD_GATEWAY_TOKEN's too,
        # and describe_invalid_settings hides the values of secret fields.
        description = describe_invalid_settings([(exc, Settings)])
        st.error(f"Invalid DASHBOARD_* setting:\n\n```text\n{description}\n```")
        return
    overrides: dict[str, object] = {}
    if backend is not None:
        overrides["backend"] = backend
    if artifact_dir is not None:
        overrides["artifact_dir"] = artifact_dir
    if overrides:
        settings = settings.model_copy(update=overrides)
    try:
        runtime = build_runtime(settings)
    except DashboardError as exc:
        st.error(str(exc))
        return
    window, auto_refresh = _sidebar(runtime)
    st.title(TITLE)
    monitor, lookup, test_form = st.tabs(["Monitor", "Policy lookup", "Test prediction"])
    with monitor:
        run_every = AUTO_REFRESH_SECONDS if auto_refresh else None
        st.fragment(run_every=run_every)(_render_monitor)(runtime, window)
    with lookup, guarded_section("Policy lookup"):
        render_lookup(runtime)
    with test_form, guarded_section("Test prediction"):
        render_test_form(runtime)
