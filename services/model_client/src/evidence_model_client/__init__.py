"""Client for the Snowflake Model Registry inference protocol, the rule-based fallback and the
model artifact format; the local model server lives in ``evidence_model_client.server``."""

from evidence_model_client.artifact import (
    DEFAULT_MODEL_NAME,
    METADATA_FILE,
    MODEL_FILE,
    ArtifactMetadata,
    FeatureStats,
    ModelArtifact,
    check_spec_hash,
    compute_feature_stats,
)
from evidence_model_client.breaker import BreakerPolicy, CircuitBreaker, CircuitState
from evidence_model_client.client import ModelClient, RetryPolicy, ServedModelInfo
from evidence_model_client.config import (
    ClientSettings,
    ServerSettings,
    get_client_settings,
    get_server_settings,
)
from evidence_model_client.errors import (
    ArtifactError,
    CircuitOpenError,
    InvalidModelInfoError,
    InvalidModelResponseError,
    ModelClientError,
    ModelOverloadedError,
    ModelRequestRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
    SpecHashMismatchError,
)
from evidence_model_client.fallback import (
    FALLBACK_TERMS,
    FallbackTerm,
    rule_based_contributions,
    rule_based_reasons,
    rule_based_scores,
    score_with_reasons,
)
from evidence_model_client.http_session import ConnectionLimits
from evidence_model_client.metrics import ModelMetrics
from evidence_model_client.reasons import Reason, ReasonProfile
from evidence_model_client.scorer import (
    RULE_BASED_VERSION,
    RiskScorer,
    Score,
    ScorerHealth,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "FALLBACK_TERMS",
    "METADATA_FILE",
    "MODEL_FILE",
    "RULE_BASED_VERSION",
    "ArtifactError",
    "ArtifactMetadata",
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "ClientSettings",
    "ConnectionLimits",
    "FallbackTerm",
    "FeatureStats",
    "InvalidModelInfoError",
    "InvalidModelResponseError",
    "ModelArtifact",
    "ModelClient",
    "ModelClientError",
    "ModelMetrics",
    "ModelOverloadedError",
    "ModelRequestRejectedError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "Reason",
    "ReasonProfile",
    "RetryPolicy",
    "RiskScorer",
    "Score",
    "ScorerHealth",
    "ServedModelInfo",
    "ServerSettings",
    "SpecHashMismatchError",
    "check_spec_hash",
    "compute_feature_stats",
    "get_client_settings",
    "get_server_settings",
    "rule_based_contributions",
    "rule_based_reasons",
    "rule_based_scores",
    "score_with_reasons",
]
