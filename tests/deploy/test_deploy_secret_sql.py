"""The /v1 token secret in deploy/sql: created before the service, readable by its owner role,
named as the SPCS spec names it, and filled only from the GATEWAY_API_TOKEN template variable.
"""

from __future__ import annotations

import re
from types import ModuleType

import pytest
import yaml
from sqlglot import exp

_CREATE_FILE = "07_gateway_secret.sql"
_SERVICE_FILE = "08_inference_service.sql"
_ROTATE_FILE = "ops/rotate_gateway_token.sql"


def _statements(text: str, support: ModuleType) -> list[str]:
    return [support.statement_text(statement) for statement in support.split_statements(text)]


@pytest.fixture(scope="module")
def spec_secret_name(spec_template: str, snow_env: dict[str, str], support: ModuleType) -> str:
    """The secret the gateway container reads, as the spec names it after template substitution."""
    document = yaml.safe_load(spec_template)
    gateway = next(c for c in document["spec"]["containers"] if c["name"] == "gateway")
    [entry] = [s for s in gateway["secrets"] if s["envVarName"] == "GATEWAY_API_TOKEN"]
    template = entry["snowflakeSecret"]["objectName"]
    return str(support.SPEC_VARIABLE.sub(lambda match: snow_env[match.group(1)], template))


def test_secret_file_runs_before_service(support: ModuleType) -> None:
    """The step that creates the secret is numbered right before the service step."""
    names = [path.name for path in support.sql_files() if path.parent == support.SQL_DIR]

    assert names.index(_CREATE_FILE) + 1 == names.index(_SERVICE_FILE)


def test_secret_sql_parses_after_substitution(
    rendered_sql: dict[str, str], snow_env: dict[str, str], support: ModuleType
) -> None:
    """07 renders, parses into USE ROLE and one generic-string CREATE SECRET as the admin role."""
    statements = support.split_statements(rendered_sql[_CREATE_FILE])
    texts = [support.statement_text(statement) for statement in statements]
    stand_in = support.SECRET_STAND_INS["GATEWAY_API_TOKEN"]

    assert len(statements) == 2
    assert isinstance(statements[0], exp.Use)
    assert texts[0] == f"USE ROLE {snow_env['admin_role']}"
    assert isinstance(statements[1], exp.Command)
    assert texts[1].startswith(
        f"CREATE SECRET IF NOT EXISTS {snow_env['database_name']}.SPCS.GATEWAY_API_TOKEN "
        "TYPE = GENERIC_STRING "
    )
    assert f"SECRET_STRING = '{stand_in}'" in texts[1]


def test_secret_value_only_from_template(support: ModuleType) -> None:
    """The raw files take the value from ctx.env.GATEWAY_API_TOKEN and hold no literal token."""
    for name in (_CREATE_FILE, _ROTATE_FILE):
        text = (support.SQL_DIR / name).read_text(encoding="utf-8")
        values = re.findall(r"SECRET_STRING\s*=\s*'([^']*)'", text)

        assert values == ["<% ctx.env.GATEWAY_API_TOKEN %>"], name


def test_secret_names_match_spec(
    rendered_sql: dict[str, str], spec_secret_name: str, support: ModuleType
) -> None:
    """Create, grant and rotate all name the secret that the spec maps into the gateway."""
    named = {
        _CREATE_FILE: r"^CREATE SECRET IF NOT EXISTS ([\w.]+) ",
        _SERVICE_FILE: r"^GRANT READ ON SECRET ([\w.]+) TO ROLE ",
        _ROTATE_FILE: r"^ALTER SECRET ([\w.]+) SET ",
    }
    for name, pattern in named.items():
        found = [
            match.group(1)
            for sql in _statements(rendered_sql[name], support)
            if (match := re.match(pattern, sql))
        ]

        assert [spec_secret_name] == found, name


def test_service_role_reads_secret_before_create(
    rendered_sql: dict[str, str], snow_env: dict[str, str], support: ModuleType
) -> None:
    """08 grants READ to the service role as the admin role, then creates the service."""
    texts = _statements(rendered_sql[_SERVICE_FILE], support)
    grant = next(i for i, sql in enumerate(texts) if sql.startswith("GRANT READ ON SECRET "))
    create = next(i for i, sql in enumerate(texts) if sql.startswith("CREATE SERVICE "))

    assert texts[grant].endswith(f" TO ROLE {snow_env['service_role']}")
    assert texts[grant - 1] == f"USE ROLE {snow_env['admin_role']}"
    assert grant < create
    assert f"USE ROLE {snow_env['service_role']}" in texts[grant + 1 : create]


def test_rotate_sql_alters_without_if_exists(
    rendered_sql: dict[str, str], snow_env: dict[str, str], support: ModuleType
) -> None:
    """Rotation runs as the admin role and fails on a missing secret instead of passing."""
    texts = _statements(rendered_sql[_ROTATE_FILE], support)
    stand_in = support.SECRET_STAND_INS["GATEWAY_API_TOKEN"]

    assert texts[0] == f"USE ROLE {snow_env['admin_role']}"
    assert len(texts) == 2
    assert " IF EXISTS " not in texts[1]
    assert texts[1].endswith(f"SET SECRET_STRING = '{stand_in}'")


def test_secret_never_granted_to_consumers(
    rendered_sql: dict[str, str], snow_env: dict[str, str]
) -> None:
    """Only the service role is granted the secret: consumers and viewers never read it."""
    grantees = {
        match.group(1)
        for text in rendered_sql.values()
        for match in re.finditer(r"ON SECRET [\w.]+\s+TO ROLE (\w+)", text)
    }

    assert {snow_env["service_role"]} == grantees
