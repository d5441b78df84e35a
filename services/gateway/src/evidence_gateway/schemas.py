"""Request and response models of the JSON API and the service-function endpoints."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from evidence_gateway.risk import RiskLevel

_EARLIEST_AS_OF = date(1900, 1, 1)
_JSON_KINDS = {bool: "boolean", int: "number", float: "number", list: "list", dict: "object"}
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

__all__ = [
    "BatchItemError",
    "BatchPredictionRequest",
    "BatchPredictionResponse",
    "ErrorBody",
    "ErrorDetail",
    "EvidenceInput",
    "FeatureWarningOut",
    "HealthCheck",
    "LivenessResponse",
    "PredictionRequest",
    "PredictionResponse",
    "ReadinessResponse",
    "ReasonOut",
    "ServiceFunctionRequest",
    "ServiceFunctionResponse",
    "ValidationIssue",
]

_EXAMPLE_MIB = '<?xml version="1.0"?><Response><ResponseData>CODE1</ResponseData></Response>'
_EXAMPLE_RX = (
    '<?xml version="1.0"?><IntelRXResponse><DrugFill><DrugGenericName>METFORMIN'
    "</DrugGenericName></DrugFill></IntelRXResponse>"
)
POLICY_NUMBER_MAX_LENGTH = 64
_POLICY_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._\-]{{0,{POLICY_NUMBER_MAX_LENGTH - 1}}}$"


class EvidenceInput(BaseModel):
    """One applicant's evidence: a policy number and the two XML reports."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "policy_number": "TEST-001",
                    "mib_xml": _EXAMPLE_MIB,
                    "rx_xml": _EXAMPLE_RX,
                    "as_of": "2026-01-15",
                }
            ]
        },
    )

    policy_number: str = Field(
        pattern=_POLICY_PATTERN,
        description="Policy or application number: 1-64 letters, digits, '.', '_' or '-'.",
    )
    mib_xml: str | None = Field(
        description="MIB report XML, or null when the applicant has no MIB report."
    )
    rx_xml: str | None = Field(
        description="Prescription-history (Rx) report XML, or null when there is none."
    )
    as_of: date | None = Field(
        default=None,
        description=(
            "Date the look-back windows end on, as YYYY-MM-DD from 1900-01-01 to tomorrow "
            "(UTC). When omitted: the reports' own date (MIB TransExeDate, Rx ReportDate "
            "or OrderDate), else the latest evidence date in either report, else today (UTC)."
        ),
    )

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of_is_text(cls, value: object) -> object:
        # pydantic reads a number as a Unix time, so 0 became 1970-01-01 and changed the score,
        # and it reads a date-time at midnight as its date, whatever the time zone. Only the
        # ISO date form is accepted.
        if value is None or isinstance(value, date):
            return value
        if not isinstance(value, str):
            kind = _JSON_KINDS.get(type(value), type(value).__name__)
            msg = f"as_of must be a date string such as 2026-01-15, not a {kind}"
            raise ValueError(msg)
        if not _ISO_DATE.fullmatch(value):
            msg = "as_of must be a date as YYYY-MM-DD, such as 2026-01-15, without a time"
            raise ValueError(msg)
        return value

    @field_validator("as_of")
    @classmethod
    def _as_of_in_range(cls, value: date | None) -> date | None:
        if value is None:
            return value
        if value < _EARLIEST_AS_OF:
            msg = "as_of is before 1900-01-01; send the date the evidence was ordered"
            raise ValueError(msg)
        # No evidence is dated after today, and a later as_of would only move the look-back
        # windows past the records, as a mistyped year does. A day of slack covers time zones
        # ahead of UTC, as for document dates in the feature library.
        latest = datetime.now(UTC).date() + timedelta(days=1)
        if value > latest:
            msg = (
                f"as_of is after tomorrow ({latest.isoformat()}, UTC); send the date the "
                "evidence was ordered, or leave as_of out to use the reports' own date"
            )
            raise ValueError(msg)
        return value


class PredictionRequest(EvidenceInput):
    """Body of ``POST /v1/predict``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "policy_number": "TEST-001",
                    "mib_xml": _EXAMPLE_MIB,
                    "rx_xml": _EXAMPLE_RX,
                    "include_features": False,
                }
            ]
        },
    )

    include_features: StrictBool = Field(
        default=False, description="Return the 105 feature values with the prediction."
    )


class BatchPredictionRequest(BaseModel):
    """Body of ``POST /v1/predict/batch``: several applicants scored with one model call."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "policy_number": "TEST-001",
                            "mib_xml": _EXAMPLE_MIB,
                            "rx_xml": _EXAMPLE_RX,
                        },
                        {"policy_number": "TEST-002", "mib_xml": "<r/>", "rx_xml": "<r/>"},
                    ],
                    "include_features": False,
                }
            ]
        },
    )

    items: list[EvidenceInput] = Field(
        min_length=1, description="Applicants to score, at most GATEWAY_MAX_BATCH_ROWS."
    )
    include_features: StrictBool = Field(
        default=False, description="Return the 105 feature values with each prediction."
    )


class ReasonOut(BaseModel):
    """One feature that pushed the score, largest absolute contribution first."""

    feature: str
    value: float
    contribution: float


class FeatureWarningOut(BaseModel):
    """Something the parser tolerated, counted per kind; never carries codes or drug names."""

    kind: str = Field(examples=["unknown_drug"])
    document: Literal["MIB", "RX"]
    count: int
    message: str | None = Field(
        default=None,
        description=(
            "A sentence in the feature library's own words, built from element names and "
            "numeric codes, never from document text. Only partial_error_reply sets it; "
            "other kinds leave it out."
        ),
        examples=[
            "MIB document reports a vendor error but carries records: its "
            "TransResult/ResultCode is Failure (tc 5). The records were scored, but the report "
            "may be incomplete because the vendor may have left records out, so request it again"
        ],
    )


class PredictionResponse(BaseModel):
    """A scored applicant."""

    policy_number: str
    prediction_id: str = Field(description="Key of the persisted prediction row.")
    risk_score: float = Field(ge=0.0, le=1.0, description="Positive-class probability.")
    risk_level: RiskLevel = Field(
        description="LOW below 0.30, MEDIUM from 0.30, HIGH from 0.70 (lower bounds inclusive)."
    )
    model_version: str = Field(
        description="REGISTRY_<VERSION> when the model scored, RULE_BASED on fallback.",
        examples=["REGISTRY_V2", "RULE_BASED"],
    )
    fallback_reason: str | None = Field(
        default=None, description="Why the rule-based fallback scored this row, if it did."
    )
    feature_spec_version: str
    reasons: list[ReasonOut]
    warnings: list[FeatureWarningOut]
    inference_ms: float = Field(
        description="Milliseconds the gateway spent on the request this prediction belongs to."
    )
    features: dict[str, float] | None = Field(
        default=None, description="The 105 feature values, only when include_features was true."
    )


class ErrorDetail(BaseModel):
    """Machine-readable code and a one-sentence message; never echoes the submitted XML."""

    type: str = Field(examples=["malformed_document"])
    message: str
    document: Literal["MIB", "RX"] | None = None


class BatchItemError(BaseModel):
    """An applicant of a batch that could not be scored; the others still are."""

    index: int = Field(description="Position of the item in the request's items list.")
    policy_number: str
    error: ErrorDetail


class BatchPredictionResponse(BaseModel):
    """One entry per request item, in request order."""

    results: list[PredictionResponse | BatchItemError]
    scored: int
    failed: int


class ValidationIssue(BaseModel):
    """One field that failed validation: where and why, without the submitted value."""

    type: str
    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """Body of every 4xx and 5xx response of the JSON API."""

    error: ErrorDetail
    details: list[ValidationIssue] | None = None


class ServiceFunctionRequest(BaseModel):
    """Snowflake service-function batch: ``[row, policy_number, mib_xml, rx_xml]`` per row."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        [0, "TEST-001", _EXAMPLE_MIB, _EXAMPLE_RX],
                        [1, "TEST-002", "<r/>", "<r/>"],
                    ]
                }
            ]
        }
    )

    # Rows are checked by the route, so that a row that is not a list gets the same 400
    # invalid_envelope as a row without a row number. The schema still documents a list of lists.
    data: list[Any] = Field(
        description="Rows; element 0 is the row number in the batch.",
        json_schema_extra={"items": {"type": "array", "items": {}}},
    )


class ServiceFunctionResponse(BaseModel):
    """One ``[row, object]`` per input row, same order; a failed row contains ``{"error": ...}``."""

    data: list[list[Any]]


class LivenessResponse(BaseModel):
    """The process is up and its event loop responds."""

    status: Literal["ok"] = "ok"


class HealthCheck(BaseModel):
    """Outcome of one readiness check."""

    ok: bool
    detail: dict[str, Any]


class ReadinessResponse(BaseModel):
    """Readiness: ``ready`` and ``degraded`` (fallback scoring) both accept traffic."""

    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, HealthCheck]
    feature_spec_version: str
    feature_spec_hash: str
    worker_pid: int = Field(
        description="Process id of the uvicorn worker that served this response."
    )
