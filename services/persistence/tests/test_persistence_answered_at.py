"""MODEL_PREDICTIONS stores the answer the caller received when a prediction id is scored twice.

Snowflake retries a service-function batch only when it got no response, and the retry is
scored again under the same deterministic prediction ids. When the model was down for the first
attempt, that attempt got the rule-based fallback and the retry the model's score, which is the
answer the caller received. These tests check, in the SQLite sink (real store files), through the
worker and in the Snowflake sink's merge code, that the row takes the answer with the latest
``ANSWERED_AT`` in any arrival order, keeps the first ``CREATED_AT``, and leaves
``ONLINE_FEATURES`` at the first scoring. They also migrate a store of the previous schema.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidence_persistence import PredictionQueue, PredictionRecord
from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._rows import features_json
from evidence_persistence._tables import FIRST_SCORING_COLUMNS, MODEL_PREDICTIONS
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.ddl import render_ddl
from evidence_persistence.sinks.sqlite import inspect_store
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
ANSWER_COLUMNS = tuple(
    name
    for name in MODEL_PREDICTIONS.column_names
    if name not in (MODEL_PREDICTIONS.primary_key, "ANSWERED_AT", *FIRST_SCORING_COLUMNS)
)


def _fallback(at: datetime = BASE_TIME, **overrides: Any) -> PredictionRecord:
    """Build the first attempt of P1, answered by the rule-based fallback."""
    fields: dict[str, Any] = {
        "prediction_id": "P1",
        "policy_number": "OOO-2",
        "features": (6.0,) * 105,
        "risk_score": 0.4,
        "risk_level": "MEDIUM",
        "model_version": "RULE_BASED",
        "source": "SQL",
        "inference_ms": 51.5,
        "created_at": at,
        "fallback_reason": "model_timeout",
        "warnings": ("unknown_drug",),
        "rx_xml": b"<IntelRXResponse/>",
        **overrides,
    }
    return build_record(0, **fields)


def _model(at: datetime = BASE_TIME + 2 * SECOND, **overrides: Any) -> PredictionRecord:
    """Build Snowflake's retry of P1, answered by the registry model."""
    fields: dict[str, Any] = {
        "risk_score": 0.85,
        "risk_level": "HIGH",
        "model_version": "REGISTRY_V2",
        "inference_ms": 3.5,
        "fallback_reason": None,
        "warnings": (),
        **overrides,
    }
    return _fallback(at, **fields)


def _answer(record: PredictionRecord) -> tuple[Any, ...]:
    """Return the answer columns that a row holding ``record``'s answer has, in table order."""
    values = {
        "POLICY_NUMBER": record.policy_number,
        "RISK_SCORE": record.risk_score,
        "RISK_LEVEL": record.risk_level,
        "MODEL_NAME": record.model_name,
        "MODEL_VERSION": record.model_version,
        "FEATURE_SPEC_VERSION": record.feature_spec_version,
        "SOURCE": record.source,
        "INFERENCE_MS": record.inference_ms,
        "FALLBACK_REASON": record.fallback_reason,
        "WARNINGS": json.dumps(list(record.warnings)),
        "FEATURES": features_json(record),
    }
    assert set(values) == set(ANSWER_COLUMNS)
    return tuple(values[name] for name in ANSWER_COLUMNS)


def _stored(store: Path, prediction_id: str = "P1") -> tuple[tuple[Any, ...], str, str]:
    """Return the answer columns, CREATED_AT and ANSWERED_AT of one stored prediction."""
    columns = ", ".join((*ANSWER_COLUMNS, "CREATED_AT", "ANSWERED_AT"))
    [row] = query_store(
        store,
        f"SELECT {columns} FROM {PREDICTIONS_TABLE} WHERE PREDICTION_ID = ?",  # noqa: S608
        prediction_id,
    )
    return row[:-2], str(row[-2]), str(row[-1])


def _table(store: Path, table: str) -> list[tuple[Any, ...]]:
    return query_store(store, f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608


# SQLite sink


def test_fallback_then_model_retry(store: Path) -> None:
    """The retry's model answer replaces the fallback; CREATED_AT stays the first attempt's."""
    sink = raw_evidence_sink(store)
    sink.write_batch([_fallback()])
    [(persisted_at,)] = query_store(store, f"SELECT PERSISTED_AT FROM {PREDICTIONS_TABLE}")  # noqa: S608

    result = sink.write_batch([_model()])

    assert result.model_predictions == 1
    answer, created_at, answered_at = _stored(store)
    assert answer == _answer(_model())
    assert created_at == iso_text(BASE_TIME)
    assert answered_at == iso_text(BASE_TIME + 2 * SECOND)
    assert query_store(store, f"SELECT PERSISTED_AT FROM {PREDICTIONS_TABLE}") == [(persisted_at,)]  # noqa: S608
    assert query_store(store, f"SELECT CREATED_AT FROM {RAW_TABLE}") == [(iso_text(BASE_TIME),)]  # noqa: S608


def test_first_answer_stored_alone(store: Path) -> None:
    """A prediction scored once has ANSWERED_AT equal to CREATED_AT."""
    raw_evidence_sink(store).write_batch([_fallback()])

    answer, created_at, answered_at = _stored(store)

    assert answer == _answer(_fallback())
    assert created_at == answered_at == iso_text(BASE_TIME)


def test_retry_stored_before_original(store: Path) -> None:
    """The fallback, older but stored later, lowers CREATED_AT and leaves the model answer."""
    sink = raw_evidence_sink(store)
    sink.write_batch([_model()])

    sink.write_batch([_fallback()])

    answer, created_at, answered_at = _stored(store)
    assert answer == _answer(_model())
    assert created_at == iso_text(BASE_TIME)
    assert answered_at == iso_text(BASE_TIME + 2 * SECOND)
    assert query_store(store, f"SELECT CREATED_AT FROM {RAW_TABLE}") == [(iso_text(BASE_TIME),)]  # noqa: S608


@pytest.mark.parametrize("retry_first", [False, True])
def test_fallback_and_retry_in_one_batch(store: Path, retry_first: bool) -> None:
    """One batch holding both attempts, in either order, stores the model answer once."""
    batch = [_model(), _fallback()] if retry_first else [_fallback(), _model()]

    result = raw_evidence_sink(store).write_batch(batch)

    assert result.model_predictions == 1
    answer, created_at, answered_at = _stored(store)
    assert answer == _answer(_model())
    assert created_at == iso_text(BASE_TIME)
    assert answered_at == iso_text(BASE_TIME + 2 * SECOND)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_three_attempts_any_arrival_order(store: Path, order: tuple[int, ...]) -> None:
    """Two fallbacks and a model answer, one batch each, in every order: the latest wins."""
    attempts = [
        _fallback(),
        _fallback(BASE_TIME + SECOND, fallback_reason="circuit_open", risk_score=0.45),
        _model(),
    ]
    sink = raw_evidence_sink(store)
    for index in order:
        sink.write_batch([attempts[index]])

    answer, created_at, answered_at = _stored(store)
    assert answer == _answer(_model())
    assert created_at == iso_text(BASE_TIME)
    assert answered_at == iso_text(BASE_TIME + 2 * SECOND)


def test_older_answer_never_overwrites(store: Path) -> None:
    """A replay of the fallback after the model answer, in a later batch, changes nothing."""
    sink = raw_evidence_sink(store)
    sink.write_batch([_fallback()])
    sink.write_batch([_model()])
    before = _table(store, PREDICTIONS_TABLE)

    sink.write_batch([_fallback()])
    sink.write_batch([_fallback(BASE_TIME + SECOND)])

    assert _table(store, PREDICTIONS_TABLE) == before


def test_same_answer_time_keeps_first_arrival(store: Path) -> None:
    """On equal answer times the record stored or enqueued first keeps its answer."""
    sink = raw_evidence_sink(store)
    sink.write_batch([_model(risk_score=0.8), _model(risk_score=0.9)])
    assert _stored(store)[0] == _answer(_model(risk_score=0.8))

    sink.write_batch([_model(risk_score=0.7)])

    assert _stored(store)[0] == _answer(_model(risk_score=0.8))


def test_online_features_unchanged_by_answer_rule(tmp_path: Path) -> None:
    """ONLINE_FEATURES after the fallback and its retry equals that after the fallback alone.

    The retry carries other features, and a newer scoring of the policy comes between them.
    """
    retry = _model(features=(7.0,) * 105)
    newer = build_record(1, prediction_id="P2", policy_number="OOO-2", features=(66.0,) * 105)
    newer = replace(newer, created_at=BASE_TIME + SECOND)
    alone = tmp_path / "alone.sqlite3"
    raw_evidence_sink(alone).write_batch([_fallback()])
    raw_evidence_sink(alone).write_batch([newer])
    retried = tmp_path / "retried.sqlite3"
    sink = raw_evidence_sink(retried)
    sink.write_batch([_fallback()])
    sink.write_batch([newer])

    result = sink.write_batch([retry])

    assert result.online_features_skipped == ("P1",)
    assert _table(retried, FEATURES_TABLE) == _table(alone, FEATURES_TABLE)
    assert _stored(retried)[0] == _answer(retry)


def test_stored_answer_time_null_counts_as_created(store: Path) -> None:
    """A stored row without ANSWERED_AT counts as answered at its CREATED_AT."""
    sink = raw_evidence_sink(store)
    sink.write_batch([_model(BASE_TIME + SECOND)])
    connection = sqlite3.connect(store)
    connection.execute(f"UPDATE {PREDICTIONS_TABLE} SET ANSWERED_AT = NULL")  # noqa: S608
    connection.commit()
    connection.close()

    sink.write_batch([_fallback()])

    answer, created_at, answered_at = _stored(store)
    assert answer == _answer(_model())
    assert created_at == iso_text(BASE_TIME)
    assert answered_at == iso_text(BASE_TIME + SECOND)


# Migration of a store that the previous schema (version 2) created


def _version_2_store(path: Path) -> None:
    """Create a store as a version-2 worker did, without ANSWERED_AT, holding two rows."""
    connection = sqlite3.connect(path)
    try:
        for statement in render_ddl("sqlite"):
            lines = [
                line for line in statement.splitlines() if not line.startswith("    ANSWERED_AT ")
            ]
            connection.execute("\n".join(lines))
        for prediction_id, created_at in (("old-1", BASE_TIME), ("old-2", BASE_TIME + SECOND)):
            connection.execute(
                f"INSERT INTO {PREDICTIONS_TABLE} (PREDICTION_ID, POLICY_NUMBER, RISK_SCORE, "  # noqa: S608
                "RISK_LEVEL, MODEL_NAME, MODEL_VERSION, FEATURE_SPEC_VERSION, SOURCE, "
                "INFERENCE_MS, FALLBACK_REASON, WARNINGS, CREATED_AT, PERSISTED_AT, FEATURES) "
                "VALUES (?, 'OOO-9', 0.4, 'MEDIUM', 'EVIDENCE_RISK_MODEL', 'RULE_BASED', '1.0.0', "
                "'SQL', 51.5, 'model_timeout', '[]', ?, ?, NULL)",
                (prediction_id, iso_text(created_at), iso_text(created_at + SECOND)),
            )
        connection.execute("PRAGMA user_version = 2")
        connection.commit()
    finally:
        connection.close()


def test_version_2_store_migrated(store: Path) -> None:
    """A version-2 store gains ANSWERED_AT, and a retry of its rows then works."""
    _version_2_store(store)
    columns = [row[1] for row in query_store(store, f"PRAGMA table_info({PREDICTIONS_TABLE})")]
    assert "ANSWERED_AT" not in columns
    state, message = inspect_store(store)
    assert state == "needs_migration"
    assert message is not None
    assert f"{PREDICTIONS_TABLE}.ANSWERED_AT" in message

    sink = raw_evidence_sink(store)
    sink.write_batch([_model(BASE_TIME + 5 * SECOND, prediction_id="old-1")])
    sink.write_batch([_model(BASE_TIME - SECOND, prediction_id="old-2", risk_score=0.1)])

    assert query_store(store, "PRAGMA user_version") == [(3,)]
    assert inspect_store(store) == ("ok", None)
    answered = query_store(
        store,
        f"SELECT PREDICTION_ID, MODEL_VERSION, CREATED_AT, ANSWERED_AT FROM {PREDICTIONS_TABLE} "  # noqa: S608
        "ORDER BY PREDICTION_ID",
    )
    assert answered == [
        ("old-1", "REGISTRY_V2", iso_text(BASE_TIME), iso_text(BASE_TIME + 5 * SECOND)),
        ("old-2", "RULE_BASED", iso_text(BASE_TIME - SECOND), iso_text(BASE_TIME + SECOND)),
    ]


def test_version_2_store_untouched_rows_keep_null(store: Path) -> None:
    """The migration rewrites no stored row, so rows that no batch names keep ANSWERED_AT NULL."""
    _version_2_store(store)

    raw_evidence_sink(store).write_batch([_fallback()])

    assert query_store(store, "PRAGMA user_version") == [(3,)]
    rows = query_store(
        store,
        f"SELECT PREDICTION_ID, ANSWERED_AT FROM {PREDICTIONS_TABLE} "  # noqa: S608
        "ORDER BY PREDICTION_ID",
    )
    assert rows == [("P1", iso_text(BASE_TIME)), ("old-1", None), ("old-2", None)]


# The worker, draining a real queue file


@pytest.mark.parametrize("batch_size", [1, 10])
@pytest.mark.parametrize("retry_first", [False, True])
def test_worker_stores_latest_answer(
    queue: PredictionQueue, store: Path, batch_size: int, retry_first: bool
) -> None:
    """The drain loop stores the model answer whichever attempt the queue holds first."""
    records = [_model(), _fallback()] if retry_first else [_fallback(), _model()]
    queue.append_many(records)
    drainer = QueueDrainer(
        QueueConsumer(queue, owner="test"), raw_evidence_sink(store), batch_size=batch_size
    )

    drainer.run(threading.Event(), exit_when_empty=True)

    assert queue.depth() == 0
    answer, created_at, answered_at = _stored(store)
    assert answer == _answer(_model())
    assert created_at == iso_text(BASE_TIME)
    assert answered_at == iso_text(BASE_TIME + 2 * SECOND)


# The Snowflake sink's merge code in Snowpark's local-testing local_session


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _decoded(answer: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return the answer columns with FEATURES parsed, because a VARIANT reorders its keys."""
    index = ANSWER_COLUMNS.index("FEATURES")
    return (*answer[:index], json.loads(answer[index]), *answer[index + 1 :])


def _snowflake_stored(local_session: Any) -> tuple[tuple[Any, ...], datetime, datetime]:
    """Return the decoded answer columns, CREATED_AT and ANSWERED_AT of prediction P1."""
    from snowflake.snowpark.functions import col

    columns = (*ANSWER_COLUMNS, "CREATED_AT", "ANSWERED_AT")
    table = local_session.table("ML_MODELS.MODEL_PREDICTIONS")
    [row] = table.filter(col("PREDICTION_ID") == "P1").select(*columns).collect()
    values = tuple(row)
    return _decoded(values[:-2]), values[-2], values[-1]


def _snowflake_features(local_session: Any) -> list[tuple[Any, ...]]:
    table = local_session.table("FEATURE_STORE.ONLINE_FEATURES")
    return sorted(tuple(row) for row in table.collect())


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([["fallback"], ["model"]], id="retry-later-batch"),
        pytest.param([["model"], ["fallback"]], id="retry-stored-first"),
        pytest.param([["fallback", "model"]], id="one-batch"),
        pytest.param([["model", "fallback"]], id="one-batch-retry-first"),
        pytest.param([["fallback"], ["model"], ["fallback"]], id="old-replay-last"),
    ],
)
def test_snowflake_latest_answer_wins(
    local_snowflake_sink: Any, local_session: Any, batches: list[list[str]]
) -> None:
    """The MERGE stores the model answer, the first CREATED_AT and the retry's ANSWERED_AT."""
    records = {"fallback": _fallback(), "model": _model()}
    for names in batches:
        local_snowflake_sink.write_batch([records[name] for name in names])

    answer, created_at, answered_at = _snowflake_stored(local_session)
    assert answer == _decoded(_answer(_model()))
    assert created_at == _naive(BASE_TIME)
    assert answered_at == _naive(BASE_TIME + 2 * SECOND)
    raw = local_session.table("FEATURE_STORE.RAW_EVIDENCE").select("CREATED_AT").collect()
    assert [row[0] for row in raw] == [_naive(BASE_TIME)]


def test_snowflake_online_features_unchanged(local_snowflake_sink: Any, local_session: Any) -> None:
    """In Snowflake too, the retry leaves ONLINE_FEATURES as the fallback alone left them."""
    newer = build_record(1, prediction_id="P2", policy_number="OOO-2", features=(66.0,) * 105)
    newer = replace(newer, created_at=BASE_TIME + SECOND)
    local_snowflake_sink.write_batch([_fallback()])
    local_snowflake_sink.write_batch([newer])
    alone = _snowflake_features(local_session)

    local_snowflake_sink.write_batch([_model(features=(7.0,) * 105)])

    assert _snowflake_features(local_session) == alone
    assert _snowflake_stored(local_session)[0] == _decoded(_answer(_model(features=(7.0,) * 105)))


def test_snowflake_null_answer_time_counts_as_created(
    local_snowflake_sink: Any, local_session: Any
) -> None:
    """A row added before ANSWERED_AT existed counts as answered at its CREATED_AT."""
    from snowflake.snowpark.functions import lit
    from snowflake.snowpark.types import TimestampTimeZone, TimestampType

    local_snowflake_sink.write_batch([_model(BASE_TIME + SECOND)])
    table = local_session.table("ML_MODELS.MODEL_PREDICTIONS")
    table.update({"ANSWERED_AT": lit(None).cast(TimestampType(TimestampTimeZone.NTZ))})

    local_snowflake_sink.write_batch([_fallback()])

    answer, created_at, answered_at = _snowflake_stored(local_session)
    assert answer == _decoded(_answer(_model()))
    assert created_at == _naive(BASE_TIME)
    assert answered_at == _naive(BASE_TIME + SECOND)
