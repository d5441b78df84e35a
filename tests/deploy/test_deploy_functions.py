"""The service functions point at paths the gateway serves, with batch settings it accepts."""

from __future__ import annotations

import re
from types import ModuleType

import pytest
from evidence_gateway.config import Settings as GatewaySettings
from sqlglot import exp


@pytest.fixture(scope="module")
def functions(rendered_sql: dict[str, str], support: ModuleType) -> dict[str, exp.Create]:
    """The CREATE FUNCTION statements of 09_service_functions.sql, keyed by function name."""
    parsed: dict[str, exp.Create] = {}
    for statement in support.split_statements(rendered_sql["09_service_functions.sql"]):
        if isinstance(statement, exp.Create) and statement.kind == "FUNCTION":
            parsed[statement.this.this.name] = statement
    return parsed


def _properties(function: exp.Create) -> dict[str, str]:
    properties = function.args["properties"]
    return {
        prop.this.name: prop.args["value"].name
        for prop in properties.expressions
        if type(prop) is exp.Property
    }


def _returns(function: exp.Create) -> str:
    returns = function.find(exp.ReturnsProperty)
    assert returns is not None
    sql: str = returns.this.sql(dialect="snowflake")
    return sql


def test_functions_defined(functions: dict[str, exp.Create], snow_env: dict[str, str]) -> None:
    """Exactly FN_API_PREDICT and FN_HEALTH, both returning VARIANT."""
    assert {snow_env["predict_function"], snow_env["health_function"]} == set(functions)
    for function in functions.values():
        assert _returns(function) == "VARIANT"


def test_predict_function_signature(
    functions: dict[str, exp.Create], snow_env: dict[str, str]
) -> None:
    """FN_API_PREDICT takes (policy_number, mib_xml, rx_xml) as VARCHAR, the gateway's row order."""
    arguments = [
        (column.name.lower(), column.args["kind"].sql(dialect="snowflake"))
        for column in functions[snow_env["predict_function"]].this.expressions
    ]

    assert arguments == [
        ("policy_number", "VARCHAR"),
        ("mib_xml", "VARCHAR"),
        ("rx_xml", "VARCHAR"),
    ]
    assert functions[snow_env["health_function"]].this.expressions == []


def test_function_paths_served_by_gateway(
    functions: dict[str, exp.Create],
    snow_env: dict[str, str],
    gateway_routes: set[tuple[str, str]],
) -> None:
    """Each AS '<path>' is a POST route of the gateway app."""
    expected = {
        snow_env["predict_function"]: "/functions/predict",
        snow_env["health_function"]: "/functions/health",
    }
    for name, function in functions.items():
        path = function.args["expression"].name

        assert expected[name] == path
        assert ("POST", path) in gateway_routes


def test_function_batch_settings(
    functions: dict[str, exp.Create], snow_env: dict[str, str]
) -> None:
    """Batch settings are explicit, and a batch never exceeds what the gateway accepts."""
    gateway_limit = GatewaySettings(local_mode=True).max_batch_rows
    for name, function in functions.items():
        properties = _properties(function)

        assert {
            "MAX_BATCH_ROWS",
            "MAX_BATCH_RETRIES",
            "ON_BATCH_FAILURE",
            "BATCH_TIMEOUT_SECS",
            "ENDPOINT",
        } <= set(properties), name
        assert 1 <= int(properties["MAX_BATCH_ROWS"]) <= gateway_limit, name
        assert 1 <= int(properties["MAX_BATCH_RETRIES"]) <= 5, name
        assert properties["ON_BATCH_FAILURE"] in {"ABORT", "RETURN_NULL"}, name
        assert 0 < int(properties["BATCH_TIMEOUT_SECS"]) <= 600, name

    predict = _properties(functions[snow_env["predict_function"]])
    assert predict["MAX_BATCH_ROWS"] == "25"


def test_functions_call_the_gateway_service(
    rendered_sql: dict[str, str], snow_env: dict[str, str]
) -> None:
    """Both functions name the fully qualified INFERENCE_SERVICE (sqlglot drops the qualifier)."""
    service = f"{snow_env['database_name']}.ML_MODELS.{snow_env['inference_service']}"
    services = re.findall(r"SERVICE = ([\w.]+)", rendered_sql["09_service_functions.sql"])

    assert [service, service] == services


def test_functions_granted_to_consumer(
    rendered_sql: dict[str, str], snow_env: dict[str, str]
) -> None:
    """The consumer role may call both functions, with their exact signatures."""
    grants = re.findall(
        rf"GRANT USAGE ON FUNCTION ([\w.]+\([\w, ]*\))\s+TO ROLE {snow_env['consumer_role']};",
        rendered_sql["09_service_functions.sql"],
    )
    prefix = f"{snow_env['database_name']}.ML_MODELS."

    assert [
        f"{prefix}{snow_env['predict_function']}(VARCHAR, VARCHAR, VARCHAR)",
        f"{prefix}{snow_env['health_function']}()",
    ] == grants
