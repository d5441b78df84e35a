"""Helpers shared by the tests and by the child processes they start."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from evidence_persistence import PredictionQueue, PredictionRecord
from evidence_persistence._record import encode_record
from evidence_persistence.sinks.sqlite import SqliteSink

BASE_TIME = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
PREDICTIONS_TABLE = "ML_MODELS__MODEL_PREDICTIONS"
FEATURES_TABLE = "FEATURE_STORE__ONLINE_FEATURES"
RAW_TABLE = "FEATURE_STORE__RAW_EVIDENCE"


def build_features(index: int) -> tuple[float, ...]:
    """Return 105 distinct, exactly representable values derived from ``index``."""
    return tuple(float(index % 97) + column / 1024 for column in range(len(FEATURE_NAMES)))


def build_record(index: int, **overrides: Any) -> PredictionRecord:
    """Build a valid record whose values are derived from ``index``."""
    fields: dict[str, Any] = {
        "prediction_id": f"pred-{index:06d}",
        "policy_number": f"POL{index:06d}",
        "features": build_features(index),
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "risk_score": (index % 100) / 100,
        "risk_level": "LOW",
        "model_name": "EVIDENCE_RISK_MODEL",
        "model_version": "REGISTRY_V2",
        "source": "API",
        "inference_ms": 4.25,
        "created_at": BASE_TIME + timedelta(seconds=index),
        "fallback_reason": None,
        "warnings": ("unknown_drug",),
    }
    fields.update(overrides)
    return PredictionRecord(**fields)


def readonly_prefix() -> list[str]:
    """Return the argv prefix that makes a child process respect file modes, even as root."""
    # Root ignores file modes unless it gives up CAP_DAC_OVERRIDE, which setpriv can do.
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is not installed")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def cli_argv(*arguments: str) -> list[str]:
    """Return the argv that runs ``evidence-persistence`` with this interpreter."""
    return [sys.executable, "-m", "evidence_persistence", *arguments]


def child_environment(directory: Path, **settings: str) -> dict[str, str]:
    """Return a child-process environment whose PERSISTENCE_* settings point into directory."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PERSISTENCE_", "SNOWFLAKE_"))
    }
    environment["PERSISTENCE_QUEUE_PATH"] = str(directory / "queue.sqlite3")
    environment["PERSISTENCE_STORE_PATH"] = str(directory / "store.sqlite3")
    environment["PERSISTENCE_SNOWFLAKE_TOKEN_FILE"] = str(directory / "no-token")
    for key, value in settings.items():
        environment[f"PERSISTENCE_{key.upper()}"] = value
    return environment


def start_worker(
    directory: Path, log: Path, *arguments: str, **settings: str
) -> subprocess.Popen[bytes]:
    """Start ``evidence-persistence worker`` on directory's files, appending its output to log."""
    with log.open("ab") as output:
        return subprocess.Popen(
            cli_argv("worker", *arguments),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_environment(directory, **settings),
        )


def stored_values(store: Path, table: str, column: str) -> list[Any]:
    """Return every value of ``column`` in ``table`` of the SQLite store, in no fixed order."""
    connection = sqlite3.connect(store)
    try:
        return [row[0] for row in connection.execute(f"SELECT {column} FROM {table}")]  # noqa: S608
    finally:
        connection.close()


def query_store(store: Path, sql: str, *parameters: str) -> list[tuple[Any, ...]]:
    """Run one query on the SQLite store and return every row."""
    connection = sqlite3.connect(store)
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


def raw_evidence_sink(store: Path) -> SqliteSink:
    """Return a SQLite sink over ``store`` that also writes ``RAW_EVIDENCE`` rows."""
    return SqliteSink(store, store_raw_evidence=True)


def iso_text(value: datetime) -> str:
    """Return a UTC time in the stored text form: ISO 8601 with microseconds."""
    return value.isoformat(timespec="microseconds")


def queue_held_records(queue: PredictionQueue, indexes: range, available_at: float) -> None:
    """Queue records that no claim takes before ``available_at``, in one transaction."""
    rows = []
    for index in indexes:
        encoded = encode_record(build_record(index))
        rows.append(
            (
                encoded.prediction_id,
                time.time(),
                available_at,
                encoded.payload,
                encoded.features,
                encoded.mib_xml,
                encoded.rx_xml,
            )
        )
    queue.file.write(
        lambda connection: connection.executemany(
            "INSERT INTO queue_items (prediction_id, enqueued_at, available_at, payload, "
            "features, mib_xml, rx_xml) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    )


def wait_for(condition: Callable[[], bool], timeout: float, description: str) -> None:
    """Poll ``condition`` every 20 ms, and fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {description}")
        time.sleep(0.02)


def log_events(log: Path) -> list[dict[str, object]]:
    """Return the JSON log lines of a child process's output file, in order."""
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]
