"""Tests of the row ids that tie each model response to its request, over real sockets.

The conftest's raw asyncio HTTP/1.1 server stands in for a faulty model service or proxy. Each
row's probability is the row's first feature value, so a response meant for another call shows up
as another applicant's score.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.artifact import ModelArtifact
from evidence_model_client.errors import InvalidModelResponseError
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from .conftest import FaultyServer, ServerProcess, make_scorer, roomy_client

RENUMBER_EVENT = (
    "model service renumbers response rows 0..n-1 instead of echoing the request index, so only "
    "their count and order are checked"
)


@dataclass
class RowIdServer(FaultyServer):
    """A ``FaultyServer`` whose ``/predict-proba`` responses number rows as ``numbering`` says.

    Numberings: ``echo`` (row ids from ``dataframe_split.index``, as the local model server),
    ``renumber`` (row ids ``0..n-1``), ``shift`` (each echoed id plus 1), ``duplicate`` (the
    first echoed id twice, then the rest) and ``missing`` (rows without a row id). With
    ``repeat_first``, the first response is sent a second time ``repeat_delay`` seconds later on
    the same connection, and ``repeated`` is set once that copy is written.
    """

    numbering: str = "echo"
    repeat_first: bool = False
    repeat_delay: float = 0.05
    repeated: asyncio.Event = field(default_factory=asyncio.Event)

    async def _answer_predict(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        payload = self._numbered_answer(json.loads(body)["dataframe_split"])
        self._write(writer, 200, payload)
        await writer.drain()
        if self.repeat_first and self.predict_calls == 1:
            # The copy must arrive after the client has read the first response and put the
            # connection back in its pool, as from a faulty proxy.
            await asyncio.sleep(self.repeat_delay)
            self._write(writer, 200, payload)
            await writer.drain()
            self.repeated.set()
        return True

    def _numbered_answer(self, split: dict[str, Any]) -> bytes:
        index: list[int] = list(split["index"])
        if self.numbering == "renumber":
            index = list(range(len(index)))
        elif self.numbering == "shift":
            index = [row_id + 1 for row_id in index]
        elif self.numbering == "duplicate":
            index = [index[0], *index[:-1]]
        outputs = [{"output_feature_1": row[0]} for row in split["data"]]
        if self.numbering == "missing":
            return json.dumps({"data": [[output] for output in outputs]}).encode()
        rows = [[row_id, output] for row_id, output in zip(index, outputs, strict=True)]
        return json.dumps({"data": rows}).encode()


@pytest.fixture
async def row_id_server() -> AsyncIterator[RowIdServer]:
    """A RowIdServer with ``echo`` numbering on a free port."""
    server = RowIdServer()
    await server.start()
    yield server
    await server.stop()


def _applicants(first_value: float, n_rows: int = 3) -> np.ndarray:
    """A batch whose rows score ``first_value`` at the RowIdServer."""
    matrix = np.full((n_rows, len(FEATURE_NAMES)), 0.5)
    matrix[:, 0] = first_value
    return matrix


async def _wait_for_repeat(server: RowIdServer) -> None:
    await asyncio.wait_for(server.repeated.wait(), timeout=5)
    # Let the client's event loop read the copy into the pooled connection.
    await asyncio.sleep(0.05)


async def test_stray_response_rejected(row_id_server: RowIdServer) -> None:
    """A repeated response on a pooled connection is rejected, and the next call is not poisoned."""
    row_id_server.repeat_first = True
    async with roomy_client(row_id_server.base_url) as client:
        first = await client.predict_proba(_applicants(0.1))
        await _wait_for_repeat(row_id_server)
        with pytest.raises(InvalidModelResponseError, match="belongs to another request"):
            await client.predict_proba(_applicants(0.9))
        third = await client.predict_proba(_applicants(0.7))
    assert first.tolist() == [0.1, 0.1, 0.1]
    assert third.tolist() == [0.7, 0.7, 0.7]
    # The rejected response's connection was closed, so the third call opened a new one.
    assert row_id_server.connections == 2


async def test_stray_response_scorer_falls_back(row_id_server: RowIdServer) -> None:
    """The scorer labels the batch that received a stray response RULE_BASED, invalid_response."""
    row_id_server.repeat_first = True
    scorer = make_scorer(row_id_server.base_url, CollectorRegistry())
    try:
        await scorer.start()
        first = await scorer.score(_applicants(0.1, n_rows=1))
        await _wait_for_repeat(row_id_server)
        second = await scorer.score(_applicants(0.9, n_rows=1))
        third = await scorer.score(_applicants(0.7, n_rows=1))
    finally:
        await scorer.aclose()
    assert (first[0].model_version, first[0].risk_score) == ("REGISTRY_V9", 0.1)
    assert second[0].model_version == "RULE_BASED"
    assert second[0].fallback_reason == "invalid_response"
    assert second[0].risk_score != 0.1
    assert (third[0].model_version, third[0].risk_score) == ("REGISTRY_V9", 0.7)


async def test_renumbering_server_still_scores(row_id_server: RowIdServer) -> None:
    """A service that numbers rows 0..n-1 keeps working, and the client logs that once."""
    row_id_server.numbering = "renumber"
    async with roomy_client(row_id_server.base_url) as client:
        with capture_logs() as logs:
            first = await client.predict_proba(_applicants(0.2))
            second = await client.predict_proba(_applicants(0.3, n_rows=5))
    assert first.tolist() == [0.2] * 3
    assert second.tolist() == [0.3] * 5
    renumbered = [entry for entry in logs if entry["event"] == RENUMBER_EVENT]
    assert len(renumbered) == 1
    assert renumbered[0]["log_level"] == "info"
    assert renumbered[0]["rows"] == 3


async def test_echoing_server_logs_nothing(row_id_server: RowIdServer) -> None:
    """Echoed row ids are accepted without the renumbering log line."""
    async with roomy_client(row_id_server.base_url) as client:
        with capture_logs() as logs:
            probabilities = await client.predict_proba(_applicants(0.4))
    assert probabilities.tolist() == [0.4] * 3
    assert logs == []


@pytest.mark.parametrize(
    ("numbering", "pattern"),
    [
        ("shift", "belongs to another request"),
        ("duplicate", "repeated or from another request"),
        ("missing", r"is not \[row, \{outputs\}\]"),
    ],
)
async def test_bad_row_ids_rejected(
    row_id_server: RowIdServer, numbering: str, pattern: str
) -> None:
    """Foreign, repeated or missing row ids are invalid_response, and the connection is closed."""
    row_id_server.numbering = numbering
    async with roomy_client(row_id_server.base_url) as client:
        with pytest.raises(InvalidModelResponseError, match=pattern) as error:
            await client.predict_proba(_applicants(0.6))
        assert error.value.kind == "invalid_response"
        row_id_server.numbering = "echo"
        probabilities = await client.predict_proba(_applicants(0.6))
    assert probabilities.tolist() == [0.6] * 3
    assert row_id_server.connections == 2


@pytest.mark.slow
async def test_local_server_echoes_row_ids(
    model_server: ServerProcess, artifact_dir: Path, rows: np.ndarray
) -> None:
    """The local model server echoes the random index, so no renumbering is logged."""
    expected = ModelArtifact.load(artifact_dir).model.predict_proba(rows)[:, 1]
    async with roomy_client(model_server.base_url) as client:
        with capture_logs() as logs:
            for _ in range(3):
                probabilities = await client.predict_proba(rows)
                np.testing.assert_allclose(expected, probabilities, rtol=0, atol=1e-12)
    assert [entry for entry in logs if entry["event"] == RENUMBER_EVENT] == []
