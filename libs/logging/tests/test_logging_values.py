"""The clipping of values and the allow-list filter."""

from __future__ import annotations

import pytest
from evidence_logging import MAX_DROPPED_KEYS, MAX_STRING_CHARS, AllowedKeysFilter, clip_value


@pytest.mark.parametrize("value", [0, -3, 2.5, True, False, None, "", "short text"])
def test_clip_value_scalar_unchanged(value: object) -> None:
    """Numbers, booleans, None and short strings pass unchanged."""
    assert value == clip_value(value)


def test_clip_value_string_at_limit_unchanged() -> None:
    """A string of exactly MAX_STRING_CHARS characters is kept whole."""
    text = "a" * MAX_STRING_CHARS

    assert text == clip_value(text)


def test_clip_value_long_string_cut() -> None:
    """A string one character over the limit is cut to the limit plus an ellipsis."""
    clipped = clip_value("a" * 200 + "SECRET")

    assert "a" * 200 + "…" == clipped
    assert 201 == len(clipped)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"dob": "1970-01-01"}, "<dict dropped>"),
        (b"<MIB/>", "<bytes dropped>"),
        ({1, 2}, "<set dropped>"),
        (object(), "<object dropped>"),
        ([1, {"a": 1}], "<list dropped>"),
        ([[1]], "<list dropped>"),
    ],
)
def test_clip_value_non_scalar_dropped(value: object, expected: str) -> None:
    """Mappings, bytes, sets, objects and lists holding non-scalars become a type placeholder."""
    assert expected == clip_value(value)


def test_clip_value_list_of_scalars_kept() -> None:
    """A tuple of scalars becomes a list, and its long strings are cut."""
    assert [1, "x", None, "b" * 200 + "…"] == clip_value((1, "x", None, "b" * 250))


def test_clip_value_long_list_cut_to_limit() -> None:
    """Only the first 50 items of a list are kept, and only those are checked."""
    value: list[object] = list(range(60))
    value[55] = {"never": "rendered"}

    assert list(range(50)) == clip_value(value)


def test_clip_value_lists_dropped_with_zero_items() -> None:
    """With max_list_items=0 a list of scalars is dropped like a nested value."""
    assert "<list dropped>" == clip_value([1, 2], max_list_items=0)
    assert "<tuple dropped>" == clip_value((), max_list_items=0)


def test_filter_drops_and_names_unlisted_keys() -> None:
    """Keys outside the allow-list are named in dropped_keys, sorted, and their values vanish."""
    keep = AllowedKeysFilter({"event", "request_id"})
    event = {"event": "parsed", "request_id": "r1", "mib": {"dob": "1970"}, "body": "<x/>"}

    kept = keep(None, "info", event)

    assert {"event": "parsed", "request_id": "r1", "dropped_keys": ["body", "mib"]} == kept


def test_filter_no_dropped_keys_when_all_allowed() -> None:
    """An event with allowed keys only gets no dropped_keys entry."""
    keep = AllowedKeysFilter(["event", "rows"])

    assert {"event": "e", "rows": 3} == keep(None, "info", {"event": "e", "rows": 3})


def test_filter_clips_kept_values() -> None:
    """Kept values are clipped: long strings cut, nested values replaced."""
    keep = AllowedKeysFilter({"event", "error", "ids"})

    kept = keep(None, "info", {"event": "x" * 500, "error": {"deep": [1]}, "ids": ["a", "b"]})

    assert 201 == len(kept["event"])
    assert "<dict dropped>" == kept["error"]
    assert ["a", "b"] == kept["ids"]


def test_filter_zero_list_items_drops_lists() -> None:
    """A filter built with max_list_items=0 drops list values of allowed keys."""
    keep = AllowedKeysFilter({"event", "ids"}, max_list_items=0)

    assert "<list dropped>" == keep(None, "info", {"event": "e", "ids": [1]})["ids"]


def test_filter_names_at_most_twenty_dropped_keys() -> None:
    """Of many dropped keys, the first MAX_DROPPED_KEYS in sorted order are named."""
    keep = AllowedKeysFilter({"event"})
    event: dict[str, object] = {f"key{index:02d}": index for index in range(30)}
    event["event"] = "e"

    kept = keep(None, "info", event)

    assert [f"key{index:02d}" for index in range(MAX_DROPPED_KEYS)] == kept["dropped_keys"]


def test_filter_clips_dropped_key_names() -> None:
    """A dropped key name is clipped like a value, since a caller may build it from data."""
    keep = AllowedKeysFilter({"event"})

    kept = keep(None, "info", {"event": "e", "k" * 300: 1})

    assert ["k" * 200 + "…"] == kept["dropped_keys"]


def test_filter_replaces_caller_dropped_keys() -> None:
    """A dropped_keys value given by the caller is replaced when keys were dropped."""
    keep = AllowedKeysFilter({"event", "dropped_keys"})

    kept = keep(None, "info", {"event": "e", "dropped_keys": ["fake"], "body": "x"})

    assert ["body"] == kept["dropped_keys"]


def test_filter_leaves_input_unchanged() -> None:
    """The filter returns a new mapping and does not change the event it was given."""
    keep = AllowedKeysFilter({"event"})
    event = {"event": "e", "body": "x"}

    keep(None, "info", event)

    assert {"event": "e", "body": "x"} == event


def test_filter_rejects_single_string() -> None:
    """One string as the key set is a mistake, since it would allow its letters."""
    with pytest.raises(TypeError, match="allowed_keys='event' is one string"):
        AllowedKeysFilter("event")


def test_filter_rejects_negative_list_items() -> None:
    """A negative list length is rejected with the value and the alternative."""
    with pytest.raises(ValueError, match="max_list_items=-1 is negative"):
        AllowedKeysFilter({"event"}, max_list_items=-1)
