"""Lookup: the latest stored features and the predictions of one policy number."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evidence_dashboard.errors import DashboardError
from evidence_dashboard.runtime import Runtime
from evidence_dashboard.store import schema

__all__ = ["render_lookup"]


def render_lookup(runtime: Runtime) -> None:
    """Render the policy search box and what the store holds for that policy."""
    st.subheader("Policy lookup")
    policy_number = st.text_input(
        "Policy number", key="lookup_policy", placeholder="for example P-000123"
    ).strip()
    if not policy_number:
        st.caption("Enter a policy number to see its latest features and its predictions.")
        return
    try:
        lookup = runtime.store.lookup_policy(policy_number)
    except DashboardError as exc:
        st.error(str(exc))
        return
    if not lookup.found:
        st.info(f"No features or predictions stored for policy {policy_number!r}.")
        return

    st.markdown(f"**Predictions** (newest first, {len(lookup.predictions)} shown)")
    if lookup.predictions.empty:
        st.caption("No predictions stored for this policy.")
    else:
        st.dataframe(lookup.predictions, hide_index=True)

    if lookup.features.empty:
        st.caption("No feature row stored for this policy.")
        return
    row = lookup.features.iloc[0]
    st.markdown(f"**Latest features** (updated {row[schema.UPDATED_AT]})")
    st.dataframe(
        pd.DataFrame(
            {
                "feature": list(schema.FEATURE_COLUMNS),
                "value": [row[c] for c in schema.FEATURE_COLUMNS],
            }
        ),
        hide_index=True,
        height=360,
    )
