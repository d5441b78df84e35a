"""A JSON renderer that writes a fixed line instead of raising, whatever values an event has."""

from __future__ import annotations

import json

from structlog.typing import EventDict, WrappedLogger


class SafeJSONRenderer:
    """structlog renderer: ``json.dumps`` of the event, or a minimal line when that fails.

    NaN and infinity, a circular structure, a value nested too deep for ``json.dumps`` or an
    object whose ``str`` raises give the line
    ``{"event": "log line could not be rendered", "level": ...}`` instead of an error.
    """

    def __repr__(self) -> str:
        return "SafeJSONRenderer()"

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
        try:
            return json.dumps(event_dict, default=str, allow_nan=False)
        except Exception:
            # Whatever an event's values make json.dumps raise, the fixed line is written.
            level = event_dict.get("level")
            return json.dumps(
                {
                    "event": "log line could not be rendered",
                    "level": level if isinstance(level, str) else None,
                }
            )
