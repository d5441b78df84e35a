"""Replayed prediction ids are not newer evidence, whatever order the records arrive in.

A service-function batch retried by Snowflake gets the same deterministic prediction ids and a
later ``created_at``. These tests check that such a replay keeps the first scoring time of
``MODEL_PREDICTIONS`` and the first ``RAW_EVIDENCE`` row, never displaces newer
``ONLINE_FEATURES``, and leaves the latest answer in ``MODEL_PREDICTIONS``, in the SQLite sink
(real store files), through the worker, and in the Snowflake sink's merge code.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidence_persistence import PredictionQueue, PredictionRecord
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.sinks.sqlite import SqliteSink
from persistence_testkit import (
    BASE_TIME,
    FEATURES_TABLE,
    PREDICTIONS_TABLE,
    RAW_TABLE,
    build_record,
    iso_text,
    query_store,
    raw_evidence_sink,
)

SECOND = timedelta(seconds=1)
OLD_RX = b"<IntelRXResponse>six fills</IntelRXResponse>"
NEW_RX = b"<IntelRXResponse>sixty-six fills</IntelRXResponse>"


def _scoring(
    prediction_id: str, policy: str, at: datetime, value: float, **overrides: Any
) -> PredictionRecord:
    """Build a record of one scoring: every feature is ``value``, and the Rx XML matches it."""
    fields: dict[str, Any] = {
        "prediction_id": prediction_id,
        "policy_number": policy,
        "features": (value,) * 105,
        "created_at": at,
        "rx_xml": OLD_RX if value < 10 else NEW_RX,
        **overrides,
    }
    return build_record(0, **fields)


def _replay(record: PredictionRecord, at: datetime) -> PredictionRecord:
    """Return the record as a retried request produces it: same id and inputs, later time."""
    return replace(record, created_at=at)


def _online(store: Path, policy: str) -> tuple[str, float, str]:
    """Return PREDICTION_ID, one feature value and UPDATED_AT of the policy's features."""
    [row] = query_store(
        store,
        f"SELECT PREDICTION_ID, RX_TOTAL_FILLS, UPDATED_AT FROM {FEATURES_TABLE} "  # noqa: S608
        "WHERE POLICY_NUMBER = ?",
        policy,
    )
    return str(row[0]), float(row[1]), str(row[2])


def _created_at(store: Path, table: str, key: str, prediction_id: str) -> str:
    [row] = query_store(
        store,
        f"SELECT CREATED_AT FROM {table} WHERE {key} = ?",  # noqa: S608
        prediction_id,
    )
    return str(row[0])


# SQLite sink, one record per batch.


def test_replay_after_newer_keeps_newer(store: Path) -> None:
    """A replay of P1 stored after P2 leaves P2's features and P1's first CREATED_AT."""
    sink = raw_evidence_sink(store)
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0)
    newer = _scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0)
    sink.write_batch([first])
    sink.write_batch([newer])

    result = sink.write_batch([_replay(first, BASE_TIME + 2 * SECOND)])

    assert _online(store, "OOO-2") == ("P2", 66.0, iso_text(BASE_TIME + SECOND))
    assert result.online_features_skipped == ("P1",)
    assert _created_at(store, PREDICTIONS_TABLE, "PREDICTION_ID", "P1") == iso_text(BASE_TIME)
    assert _created_at(store, RAW_TABLE, "EVIDENCE_ID", "P1") == iso_text(BASE_TIME)
    assert len(query_store(store, f"SELECT 1 FROM {PREDICTIONS_TABLE}")) == 2  # noqa: S608


def test_replay_before_newer_lets_newer_in(store: Path) -> None:
    """A replay of the current row keeps its time, so a newer scoring still replaces it."""
    sink = raw_evidence_sink(store)
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0)
    sink.write_batch([first])

    replayed = sink.write_batch([_replay(first, BASE_TIME + 2 * SECOND)])
    assert _online(store, "OOO-2") == ("P1", 6.0, iso_text(BASE_TIME))
    assert replayed.online_features_skipped == ()

    result = sink.write_batch([_scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0)])

    assert result.online_features_skipped == ()
    assert _online(store, "OOO-2") == ("P2", 66.0, iso_text(BASE_TIME + SECOND))
    assert _created_at(store, PREDICTIONS_TABLE, "PREDICTION_ID", "P1") == iso_text(BASE_TIME)


def test_replay_keeps_first_scoring_columns(store: Path) -> None:
    """A replay changes the answer but not CREATED_AT, PERSISTED_AT or the raw evidence."""
    sink = raw_evidence_sink(store)
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0, risk_score=0.25)
    sink.write_batch([first])
    first_scoring = f"SELECT CREATED_AT, PERSISTED_AT FROM {PREDICTIONS_TABLE}"  # noqa: S608
    before = query_store(store, first_scoring)
    raw_before = query_store(store, f"SELECT * FROM {RAW_TABLE}")  # noqa: S608

    replay = _replay(first, BASE_TIME + SECOND)
    sink.write_batch([replace(replay, risk_score=0.75, model_version="REGISTRY_V3")])

    assert query_store(store, first_scoring) == before
    assert query_store(store, f"SELECT * FROM {RAW_TABLE}") == raw_before  # noqa: S608
    answer = f"SELECT RISK_SCORE, MODEL_VERSION FROM {PREDICTIONS_TABLE}"  # noqa: S608
    assert query_store(store, answer) == [(0.75, "REGISTRY_V3")]


def _predicted_feature(store: Path, prediction_id: str) -> float:
    """Return RX_TOTAL_FILLS from the FEATURES object of the stored prediction."""
    [(features,)] = query_store(
        store,
        f"SELECT FEATURES FROM {PREDICTIONS_TABLE} WHERE PREDICTION_ID = ?",  # noqa: S608
        prediction_id,
    )
    return float(json.loads(features)["RX_TOTAL_FILLS"])


@pytest.mark.parametrize("replays", [1, 3])
def test_replay_in_later_batch_keeps_features(store: Path, replays: int) -> None:
    """Later replays leave ONLINE_FEATURES at the first scoring; FEATURES follows the answer."""
    sink = raw_evidence_sink(store)
    first = _scoring("P1", "OOO-2", BASE_TIME, 1.0)
    sink.write_batch([first])

    results = [
        sink.write_batch([_scoring("P1", "OOO-2", BASE_TIME + n * SECOND, 1.0 + n)])
        for n in range(1, replays + 1)
    ]

    assert _online(store, "OOO-2") == ("P1", 1.0, iso_text(BASE_TIME))
    assert _predicted_feature(store, "P1") == 1.0 + replays
    for result in results:
        assert result.online_features == 1
        assert result.online_features_skipped == ()


def test_first_after_replay_replaces_features(store: Path) -> None:
    """The first scoring, stored after its replay, replaces the replay's online features.

    The prediction's FEATURES stay those of the replay, the later answer.
    """
    sink = raw_evidence_sink(store)
    sink.write_batch([_scoring("P1", "OOO-2", BASE_TIME + SECOND, 2.0)])

    result = sink.write_batch([_scoring("P1", "OOO-2", BASE_TIME, 1.0)])

    assert _online(store, "OOO-2") == ("P1", 1.0, iso_text(BASE_TIME))
    assert _predicted_feature(store, "P1") == 2.0
    assert result.online_features_skipped == ()


def test_replay_skipped_only_for_other_prediction(store: Path) -> None:
    """In one batch, a replay of the stored row counts as written, an older row as skipped."""
    sink = raw_evidence_sink(store)
    sink.write_batch(
        [
            _scoring("P1", "OOO-1", BASE_TIME, 1.0),
            _scoring("P2", "OOO-2", BASE_TIME + SECOND, 2.0),
        ]
    )

    result = sink.write_batch(
        [
            _scoring("P1", "OOO-1", BASE_TIME + 2 * SECOND, 5.0),
            _scoring("P3", "OOO-2", BASE_TIME, 3.0),
        ]
    )

    assert result.online_features_skipped == ("P3",)
    assert _online(store, "OOO-1") == ("P1", 1.0, iso_text(BASE_TIME))
    assert _online(store, "OOO-2") == ("P2", 2.0, iso_text(BASE_TIME + SECOND))


def test_replay_stored_first_earlier_time_wins(store: Path) -> None:
    """A replay stored before the original gets the original's time and keeps its answer."""
    sink = raw_evidence_sink(store)
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0, risk_score=0.25)
    sink.write_batch([replace(_replay(first, BASE_TIME + SECOND), risk_score=0.75)])

    sink.write_batch([first])

    [(score, created_at)] = query_store(
        store,
        f"SELECT RISK_SCORE, CREATED_AT FROM {PREDICTIONS_TABLE}",  # noqa: S608
    )
    assert (score, created_at) == (0.75, iso_text(BASE_TIME))
    assert _created_at(store, RAW_TABLE, "EVIDENCE_ID", "P1") == iso_text(BASE_TIME)


def test_replay_of_future_dated_first(store: Path) -> None:
    """A replay competes with the UPDATED_AT its first write got, cut to the clock then."""
    sink = SqliteSink(store, clock_skew_tolerance_seconds=0)
    now = datetime.now(UTC)
    first = _scoring("P1", "OOO-2", now + timedelta(days=365), 6.0)
    sink.write_batch([first])
    # Between the first write's clock and the replay's, so only the first write's cut, not
    # the replay's, orders the replay before it.
    newer = _scoring("P2", "OOO-2", datetime.now(UTC), 66.0)
    sink.write_batch([newer])

    result = sink.write_batch([_replay(first, newer.created_at + SECOND)])

    assert result.online_features_skipped == ("P1",)
    assert _online(store, "OOO-2")[0] == "P2"


# SQLite sink, several records per batch.


@pytest.mark.parametrize(
    "order",
    [
        ("first", "newer", "replay"),
        ("replay", "newer", "first"),
        ("newer", "replay", "first"),
        ("replay", "first", "newer"),
    ],
)
def test_same_prediction_twice_in_batch(store: Path, order: tuple[str, ...]) -> None:
    """In one batch, in any order, the first time, the latest answer and newer features stay."""
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0, risk_score=0.25)
    records = {
        "first": first,
        "newer": _scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0),
        "replay": replace(_replay(first, BASE_TIME + 2 * SECOND), risk_score=0.75),
    }

    result = raw_evidence_sink(store).write_batch([records[name] for name in order])

    assert result.model_predictions == 2
    assert result.online_features == 1
    assert _online(store, "OOO-2") == ("P2", 66.0, iso_text(BASE_TIME + SECOND))
    stored = query_store(
        store,
        f"SELECT PREDICTION_ID, RISK_SCORE, CREATED_AT FROM {PREDICTIONS_TABLE} "  # noqa: S608
        "ORDER BY PREDICTION_ID",
    )
    assert stored[0] == ("P1", 0.75, iso_text(BASE_TIME))
    assert _created_at(store, RAW_TABLE, "EVIDENCE_ID", "P1") == iso_text(BASE_TIME)


def test_replay_and_newer_in_one_batch_after_first(store: Path) -> None:
    """A batch holding a replay enqueued after a newer scoring still writes the newer one."""
    sink = raw_evidence_sink(store)
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0)
    sink.write_batch([first])

    newer = _scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0)
    result = sink.write_batch([newer, _replay(first, BASE_TIME + 2 * SECOND)])

    assert result.online_features_skipped == ()
    assert _online(store, "OOO-2") == ("P2", 66.0, iso_text(BASE_TIME + SECOND))


def test_many_policies_shuffled(store: Path) -> None:
    """200 policies, each scored, rescored and replayed, in shuffled batches: newer stays."""
    sink = raw_evidence_sink(store)
    # Fewer bound variables than ids per batch, so the read of stored rows takes several
    # statements.
    sink._variable_limit = 7
    records: list[PredictionRecord] = []
    for index in range(200):
        policy = f"POL-{index:04d}"
        first = _scoring(f"A-{index}", policy, BASE_TIME + index * SECOND, 6.0)
        newer = _scoring(f"B-{index}", policy, first.created_at + SECOND, 66.0)
        records += [first, newer, _replay(first, first.created_at + 2 * SECOND)]
    random.Random(7).shuffle(records)
    # A replay stored before its first scoring cannot know that time yet, so each replay is
    # moved behind its first scoring. Newer scorings stay anywhere.
    for index in range(200):
        first_at = next(i for i, r in enumerate(records) if r.prediction_id == f"A-{index}")
        replay_at = max(i for i, r in enumerate(records) if r.prediction_id == f"A-{index}")
        if records[first_at].created_at != BASE_TIME + index * SECOND:
            records[first_at], records[replay_at] = records[replay_at], records[first_at]

    for start in range(0, len(records), 37):
        sink.write_batch(records[start : start + 37])

    features = query_store(store, f"SELECT POLICY_NUMBER, PREDICTION_ID FROM {FEATURES_TABLE}")  # noqa: S608
    assert len(features) == 200
    assert [row for row in features if row[1] != "B-" + str(int(row[0][4:]))] == []
    created = dict(
        query_store(store, f"SELECT PREDICTION_ID, CREATED_AT FROM {PREDICTIONS_TABLE}")  # noqa: S608
    )
    assert len(created) == 400
    wrong = [
        index
        for index in range(200)
        if created[f"A-{index}"] != iso_text(BASE_TIME + index * SECOND)
    ]
    assert wrong == []


# The worker, draining a real queue file.


def test_worker_replay_after_newer(queue: PredictionQueue, store: Path) -> None:
    """The drain loop writes a replay queued after a newer scoring without displacing it."""
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0)
    newer = _scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0)
    drainer = QueueDrainer(QueueConsumer(queue, owner="test"), raw_evidence_sink(store))
    for batch in ([first], [newer], [_replay(first, BASE_TIME + 2 * SECOND)]):
        queue.append_many(batch)
        drainer.run(threading.Event(), exit_when_empty=True)

    assert queue.depth() == 0
    assert _online(store, "OOO-2") == ("P2", 66.0, iso_text(BASE_TIME + SECOND))
    assert _created_at(store, PREDICTIONS_TABLE, "PREDICTION_ID", "P1") == iso_text(BASE_TIME)


def test_worker_out_of_order_queue(queue: PredictionQueue, store: Path) -> None:
    """A newer scoring queued before the first one, then the replay: the newer stays."""
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0)
    newer = _scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0)
    queue.append_many([newer, first, _replay(first, BASE_TIME + 2 * SECOND)])
    drainer = QueueDrainer(
        QueueConsumer(queue, owner="test"), raw_evidence_sink(store), batch_size=1
    )

    drainer.run(threading.Event(), exit_when_empty=True)

    assert queue.depth() == 0
    assert _online(store, "OOO-2")[0] == "P2"
    assert _created_at(store, PREDICTIONS_TABLE, "PREDICTION_ID", "P1") == iso_text(BASE_TIME)


def test_worker_replay_queued_before_first(queue: PredictionQueue, store: Path) -> None:
    """A replay stored before its first scoring gets the first time when that arrives.

    A newer scoring that arrives after both then replaces the features.
    """
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0)
    newer = _scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0)
    queue.append_many([_replay(first, BASE_TIME + 2 * SECOND), first, newer])
    drainer = QueueDrainer(
        QueueConsumer(queue, owner="test"), raw_evidence_sink(store), batch_size=1
    )

    drainer.run(threading.Event(), exit_when_empty=True)

    assert queue.depth() == 0
    assert _online(store, "OOO-2") == ("P2", 66.0, iso_text(BASE_TIME + SECOND))
    assert _created_at(store, PREDICTIONS_TABLE, "PREDICTION_ID", "P1") == iso_text(BASE_TIME)


# The Snowflake sink's merge code in Snowpark's local-testing local_session.


def _snowflake_rows(local_session: Any, table: str, *columns: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in local_session.table(table).select(*columns).collect())


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


@pytest.mark.parametrize("same_batch", [False, True])
def test_snowflake_replay_after_newer(
    local_snowflake_sink: Any, local_session: Any, same_batch: bool
) -> None:
    """The Snowflake merge keeps the newer features and P1's first time, as SQLite does."""
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0, risk_score=0.25)
    newer = _scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0)
    replay = replace(_replay(first, BASE_TIME + 2 * SECOND), risk_score=0.75)
    batches = [[replay, newer, first]] if same_batch else [[first], [newer], [replay]]
    for batch in batches:
        local_snowflake_sink.write_batch(batch)

    features = _snowflake_rows(
        local_session,
        "FEATURE_STORE.ONLINE_FEATURES",
        "PREDICTION_ID",
        "RX_TOTAL_FILLS",
        "UPDATED_AT",
    )
    assert features == [("P2", 66.0, _naive(BASE_TIME + SECOND))]
    predictions = _snowflake_rows(
        local_session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID", "RISK_SCORE", "CREATED_AT"
    )
    assert predictions[0] == ("P1", 0.75, _naive(BASE_TIME))
    assert len(predictions) == 2
    raw = _snowflake_rows(local_session, "FEATURE_STORE.RAW_EVIDENCE", "EVIDENCE_ID", "CREATED_AT")
    assert raw[0] == ("P1", _naive(BASE_TIME))


def test_snowflake_replay_before_newer(local_snowflake_sink: Any, local_session: Any) -> None:
    """A replay of the current row keeps its time in Snowflake too, so newer features win."""
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0)
    local_snowflake_sink.write_batch([first])
    local_snowflake_sink.write_batch([_replay(first, BASE_TIME + 2 * SECOND)])
    local_snowflake_sink.write_batch([_scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0)])

    features = _snowflake_rows(local_session, "FEATURE_STORE.ONLINE_FEATURES", "PREDICTION_ID")
    assert features == [("P2",)]


def test_snowflake_replay_stored_before_first(
    local_snowflake_sink: Any, local_session: Any
) -> None:
    """A first scoring merged after its replay restores its time and lowers UPDATED_AT."""
    first = _scoring("P1", "OOO-2", BASE_TIME, 6.0, risk_score=0.25)
    replay = replace(_replay(first, BASE_TIME + 2 * SECOND), risk_score=0.75)
    local_snowflake_sink.write_batch([replay])
    local_snowflake_sink.write_batch([first])

    predictions = _snowflake_rows(
        local_session, "ML_MODELS.MODEL_PREDICTIONS", "PREDICTION_ID", "RISK_SCORE", "CREATED_AT"
    )
    assert predictions == [("P1", 0.75, _naive(BASE_TIME))]
    features = _snowflake_rows(
        local_session, "FEATURE_STORE.ONLINE_FEATURES", "PREDICTION_ID", "UPDATED_AT"
    )
    assert features == [("P1", _naive(BASE_TIME))]

    local_snowflake_sink.write_batch([_scoring("P2", "OOO-2", BASE_TIME + SECOND, 66.0)])
    features = _snowflake_rows(local_session, "FEATURE_STORE.ONLINE_FEATURES", "PREDICTION_ID")
    assert features == [("P2",)]


@pytest.mark.parametrize("same_batch", [False, True])
def test_snowflake_replay_keeps_features(
    local_snowflake_sink: Any, local_session: Any, same_batch: bool
) -> None:
    """A replay leaves Snowflake's online features at the first scoring, FEATURES at the answer."""
    first = _scoring("P1", "OOO-2", BASE_TIME, 1.0)
    replay = _scoring("P1", "OOO-2", BASE_TIME + SECOND, 2.0)
    batches = [[first, replay]] if same_batch else [[first], [replay]]
    for batch in batches:
        local_snowflake_sink.write_batch(batch)

    features = _snowflake_rows(
        local_session,
        "FEATURE_STORE.ONLINE_FEATURES",
        "PREDICTION_ID",
        "RX_TOTAL_FILLS",
        "UPDATED_AT",
    )
    assert features == [("P1", 1.0, _naive(BASE_TIME))]
    [(stored,)] = _snowflake_rows(local_session, "ML_MODELS.MODEL_PREDICTIONS", "FEATURES")
    assert json.loads(stored)["RX_TOTAL_FILLS"] == 2.0
