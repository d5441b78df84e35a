"""Child process of test_dashboard_gateway_token.py: submit the test form once.

Run as ``python token_page_run.py APP_PATH RESULT_PATH`` with the DASHBOARD_* variables set.
Everything this process prints is what the dashboard would log. The page goes to RESULT_PATH as
JSON: its errors, its metrics and the text of every element, so that the parent can search the
whole page for the token.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest


def _element_texts(node: Any) -> list[str]:
    """Return the protobuf text of ``node`` and of every element below it."""
    texts = []
    proto = getattr(node, "proto", None)
    if proto is not None:
        texts.append(str(proto))
    for child in getattr(node, "children", {}).values():
        texts.extend(_element_texts(child))
    return texts


def main(app_path: str, result_path: str) -> None:
    """Render the page and, when it has the test form, submit the sample pair."""
    at = AppTest.from_file(app_path, default_timeout=60).run()
    submitted = False
    # The form is missing when the settings are invalid, and the page shows only that error.
    if any(button.key == "form_submit" for button in at.button):
        at.text_input(key="form_policy").input("DASH-TOKEN-1")
        at.button(key="form_submit").click().run()
        submitted = True
    page = {
        "submitted": submitted,
        "errors": [element.value for element in at.error],
        "exceptions": [element.message for element in at.exception],
        "metrics": {element.label: element.value for element in at.metric},
        "text": "\n".join(_element_texts(at._tree)),
    }
    Path(result_path).write_text(json.dumps(page), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
