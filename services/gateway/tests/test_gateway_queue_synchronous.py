"""GATEWAY_QUEUE_SYNCHRONOUS reaches the connection that appends the gateway's predictions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from evidence_gateway.config import Settings
from pydantic import ValidationError

# SQLite's numeric values of PRAGMA synchronous.
_PRAGMA_VALUES = {"NORMAL": 1, "FULL": 2}


def _append_connection_synchronous(gateway: Any) -> int:
    queue = gateway.app.state.pipeline.queue
    return int(queue.file.read(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]))


async def test_queue_synchronous_default_normal(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """Without the variable, appends use NORMAL."""
    gw = await gateway_factory(make_settings())

    assert _append_connection_synchronous(gw) == _PRAGMA_VALUES["NORMAL"]


@pytest.mark.parametrize("mode", ["NORMAL", "FULL"])
async def test_queue_synchronous_applied(
    gateway_factory: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smoke_pair: tuple[str, str],
    mode: str,
) -> None:
    """The chosen mode is the append connection's, and a prediction is still queued."""
    gw = await gateway_factory(make_settings(queue_synchronous=mode))
    mib, rx = smoke_pair

    response = await gw.client.post("/functions/predict", json={"data": [[0, "POL-1", mib, rx]]})

    assert response.status_code == 200
    assert _append_connection_synchronous(gw) == _PRAGMA_VALUES[mode]
    assert gw.app.state.pipeline.queue.depth() == 1


def test_queue_synchronous_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """GATEWAY_QUEUE_SYNCHRONOUS is the variable that sets it."""
    monkeypatch.setenv("GATEWAY_QUEUE_SYNCHRONOUS", "FULL")

    assert Settings(local_mode=True).queue_synchronous == "FULL"


@pytest.mark.parametrize("value", ["OFF", "full", "EXTRA", ""])
def test_queue_synchronous_invalid_rejected(value: str) -> None:
    """Only FULL and NORMAL are accepted: OFF and EXTRA are SQLite modes the queue never uses."""
    with pytest.raises(ValidationError, match="queue_synchronous"):
        Settings(local_mode=True, queue_synchronous=value)  # type: ignore[arg-type]
