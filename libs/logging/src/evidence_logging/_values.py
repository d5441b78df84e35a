"""The allow-list of event keys and the clipping of values to short scalars."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from structlog.typing import EventDict, WrappedLogger

MAX_STRING_CHARS = 200
MAX_LIST_ITEMS = 50
MAX_DROPPED_KEYS = 20
_SCALARS = (str, int, float, bool, type(None))


def clip_value(value: Any, *, max_list_items: int = MAX_LIST_ITEMS) -> Any:
    """Cut a value down to what a log line may carry.

    A string longer than ``MAX_STRING_CHARS`` is cut and ends in "…". Other scalars pass
    unchanged. A list or tuple whose first ``max_list_items`` items are all scalars becomes a
    list of those items, clipped. With ``max_list_items=0`` every list or tuple is dropped.
    Any other value becomes ``"<type dropped>"``, so neither its content nor its repr is printed.
    """
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING_CHARS else value[:MAX_STRING_CHARS] + "…"
    if isinstance(value, _SCALARS):
        return value
    if max_list_items > 0 and isinstance(value, list | tuple):
        head = value[:max_list_items]
        if all(isinstance(item, _SCALARS) for item in head):
            return [clip_value(item) for item in head]
    return f"<{type(value).__name__} dropped>"


class AllowedKeysFilter:
    """structlog processor that keeps the allow-listed keys of an event, with clipped values.

    The names of the other keys, sorted and at most ``MAX_DROPPED_KEYS`` of them, go to
    ``dropped_keys``. Their values are never rendered.

    Args:
        allowed_keys: The keys a service may log; a ``dropped_keys`` key in an event is replaced.
        max_list_items: Items kept of a list value; 0 drops list values like nested ones.
    """

    def __init__(self, allowed_keys: Collection[str], *, max_list_items: int = MAX_LIST_ITEMS):
        if isinstance(allowed_keys, str):
            msg = f"allowed_keys={allowed_keys!r} is one string; pass a collection of key names"
            raise TypeError(msg)
        if max_list_items < 0:
            msg = f"max_list_items={max_list_items!r} is negative; pass 0 to drop list values"
            raise ValueError(msg)
        self.allowed_keys = frozenset(allowed_keys)
        self.max_list_items = max_list_items

    def __repr__(self) -> str:
        return (
            f"AllowedKeysFilter({sorted(self.allowed_keys)!r}, "
            f"max_list_items={self.max_list_items!r})"
        )

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        dropped = sorted(str(key) for key in event_dict if key not in self.allowed_keys)
        kept = {
            key: clip_value(value, max_list_items=self.max_list_items)
            for key, value in event_dict.items()
            if key in self.allowed_keys
        }
        if dropped:
            kept["dropped_keys"] = [clip_value(key) for key in dropped[:MAX_DROPPED_KEYS]]
        return kept
