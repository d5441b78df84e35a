"""Test form: send one MIB and Rx pair to the gateway and show the score and its reasons."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from evidence_dashboard.runtime import Runtime

__all__ = ["SAMPLE_MIB_XML", "SAMPLE_RX_XML", "render_test_form"]

SAMPLE_MIB_XML = '<?xml version="1.0"?><Response><ResponseData>CODE1</ResponseData></Response>'
SAMPLE_RX_XML = (
    '<?xml version="1.0"?><IntelRXResponse><DrugFill><DrugGenericName>METFORMIN'
    "</DrugGenericName></DrugFill></IntelRXResponse>"
)


def render_test_form(runtime: Runtime) -> None:
    """Render the form, and on submit score the pair and show the gateway's response."""
    st.subheader("Test prediction")
    st.caption(
        f"Sends the pair to {runtime.services.location}. The gateway stores the prediction like "
        "any other, so it appears in the charts once the worker has written it."
    )
    with st.form("test_form"):
        policy_number = st.text_input("Policy number", value="DASHBOARD-TEST-1", key="form_policy")
        mib_column, rx_column = st.columns(2)
        mib_xml = mib_column.text_area(
            "MIB report XML", value=SAMPLE_MIB_XML, height=200, key="form_mib"
        )
        rx_xml = rx_column.text_area(
            "Rx report XML", value=SAMPLE_RX_XML, height=200, key="form_rx"
        )
        submitted = st.form_submit_button("Score", key="form_submit")
    if not submitted:
        return
    outcome = runtime.services.predict(
        policy_number.strip(), mib_xml.strip() or None, rx_xml.strip() or None
    )
    if not outcome.ok:
        st.error(f"The gateway did not score the pair: {outcome.error}")
        details = outcome.body.get("details") if outcome.body else None
        if details:
            st.dataframe(pd.DataFrame(details), hide_index=True)
        return

    body = outcome.body
    score, level, version, latency = st.columns(4)
    score.metric("Risk score", f"{float(body.get('risk_score', float('nan'))):.3f}")
    level.metric("Risk level", str(body.get("risk_level", "?")))
    version.metric("Model version", str(body.get("model_version", "?")))
    latency.metric("Inference time", f"{float(body.get('inference_ms', float('nan'))):.1f} ms")
    if body.get("fallback_reason"):
        st.warning(f"Scored by the rule-based fallback: {body['fallback_reason']}")
    reasons = pd.DataFrame(body.get("reasons") or [], columns=["feature", "value", "contribution"])
    if reasons.empty:
        st.caption("The answer lists no reasons.")
    else:
        st.markdown("**Reasons** (largest contribution first)")
        st.altair_chart(
            alt.Chart(reasons)
            .mark_bar()
            .encode(
                y=alt.Y("feature:N", sort=None, title=None),
                x=alt.X("contribution:Q", title="Contribution to the score"),
                color=alt.condition(
                    alt.datum.contribution > 0, alt.value("#c8553d"), alt.value("#3a6ea5")
                ),
                tooltip=["feature:N", "value:Q", "contribution:Q"],
            )
            .properties(height=max(120, 26 * len(reasons))),
        )
        st.dataframe(reasons, hide_index=True)
    warnings = body.get("warnings") or []
    if warnings:
        st.markdown("**Feature warnings**")
        st.dataframe(pd.DataFrame(warnings), hide_index=True)
    st.caption(f"Prediction id: {body.get('prediction_id', '?')}")
