"""Streamlit in Snowflake entry point of the ML_PIPELINE_MONITOR app.

It renders the same page as ``streamlit run services/dashboard/src/evidence_dashboard/app.py``,
reading the hybrid tables through the app's Snowpark session. ``bundle.py`` copies the
``evidence_dashboard`` and ``evidence_features`` sources into ``lib/`` beside this file, and the
model's ``metadata.json`` into ``model/``, before ``deploy.sh streamlit`` uploads the folder.
"""

import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(APP_DIR / "lib"))

from evidence_dashboard.page import render_page  # noqa: E402

render_page(backend="snowflake", artifact_dir=APP_DIR / "model")
