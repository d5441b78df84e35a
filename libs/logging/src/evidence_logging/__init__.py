"""Privacy-safe logging shared by the services: allow-listed keys, clipped values, JSON lines.

The evidence is health data. A service names the keys it may log, and ``configure_logging``
routes structlog events and standard-library records through one chain of processors. The
chain reduces exceptions to their type, drops and names the other keys, and clips values to
short scalars. Its JSON renderer writes a fixed line where it cannot render an event.

``exit_on_invalid_settings`` ends a command whose settings are invalid with one line per
variable on stderr, without a traceback or the values of secret fields.
"""

from evidence_logging._configure import configure_logging, resolve_level
from evidence_logging._exceptions import ExceptionSummarizer, exception_frames
from evidence_logging._redact import ExceptionTypeOnlyFilter, redact_loggers
from evidence_logging._render import SafeJSONRenderer
from evidence_logging._settings import (
    HIDDEN_VALUE,
    INVALID_SETTINGS_EXIT_STATUS,
    SettingsFailure,
    describe_invalid_settings,
    exit_on_invalid_settings,
    hide_url_credentials,
)
from evidence_logging._stdlib import keep_message_template, route_stdlib_logging
from evidence_logging._streams import (
    CurrentStreamHandler,
    CurrentStreamLoggerFactory,
    CurrentStreamPrintLogger,
    StreamName,
)
from evidence_logging._values import (
    MAX_DROPPED_KEYS,
    MAX_LIST_ITEMS,
    MAX_STRING_CHARS,
    AllowedKeysFilter,
    clip_value,
)

__all__ = [
    "HIDDEN_VALUE",
    "INVALID_SETTINGS_EXIT_STATUS",
    "MAX_DROPPED_KEYS",
    "MAX_LIST_ITEMS",
    "MAX_STRING_CHARS",
    "AllowedKeysFilter",
    "CurrentStreamHandler",
    "CurrentStreamLoggerFactory",
    "CurrentStreamPrintLogger",
    "ExceptionSummarizer",
    "ExceptionTypeOnlyFilter",
    "SafeJSONRenderer",
    "SettingsFailure",
    "StreamName",
    "clip_value",
    "configure_logging",
    "describe_invalid_settings",
    "exception_frames",
    "exit_on_invalid_settings",
    "hide_url_credentials",
    "keep_message_template",
    "redact_loggers",
    "resolve_level",
    "route_stdlib_logging",
]
