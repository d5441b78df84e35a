"""The SPCS spec template of INFERENCE_SERVICE: structure, template variables, settings, probes.

``ServiceSpecification`` below is a schema of the documented spec fields (Snowflake's "Service
specification reference"), strict about unknown keys, so a misspelt field such as
``readinesProbe`` fails instead of being ignored by a lenient YAML read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath
from types import ModuleType
from typing import Any, Literal

import pytest
from evidence_features import FEATURE_SPEC_HASH
from evidence_gateway.config import Settings as GatewaySettings
from evidence_model_client.config import ClientSettings
from evidence_persistence.config import Settings as PersistenceSettings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings

_MEMORY = r"^\d+(\.\d+)?(M|Mi|G|Gi)$"
_SIDECAR_IMAGE = "/snowflake/images/snowflake_images/monitoring-prometheus-sidecar:0.0.1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Probe(_Strict):
    port: int = Field(ge=1, le=65535)
    path: str = Field(pattern=r"^/")
    periodSeconds: int | None = Field(default=None, ge=1)  # noqa: N815 - spec field name
    failureThreshold: int | None = Field(default=None, ge=1)  # noqa: N815


class VolumeMount(_Strict):
    name: str
    mountPath: str = Field(pattern=r"^/")  # noqa: N815


class Amounts(_Strict):
    cpu: float | None = Field(default=None, gt=0)
    memory: str | None = Field(default=None, pattern=_MEMORY)
    gpu: int | None = Field(default=None, alias="nvidia.com/gpu", ge=0)


class Resources(_Strict):
    requests: Amounts | None = None
    limits: Amounts | None = None


class Container(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    image: str = Field(min_length=1)
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] | None = None
    readinessProbe: Probe | None = None  # noqa: N815
    livenessProbe: Probe | None = None  # noqa: N815
    volumeMounts: list[VolumeMount] | None = None  # noqa: N815
    resources: Resources | None = None
    secrets: list[dict[str, Any]] | None = None


class Endpoint(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    port: int | None = Field(default=None, ge=1, le=65535)
    portRange: str | None = None  # noqa: N815
    public: bool = False
    protocol: Literal["HTTP", "HTTPS", "TCP"] = "HTTP"

    @model_validator(mode="after")
    def _port_or_range(self) -> Endpoint:
        if (self.port is None) == (self.portRange is None):
            msg = "an endpoint needs exactly one of port and portRange"
            raise ValueError(msg)
        return self


class Volume(_Strict):
    name: str
    source: str = Field(pattern=r"^(local|memory|block|@[\w.]+)$")
    size: str | None = Field(default=None, pattern=_MEMORY + "|^\\d+Ti$")
    uid: int | None = None
    gid: int | None = None
    blockConfig: dict[str, Any] | None = None  # noqa: N815


class EventTableConfig(_Strict):
    logLevel: Literal["INFO", "ERROR", "NONE"]  # noqa: N815


class LogExporters(_Strict):
    eventTableConfig: EventTableConfig  # noqa: N815


class MetricConfig(_Strict):
    groups: list[Literal["system", "system_limits", "network", "storage", "status"]]


class PlatformMonitor(_Strict):
    metricConfig: MetricConfig  # noqa: N815


class Spec(_Strict):
    containers: list[Container] = Field(min_length=1)
    endpoints: list[Endpoint] | None = None
    volumes: list[Volume] | None = None
    logExporters: LogExporters | None = None  # noqa: N815
    platformMonitor: PlatformMonitor | None = None  # noqa: N815


class SecurityContext(_Strict):
    executeAsCaller: bool  # noqa: N815


class Capabilities(_Strict):
    securityContext: SecurityContext  # noqa: N815


class ServiceRole(_Strict):
    name: str
    endpoints: list[str] = Field(min_length=1)


class ServiceSpecification(_Strict):
    spec: Spec
    capabilities: Capabilities | None = None
    serviceRoles: list[ServiceRole] | None = None  # noqa: N815


# Which settings classes read the environment of each container.
_CONTAINER_SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "gateway": (GatewaySettings, ClientSettings),
    "worker": (PersistenceSettings,),
}


@pytest.fixture(scope="module")
def using_values(
    rendered_sql: dict[str, str], using_clause: Callable[[str], dict[str, str]]
) -> dict[str, str]:
    """The template values that 08_inference_service.sql passes in USING, with the feature spec
    hash that deploy.sh reads from the model version in place of the snowflake.yml placeholder."""
    values = using_clause(rendered_sql["08_inference_service.sql"])
    return {**values, "model_feature_spec_hash": FEATURE_SPEC_HASH}


@pytest.fixture(scope="module")
def service_spec(
    spec_template: str, using_values: dict[str, str], support: ModuleType
) -> ServiceSpecification:
    """The spec as SPCS reads it: the template filled from USING, then validated."""
    rendered = support.SPEC_VARIABLE.sub(lambda match: using_values[match.group(1)], spec_template)
    return ServiceSpecification.model_validate(support.yaml_load(rendered))


def _container(spec: ServiceSpecification, name: str) -> Container:
    matches = [container for container in spec.spec.containers if container.name == name]
    assert len(matches) == 1, f"expected one container named {name}"
    return matches[0]


# Stand-in for a value SPCS reads from a Snowflake secret when the container starts.
_SECRET_PLACEHOLDER = "value-of-the-snowflake-secret"  # noqa: S105 - not a credential


def _runtime_env(container: Container) -> dict[str, str]:
    """The container's environment as SPCS sets it: ``env`` plus one variable per secret."""
    env = dict(container.env or {})
    for secret in container.secrets or []:
        env[str(secret["envVarName"])] = _SECRET_PLACEHOLDER
    return env


def test_spec_schema_rejects_misspelt_field(support: ModuleType) -> None:
    """The schema is strict: an unknown key fails validation."""
    document = {"spec": {"containers": [{"name": "a", "image": "/x", "readinesProbe": {}}]}}

    with pytest.raises(ValidationError, match="readinesProbe"):
        ServiceSpecification.model_validate(document)


def test_spec_schema_rejects_memory_without_unit() -> None:
    """Memory amounts need a unit (M, Mi, G or Gi)."""
    with pytest.raises(ValidationError, match="memory"):
        Amounts.model_validate({"memory": "512"})


def test_spec_template_variables_match_using(
    spec_template: str,
    rendered_sql: dict[str, str],
    using_clause: Callable[[str], dict[str, str]],
    support: ModuleType,
) -> None:
    """The USING clauses of create and rollout fill exactly the spec's template variables."""
    variables = set(support.SPEC_VARIABLE.findall(spec_template))
    create = using_clause(rendered_sql["08_inference_service.sql"])
    rollout = using_clause(rendered_sql["ops/rollout_inference_service.sql"])

    assert variables == set(create)
    assert create == rollout


def test_spec_containers(service_spec: ServiceSpecification) -> None:
    """Gateway, worker and one metrics sidecar per scraped process, nothing else."""
    names = [container.name for container in service_spec.spec.containers]

    assert names == ["gateway", "worker", "metrics-gateway", "metrics-worker"]


def test_spec_images_come_from_the_repository(
    service_spec: ServiceSpecification, snow_env: dict[str, str]
) -> None:
    """Gateway and worker images live in the account's repository under the configured tag."""
    repository = snow_env["image_repository_path"]
    tag = snow_env["image_tag"]

    assert f"{repository}/evidence-gateway:{tag}" == _container(service_spec, "gateway").image
    assert f"{repository}/evidence-worker:{tag}" == _container(service_spec, "worker").image
    assert repository == repository.lower()
    assert repository.startswith(f"/{snow_env['database_name'].lower()}/spcs/")


@pytest.mark.parametrize("name", sorted(_CONTAINER_SETTINGS))
def test_spec_env_names_are_settings(service_spec: ServiceSpecification, name: str) -> None:
    """Every variable a container sets is read by one of its settings classes."""
    known: set[str] = set()
    for settings_class in _CONTAINER_SETTINGS[name]:
        known |= set(_env_names(settings_class))
    env = _runtime_env(_container(service_spec, name))

    assert set() == {key.upper() for key in env} - known


@pytest.mark.parametrize("name", sorted(_CONTAINER_SETTINGS))
def test_spec_env_values_validate(
    service_spec: ServiceSpecification,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
) -> None:
    """Each container's settings build from its spec environment, required fields included."""
    env = _runtime_env(_container(service_spec, name))
    for settings_class in _CONTAINER_SETTINGS[name]:
        required = support.required_env_names(settings_class)
        assert set() == required - {key.upper() for key in env}, settings_class.__name__
        support.build_settings(settings_class, env, monkeypatch)


def _env_names(settings_class: type[BaseSettings]) -> set[str]:
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    names = set()
    for field_name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif alias is not None and hasattr(alias, "choices"):
            names |= {str(choice).upper() for choice in alias.choices}
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def test_spec_gateway_settings(
    service_spec: ServiceSpecification,
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
    snow_env: dict[str, str],
) -> None:
    """The gateway binds all interfaces on the endpoint port and calls the model service."""
    env = _runtime_env(_container(service_spec, "gateway"))
    gateway = support.build_settings(GatewaySettings, env, monkeypatch)
    client = support.build_settings(ClientSettings, env, monkeypatch)
    endpoint = next(point for point in service_spec.spec.endpoints or [] if point.name == "api")

    assert gateway.host == "0.0.0.0"  # noqa: S104 - a container must accept outside traffic
    assert endpoint.port == gateway.port
    model_url = f"http://{snow_env['model_service_dns']}:{snow_env['model_service_port']}/"
    assert model_url == str(client.base_url)
    assert snow_env["model_version"] == client.model_version


def test_spec_placeholder_hash_rejected(
    spec_template: str,
    rendered_sql: dict[str, str],
    using_clause: Callable[[str], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
) -> None:
    """SQL run by hand without model_feature_spec_hash gives a gateway that cannot start."""
    values = using_clause(rendered_sql["08_inference_service.sql"])
    rendered = support.SPEC_VARIABLE.sub(lambda match: values[match.group(1)], spec_template)
    spec = ServiceSpecification.model_validate(support.yaml_load(rendered))
    env = _runtime_env(_container(spec, "gateway"))

    assert values["model_feature_spec_hash"] == "set-by-deploy-sh"
    with pytest.raises(ValidationError, match="'set-by-deploy-sh' is not a feature spec hash"):
        support.build_settings(ClientSettings, env, monkeypatch)


def test_spec_gateway_spec_hash(
    service_spec: ServiceSpecification, monkeypatch: pytest.MonkeyPatch, support: ModuleType
) -> None:
    """The hash deploy.sh passes in USING reaches the gateway's client settings."""
    env = _runtime_env(_container(service_spec, "gateway"))
    client = support.build_settings(ClientSettings, env, monkeypatch)

    assert client.feature_spec_hash == FEATURE_SPEC_HASH


# JSON escaping of quotes and line breaks in ordinary XML, plus room for the envelope: the row
# numbers, policy numbers, brackets and quotes of 25 rows.
_ESCAPING_MARGIN = 1.25
_ENVELOPE_BYTES = 64 * 1024


def test_spec_full_function_batch_fits_body_limit(
    service_spec: ServiceSpecification,
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
    snow_env: dict[str, str],
    rendered_sql: dict[str, str],
) -> None:
    """MAX_BATCH_ROWS rows of two maximum-size documents fit the gateway's body limit.

    A larger body gets 413, which Snowflake does not retry, so the whole query would fail.
    """
    gateway = support.build_settings(
        GatewaySettings, _runtime_env(_container(service_spec, "gateway")), monkeypatch
    )
    function = re.search(
        rf"FUNCTION [\w.]+\.{snow_env['predict_function']}\(.*?MAX_BATCH_ROWS = (\d+)",
        rendered_sql["09_service_functions.sql"],
        re.DOTALL,
    )
    assert function is not None
    max_batch_rows = int(function.group(1))
    full_batch = max_batch_rows * 2 * gateway.max_document_bytes * _ESCAPING_MARGIN

    assert max_batch_rows <= gateway.max_batch_rows
    assert full_batch + _ENVELOPE_BYTES <= gateway.max_body_bytes
    assert gateway.max_body_bytes <= gateway.max_inflight_body_bytes


def test_spec_queue_shared_by_gateway_and_worker(
    service_spec: ServiceSpecification, monkeypatch: pytest.MonkeyPatch, support: ModuleType
) -> None:
    """Gateway and worker point at the same queue file on the same mounted volume."""
    gateway_container = _container(service_spec, "gateway")
    worker_container = _container(service_spec, "worker")
    gateway = support.build_settings(GatewaySettings, _runtime_env(gateway_container), monkeypatch)
    worker = support.build_settings(PersistenceSettings, worker_container.env or {}, monkeypatch)
    mounts = {
        container.name: {(mount.name, mount.mountPath) for mount in container.volumeMounts or []}
        for container in (gateway_container, worker_container)
    }
    volumes = {volume.name: volume for volume in service_spec.spec.volumes or []}

    assert gateway.queue_path == worker.queue_path
    assert mounts["gateway"] == mounts["worker"]
    (volume_name, mount_path) = next(iter(mounts["gateway"]))
    assert PurePosixPath(mount_path) == PurePosixPath(str(gateway.queue_path)).parent
    assert volumes[volume_name].source == "block"


def test_spec_worker_writes_snowflake(
    service_spec: ServiceSpecification,
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
    snow_env: dict[str, str],
) -> None:
    """The worker drains into the hybrid tables of the configured database and warehouse."""
    env = _container(service_spec, "worker").env or {}
    worker = support.build_settings(PersistenceSettings, env, monkeypatch)

    assert worker.sink == "snowflake"
    assert snow_env["database_name"] == worker.snowflake_database
    assert snow_env["warehouse_name"] == worker.snowflake_warehouse


def test_spec_worker_staging_schema_granted(
    service_spec: ServiceSpecification,
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
    snow_env: dict[str, str],
    rendered_sql: dict[str, str],
) -> None:
    """The worker's staging schema exists and the service role may create tables only there.

    The worker creates no hybrid table, because the role has no CREATE TABLE on their schemas.
    """
    env = _container(service_spec, "worker").env or {}
    worker = support.build_settings(PersistenceSettings, env, monkeypatch)
    database = snow_env["database_name"]
    role = snow_env["service_role"]
    schema = f"{database}.{worker.snowflake_schema}"
    creates = re.findall(r"CREATE SCHEMA IF NOT EXISTS ([\w.]+)", rendered_sql["02_database.sql"])
    create_grants = re.findall(
        rf"GRANT ([\w ,]*CREATE TABLE[\w ,]*) ON SCHEMA ([\w.]+) TO ROLE {role};",
        rendered_sql["05_grants.sql"],
    )

    assert worker.snowflake_schema == "WORKER_STAGING"
    assert worker.snowflake_create_tables is False
    assert schema in creates
    assert create_grants == [("USAGE, CREATE TABLE", schema)]


def test_spec_api_token_from_snowflake_secret(
    service_spec: ServiceSpecification,
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
    snow_env: dict[str, str],
) -> None:
    """The gateway is not in local mode and reads its /v1 token from a Snowflake secret."""
    container = _container(service_spec, "gateway")
    env = container.env or {}
    gateway = support.build_settings(GatewaySettings, _runtime_env(container), monkeypatch)

    assert "GATEWAY_API_TOKEN" not in env
    assert "GATEWAY_LOCAL_MODE" not in env
    assert gateway.local_mode is False
    assert gateway.api_token is not None
    assert _SECRET_PLACEHOLDER == gateway.api_token.get_secret_value()
    assert [
        {
            "snowflakeSecret": {
                "objectName": f"{snow_env['database_name']}.SPCS.GATEWAY_API_TOKEN"
            },
            "secretKeyRef": "secret_string",
            "envVarName": "GATEWAY_API_TOKEN",
        }
    ] == container.secrets


def test_spec_raw_evidence_switches_agree(service_spec: ServiceSpecification) -> None:
    """Gateway and worker share one raw-evidence switch, off by default."""
    gateway_env = _container(service_spec, "gateway").env or {}
    worker_env = _container(service_spec, "worker").env or {}

    assert gateway_env["GATEWAY_STORE_RAW_EVIDENCE"] == "false"
    assert worker_env["PERSISTENCE_STORE_RAW_EVIDENCE"] == "false"


def test_spec_model_spec_hash_from_deploy(
    service_spec: ServiceSpecification,
    spec_template: str,
    using_clause: Callable[[str], dict[str, str]],
    rendered_sql: dict[str, str],
    using_values: dict[str, str],
) -> None:
    """The gateway gets the model's hash and version from the USING clause, not a constant."""
    gateway_env = _container(service_spec, "gateway").env or {}
    create = using_clause(rendered_sql["08_inference_service.sql"])

    assert "{{ model_feature_spec_hash }}" in spec_template
    assert "model_feature_spec_hash" in create
    assert gateway_env["MODEL_CLIENT_FEATURE_SPEC_HASH"] == using_values["model_feature_spec_hash"]
    assert gateway_env["MODEL_CLIENT_MODEL_VERSION"] == create["model_version"]


def test_spec_readiness_probe_on_gateway_health(
    service_spec: ServiceSpecification, gateway_routes: set[tuple[str, str]]
) -> None:
    """The gateway's readiness probe hits a GET route the app serves, on the endpoint port."""
    probe = _container(service_spec, "gateway").readinessProbe
    endpoint = next(point for point in service_spec.spec.endpoints or [] if point.name == "api")

    assert probe is not None
    assert ("GET", probe.path) in gateway_routes
    assert probe.path == "/health/ready"
    assert endpoint.port == probe.port


def test_spec_worker_readiness_probe_on_metrics(
    service_spec: ServiceSpecification, monkeypatch: pytest.MonkeyPatch, support: ModuleType
) -> None:
    """The worker's probe reaches its metrics endpoint, which listens on all interfaces."""
    container = _container(service_spec, "worker")
    worker = support.build_settings(PersistenceSettings, container.env or {}, monkeypatch)
    probe = container.readinessProbe

    assert probe is not None
    assert probe.port == worker.metrics_port
    assert probe.path == "/metrics"
    assert worker.metrics_host == "0.0.0.0"  # noqa: S104 - probed from outside the container


def test_spec_metrics_sidecars_scrape_served_ports(
    service_spec: ServiceSpecification,
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
    gateway_routes: set[tuple[str, str]],
) -> None:
    """Each sidecar runs Snowflake's image and scrapes a /metrics the processes serve."""
    gateway = support.build_settings(
        GatewaySettings, _runtime_env(_container(service_spec, "gateway")), monkeypatch
    )
    worker = support.build_settings(
        PersistenceSettings, _container(service_spec, "worker").env or {}, monkeypatch
    )
    expected = {
        "metrics-gateway": f"localhost:{gateway.port}/metrics,1m",
        "metrics-worker": f"localhost:{worker.metrics_port}/metrics,1m",
    }
    for name, target in expected.items():
        sidecar = _container(service_spec, name)
        assert sidecar.image == _SIDECAR_IMAGE
        assert ["-e", target] == sidecar.args

    assert ("GET", "/metrics") in gateway_routes
    assert worker.metrics_port is not None


def test_spec_resources_requests_within_limits(service_spec: ServiceSpecification) -> None:
    """Every container declares requests and limits, and no request exceeds its limit."""
    for container in service_spec.spec.containers:
        resources = container.resources
        assert resources is not None, container.name
        assert resources.requests is not None, container.name
        assert resources.limits is not None, container.name
        assert resources.requests.cpu is not None, container.name
        assert resources.limits.cpu is not None, container.name
        assert resources.requests.cpu <= resources.limits.cpu, container.name
        assert _mebibytes(resources.requests.memory) <= _mebibytes(resources.limits.memory)


def test_spec_requests_fit_one_node(service_spec: ServiceSpecification) -> None:
    """One instance's CPU requests fit a CPU_X64_XS node (1 vCPU) with room for the platform."""
    total = sum(
        container.resources.requests.cpu or 0.0
        for container in service_spec.spec.containers
        if container.resources and container.resources.requests
    )

    assert total <= 0.8


def _mebibytes(amount: str | None) -> float:
    assert amount is not None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(M|Mi|G|Gi)", amount)
    assert match is not None, amount
    factor = {"M": 1e6 / 2**20, "Mi": 1.0, "G": 1e9 / 2**20, "Gi": 1024.0}[match.group(2)]
    return float(match.group(1)) * factor


def test_spec_endpoint_private_with_service_role(service_spec: ServiceSpecification) -> None:
    """The only endpoint is private HTTP, and the api_users service role covers it."""
    endpoints = service_spec.spec.endpoints or []
    roles = {role.name: role.endpoints for role in service_spec.serviceRoles or []}

    assert [point.name for point in endpoints] == ["api"]
    assert not endpoints[0].public
    assert endpoints[0].protocol == "HTTP"
    assert roles == {"api_users": ["api"]}


def test_spec_function_endpoint_matches_sql(
    service_spec: ServiceSpecification, rendered_sql: dict[str, str]
) -> None:
    """The functions' ENDPOINT and the granted service role exist in the spec."""
    functions = rendered_sql["09_service_functions.sql"]
    endpoints = set(re.findall(r"ENDPOINT = (\w+)", functions))
    roles = set(re.findall(r"!(\w+)\s+TO ROLE", functions))

    assert {"api"} == endpoints
    assert {role.name.upper() for role in service_spec.serviceRoles or []} == roles


def test_spec_logs_and_platform_metrics(service_spec: ServiceSpecification) -> None:
    """Logs go to the event table at INFO, platform metrics include storage for the volume."""
    assert service_spec.spec.logExporters is not None
    assert service_spec.spec.logExporters.eventTableConfig.logLevel == "INFO"
    assert service_spec.spec.platformMonitor is not None
    assert "storage" in service_spec.spec.platformMonitor.metricConfig.groups


def test_spec_instance_counts(rendered_sql: dict[str, str], snow_env: dict[str, str]) -> None:
    """The service scales between MIN and MAX instances, at least one always ready."""
    minimum = int(snow_env["inference_min_instances"])
    maximum = int(snow_env["inference_max_instances"])
    create = rendered_sql["08_inference_service.sql"]

    assert 1 <= minimum < maximum
    assert f"MIN_INSTANCES = {minimum}" in create
    assert f"MIN_READY_INSTANCES = {minimum}" in create
    assert f"MAX_INSTANCES = {maximum}" in create
    assert maximum <= int(snow_env["compute_pool_max_nodes"])
