"""Records dated ahead of the worker's clock: stored, logged, and kept from freezing features."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.config import Settings
from evidence_persistence.metrics import WorkerMetrics
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import FEATURES_TABLE, PREDICTIONS_TABLE, build_record

A_YEAR = timedelta(days=365)


def _online_row(store: Path, policy_number: str) -> tuple[str, str]:
    """Return PREDICTION_ID and UPDATED_AT of the policy's ONLINE_FEATURES row."""
    connection = sqlite3.connect(store)
    try:
        row = connection.execute(
            f"SELECT PREDICTION_ID, UPDATED_AT FROM {FEATURES_TABLE} WHERE POLICY_NUMBER = ?",  # noqa: S608
            (policy_number,),
        ).fetchone()
    finally:
        connection.close()
    return str(row[0]), str(row[1])


def _created_at(store: Path, prediction_id: str) -> str:
    connection = sqlite3.connect(store)
    try:
        row = connection.execute(
            f"SELECT CREATED_AT FROM {PREDICTIONS_TABLE} WHERE PREDICTION_ID = ?",  # noqa: S608
            (prediction_id,),
        ).fetchone()
    finally:
        connection.close()
    return str(row[0])


def test_sqlite_future_record_not_frozen(tmp_path: Path) -> None:
    """A record a year ahead does not keep a later record's features out."""
    store = tmp_path / "store.sqlite3"
    sink = SqliteSink(store, clock_skew_tolerance_seconds=0)
    future = build_record(1, policy_number="POL-SKEW", created_at=datetime.now(UTC) + A_YEAR)
    sink.write_batch([future])

    later = build_record(2, policy_number="POL-SKEW", created_at=datetime.now(UTC))
    result = sink.write_batch([later])

    assert _online_row(store, "POL-SKEW")[0] == "pred-000002"
    assert result.online_features_skipped == ()


def test_sqlite_future_record_stored_as_is(tmp_path: Path) -> None:
    """CREATED_AT keeps the record's time, and UPDATED_AT is cut to clock plus tolerance."""
    store = tmp_path / "store.sqlite3"
    created_at = datetime.now(UTC) + A_YEAR
    record = build_record(1, created_at=created_at)

    before = datetime.now(UTC)
    SqliteSink(store, clock_skew_tolerance_seconds=60).write_batch([record])
    after = datetime.now(UTC)

    assert _created_at(store, "pred-000001") == created_at.isoformat(timespec="microseconds")
    updated_at = datetime.fromisoformat(_online_row(store, record.policy_number)[1])
    assert before + timedelta(seconds=60) <= updated_at
    assert updated_at <= after + timedelta(seconds=60)


def test_sqlite_within_tolerance_kept(tmp_path: Path) -> None:
    """A record ahead by less than the tolerance keeps its own UPDATED_AT."""
    store = tmp_path / "store.sqlite3"
    created_at = datetime.now(UTC) + timedelta(seconds=30)
    record = build_record(1, created_at=created_at)

    SqliteSink(store, clock_skew_tolerance_seconds=300).write_batch([record])

    updated_at = _online_row(store, record.policy_number)[1]
    assert updated_at == created_at.isoformat(timespec="microseconds")


def test_sqlite_skipped_update_reported(tmp_path: Path) -> None:
    """An older record of a policy is kept out, and the sink names it."""
    store = tmp_path / "store.sqlite3"
    sink = SqliteSink(store)
    newer = build_record(1, policy_number="POL-ORDER")
    older = build_record(2, policy_number="POL-ORDER", created_at=newer.created_at - A_YEAR)
    other = build_record(3)
    sink.write_batch([newer])

    result = sink.write_batch([older, other])

    assert result.online_features_skipped == ("pred-000002",)
    assert _online_row(store, "POL-ORDER")[0] == "pred-000001"
    assert _online_row(store, other.policy_number)[0] == "pred-000003"
    assert _created_at(store, "pred-000002") == older.created_at.isoformat(timespec="microseconds")


def test_drainer_logs_future_records(
    queue: PredictionQueue, tmp_path: Path, worker_logs: list[MutableMapping[str, Any]]
) -> None:
    """The worker logs and counts future-dated records by id, without their values."""
    future = build_record(
        1, policy_number="POL-SECRET-FUTURE", created_at=datetime.now(UTC) + A_YEAR
    )
    queue.append_many([future, build_record(2)])
    metrics = WorkerMetrics(queue)
    drainer = QueueDrainer(
        QueueConsumer(queue, owner="test"),
        SqliteSink(tmp_path / "store.sqlite3"),
        metrics=metrics,
        clock_skew_tolerance_seconds=300,
    )

    drainer.run(threading.Event(), exit_when_empty=True)

    logs = worker_logs
    warnings = [log for log in logs if log["event"] == "records dated in the future"]
    assert len(warnings) == 1
    assert warnings[0]["records"] == 1
    assert warnings[0]["prediction_ids"] == ["pred-000001"]
    assert warnings[0]["max_ahead_seconds"] > A_YEAR.total_seconds() - 60
    assert warnings[0]["tolerance_seconds"] == 300
    assert "POL-SECRET-FUTURE" not in repr(logs)
    counted = metrics.registry.get_sample_value("evidence_persistence_future_dated_records_total")
    assert counted == 1


def test_drainer_logs_skipped_update(
    queue: PredictionQueue, tmp_path: Path, worker_logs: list[MutableMapping[str, Any]]
) -> None:
    """The worker logs and counts an online-feature update kept out by a newer stored row."""
    store = tmp_path / "store.sqlite3"
    newer = build_record(1, policy_number="POL-SECRET-ORDER")
    SqliteSink(store).write_batch([newer])
    older = build_record(2, policy_number="POL-SECRET-ORDER", created_at=newer.created_at - A_YEAR)
    queue.append(older)
    metrics = WorkerMetrics(queue)
    drainer = QueueDrainer(QueueConsumer(queue, owner="test"), SqliteSink(store), metrics=metrics)

    drainer.run(threading.Event(), exit_when_empty=True)

    logs = worker_logs
    warnings = [log for log in logs if log["event"] == "online features kept, stored row newer"]
    assert len(warnings) == 1
    assert warnings[0]["records"] == 1
    assert warnings[0]["prediction_ids"] == ["pred-000002"]
    assert "POL-SECRET-ORDER" not in repr(logs)
    skipped = metrics.registry.get_sample_value(
        "evidence_persistence_online_features_skipped_total"
    )
    assert skipped == 1
    assert queue.depth() == 0


def test_settings_clock_skew_tolerance(
    clean_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tolerance defaults to 300 s and is read from its variable."""
    assert Settings().clock_skew_tolerance_seconds == 300.0

    monkeypatch.setenv("PERSISTENCE_CLOCK_SKEW_TOLERANCE_SECONDS", "5")

    assert Settings().clock_skew_tolerance_seconds == 5.0
