"""Child process of test_dashboard_log_redaction.py: drive the page with a canary value.

Run as ``python canary_page_run.py APP_PATH CANARY RESULT_PATH`` with the DASHBOARD_* variables
set. Everything this process prints is what the dashboard would log. The page's own content
goes to RESULT_PATH as JSON, so the parent can check that the failures did happen.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import structlog
from streamlit.logger import get_logger
from streamlit.testing.v1 import AppTest


def _rx_xml(drug_name: str) -> str:
    return (
        "<IntelRXResponse><DrugFill><DrugGenericName>"
        f"{drug_name}</DrugGenericName></DrugFill></IntelRXResponse>"
    )


def main(app_path: str, canary: str, result_path: str) -> None:
    """Run the page through the broken store and the faulty gateway, then log failures."""
    at = AppTest.from_file(app_path, default_timeout=60).run()
    at.selectbox(key="window").select("All time").run()
    at.text_input(key="lookup_policy").input(canary).run()
    at.text_input(key="form_policy").input(canary)
    at.text_area(key="form_mib").input(
        f"<Response><ResponseData>{canary}</ResponseData></Response>"
    )
    at.text_area(key="form_rx").input(_rx_xml(canary))
    at.button(key="form_submit").click().run()
    page = {
        "errors": [element.value for element in at.error],
        "exceptions": [element.message for element in at.exception],
    }

    # Failures outside the guarded sections: an exception that reaches Streamlit's handler, a
    # dashboard log call with a stray key, and a standard-library record of another library.
    failure = ValueError(f"stored value {canary} is invalid")
    get_logger("streamlit.error_util").error("Uncaught app execution", exc_info=failure)
    structlog.get_logger("evidence_dashboard").error(
        "lookup failed", policy_number=canary, exc_info=failure
    )
    logging.getLogger("some_library").error("request failed", exc_info=failure)

    Path(result_path).write_text(json.dumps(page), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
