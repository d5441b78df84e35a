"""The JSON renderer that never raises."""

from __future__ import annotations

import json

from evidence_logging import SafeJSONRenderer

FALLBACK = "log line could not be rendered"


def test_renderer_writes_json() -> None:
    """A plain event is rendered as one JSON object with its keys."""
    line = SafeJSONRenderer()(None, "info", {"event": "served", "rows": 2, "level": "info"})

    assert {"event": "served", "rows": 2, "level": "info"} == json.loads(line)


def test_renderer_nan_gives_fallback_line() -> None:
    """NaN is not JSON, so the fallback line with the level is written instead."""
    line = SafeJSONRenderer()(None, "info", {"event": "e", "score": float("nan"), "level": "info"})

    assert {"event": FALLBACK, "level": "info"} == json.loads(line)


def test_renderer_deep_value_gives_fallback_line() -> None:
    """A value nested past the recursion limit does not raise."""
    deep: list[object] = []
    node = deep
    for _ in range(5000):
        child: list[object] = []
        node.append(child)
        node = child

    line = SafeJSONRenderer()(None, "info", {"event": "e", "value": deep, "level": "warning"})

    assert {"event": FALLBACK, "level": "warning"} == json.loads(line)


def test_renderer_circular_value_gives_fallback_line() -> None:
    """A circular structure does not raise."""
    loop: dict[str, object] = {}
    loop["self"] = loop

    line = SafeJSONRenderer()(None, "info", {"event": "e", "value": loop})

    assert {"event": FALLBACK, "level": None} == json.loads(line)


def test_renderer_fallback_drops_unrenderable_level() -> None:
    """A level that is not a string cannot break the fallback line."""
    line = SafeJSONRenderer()(None, "info", {"event": float("nan"), "level": float("nan")})

    assert {"event": FALLBACK, "level": None} == json.loads(line)


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("str failed")


def test_renderer_unprintable_object_gives_fallback_line() -> None:
    """An object whose str() raises, rendered through default=str, does not raise."""
    line = SafeJSONRenderer()(
        None, "info", {"event": "e", "value": _Unprintable(), "level": "info"}
    )

    assert {"event": FALLBACK, "level": "info"} == json.loads(line)
