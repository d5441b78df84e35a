"""Bundled sample evidence and the calls that score it through both gateway paths."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "SampleEvidence",
    "StoreCounts",
    "count_stored",
    "load_samples",
    "load_smoke_inputs",
    "score_via_api",
    "score_via_function",
]

_PREDICTIONS_TABLE = "ML_MODELS__MODEL_PREDICTIONS"
_FEATURES_TABLE = "FEATURE_STORE__ONLINE_FEATURES"
_SMOKE_FILES = ("mib_code1.xml", "rx_metformin.xml", "empty.xml")


@dataclass(frozen=True, slots=True)
class SampleEvidence:
    """One applicant of the sample directory: ``<policy>/mib.xml`` and ``<policy>/rx.xml``."""

    policy_number: str
    mib_xml: str | None
    rx_xml: str | None


def _read_optional(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def load_smoke_inputs(directory: Path) -> list[SampleEvidence]:
    """Build the SQL smoke-test applicants from ``smoke/``, when its three files exist.

    ``TEST-001`` is the coded MIB list with one METFORMIN fill and ``TEST-002`` has an empty
    ``<r/>`` report on both sides, as in the smoke queries ``FN_API_PREDICT('TEST-001', ...)``.
    """
    files = {name: directory / name for name in _SMOKE_FILES}
    if not all(path.is_file() for path in files.values()):
        return []
    text = {name: path.read_text(encoding="utf-8") for name, path in files.items()}
    return [
        SampleEvidence("TEST-001", text["mib_code1.xml"], text["rx_metformin.xml"]),
        SampleEvidence("TEST-002", text["empty.xml"], text["empty.xml"]),
    ]


def load_samples(directory: Path) -> list[SampleEvidence]:
    """Read the smoke inputs and every ``<policy>/`` folder with an ``mib.xml`` or ``rx.xml``.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
    """
    if not directory.is_dir():
        msg = f"sample directory {str(directory)!r} does not exist"
        raise FileNotFoundError(msg)
    samples = load_smoke_inputs(directory / "smoke")
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        mib_xml = _read_optional(folder / "mib.xml")
        rx_xml = _read_optional(folder / "rx.xml")
        if mib_xml is not None or rx_xml is not None:
            samples.append(SampleEvidence(folder.name, mib_xml, rx_xml))
    return samples


def score_via_api(client: httpx.Client, samples: Sequence[SampleEvidence]) -> list[dict[str, Any]]:
    """POST each sample to ``/v1/predict``; return the predictions or error bodies."""
    answers = []
    for sample in samples:
        response = client.post(
            "/v1/predict",
            json={
                "policy_number": sample.policy_number,
                "mib_xml": sample.mib_xml,
                "rx_xml": sample.rx_xml,
            },
        )
        body = response.json()
        if response.status_code != 200:
            body = {"policy_number": sample.policy_number, **body}
        answers.append(body)
    return answers


def score_via_function(
    client: httpx.Client, samples: Sequence[SampleEvidence]
) -> list[dict[str, Any]]:
    """Send all samples as one service-function batch, as ``FN_API_PREDICT`` would.

    Raises:
        httpx.HTTPStatusError: the gateway returned a non-200 status for the batch.
    """
    rows = [
        [index, sample.policy_number, sample.mib_xml, sample.rx_xml]
        for index, sample in enumerate(samples)
    ]
    response = client.post(
        "/functions/predict",
        json={"data": rows},
        headers={"sf-external-function-query-batch-id": f"evidence-stack:{uuid.uuid4()}"},
    )
    response.raise_for_status()
    answers = []
    for (_, value), sample in zip(response.json()["data"], samples, strict=True):
        if "error" in value:
            value = {
                "policy_number": sample.policy_number,
                "error": {"message": value["error"]},
            }
        answers.append(value)
    return answers


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """Rows found in the SQLite store."""

    predictions_found: int
    predictions_expected: int
    predictions_total: int
    online_features_total: int
    waited_seconds: float


def _count(store_path: Path, prediction_ids: Sequence[str]) -> tuple[int, int, int]:
    uri = f"{store_path.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=1.0)
    try:
        placeholders = ",".join("?" * len(prediction_ids))
        found = connection.execute(
            f"SELECT COUNT(*) FROM {_PREDICTIONS_TABLE} "  # noqa: S608 - fixed table name
            f"WHERE PREDICTION_ID IN ({placeholders})",
            list(prediction_ids),
        ).fetchone()[0]
        total = connection.execute(f"SELECT COUNT(*) FROM {_PREDICTIONS_TABLE}").fetchone()[0]  # noqa: S608
        features = connection.execute(f"SELECT COUNT(*) FROM {_FEATURES_TABLE}").fetchone()[0]  # noqa: S608
    finally:
        connection.close()
    return int(found), int(total), int(features)


def count_stored(
    store_path: Path, prediction_ids: Sequence[str], *, timeout: float = 15.0
) -> StoreCounts:
    """Wait until the worker has written every id (or ``timeout`` passed) and count rows."""
    started = time.perf_counter()
    found = total = features = 0
    while True:
        if store_path.is_file():
            try:
                found, total, features = _count(store_path, prediction_ids)
            except sqlite3.Error:
                # The worker may not have created the tables yet.
                found = 0
        waited = time.perf_counter() - started
        if found >= len(prediction_ids) or waited > timeout:
            return StoreCounts(found, len(prediction_ids), total, features, round(waited, 2))
        time.sleep(0.2)
