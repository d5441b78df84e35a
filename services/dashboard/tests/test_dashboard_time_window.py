"""Time windows of the SQLite store end at the current time plus a tolerance."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidence_dashboard.store.base import FUTURE_TOLERANCE, window_end
from evidence_dashboard.store.sqlite import SqliteStore
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from evidence_persistence import PredictionRecord
from evidence_persistence.sinks.sqlite import SqliteSink

FEATURES_TABLE = "FEATURE_STORE__ONLINE_FEATURES"
# Offsets from now of each prediction's created_at.
OFFSETS = {
    "recent": timedelta(minutes=-10),
    "slightly-ahead": timedelta(minutes=2),
    "year-ahead": timedelta(days=365),
    "old": timedelta(hours=-3),
}


def _record(name: str, created_at: datetime) -> PredictionRecord:
    return PredictionRecord(
        prediction_id=f"pred-{name}",
        policy_number=f"POL-{name}",
        features=tuple(float(i) for i in range(len(FEATURE_NAMES))),
        feature_spec_version=FEATURE_SPEC_VERSION,
        risk_score=0.5,
        risk_level="MEDIUM",
        model_name="EVIDENCE_RISK_MODEL",
        model_version="REGISTRY_V2",
        source="API",
        inference_ms=3.0,
        created_at=created_at,
        fallback_reason=None,
        warnings=("unknown_drug",),
    )


@pytest.fixture
def skewed_store(tmp_path: Path) -> tuple[SqliteStore, datetime]:
    """Return a store with one prediction per offset, and the time they were made from."""
    path = tmp_path / "store.sqlite3"
    now = datetime.now(UTC)
    records = [_record(name, now + offset) for name, offset in OFFSETS.items()]
    SqliteSink(path).write_batch(records)
    # A worker without the clock-skew cut wrote the record's own future time as UPDATED_AT.
    connection = sqlite3.connect(path)
    future = (now + OFFSETS["year-ahead"]).isoformat(timespec="microseconds")
    connection.execute(
        f"UPDATE {FEATURES_TABLE} SET UPDATED_AT = ? WHERE POLICY_NUMBER = 'POL-year-ahead'",  # noqa: S608
        (future,),
    )
    connection.commit()
    connection.close()
    return SqliteStore(path, max_rows=1_000), now


def test_window_end_adds_tolerance() -> None:
    """window_end is the given time plus five minutes."""
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

    assert window_end(now) == now + FUTURE_TOLERANCE
    assert FUTURE_TOLERANCE == timedelta(minutes=5)


@pytest.mark.parametrize("query", ["traffic", "model_usage", "feature_warnings"])
def test_window_leaves_out_future_rows(
    skewed_store: tuple[SqliteStore, datetime], query: str
) -> None:
    """A prediction a year ahead is outside the last hour; one 2 minutes ahead is inside."""
    store, now = skewed_store

    result = getattr(store, query)(now - timedelta(hours=1))

    assert len(result.frame) == 2
    assert not result.truncated


def test_traffic_all_time_keeps_every_row(skewed_store: tuple[SqliteStore, datetime]) -> None:
    """Without a window every stored prediction is returned, the future one too."""
    store, _ = skewed_store

    assert len(store.traffic(None).frame) == len(OFFSETS)


def test_recent_features_leaves_out_future(skewed_store: tuple[SqliteStore, datetime]) -> None:
    """An ONLINE_FEATURES row updated a year ahead is outside the last hour."""
    store, now = skewed_store

    result = store.recent_features(now - timedelta(hours=1))

    assert len(result.frame) == 2


def test_drift_features_leaves_out_future(skewed_store: tuple[SqliteStore, datetime]) -> None:
    """The drift sample of the last hour has the two predictions inside the window."""
    store, now = skewed_store

    sample = store.drift_features(now - timedelta(hours=1), max_rows=100)

    assert sample.per_prediction
    assert len(sample.result.frame) == 2
