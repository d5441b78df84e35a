"""The scoring path shared by the JSON API and the service function.

validate sizes → extract features (pool) → one scorer call for all good rows → append the
records to the durable queue → build the responses. A row that fails validation or extraction
gets its own error and does not stop the other rows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

import numpy as np
import structlog
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from evidence_persistence import PersistenceError, PredictionRecord

from evidence_gateway import metrics
from evidence_gateway.append_status import QueueAppendStatus
from evidence_gateway.coalescing import Coalescer
from evidence_gateway.errors import PersistenceUnavailableError
from evidence_gateway.extraction import ExtractionRequest, ExtractionResult, FeatureExtractor
from evidence_gateway.risk import classify_risk

__all__ = [
    "EvidenceRow",
    "QueueLike",
    "RowFailure",
    "RowPrediction",
    "ScorerLike",
    "ScoringPipeline",
]

Source = Literal["API", "SQL"]
_log = structlog.get_logger("evidence_gateway.pipeline")


class ReasonLike(Protocol):
    """Reason fields the gateway reads from a score."""

    @property
    def feature(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def contribution(self) -> float: ...


class ScoreLike(Protocol):
    """Score fields the gateway reads for one row."""

    @property
    def risk_score(self) -> float: ...
    @property
    def model_version(self) -> str: ...
    @property
    def fallback_reason(self) -> str | None: ...
    @property
    def reasons(self) -> Sequence[ReasonLike]: ...


class ScorerLike(Protocol):
    """The part of ``evidence_model_client.RiskScorer`` the pipeline uses."""

    async def score(self, matrix: np.ndarray) -> Sequence[ScoreLike]: ...


class QueueLike(Protocol):
    """The part of ``evidence_persistence.PredictionQueue`` the pipeline uses."""

    def append_many(self, records: Sequence[PredictionRecord]) -> Any: ...


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    """One applicant to score; ``policy_number`` is None for a SQL NULL."""

    policy_number: str | None
    mib_xml: str | None
    rx_xml: str | None
    as_of: date | None
    prediction_id: str


@dataclass(frozen=True, slots=True)
class RowFailure:
    """A row that could not be scored; ``message`` never contains the submitted XML."""

    kind: str
    message: str
    document: Literal["MIB", "RX"] | None = None


@dataclass(frozen=True, slots=True)
class RowPrediction:
    """A scored and queued row, ready to serialise."""

    policy_number: str
    prediction_id: str
    risk_score: float
    risk_level: str
    model_version: str
    fallback_reason: str | None
    reasons: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    inference_ms: float
    features: dict[str, float] | None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON object the API and the service function send."""
        body: dict[str, Any] = {
            "policy_number": self.policy_number,
            "prediction_id": self.prediction_id,
            "risk_score": self.risk_score,
            "risk_level": self.risk_level,
            "model_version": self.model_version,
            "fallback_reason": self.fallback_reason,
            "feature_spec_version": FEATURE_SPEC_VERSION,
            "reasons": self.reasons,
            "warnings": self.warnings,
            "inference_ms": self.inference_ms,
        }
        if self.features is not None:
            body["features"] = self.features
        return body


def _utf8_size(text: str) -> int | None:
    """Return the UTF-8 size of ``text``, or None when it contains a lone surrogate.

    JSON may carry escapes such as "\\ud800" that decode to lone surrogates, which no UTF-8
    document can contain.
    """
    # ASCII text is sized by len() without encoding it.
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


class ScoringPipeline:
    """Scores rows end to end; one instance per app, created in the lifespan.

    Args:
        extractor: Pool running the feature extraction.
        scorer: Model client facade; scores every row, with the rule-based fallback on failure.
        queue: Durable queue the records are appended to before any response is sent.
        max_document_bytes: Largest MIB or Rx document accepted, in UTF-8 bytes.
        model_name: Registry model name written on every record.
        store_raw_evidence: Put the raw XML on the records (health data; off by default).
        max_batch_rows: Maximum rows in one coalesced model call or queue transaction.
        append_status: Receives the outcome of every queue transaction, for readiness.
    """

    def __init__(
        self,
        *,
        extractor: FeatureExtractor,
        scorer: ScorerLike,
        queue: QueueLike,
        max_document_bytes: int,
        model_name: str,
        store_raw_evidence: bool = False,
        max_batch_rows: int = 1000,
        append_status: QueueAppendStatus | None = None,
    ) -> None:
        self.extractor = extractor
        self.scorer = scorer
        self.queue = queue
        self.max_document_bytes = max_document_bytes
        self.model_name = model_name
        self.store_raw_evidence = store_raw_evidence
        self.append_status = append_status if append_status is not None else QueueAppendStatus()
        # Concurrent requests share model calls and queue transactions (see coalescing.py).
        self._model_calls: Coalescer[np.ndarray, ScoreLike] = Coalescer(
            self._score_rows, max_items=max_batch_rows
        )
        self._queue_appends: Coalescer[PredictionRecord, None] = Coalescer(
            self._append_records, max_items=max_batch_rows
        )

    def check_row(self, row: EvidenceRow) -> RowFailure | None:
        """Return why ``row`` cannot be scored before parsing, or None when it can."""
        if not row.policy_number or not row.policy_number.strip():
            return RowFailure(
                "missing_policy_number", "policy_number is missing or blank; send a value"
            )
        for document, text in (("MIB", row.mib_xml), ("RX", row.rx_xml)):
            if text is None:
                continue
            field = "mib_xml" if document == "MIB" else "rx_xml"
            size = _utf8_size(text)
            if size is None:
                return RowFailure(
                    "invalid_document_encoding",
                    f"{field} contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
                    "escape) and cannot be UTF-8; send the report as valid Unicode text",
                    "MIB" if document == "MIB" else "RX",
                )
            if size > self.max_document_bytes:
                return RowFailure(
                    "document_too_large",
                    f"{field} is larger than GATEWAY_MAX_DOCUMENT_BYTES="
                    f"{self.max_document_bytes} bytes; send a smaller report",
                    "MIB" if document == "MIB" else "RX",
                )
        return None

    async def score_rows(
        self, rows: Sequence[EvidenceRow], *, source: Source, include_features: bool = False
    ) -> list[RowPrediction | RowFailure]:
        """Score ``rows`` and queue their records; the output keeps the input order.

        Raises:
            PersistenceUnavailableError: the queue append failed; nothing was recorded.
        """
        started = time.perf_counter()
        outcomes: list[RowPrediction | RowFailure | None] = [None] * len(rows)
        pending: list[int] = []
        for index, row in enumerate(rows):
            failure = self.check_row(row)
            if failure is None:
                pending.append(index)
            else:
                outcomes[index] = failure

        extracted = await self._extract([rows[i] for i in pending], source)
        good: list[tuple[int, ExtractionResult]] = []
        for index, result in zip(pending, extracted, strict=True):
            if result.values is None:
                outcomes[index] = RowFailure(
                    result.error_kind or "invalid_document",
                    result.error_message or "document cannot be parsed",
                    result.error_document,
                )
            else:
                good.append((index, result))

        if good:
            matrix = np.vstack([result.values for _, result in good if result.values is not None])
            scores = await self._score(matrix)
            inference_ms = round((time.perf_counter() - started) * 1000.0, 3)
            predictions = [
                self._prediction(rows[index], result, score, inference_ms, include_features)
                for (index, result), score in zip(good, scores, strict=True)
            ]
            records = [
                self._record(rows[index], result, prediction, source)
                for (index, result), prediction in zip(good, predictions, strict=True)
            ]
            await self._append(records)
            for (index, _), prediction in zip(good, predictions, strict=True):
                outcomes[index] = prediction
                metrics.PREDICTIONS.labels(source, prediction.model_version).inc()
                if prediction.fallback_reason is not None:
                    metrics.FALLBACKS.labels(prediction.fallback_reason).inc()

        final = [outcome for outcome in outcomes if outcome is not None]
        for outcome in final:
            if isinstance(outcome, RowFailure):
                metrics.ROW_ERRORS.labels(source, outcome.kind).inc()
        return final

    async def _extract(self, rows: Sequence[EvidenceRow], source: Source) -> list[ExtractionResult]:
        requests = [ExtractionRequest(row.mib_xml, row.rx_xml, row.as_of) for row in rows]
        started = time.perf_counter()
        results = await self.extractor.extract(requests)
        metrics.EXTRACTION_SECONDS.labels(source).observe(time.perf_counter() - started)
        for result in results:
            for kind, document, count, _ in result.warnings:
                metrics.FEATURE_WARNINGS.labels(kind, document).inc(count)
        return results

    async def _score(self, matrix: np.ndarray) -> Sequence[ScoreLike]:
        return await self._model_calls.submit(list(matrix))

    async def _score_rows(self, rows: list[np.ndarray]) -> Sequence[ScoreLike]:
        matrix = np.vstack(rows)
        started = time.perf_counter()
        scores = await self.scorer.score(matrix)
        if len(scores) != matrix.shape[0]:
            msg = f"scorer returned {len(scores)} scores for {matrix.shape[0]} rows"
            raise RuntimeError(msg)
        # Label the call by the model's version when any row reached the model, because rows
        # beyond the model's input range fall back inside a call that the model still served.
        versions = [score.model_version for score in scores]
        version = next(
            (score.model_version for score in scores if score.fallback_reason is None),
            versions[0] if versions else "none",
        )
        metrics.MODEL_CALL_SECONDS.labels(version).observe(time.perf_counter() - started)
        return scores

    async def _append_records(self, records: list[PredictionRecord]) -> list[None]:
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.queue.append_many, records)
        except PersistenceError as exc:
            self.append_status.record_failure(exc)
            raise
        self.append_status.record_success()
        metrics.QUEUE_APPEND_SECONDS.observe(time.perf_counter() - started)
        return [None] * len(records)

    async def _append(self, records: list[PredictionRecord]) -> None:
        try:
            await self._queue_appends.submit(records)
        except PersistenceError as exc:
            _log.error(
                "queue append failed",
                exception_type=type(exc).__name__,
                rows=len(records),
            )
            # The rows were scored by now, but a score that is never recorded must not be
            # returned, so the caller learns only that it has to retry.
            msg = (
                f"the prediction could not be recorded in the durable queue "
                f"({type(exc).__name__}), so no score is returned and nothing was stored; "
                "retry later"
            )
            raise PersistenceUnavailableError(msg) from exc

    def _prediction(
        self,
        row: EvidenceRow,
        result: ExtractionResult,
        score: ScoreLike,
        inference_ms: float,
        include_features: bool,
    ) -> RowPrediction:
        # Adding 0.0 turns a model's -0.0 into 0.0, which JSON would otherwise carry as "-0.0".
        risk_score = float(score.risk_score) + 0.0
        values = result.values if result.values is not None else np.zeros(len(FEATURE_NAMES))
        return RowPrediction(
            policy_number=row.policy_number or "",
            prediction_id=row.prediction_id,
            risk_score=risk_score,
            risk_level=classify_risk(risk_score),
            model_version=score.model_version,
            fallback_reason=score.fallback_reason,
            reasons=[
                {
                    "feature": reason.feature,
                    "value": float(reason.value),
                    "contribution": float(reason.contribution),
                }
                for reason in score.reasons
            ],
            warnings=[_warning_out(*warning) for warning in result.warnings],
            inference_ms=inference_ms,
            features=(
                dict(zip(FEATURE_NAMES, map(float, values), strict=True))
                if include_features
                else None
            ),
        )

    def _record(
        self,
        row: EvidenceRow,
        result: ExtractionResult,
        prediction: RowPrediction,
        source: Source,
    ) -> PredictionRecord:
        values = result.values if result.values is not None else np.zeros(len(FEATURE_NAMES))
        raw = self.store_raw_evidence
        return PredictionRecord(
            prediction_id=prediction.prediction_id,
            policy_number=prediction.policy_number,
            features=tuple(map(float, values)),
            feature_spec_version=FEATURE_SPEC_VERSION,
            risk_score=prediction.risk_score,
            risk_level=prediction.risk_level,
            model_name=self.model_name,
            model_version=prediction.model_version,
            source=source,
            inference_ms=prediction.inference_ms,
            created_at=datetime.now(UTC),
            fallback_reason=prediction.fallback_reason,
            # Only the kinds are persisted, so the stored record keeps its shape.
            warnings=tuple(warning[0] for warning in result.warnings),
            mib_xml=row.mib_xml.encode("utf-8") if raw and row.mib_xml is not None else None,
            rx_xml=row.rx_xml.encode("utf-8") if raw and row.rx_xml is not None else None,
        )


def _warning_out(kind: str, document: str, count: int, message: str) -> dict[str, Any]:
    """Build a warning for the response, with ``message`` only for kinds that set one."""
    warning: dict[str, Any] = {"kind": kind, "document": document, "count": count}
    if message:
        warning["message"] = message
    return warning
