"""docker-compose.yml runs the Procfile's processes with the same ports and settings.

The local stack's settings are what ``evidence-stack`` exports (``StackLayout.environment``);
compose must set the same variables for the same process, with the same ports, and may differ
only where a container must: bind address, file locations on the shared volume, host names.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from evidence_dashboard.config import Settings as DashboardSettings
from evidence_gateway.config import Settings as GatewaySettings
from evidence_gateway.stack.layout import StackLayout
from evidence_model_client.config import ClientSettings, ServerSettings
from evidence_persistence.config import Settings as PersistenceSettings
from pydantic_settings import BaseSettings

_REPO = Path(__file__).resolve().parents[2]

# Procfile process -> compose service. The model server takes the SPCS model service's name.
SERVICE_OF_PROCESS = {
    "model": "risk-model-svc",
    "gateway": "gateway",
    "worker": "worker",
    "dashboard": "dashboard",
}
# Settings classes and environment prefixes of each process.
SETTINGS_OF_PROCESS: dict[str, tuple[type[BaseSettings], ...]] = {
    "model": (ServerSettings,),
    "gateway": (GatewaySettings, ClientSettings),
    "worker": (PersistenceSettings,),
    "dashboard": (DashboardSettings,),
}
PREFIXES_OF_PROCESS = {
    "model": ("MODEL_SERVER_",),
    "gateway": ("GATEWAY_", "MODEL_CLIENT_", "PROMETHEUS_MULTIPROC_DIR"),
    "worker": ("PERSISTENCE_",),
    "dashboard": ("DASHBOARD_",),
}
# Settings compose adds for a container, with the reason.
CONTAINER_ONLY = {
    # The worker image's HEALTHCHECK reads its Prometheus endpoint.
    "worker": {"PERSISTENCE_METRICS_HOST", "PERSISTENCE_METRICS_PORT"},
    # The queue sits on a named volume that outlives the containers, so appends are fsynced.
    # The /v1 token comes from the shell or .env, but the stack always runs in local mode.
    "gateway": {"GATEWAY_QUEUE_SYNCHRONOUS", "GATEWAY_API_TOKEN"},
    # The test form sends the gateway's token, so that it works when the gateway requires one.
    "dashboard": {"DASHBOARD_GATEWAY_TOKEN"},
}
VOLUME_ROOT = PurePosixPath("/var/lib/evidence")


def read_procfile() -> dict[str, list[str]]:
    """Return process name -> command words of the repository's Procfile."""
    processes: dict[str, list[str]] = {}
    for line in (_REPO / "Procfile").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        processes[name.strip()] = shlex.split(command)
    return processes


@pytest.fixture(scope="module")
def compose(support: ModuleType) -> dict[str, Any]:
    """docker-compose.yml, parsed, with ${NAME:-default} values at their defaults."""
    document: dict[str, Any] = support.load_compose()
    return document


@pytest.fixture(scope="module")
def stack_environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The variables evidence-stack sets for its processes, on the default ports."""
    layout = StackLayout(root=_REPO, var_dir=tmp_path_factory.mktemp("var"))
    return layout.environment({})


def _process_env(stack_environment: dict[str, str], process: str) -> dict[str, str]:
    return {
        key: value
        for key, value in stack_environment.items()
        if key.startswith(PREFIXES_OF_PROCESS[process])
    }


def _service_env(compose: dict[str, Any], process: str) -> dict[str, str]:
    service = compose["services"][SERVICE_OF_PROCESS[process]]
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def _dockerfile_command(compose: dict[str, Any], process: str) -> list[str]:
    dockerfile = compose["services"][SERVICE_OF_PROCESS[process]]["build"]["dockerfile"]
    text = (_REPO / dockerfile).read_text(encoding="utf-8")
    match = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert match is not None, dockerfile
    return re.findall(r'"([^"]+)"', match.group(1))


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines, skipping blanks and comments."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, separator, value = line.partition("=")
        assert separator, f"{path.name}: line without '=': {line!r}"
        values[key.strip()] = value.strip()
    return values


def test_compose_services_match_procfile(compose: dict[str, Any]) -> None:
    """Compose runs one service per Procfile process and nothing else."""
    processes = read_procfile()

    assert set(SERVICE_OF_PROCESS) == set(processes)
    assert set(SERVICE_OF_PROCESS.values()) == set(compose["services"])


@pytest.mark.parametrize("process", sorted(SERVICE_OF_PROCESS))
def test_compose_command_matches_procfile(compose: dict[str, Any], process: str) -> None:
    """Each image's CMD is the Procfile's command for that process."""
    assert read_procfile()[process] == _dockerfile_command(compose, process)


@pytest.mark.parametrize("process", sorted(SERVICE_OF_PROCESS))
def test_compose_sets_the_stack_settings(
    compose: dict[str, Any], stack_environment: dict[str, str], process: str
) -> None:
    """A service sets the variables evidence-stack sets for its process, plus listed extras."""
    local = set(_process_env(stack_environment, process))
    container = set(_service_env(compose, process))

    assert local == container - CONTAINER_ONLY.get(process, set())


@pytest.mark.parametrize("process", sorted(SERVICE_OF_PROCESS))
def test_compose_values_agree_with_stack(
    compose: dict[str, Any], stack_environment: dict[str, str], process: str
) -> None:
    """Ports and file names are equal. Hosts and directories differ only as containers need."""
    local = _process_env(stack_environment, process)
    container = _service_env(compose, process)
    for key, local_value in local.items():
        value = container[key]
        if key.endswith(("_PORT", "_WORKERS")):
            assert local_value == value, key
        elif key.endswith("_HOST"):
            assert value == "0.0.0.0", key  # noqa: S104 - published on 127.0.0.1 only
        elif key.endswith("_URL"):
            local_url, container_url = urlsplit(local_value), urlsplit(value)
            assert local_url.port == container_url.port, key
            assert container_url.hostname in compose["services"], key
        elif key.endswith(("_PATH", "_DIR")):
            assert Path(local_value).name == PurePosixPath(value).name, key
            assert PurePosixPath(value).is_relative_to(VOLUME_ROOT), key
        else:
            assert local_value == value, key


def test_compose_model_service_named_like_spcs(compose: dict[str, Any]) -> None:
    """The gateway calls the model server as risk-model-svc:5000, as inside SPCS."""
    gateway = _service_env(compose, "gateway")
    model = _service_env(compose, "model")

    assert gateway["MODEL_CLIENT_BASE_URL"] == "http://risk-model-svc:5000"
    assert model["MODEL_SERVER_PORT"] == "5000"


@pytest.mark.parametrize("process", sorted(SERVICE_OF_PROCESS))
def test_compose_env_values_build_settings(
    compose: dict[str, Any],
    process: str,
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
) -> None:
    """Each service's environment (with .env.example) builds its settings classes."""
    environment = read_env_file(_REPO / ".env.example") | _service_env(compose, process)
    for settings_class in SETTINGS_OF_PROCESS[process]:
        required = support.required_env_names(settings_class)
        assert set() == required - set(environment), settings_class.__name__
        support.build_settings(settings_class, environment, monkeypatch)


@pytest.mark.parametrize("process", sorted(SERVICE_OF_PROCESS))
def test_compose_env_names_are_settings(
    compose: dict[str, Any], process: str, support: ModuleType
) -> None:
    """Every variable a service sets is read by one of its settings classes."""
    known: set[str] = set()
    for settings_class in SETTINGS_OF_PROCESS[process]:
        known |= set(support.env_names(settings_class))

    assert set() == set(_service_env(compose, process)) - known


def test_env_example_names_are_settings(support: ModuleType) -> None:
    """Every variable in .env.example is read by some service and is no path, host or port."""
    known: set[str] = set()
    for classes in SETTINGS_OF_PROCESS.values():
        for settings_class in classes:
            known |= set(support.env_names(settings_class))
    values = read_env_file(_REPO / ".env.example")

    assert set() == set(values) - known
    for key in values:
        assert not key.endswith(("_PATH", "_DIR", "_PORT", "_HOST", "_URL")), key


def test_env_example_paired_settings_agree() -> None:
    """Settings two processes must share have one value in .env.example."""
    values = read_env_file(_REPO / ".env.example")

    assert values["GATEWAY_QUEUE_MAX_DEPTH"] == values["PERSISTENCE_QUEUE_MAX_DEPTH"]
    assert values["GATEWAY_STORE_RAW_EVIDENCE"] == values["PERSISTENCE_STORE_RAW_EVIDENCE"]
    assert values["GATEWAY_STORE_RAW_EVIDENCE"] == "false"


def test_compose_reads_env_example(compose: dict[str, Any]) -> None:
    """Every service takes .env.example, then an optional .env override."""
    for name, service in compose["services"].items():
        files = service["env_file"]
        assert [entry["path"] for entry in files] == [".env.example", ".env"], name
        assert files[1]["required"] is False, name


def test_compose_ports_published_on_loopback(compose: dict[str, Any]) -> None:
    """Published ports are the stack's ports, bound to 127.0.0.1 only."""
    published = {name: service.get("ports", []) for name, service in compose["services"].items()}

    assert published == {
        "risk-model-svc": ["127.0.0.1:5000:5000"],
        "gateway": ["127.0.0.1:8000:8000"],
        "worker": [],
        "dashboard": ["127.0.0.1:8501:8501"],
    }


def test_compose_shared_volume(compose: dict[str, Any]) -> None:
    """All four services mount the one named volume at the same path."""
    for name, service in compose["services"].items():
        assert [f"evidence-data:{VOLUME_ROOT}"] == service["volumes"], name
    assert "evidence-data" in compose["volumes"]


def test_compose_dockerfiles_exist(compose: dict[str, Any]) -> None:
    """Each service builds from the repository root with a Dockerfile of deploy/docker."""
    for name, service in compose["services"].items():
        assert service["build"]["context"] == ".", name
        assert (_REPO / service["build"]["dockerfile"]).is_file(), name


def test_compose_gateway_waits_for_model(compose: dict[str, Any]) -> None:
    """The gateway starts once the model server is healthy and the worker has started.

    Compose stops a service before those it depends on, so the gateway stops first and the
    worker, as it stops, drains every record that the gateway accepted.
    """
    depends = compose["services"]["gateway"]["depends_on"]

    assert depends == {
        "risk-model-svc": {"condition": "service_healthy"},
        "worker": {"condition": "service_started"},
    }
    assert "depends_on" not in compose["services"]["worker"]


def test_compose_dashboard_sends_gateway_token(support: ModuleType) -> None:
    """The gateway and the dashboard's test form take the same GATEWAY_API_TOKEN.

    Both default to empty, which each service reads as no token, so the default stack still
    runs in local mode.
    """
    raw = support.yaml_load((_REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    gateway = raw["services"]["gateway"]["environment"]
    dashboard = raw["services"]["dashboard"]["environment"]
    from_shell_or_env_file = "${GATEWAY_API_TOKEN:-}"

    assert gateway["GATEWAY_API_TOKEN"] == from_shell_or_env_file
    assert dashboard["DASHBOARD_GATEWAY_TOKEN"] == from_shell_or_env_file


def test_compose_value_resolves_defaults(support: ModuleType) -> None:
    """${NAME:-default} becomes its default; other values pass through as strings."""
    assert support.compose_value("${MODEL_CLIENT_DEADLINE_MS:-1000}") == "1000"
    assert support.compose_value("a-${X:-}-b") == "a--b"
    assert support.compose_value(5000) == "5000"
    assert support.compose_value("http://gateway:8000") == "http://gateway:8000"


@pytest.mark.parametrize("process", sorted(SERVICE_OF_PROCESS))
def test_env_example_values_are_defaults(
    compose: dict[str, Any],
    process: str,
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
) -> None:
    """Every value in .env.example equals the code's default, except GATEWAY_LOCAL_MODE."""
    example = read_env_file(_REPO / ".env.example")
    base = _service_env(compose, process)
    for settings_class in SETTINGS_OF_PROCESS[process]:
        names = support.env_names(settings_class)
        written_values = {name: example[name] for name in names if name in example}
        written_values.pop("GATEWAY_LOCAL_MODE", None)
        defaults = support.build_settings(settings_class, base, monkeypatch)
        written = support.build_settings(settings_class, base | written_values, monkeypatch)
        for name in written_values:
            field = next(
                key for key, info in settings_class.model_fields.items() if info is names[name]
            )
            assert getattr(written, field) == getattr(defaults, field), name
