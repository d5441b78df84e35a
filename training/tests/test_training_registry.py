"""Tests of Model Registry registration against recording fakes of the Snowflake API."""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH
from evidence_model_client.artifact import ModelArtifact
from evidence_training.errors import RegistryError
from evidence_training.registry import (
    ServiceOptions,
    _session_error_message,
    build_sample_input,
    register_artifact,
)
from snowflake.connector.errors import ProgrammingError


class FakeModelVersion:
    """Records ``create_service`` calls like ``snowflake.ml.model.ModelVersion``."""

    def __init__(self) -> None:
        self.service_calls: list[dict[str, Any]] = []

    def create_service(self, **kwargs: Any) -> str:
        self.service_calls.append(kwargs)
        return str(kwargs["service_name"])


class FakeRegistry:
    """Records ``log_model`` calls like ``snowflake.ml.registry.Registry``."""

    def __init__(self) -> None:
        self.log_calls: list[tuple[Any, dict[str, Any]]] = []
        self.version = FakeModelVersion()

    def log_model(self, model: Any, **kwargs: Any) -> FakeModelVersion:
        self.log_calls.append((model, kwargs))
        return self.version


def test_register_artifact_logs_model_with_spec_hash(small_artifact: ModelArtifact) -> None:
    """log_model gets the registry name, version, spec hash comment, metrics and SPCS target."""
    registry = FakeRegistry()

    result = register_artifact(registry, small_artifact)

    assert len(registry.log_calls) == 1
    _, kwargs = registry.log_calls[0]
    assert kwargs["model_name"] == "EVIDENCE_RISK_MODEL"
    assert kwargs["version_name"] == "V2"
    assert FEATURE_SPEC_HASH in kwargs["comment"]
    assert kwargs["target_platforms"] == ["SNOWPARK_CONTAINER_SERVICES"]
    assert kwargs["metrics"]["roc_auc"] == 0.9
    assert kwargs["metrics"]["feature_spec_hash"] == FEATURE_SPEC_HASH
    assert kwargs["options"]["target_methods"] == ["predict", "predict_proba"]
    assert kwargs["task"].value == "TABULAR_BINARY_CLASSIFICATION"
    assert None is result.service_name
    assert registry.version.service_calls == []


def test_register_artifact_creates_service(small_artifact: ModelArtifact) -> None:
    """With service options, create_service runs once with ingress off and the given sizes."""
    registry = FakeRegistry()
    service = ServiceOptions(
        compute_pool="EVIDENCE_CPU_POOL",
        image_repo="EVIDENCE_DB.APP.IMAGES",
        min_instances=1,
        max_instances=3,
    )

    result = register_artifact(registry, small_artifact, version_name="V3", service=service)

    assert result.service_name == "RISK_MODEL_SVC"
    assert result.version_name == "V3"
    assert len(registry.version.service_calls) == 1
    call = registry.version.service_calls[0]
    assert call["service_name"] == "RISK_MODEL_SVC"
    assert call["service_compute_pool"] == "EVIDENCE_CPU_POOL"
    assert call["image_repo"] == "EVIDENCE_DB.APP.IMAGES"
    assert False is call["ingress_enabled"]
    assert (call["min_instances"], call["max_instances"]) == (1, 3)


def test_register_artifact_arguments_match_installed_api(small_artifact: ModelArtifact) -> None:
    """The recorded keyword arguments bind to the installed snowflake-ml-python signatures."""
    from snowflake.ml.model import ModelVersion
    from snowflake.ml.registry import Registry

    registry = FakeRegistry()
    service = ServiceOptions(compute_pool="POOL")
    register_artifact(registry, small_artifact, service=service)

    model, log_kwargs = registry.log_calls[0]
    inspect.signature(Registry.log_model).bind(object(), model, **log_kwargs)
    service_kwargs = registry.version.service_calls[0]
    inspect.signature(ModelVersion.create_service).bind(object(), **service_kwargs)


def test_register_artifact_spec_hash_mismatch_raises(small_artifact: ModelArtifact) -> None:
    """An artifact trained on another feature spec is rejected before anything is logged."""
    stale = dataclasses.replace(
        small_artifact,
        metadata=dataclasses.replace(small_artifact.metadata, feature_spec_hash="0" * 16),
    )
    registry = FakeRegistry()

    with pytest.raises(RegistryError, match="refusing to register EVIDENCE_RISK_MODEL V2"):
        register_artifact(registry, stale)
    assert registry.log_calls == []


def test_register_artifact_logged_model_checks_column_names(small_artifact: ModelArtifact) -> None:
    """The logged copy scores a named DataFrame without warnings and rejects reordered columns."""
    registry = FakeRegistry()
    register_artifact(registry, small_artifact)
    logged, kwargs = registry.log_calls[0]
    frame: pd.DataFrame = kwargs["sample_input_data"]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probabilities = logged.predict_proba(frame)
    expected = small_artifact.model.predict_proba(frame.to_numpy())
    np.testing.assert_array_equal(expected, probabilities)
    with pytest.raises(ValueError, match="feature names"):
        logged.predict_proba(frame[list(reversed(FEATURE_NAMES))])
    assert not hasattr(small_artifact.model, "feature_names_in_")


def test_build_sample_input_min_mean_max_rows(small_artifact: ModelArtifact) -> None:
    """The signature sample is three float rows (min, mean, max) with the feature names."""
    frame = build_sample_input(small_artifact)

    stats = small_artifact.metadata.feature_stats[FEATURE_NAMES[0]]
    assert list(FEATURE_NAMES) == list(frame.columns)
    assert [stats.min, stats.mean, stats.max] == frame[FEATURE_NAMES[0]].tolist()
    assert {np.dtype("float64")} == set(frame.dtypes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compute_pool": ""}, "compute pool"),
        ({"compute_pool": "P", "min_instances": 2, "max_instances": 1}, "instances"),
        ({"compute_pool": "P", "min_instances": 0, "max_instances": 0}, "instances"),
    ],
)
def test_service_options_invalid_raise(kwargs: dict[str, Any], message: str) -> None:
    """An empty pool or an impossible instance range is rejected with a message."""
    with pytest.raises(ValueError, match=message):
        ServiceOptions(**kwargs)


def test_session_error_message_masks_secrets() -> None:
    """A connector message that quotes a password or token is printed with both masked."""
    error = ProgrammingError(
        msg="login failed with password=CANARY-PASSWORD-1 and token: CANARY0TOKEN0abcdefghijklmn",
        errno=251005,
        send_telemetry=False,
    )

    message = _session_error_message("prod", error)

    assert "CANARY-PASSWORD-1" not in message
    assert "CANARY0TOKEN0abcdefghijklmn" not in message
    assert message.startswith("cannot open a Snowflake session with connection 'prod': 251005")
    assert "[prod] section" in message
