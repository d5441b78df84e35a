"""Guard for one page section: a failure shows on the page and is logged by type only.

Streamlit logs an uncaught exception of the script with its message and traceback. The message
can quote health data (a policy number from a broken store row, a value from a gateway
response), so every section catches its own errors before Streamlit's handler gets them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
import structlog
from streamlit.errors import FragmentHandledException

__all__ = ["guarded_section"]

logger = structlog.get_logger(__name__)

_MAX_MESSAGE = 500


@contextmanager
def guarded_section(name: str) -> Iterator[None]:
    """Run the body of the ``with`` block, and on an exception show it and log only its type.

    Streamlit's control-flow exceptions pass through unchanged. ``st.rerun`` and ``st.stop``
    raise ``BaseException`` subclasses, and ``FragmentHandledException`` reports a fragment
    failure that Streamlit has already handled.
    """
    try:
        yield
    except FragmentHandledException:
        raise
    except Exception as exc:  # any failure of a section is shown, not raised
        logger.error("page section failed", section=name, exception_type=type(exc).__name__)
        message = str(exc)
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + "…"
        # The page is shown only to the dashboard's users, who may see the stored data anyway,
        # so the message stays here to help fix the cause. It never goes to the logs.
        st.error(f"The {name} section failed: {type(exc).__name__}: {message}")
