"""Streamlit entry point: ``streamlit run services/dashboard/src/evidence_dashboard/app.py``.

Streamlit in Snowflake runs ``deploy/streamlit/streamlit_app.py``, which renders the same page.
"""

from evidence_dashboard.page import render_page

render_page()
