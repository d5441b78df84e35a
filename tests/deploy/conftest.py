"""Shared readers for the deploy-file tests: snow CLI variables, SQL statements, specs.

No Docker engine and no Snowflake account exist where these tests run, so they check the files
themselves: templates resolve, SQL parses, and names, paths, ports and settings agree with the
code that will receive them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlglot
import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from sqlglot import exp

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
SQL_DIR = DEPLOY_DIR / "sql"
SPEC_PATH = DEPLOY_DIR / "spcs" / "inference_service.yaml"

SNOW_VARIABLE = re.compile(r"<%\s*ctx\.env\.(\w+)\s*%>")
SPEC_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")

# Template variables whose values are secrets: deploy.sh passes them to snow in its environment
# only, and snowflake.yml must not define them. Tests render them with SECRET_STAND_INS.
ENVIRONMENT_ONLY_VARIABLES = frozenset({"GATEWAY_API_TOKEN"})
SECRET_STAND_INS = {"GATEWAY_API_TOKEN": "stand-in-token-for-rendering-0123456789abcdef"}


def load_snow_env() -> dict[str, str]:
    """Return the ``env`` section of deploy/snowflake.yml, every value as a string."""
    document = yaml.safe_load((DEPLOY_DIR / "snowflake.yml").read_text(encoding="utf-8"))
    return {str(key): str(value) for key, value in document["env"].items()}


def render_snow_template(text: str, env: dict[str, str]) -> str:
    """Substitute ``<% ctx.env.NAME %>`` as ``snow sql`` does. An unknown name raises KeyError."""
    return SNOW_VARIABLE.sub(lambda match: env[match.group(1)], text)


def split_statements(sql: str) -> list[exp.Expr]:
    """Parse a rendered script with sqlglot's Snowflake dialect, dropping comment-only pieces."""
    return [
        statement
        for statement in sqlglot.parse(sql, read="snowflake")
        if statement is not None and not isinstance(statement, exp.Semicolon)
    ]


def statement_text(statement: exp.Expr) -> str:
    """Return the SQL of a statement on one line, without comments, for pattern checks."""
    text = statement.sql(dialect="snowflake", comments=False)
    return " ".join(text.split())


def sql_files() -> list[Path]:
    """Return every SQL file under deploy/sql, numbered steps first, then the ops scripts."""
    return sorted(SQL_DIR.glob("*.sql")) + sorted((SQL_DIR / "ops").glob("*.sql"))


def env_names(settings_class: type[BaseSettings]) -> dict[str, FieldInfo]:
    """Map every environment variable a settings class reads (upper case) to its field."""
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    names: dict[str, FieldInfo] = {}
    for field_name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names[alias.upper()] = field
        elif alias is not None and hasattr(alias, "choices"):
            for choice in alias.choices:
                names[str(choice).upper()] = field
        else:
            names[f"{prefix}{field_name}".upper()] = field
    return names


def required_env_names(settings_class: type[BaseSettings]) -> set[str]:
    """Return the variables of the fields that have no default."""
    return {name for name, field in env_names(settings_class).items() if field.is_required()}


def build_settings(
    settings_class: type[BaseSettings], environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    """Construct the settings class from exactly ``environment``, as a container would."""
    for name in env_names(settings_class):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return settings_class()


@pytest.fixture(scope="session")
def support() -> ModuleType:
    """This module, so tests can call its helpers (conftest modules are not importable)."""
    return sys.modules[__name__]


@pytest.fixture(scope="session")
def snow_env() -> dict[str, str]:
    """The snow CLI variables of deploy/snowflake.yml."""
    return load_snow_env()


@pytest.fixture(scope="session")
def rendered_sql(snow_env: dict[str, str]) -> dict[str, str]:
    """Every SQL file rendered with the snowflake.yml values and the secret stand-ins, keyed by
    path relative to sql/."""
    values = {**snow_env, **SECRET_STAND_INS}
    return {
        path.relative_to(SQL_DIR).as_posix(): render_snow_template(
            path.read_text(encoding="utf-8"), values
        )
        for path in sql_files()
    }


@pytest.fixture(scope="session")
def spec_template() -> str:
    """The raw text of the SPCS spec template."""
    return SPEC_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def gateway_routes() -> set[tuple[str, str]]:
    """(method, path) pairs the gateway's FastAPI app serves, read from its OpenAPI schema.

    The schema is used rather than ``app.routes`` because recent FastAPI versions keep included
    routers as nested route objects.
    """
    from evidence_gateway.app import create_app
    from evidence_gateway.config import Settings

    schema = create_app(Settings(local_mode=True)).openapi()
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    }


@pytest.fixture(scope="session")
def using_clause() -> Callable[[str], dict[str, str]]:
    """Parse the ``USING (key => 'value', ...)`` clause of a rendered service statement."""

    def parse(text: str) -> dict[str, str]:
        match = re.search(r"USING\s*\((.*?)\)\s*(?:AUTO_RESUME|;|$)", text, re.DOTALL)
        assert match is not None, "no USING (...) clause found"
        pairs = re.findall(r"(\w+)\s*=>\s*'([^']*)'", match.group(1))
        return dict(pairs)

    return parse


_COMPOSE_DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


def compose_value(value: object) -> str:
    """Return a compose environment value with each ``${NAME:-default}`` set to its default."""
    return _COMPOSE_DEFAULT.sub(lambda match: match.group(2), str(value))


def load_compose() -> dict[str, Any]:
    """Return docker-compose.yml parsed, with environment defaults resolved by compose_value."""
    document = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    for service in document["services"].values():
        environment = service.get("environment") or {}
        service["environment"] = {key: compose_value(value) for key, value in environment.items()}
    return document


def yaml_load(text: str) -> Any:
    """Parse YAML safely."""
    return yaml.safe_load(text)
