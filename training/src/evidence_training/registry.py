"""Registration of a trained artifact in the Snowflake Model Registry and its inference service.

Calls follow snowflake-ml-python 2.6.0: ``Registry.log_model`` (sample input for the signature,
metrics, a comment carrying the feature spec hash, Snowpark Container Services as the only target
platform), then ``ModelVersion.create_service``, which builds the inference image and starts the
service that answers ``/predict-proba`` on port 5000 inside SPCS.

Everything that needs an account sits behind the two protocols below, so the logic here is tested
with recording fakes. :func:`open_registry` is the only code that connects to Snowflake.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION
from evidence_model_client.artifact import ModelArtifact, check_spec_hash
from evidence_model_client.errors import SpecHashMismatchError

from evidence_training.errors import RegistryError

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "ModelVersionLike",
    "RegistrationResult",
    "RegistryLike",
    "ServiceOptions",
    "build_sample_input",
    "open_registry",
    "register_artifact",
]

DEFAULT_SERVICE_NAME = "RISK_MODEL_SVC"
TARGET_PLATFORM = "SNOWPARK_CONTAINER_SERVICES"
TARGET_METHODS = ("predict", "predict_proba")


class ModelVersionLike(Protocol):
    """The part of ``snowflake.ml.model.ModelVersion`` that registration uses."""

    def create_service(self, **kwargs: Any) -> Any:
        """Build the inference image, start the service and return its name."""
        ...


class RegistryLike(Protocol):
    """The part of ``snowflake.ml.registry.Registry`` that registration uses."""

    def log_model(self, model: Any, **kwargs: Any) -> ModelVersionLike:
        """Upload a model as a new version and return that version."""
        ...


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """Arguments of ``ModelVersion.create_service`` for the model inference service.

    ``min_instances`` defaults to 1 because a service at 0 instances suspends when idle and the
    first request after that waits for a container start, far beyond the 100 ms budget.
    """

    compute_pool: str
    service_name: str = DEFAULT_SERVICE_NAME
    image_repo: str | None = None
    min_instances: int = 1
    max_instances: int = 1
    cpu_requests: str | None = None
    memory_requests: str | None = None
    num_workers: int | None = None
    max_batch_rows: int | None = None

    def __post_init__(self) -> None:
        if not self.compute_pool:
            msg = "the compute pool name is empty, so pass --compute-pool with an existing pool"
            raise ValueError(msg)
        if not 0 <= self.min_instances <= self.max_instances or self.max_instances < 1:
            msg = (
                f"instances must satisfy 0 <= min ({self.min_instances}) <= max "
                f"({self.max_instances}) and max >= 1"
            )
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """Names of what registration created in the account."""

    model_name: str
    version_name: str
    service_name: str | None
    comment: str
    metrics: dict[str, Any] = field(default_factory=dict)


def build_sample_input(artifact: ModelArtifact) -> pd.DataFrame:
    """Return three rows (per-feature min, mean, max of the training split) for the signature.

    The registry infers the input signature (105 DOUBLE columns named as ``FEATURE_NAMES``) from
    this frame. Using summary rows means no applicant's features leave the machine.
    """
    stats = artifact.metadata.feature_stats
    rows = [
        [stats[name].min for name in FEATURE_NAMES],
        [stats[name].mean for name in FEATURE_NAMES],
        [stats[name].max for name in FEATURE_NAMES],
    ]
    return pd.DataFrame(np.asarray(rows, dtype=np.float64), columns=list(FEATURE_NAMES))


def register_artifact(
    registry: RegistryLike,
    artifact: ModelArtifact,
    *,
    version_name: str | None = None,
    service: ServiceOptions | None = None,
) -> RegistrationResult:
    """Log the artifact's model as a registry version and, with ``service``, deploy it.

    Args:
        registry: a ``snowflake.ml.registry.Registry`` (or a test fake).
        artifact: a loaded artifact whose spec hash matches the installed feature library.
        version_name: registry version, by default the artifact's ``model_version``.
        service: inference-service settings, or None to register without deploying.

    Raises:
        RegistryError: the artifact was trained on another feature spec.
    """
    metadata = artifact.metadata
    try:
        check_spec_hash(metadata)
    except SpecHashMismatchError as exc:
        msg = f"refusing to register {metadata.model_name} {metadata.model_version}: {exc}"
        raise RegistryError(msg) from exc
    version = version_name or metadata.model_version
    comment = (
        f"{metadata.model_name} {version}: feature spec {FEATURE_SPEC_VERSION}, "
        f"spec hash {FEATURE_SPEC_HASH}, trained {metadata.created_at.isoformat()}"
    )
    metrics: dict[str, Any] = {
        **dict(metadata.metrics),
        "feature_spec_hash": FEATURE_SPEC_HASH,
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "training_rows": metadata.training_summary.get("rows"),
    }
    model_version = registry.log_model(
        _with_feature_names(artifact.model),
        model_name=metadata.model_name,
        version_name=version,
        comment=comment,
        metrics=metrics,
        sample_input_data=build_sample_input(artifact),
        target_platforms=[TARGET_PLATFORM],
        task=_binary_classification_task(),
        options={"relax_version": True, "target_methods": list(TARGET_METHODS)},
    )
    service_name: str | None = None
    if service is not None:
        created = model_version.create_service(
            service_name=service.service_name,
            service_compute_pool=service.compute_pool,
            image_repo=service.image_repo,
            ingress_enabled=False,
            min_instances=service.min_instances,
            max_instances=service.max_instances,
            cpu_requests=service.cpu_requests,
            memory_requests=service.memory_requests,
            num_workers=service.num_workers,
            max_batch_rows=service.max_batch_rows,
            block=True,
        )
        service_name = str(created)
    return RegistrationResult(
        model_name=metadata.model_name,
        version_name=version,
        service_name=service_name,
        comment=comment,
        metrics=metrics,
    )


def open_registry(connection_name: str, *, database: str, schema: str) -> RegistryLike:
    """Open a Snowpark session from a named connection and return its Model Registry.

    The connection is read by the Snowflake connector from ``~/.snowflake/connections.toml`` (or
    ``SNOWFLAKE_HOME``), so no secret passes through this package.

    Raises:
        RegistryError: the connector could not open the session, for example because no
            connection has that name. The message masks any secret the connector quotes.

    NOTE: not run against an account yet. The tests check the arguments that reach the
    registry against the installed library's signatures instead.
    """
    from snowflake.connector.errors import Error as ConnectorError
    from snowflake.ml.registry import Registry  # 1 s import, for this command only
    from snowflake.snowpark import Session

    try:
        session = Session.builder.config("connection_name", connection_name).create()
    except ConnectorError as exc:
        raise RegistryError(_session_error_message(connection_name, exc)) from exc
    registry: RegistryLike = Registry(session=session, database_name=database, schema_name=schema)
    return registry


def _session_error_message(connection_name: str, error: Exception) -> str:
    """Describe a failed session start: the connector's reason, the file it read, the fix.

    The connector's message is masked with its own ``SecretDetector``, so a password, token or
    private key that it quotes is replaced before the message is printed.
    """
    from snowflake.connector.constants import CONNECTIONS_FILE
    from snowflake.connector.secret_detector import SecretDetector

    masked = SecretDetector.mask_secrets(str(error))
    if masked.error_str is None and masked.masked_text:
        reason = masked.masked_text
    else:
        reason = f"{type(error).__name__} (message withheld because masking it failed)"
    return (
        f"cannot open a Snowflake session with connection {connection_name!r}: {reason}. "
        f"Add or fix the [{connection_name}] section in {CONNECTIONS_FILE} (set SNOWFLAKE_HOME "
        "to read connections.toml from another folder), or pass --connection with the name of "
        "a connection defined there"
    )


def _with_feature_names(model: Any) -> Any:
    # The artifact's model was fitted on a NumPy matrix, which the local model server passes.
    # The registry's inference server passes a pandas DataFrame instead, and scikit-learn then
    # warns on every batch that the model "was fitted without feature names". A copy carrying
    # feature_names_in_ makes scikit-learn check the column names and order instead.
    named = copy.deepcopy(model)
    named.feature_names_in_ = np.asarray(FEATURE_NAMES, dtype=object)
    return named


def _binary_classification_task() -> Any:
    from snowflake.ml.model.task import Task

    return Task.TABULAR_BINARY_CLASSIFICATION
