"""Caches of values read from report text, bounded in entries and in the length of each key.

The readers cache what they compute from a field's text, because the same dates, quantities
and drug names recur across fills and reports. The keys are the report's own text, though,
and a long field would stay in memory for as long as its entry does: 4,096 entries of a 2 MB
document each would hold 8 GB. So only texts up to `MAX_KEY_CHARS` are kept. Longer ones are
computed every time, which costs little, because no real field is that long.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["MAX_KEY_CHARS", "TextMemo"]

MAX_KEY_CHARS = 256
"""Maximum length of a text that a cache keeps as a key."""

KeyT = TypeVar("KeyT", bound=str | None)
ValueT = TypeVar("ValueT")


class TextMemo(dict[KeyT, ValueT]):
    """A dict that computes the value of a missing text with ``function``: ``memo[text]``.

    A hit is a plain dict lookup, faster than a call through ``functools.lru_cache``. A miss
    keeps the value only for a text of at most `MAX_KEY_CHARS` characters, and a full memo
    starts over empty, so memory stays bounded while the values in use come back.

    Args:
        function: Computes the value of one text.
        max_entries: Entries at which the memo is emptied before the next one is added.
    """

    def __init__(self, function: Callable[[KeyT], ValueT], max_entries: int) -> None:
        super().__init__()
        self._function = function
        self._max_entries = max_entries

    def __missing__(self, text: KeyT) -> ValueT:
        value = self._function(text)
        if text is None or len(text) <= MAX_KEY_CHARS:
            if len(self) >= self._max_entries:
                self.clear()
            self[text] = value
        return value
