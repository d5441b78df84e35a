"""Panel queries against the Snowflake hybrid tables, and service state from SPCS.

Used when the app runs in Streamlit in Snowflake. The queries use the Snowpark DataFrame API
rather than SQL text, so the same code runs in Snowpark's local-testing session in the tests.
The service-state calls need SQL (``SHOW SERVICE CONTAINERS``, the service function), which the
local-testing session does not implement.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import structlog

from evidence_dashboard.config import Settings
from evidence_dashboard.errors import StoreUnavailableError
from evidence_dashboard.gateway import GatewayReadiness, PredictionOutcome
from evidence_dashboard.store import schema
from evidence_dashboard.store.base import (
    FeatureSample,
    PolicyLookup,
    QueryResult,
    normalise_frame,
    window_end,
)

__all__ = ["SnowflakeServices", "SnowflakeStore", "resolve_database"]

logger = structlog.get_logger(__name__)


def resolve_database(session: Any, settings: Settings) -> str:
    """Return the configured database, or the session's current one when none is set.

    Raises:
        StoreUnavailableError: neither the settings nor the session name a database.
    """
    if settings.database:
        return settings.database
    current = session.get_current_database()
    if not current:
        msg = "no Snowflake database is set; set DASHBOARD_DATABASE or USE DATABASE first"
        raise StoreUnavailableError(msg)
    return str(current)


def _import_snowpark() -> tuple[Any, type[Exception]]:
    from snowflake.snowpark import functions
    from snowflake.snowpark.exceptions import SnowparkClientException

    return functions, SnowparkClientException


def _double_type() -> Any:
    from snowflake.snowpark.types import DoubleType

    return DoubleType()


class SnowflakeStore:
    """Panel queries on ``<database>.ML_MODELS.MODEL_PREDICTIONS`` and ``FEATURE_STORE``."""

    backend_name = "Snowflake"

    def __init__(self, session: Any, settings: Settings) -> None:
        self._session = session
        self.max_rows = settings.max_rows
        database = resolve_database(session, settings)
        self._predictions = ".".join((database, *schema.PREDICTIONS_TABLE))
        self._features = ".".join((database, *schema.FEATURES_TABLE))
        self._functions, self._client_error = _import_snowpark()

    def _run(self, table: str, build: Any) -> pd.DataFrame:
        try:
            frame: pd.DataFrame = build(self._session.table(table)).to_pandas()
        except (self._client_error, NotImplementedError) as exc:
            msg = f"query on Snowflake table {table} failed: {exc}"
            raise StoreUnavailableError(msg) from exc
        return frame

    def _select_window(
        self, table: str, columns: Sequence[str], time_column: str, since: datetime | None
    ) -> QueryResult:
        f = self._functions

        def build(frame: Any) -> Any:
            if since is not None:
                # NOTE: the tables store UTC in TIMESTAMP_NTZ columns, so compare naive UTC.
                cutoff = since.astimezone(UTC).replace(tzinfo=None)
                end = window_end().replace(tzinfo=None)
                frame = frame.filter(f.col(time_column) >= f.lit(cutoff))
                frame = frame.filter(f.col(time_column) <= f.lit(end))
            # NOTE: sort before the projection, because the time column need not be selected and
            # the local-testing emulator cannot sort on a column that was projected away.
            return frame.sort(f.col(time_column).desc()).limit(self.max_rows + 1).select(*columns)

        frame = self._run(table, build)
        truncated = len(frame) > self.max_rows
        return QueryResult(normalise_frame(frame.head(self.max_rows)), truncated=truncated)

    def count_predictions(self) -> int:
        """Count all rows of ``MODEL_PREDICTIONS``."""
        try:
            return int(self._session.table(self._predictions).count())
        except (self._client_error, NotImplementedError) as exc:
            msg = f"count on Snowflake table {self._predictions} failed: {exc}"
            raise StoreUnavailableError(msg) from exc

    def traffic(self, since: datetime | None) -> QueryResult:
        """Return time, source and latency of each prediction since ``since``."""
        return self._select_window(
            self._predictions, schema.TRAFFIC_COLUMNS, schema.CREATED_AT, since
        )

    def model_usage(self, since: datetime | None) -> QueryResult:
        """Return model name and version, score and level of each prediction since ``since``."""
        return self._select_window(
            self._predictions, schema.MODEL_COLUMNS, schema.CREATED_AT, since
        )

    def feature_warnings(self, since: datetime | None) -> QueryResult:
        """Return time and warning kinds of each prediction since ``since``."""
        return self._select_window(
            self._predictions, schema.WARNING_COLUMNS, schema.CREATED_AT, since
        )

    def recent_features(self, since: datetime | None) -> QueryResult:
        """Return the feature columns of policies updated since ``since``."""
        return self._select_window(self._features, schema.FEATURE_COLUMNS, schema.UPDATED_AT, since)

    def _has_column(self, table: str, column: str) -> bool:
        try:
            columns = self._session.table(table).columns
        except (self._client_error, NotImplementedError) as exc:
            msg = f"reading the columns of Snowflake table {table} failed: {exc}"
            raise StoreUnavailableError(msg) from exc
        return column in {str(name).strip('"').upper() for name in columns}

    def drift_features(self, since: datetime | None, *, max_rows: int) -> FeatureSample:
        """Return the features of the newest predictions since ``since``.

        Snowflake extracts each feature from the ``FEATURES`` VARIANT as a FLOAT, so no JSON is
        parsed here. Falls back to ``recent_features`` when the predictions table has no
        ``FEATURES`` column. Rows whose ``FEATURES`` is NULL are left out.
        """
        if not self._has_column(self._predictions, schema.FEATURES):
            return FeatureSample(self.recent_features(since), per_prediction=False)
        f = self._functions
        double = _double_type()
        extracted = [
            f.col(schema.FEATURES)[name].cast(double).alias(name) for name in schema.FEATURE_COLUMNS
        ]

        def build(frame: Any) -> Any:
            # NOTE: the features are extracted before filtering because Snowpark's local-testing
            # emulator (1.56) fails on a VARIANT field access after a filter. The rows returned
            # are the same in either order.
            frame = frame.select(
                f.col(schema.CREATED_AT), f.col(schema.FEATURES), *extracted
            ).filter(f.col(schema.FEATURES).is_not_null())
            if since is not None:
                cutoff = since.astimezone(UTC).replace(tzinfo=None)
                end = window_end().replace(tzinfo=None)
                frame = frame.filter(f.col(schema.CREATED_AT) >= f.lit(cutoff))
                frame = frame.filter(f.col(schema.CREATED_AT) <= f.lit(end))
            return (
                frame.sort(f.col(schema.CREATED_AT).desc())
                .limit(max_rows + 1)
                .select(*schema.FEATURE_COLUMNS)
            )

        frame = self._run(self._predictions, build)
        truncated = len(frame) > max_rows
        values = normalise_frame(frame.head(max_rows))
        values = values.apply(pd.to_numeric, errors="coerce").astype("float64")
        return FeatureSample(QueryResult(values, truncated=truncated), per_prediction=True)

    def lookup_policy(self, policy_number: str, *, limit: int = 50) -> PolicyLookup:
        """Return the stored features and the newest predictions of one policy."""
        f = self._functions
        features = self._run(
            self._features,
            lambda frame: frame.filter(f.col(schema.POLICY_NUMBER) == f.lit(policy_number)).select(
                schema.POLICY_NUMBER, schema.UPDATED_AT, *schema.FEATURE_COLUMNS
            ),
        )
        predictions = self._run(
            self._predictions,
            lambda frame: (
                frame.filter(f.col(schema.POLICY_NUMBER) == f.lit(policy_number))
                .select(*schema.LOOKUP_PREDICTION_COLUMNS)
                .sort(f.col(schema.CREATED_AT).desc())
                .limit(limit)
            ),
        )
        return PolicyLookup(normalise_frame(features), normalise_frame(predictions))


class SnowflakeServices:
    """Gateway state from ``SHOW SERVICE CONTAINERS`` and test predictions through SQL.

    The queue file lives on the gateway service's block volume, so its depth is not visible
    from Streamlit in Snowflake; ``queue_status`` returns None and the panel shows that.
    """

    def __init__(self, session: Any, settings: Settings) -> None:
        self._session = session
        database = resolve_database(session, settings)
        self._service = f"{database}.{settings.gateway_service}"
        self._function = f"{database}.{settings.predict_function}"
        self.location = f"SPCS service {self._service}"

    def readiness(self) -> GatewayReadiness:
        """Map the service's container statuses onto a readiness result."""
        try:
            rows = self._session.sql(
                f"SHOW SERVICE CONTAINERS IN SERVICE {self._service}"
            ).collect()
        except Exception as exc:  # any SQL failure means the status is unknown
            logger.warning(
                "service status query failed", service=self._service, error=type(exc).__name__
            )
            return GatewayReadiness(reachable=False, error=f"{type(exc).__name__}: {exc}")
        checks: dict[str, Any] = {}
        for row in rows:
            values = row.as_dict()
            name = f"{values.get('container_name', '?')}#{values.get('instance_id', '?')}"
            status = str(values.get("status", "UNKNOWN"))
            checks[name] = {"ok": status == "READY", "detail": {"status": status}}
        ready = bool(checks) and all(check["ok"] for check in checks.values())
        return GatewayReadiness(
            reachable=bool(checks),
            status="ready" if ready else "not_ready",
            checks=checks,
            error=None if checks else f"service {self._service} has no containers",
        )

    def queue_status(self) -> None:
        """Return nothing, because the queue file is inside the SPCS service."""

    def predict(
        self, policy_number: str, mib_xml: str | None, rx_xml: str | None
    ) -> PredictionOutcome:
        """Score one pair with ``SELECT <service function>(?, ?, ?)``."""
        started = time.perf_counter()
        try:
            rows = self._session.sql(
                f"SELECT {self._function}(?, ?, ?) AS RESULT",
                params=[policy_number, mib_xml, rx_xml],
            ).collect()
        except Exception as exc:  # shown to the user, who can fix the input
            return PredictionOutcome(
                ok=False, http_status=None, body={}, error=f"{type(exc).__name__}: {exc}"
            )
        raw = rows[0][0] if rows else None
        body = json.loads(raw) if isinstance(raw, str) else (raw or {})
        logger.info(
            "test prediction scored",
            function=self._function,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        if isinstance(body, dict) and "error" in body:
            return PredictionOutcome(
                ok=False, http_status=None, body=body, error=str(body["error"])
            )
        if not isinstance(body, dict):
            body = {"result": body}
        return PredictionOutcome(ok=True, http_status=None, body=body)
