"""Fixtures: a SQLite store filled by the real persistence worker, and a model artifact.

The records are built here with known values, appended to a real ``PredictionQueue`` and
drained by the ``evidence-persistence worker --once`` command into a store file. The tests then
compare what the dashboard shows with figures computed from ``StoreFixture.records`` directly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from evidence_dashboard.config import get_settings
from evidence_features import FEATURE_NAMES
from evidence_model_client import ArtifactMetadata, compute_feature_stats
from evidence_persistence import PredictionQueue, PredictionRecord

APP_PATH = Path(__file__).resolve().parents[1] / "src" / "evidence_dashboard" / "app.py"
WORKER = Path(sys.executable).with_name("evidence-persistence")

# Feature columns whose recent values the fixture shifts, so drift has a known worst feature.
SHIFTED_FEATURE = FEATURE_NAMES[0]
RECENT_COUNT = 60
OLD_COUNT = 12
QUEUED_COUNT = 3
LOOKUP_POLICY = "P-DASH-0007"


@dataclass(frozen=True)
class StoreFixture:
    """Paths of a filled store, queue and artifact, and the records written to the store."""

    store_path: Path
    queue_path: Path
    artifact_dir: Path
    records: tuple[PredictionRecord, ...]
    now: datetime


def risk_level(score: float) -> str:
    """Map a score to the gateway's levels: LOW below 0.30, HIGH from 0.70."""
    if score >= 0.70:
        return "HIGH"
    if score >= 0.30:
        return "MEDIUM"
    return "LOW"


def make_records(now: datetime, rng: np.random.Generator) -> list[PredictionRecord]:
    """Build RECENT_COUNT records in the last 50 minutes and OLD_COUNT three hours earlier."""
    records = []
    times = [now - timedelta(seconds=30 + 50 * i) for i in range(RECENT_COUNT)]
    times += [now - timedelta(hours=3, seconds=60 * i) for i in range(OLD_COUNT)]
    for index, created_at in enumerate(times):
        features = rng.normal(loc=5.0, scale=1.0, size=len(FEATURE_NAMES))
        features[0] = 9.0 + rng.random()  # far above the training range of SHIFTED_FEATURE
        score = float(rng.random())
        fallback = index % 5 == 0
        warnings: tuple[str, ...] = ()
        if index % 4 == 0:
            warnings = ("unknown_drug",)
        if index % 6 == 0:
            warnings = ("undated_record", "unknown_drug")
        records.append(
            PredictionRecord(
                prediction_id=f"pred-{index:04d}",
                # policy 7 appears three times, so the lookup has several predictions
                policy_number=LOOKUP_POLICY if index in (7, 17, 27) else f"P-DASH-{index:04d}",
                features=tuple(float(x) for x in features),
                feature_spec_version="1.0.0",
                risk_score=score,
                risk_level=risk_level(score),
                model_name="EVIDENCE_RISK_MODEL",
                model_version=_model_version(index, fallback),
                source="SQL" if index % 3 == 0 else "API",
                inference_ms=round(2.0 + (index * 7 % 23) * 0.5, 3),
                created_at=created_at,
                fallback_reason="model_timeout" if fallback else None,
                warnings=warnings,
            )
        )
    return records


def _model_version(index: int, fallback: bool) -> str:
    # A few records come from the local model server's built-in rules, which the model panel
    # must count apart from the registry model.
    if fallback:
        return "RULE_BASED"
    return "REGISTRY_BUILTIN" if index % 7 == 3 else "REGISTRY_V2"


def write_artifact(directory: Path, rng: np.random.Generator) -> None:
    """Write a metadata.json whose feature_stats come from a standard-normal-ish training set."""
    training = rng.normal(loc=5.0, scale=1.0, size=(2_000, len(FEATURE_NAMES)))
    training[:, 0] = rng.uniform(0.0, 4.0, size=2_000)
    metadata = ArtifactMetadata(
        model_version="V2",
        metrics={"roc_auc": 0.8},
        feature_stats=compute_feature_stats(training),
        feature_importances=dict.fromkeys(FEATURE_NAMES, 1.0 / len(FEATURE_NAMES)),
        training_summary={"rows": 2_000, "positive_rate": 0.2},
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metadata.json").write_text(json.dumps(metadata.to_json()), encoding="utf-8")


def run_worker(queue_path: Path, store_path: Path) -> None:
    """Drain the queue into the store with the real worker command, then return."""
    env = {
        **os.environ,
        "PERSISTENCE_QUEUE_PATH": str(queue_path),
        "PERSISTENCE_STORE_PATH": str(store_path),
        "PERSISTENCE_SINK": "sqlite",
        "PERSISTENCE_MAX_ATTEMPTS": "1",
    }
    completed = subprocess.run(
        [str(WORKER), "worker", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


def add_undecodable_item(queue_path: Path) -> None:
    """Put a corrupt row into the queue, which the worker moves to the dead letters."""
    connection = sqlite3.connect(queue_path)
    try:
        connection.execute(
            "INSERT INTO queue_items (prediction_id, enqueued_at, payload, features) "
            "VALUES (?, ?, ?, ?)",
            ("broken-0001", 0.0, b"not json", b""),
        )
        connection.commit()
    finally:
        connection.close()


@pytest.fixture(scope="session")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> StoreFixture:
    """A store drained by the real worker, plus QUEUED_COUNT records still waiting."""
    root = tmp_path_factory.mktemp("dashboard_store")
    rng = np.random.default_rng(7)
    now = datetime.now(UTC)
    records = make_records(now, rng)
    queue_path, store_path = root / "queue.sqlite3", root / "store.sqlite3"
    queue = PredictionQueue(queue_path, max_depth=10_000)
    queue.append_many(records)
    add_undecodable_item(queue_path)
    queue.close()
    run_worker(queue_path, store_path)

    waiting = make_records(now, np.random.default_rng(8))[:QUEUED_COUNT]
    queue = PredictionQueue(queue_path, max_depth=10_000)
    queue.append_many(
        [dataclasses.replace(r, prediction_id=f"waiting-{i}") for i, r in enumerate(waiting)]
    )
    queue.close()
    artifact_dir = root / "model"
    write_artifact(artifact_dir, rng)
    return StoreFixture(store_path, queue_path, artifact_dir, tuple(records), now)


@pytest.fixture
def dashboard_env(
    monkeypatch: pytest.MonkeyPatch, filled_store: StoreFixture, unused_port: int
) -> Iterator[StoreFixture]:
    """Point the dashboard settings at the filled store and an address nothing listens on."""
    monkeypatch.setenv("DASHBOARD_STORE_PATH", str(filled_store.store_path))
    monkeypatch.setenv("DASHBOARD_QUEUE_PATH", str(filled_store.queue_path))
    monkeypatch.setenv("DASHBOARD_ARTIFACT_DIR", str(filled_store.artifact_dir))
    monkeypatch.setenv("DASHBOARD_GATEWAY_URL", f"http://127.0.0.1:{unused_port}")
    get_settings.cache_clear()
    yield filled_store
    get_settings.cache_clear()


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def app_path() -> Path:
    """Path of the Streamlit entry script."""
    return APP_PATH


@pytest.fixture
def drain_queue() -> Callable[[Path, Path], None]:
    """``run_worker``, for test modules that cannot import conftest under importlib mode."""
    return run_worker
