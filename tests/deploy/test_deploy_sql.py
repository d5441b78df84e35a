"""Checks of deploy/sql: templates resolve, every statement parses, re-runs are safe.

sqlglot parses most statements into expressions, but keeps SPCS and hybrid-table statements as
opaque commands. Each of those must match one of the forms in ``_COMMAND_FORMS``, which also
lists the options the form must carry.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
from sqlglot import exp

# Statement forms sqlglot keeps as exp.Command, with the options each must carry. A command
# matching none of them fails the test, so a typo such as "CREATE COMPUTE POLL" cannot pass.
_COMMAND_FORMS: dict[str, tuple[re.Pattern[str], tuple[str, ...]]] = {
    "create role": (re.compile(r"^CREATE ROLE IF NOT EXISTS \w+"), ()),
    "grant role": (
        re.compile(r"^GRANT ROLE \w+ TO (ROLE \w+|USER IDENTIFIER\(\$deploy_user\))$"),
        (),
    ),
    "create hybrid table": (
        re.compile(r"^CREATE HYBRID TABLE IF NOT EXISTS \w+\.\w+\.\w+ \("),
        ("PRIMARY KEY (",),
    ),
    "create compute pool": (
        re.compile(r"^CREATE COMPUTE POOL IF NOT EXISTS \w+ "),
        (
            "MIN_NODES = ",
            "MAX_NODES = ",
            "INSTANCE_FAMILY = ",
            "AUTO_RESUME = TRUE",
            "AUTO_SUSPEND_SECS = ",
        ),
    ),
    "create image repository": (
        re.compile(r"^CREATE IMAGE REPOSITORY IF NOT EXISTS \w+\.\w+\.\w+$"),
        (),
    ),
    "create service": (
        re.compile(r"^CREATE SERVICE IF NOT EXISTS \w+\.\w+\.\w+ IN COMPUTE POOL \w+ FROM @"),
        (
            "SPECIFICATION_TEMPLATE_FILE = 'inference_service.yaml'",
            "USING (",
            "MIN_INSTANCES = ",
            "MAX_INSTANCES = ",
            "AUTO_RESUME = TRUE",
            "QUERY_WAREHOUSE = ",
        ),
    ),
    "alter service set": (
        re.compile(r"^ALTER SERVICE IF EXISTS \w+\.\w+\.\w+ SET "),
        ("MIN_INSTANCES = ", "MAX_INSTANCES = "),
    ),
    "alter service spec": (
        re.compile(r"^ALTER SERVICE \w+\.\w+\.\w+ FROM @\w+\.\w+\.\w+ SPECIFICATION_TEMPLATE_FILE"),
        ("USING (",),
    ),
    "alter service state": (
        re.compile(r"^ALTER SERVICE IF EXISTS \w+\.\w+\.\w+ (SUSPEND|RESUME)$"),
        (),
    ),
    "alter compute pool": (
        re.compile(r"^ALTER COMPUTE POOL IF EXISTS \w+ (SUSPEND|RESUME|STOP ALL)$"),
        (),
    ),
    "alter warehouse": (re.compile(r"^ALTER WAREHOUSE IF EXISTS \w+ SUSPEND$"), ()),
    "grant service role": (
        re.compile(r"^GRANT SERVICE ROLE \w+\.\w+\.\w+!\w+ TO ROLE \w+$"),
        (),
    ),
    "grant on pool or repository": (
        re.compile(r"^GRANT [A-Z, ]+ ON (COMPUTE POOL|IMAGE REPOSITORY) [\w.]+ TO ROLE \w+$"),
        (),
    ),
    "create streamlit": (
        re.compile(r"^CREATE OR REPLACE STREAMLIT \w+\.\w+\.\w+ FROM '@\w+\.\w+\.\w+'"),
        ("MAIN_FILE = '", "QUERY_WAREHOUSE = "),
    ),
    "show": (
        re.compile(r"^SHOW (SERVICES|COMPUTE POOLS|VERSIONS IN MODEL|ENDPOINTS IN SERVICE) "),
        (),
    ),
    "drop": (
        # FORCE is valid on DROP SERVICE only, which needs it for a service with block volumes.
        re.compile(
            r"^DROP (STREAMLIT|SERVICE|COMPUTE POOL|ROLE) IF EXISTS [\w.]+$"
            r"|^DROP SERVICE IF EXISTS [\w.]+ FORCE$"
        ),
        (),
    ),
    "call wait": (re.compile(r"^CALL SYSTEM\$WAIT\(\d+\)$"), ()),
    "create secret": (
        re.compile(r"^CREATE SECRET IF NOT EXISTS \w+\.\w+\.\w+ TYPE = GENERIC_STRING "),
        ("SECRET_STRING = '",),
    ),
    "grant on secret": (
        re.compile(r"^GRANT READ ON SECRET \w+\.\w+\.\w+ TO ROLE \w+$"),
        (),
    ),
    "alter secret": (
        re.compile(r"^ALTER SECRET \w+\.\w+\.\w+ SET SECRET_STRING = '[^']+'$"),
        (),
    ),
}


def _command_form(text: str) -> str | None:
    for name, (pattern, _) in _COMMAND_FORMS.items():
        if pattern.search(text):
            return name
    return None


def test_sql_files_numbered_in_sequence() -> None:
    """The step files are numbered 01, 02, ... without gaps or duplicates."""
    steps = sorted(Path(__file__).resolve().parents[2].joinpath("deploy/sql").glob("*.sql"))
    numbers = [int(path.name.split("_", 1)[0]) for path in steps]

    assert list(range(1, len(steps) + 1)) == numbers
    assert len(steps) == 11


def test_sql_variables_all_defined(support: ModuleType, snow_env: dict[str, str]) -> None:
    """Every <% ctx.env.NAME %> in the SQL files is in snowflake.yml, or is a secret."""
    for path in support.sql_files():
        used = set(support.SNOW_VARIABLE.findall(path.read_text(encoding="utf-8")))
        assert set() == used - snow_env.keys() - support.ENVIRONMENT_ONLY_VARIABLES, path.name


def test_snowflake_yml_defines_no_secret(support: ModuleType, snow_env: dict[str, str]) -> None:
    """A secret variable has no value in snowflake.yml, so snow fails when deploy.sh omits it."""
    assert set() == support.ENVIRONMENT_ONLY_VARIABLES & snow_env.keys()
    assert set() == {name.lower() for name in support.ENVIRONMENT_ONLY_VARIABLES} & {
        name.lower() for name in snow_env
    }


def test_snowflake_yml_variables_all_used(support: ModuleType, snow_env: dict[str, str]) -> None:
    """Every snowflake.yml variable is used by a SQL file or by deploy.sh."""
    texts = [path.read_text(encoding="utf-8") for path in support.sql_files()]
    texts.append((support.DEPLOY_DIR / "deploy.sh").read_text(encoding="utf-8"))
    used = {name for text in texts for name in support.SNOW_VARIABLE.findall(text)}
    used |= {name for name in snow_env if "setting " + name in texts[-1]}

    assert set() == snow_env.keys() - used


def test_render_rejects_unknown_variable(support: ModuleType) -> None:
    """An undefined variable is an error, not an empty string."""
    with pytest.raises(KeyError, match="missing_name"):
        support.render_snow_template("USE ROLE <% ctx.env.missing_name %>;", {})


def _all_rendered(rendered_sql: dict[str, str], support: ModuleType) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, text in rendered_sql.items():
        for statement in support.split_statements(text):
            pairs.append((name, support.statement_text(statement)))
    return pairs


def test_sql_every_statement_parses(rendered_sql: dict[str, str], support: ModuleType) -> None:
    """Each file parses with sqlglot's Snowflake dialect into at least two statements."""
    for name, text in rendered_sql.items():
        statements = support.split_statements(text)

        assert len(statements) >= 2, name
        assert "<%" not in text, name


def test_sql_commands_match_known_forms(rendered_sql: dict[str, str], support: ModuleType) -> None:
    """Statements sqlglot keeps opaque match a known form and carry its required options."""
    seen: set[str] = set()
    for name, text in rendered_sql.items():
        for statement in support.split_statements(text):
            if not isinstance(statement, exp.Command):
                continue
            sql = support.statement_text(statement)
            form = _command_form(sql)

            assert form is not None, f"{name}: unrecognised statement {sql[:120]!r}"
            for option in _COMMAND_FORMS[form][1]:
                assert option in sql, f"{name}: {form} lacks {option!r}"
            seen.add(form)

    assert set(_COMMAND_FORMS) == seen


def test_command_form_rejects_typo() -> None:
    """A misspelt SPCS statement matches no form."""
    assert _command_form("CREATE COMPUTE POLL IF NOT EXISTS P MIN_NODES = 1") is None
    assert _command_form("CREATE HYBRID TABLE T (A INT)") is None


def test_sql_creates_are_idempotent(rendered_sql: dict[str, str], support: ModuleType) -> None:
    """Every CREATE may run twice: IF NOT EXISTS, OR ALTER, or OR REPLACE for Streamlit only."""
    for name, sql in _all_rendered(rendered_sql, support):
        if not sql.startswith("CREATE"):
            continue
        raw = rendered_sql[name]
        if sql.startswith("CREATE OR REPLACE FUNCTION"):
            # sqlglot prints CREATE OR ALTER as OR REPLACE, so check the file's own text.
            function_name = re.search(r"FUNCTION ([\w.]+)\(", sql)
            assert function_name is not None
            assert f"CREATE OR ALTER FUNCTION {function_name.group(1)}(" in raw, name
            continue
        assert "IF NOT EXISTS" in sql or sql.startswith("CREATE OR REPLACE STREAMLIT"), (
            f"{name}: {sql[:80]!r}"
        )


_MUST_FIND_THEIR_OBJECT = {"ops/rollout_inference_service.sql", "ops/rotate_gateway_token.sql"}


def test_sql_drops_and_alters_tolerate_absence(
    rendered_sql: dict[str, str], support: ModuleType
) -> None:
    """Every DROP has IF EXISTS, and so does every ALTER except a rollout or token rotation."""
    for name, sql in _all_rendered(rendered_sql, support):
        if sql.startswith("DROP"):
            assert " IF EXISTS " in sql, f"{name}: {sql[:80]!r}"
        # A rollout or a token rotation must fail when its object is missing.
        if sql.startswith("ALTER") and name not in _MUST_FIND_THEIR_OBJECT:
            assert " IF EXISTS " in sql, f"{name}: {sql[:80]!r}"


def test_teardown_forces_block_volume_service(
    rendered_sql: dict[str, str], support: ModuleType
) -> None:
    """FORCE drops the service with the block volume; the functions go in the stop-traffic file."""
    spec = support.yaml_load(support.SPEC_PATH.read_text(encoding="utf-8"))
    block_volumes = [v for v in spec["spec"]["volumes"] if v["source"] == "block"]
    teardown = " ".join(rendered_sql["ops/teardown.sql"].split())
    stop = " ".join(rendered_sql["ops/teardown_stop_traffic.sql"].split())

    assert len(block_volumes) == 1
    assert (
        "DROP SERVICE IF EXISTS REALTIME_ML_PIPELINE.ML_MODELS.INFERENCE_SERVICE FORCE;" in teardown
    )
    assert "DROP FUNCTION IF EXISTS REALTIME_ML_PIPELINE.ML_MODELS.FN_API_PREDICT(" in stop
    assert "DROP FUNCTION IF EXISTS REALTIME_ML_PIPELINE.ML_MODELS.FN_HEALTH()" in stop
    assert "DROP SERVICE" not in stop


def test_sql_files_set_their_role(rendered_sql: dict[str, str], support: ModuleType) -> None:
    """Each file starts with USE ROLE, so a script never runs under a leftover session role."""
    for name, text in rendered_sql.items():
        first = support.split_statements(text)[0]

        assert isinstance(first, exp.Use), name
        kind = first.args.get("kind")
        assert (kind.this if kind else "") == "ROLE", name


def test_sql_account_step_only_uses_accountadmin(
    rendered_sql: dict[str, str], snow_env: dict[str, str]
) -> None:
    """ACCOUNTADMIN appears only in the account step and in teardown (to drop the roles)."""
    using_accountadmin = {name for name, text in rendered_sql.items() if "ACCOUNTADMIN" in text}

    assert {"01_account_setup.sql", "ops/teardown.sql"} == using_accountadmin
    assert "ACCOUNTADMIN" not in snow_env.values()


def _roles_in_effect(text: str, support: ModuleType) -> list[tuple[str, str]]:
    """Pair each statement of a rendered script with the role of the last USE ROLE before it."""
    role = ""
    pairs: list[tuple[str, str]] = []
    for statement in support.split_statements(text):
        sql = support.statement_text(statement)
        if sql.startswith("USE ROLE "):
            role = sql.removeprefix("USE ROLE ")
        pairs.append((role, sql))
    return pairs


def test_sql_service_created_by_service_role(
    rendered_sql: dict[str, str], snow_env: dict[str, str], support: ModuleType
) -> None:
    """The gateway service is created and rolled out under the service role, not the admin."""
    for name in ("08_inference_service.sql", "ops/rollout_inference_service.sql"):
        service_statements = [
            role
            for role, sql in _roles_in_effect(rendered_sql[name], support)
            if re.match(r"(CREATE|ALTER) SERVICE ", sql)
        ]

        assert service_statements, name
        assert {snow_env["service_role"]} == set(service_statements), name


def test_roles_in_effect_follow_use_role(support: ModuleType) -> None:
    """The helper assigns each statement the role of the USE ROLE before it."""
    script = "USE ROLE A; SELECT 1; USE ROLE B; SELECT 2; SELECT 3;"

    assert [role for role, _ in _roles_in_effect(script, support)] == ["A", "A", "B", "B", "B"]


def test_sql_viewer_cannot_read_raw_evidence(
    rendered_sql: dict[str, str], snow_env: dict[str, str]
) -> None:
    """Viewers get SELECT on features and predictions, never on RAW_EVIDENCE."""
    grants = rendered_sql["05_grants.sql"]
    viewer_selects = re.findall(
        rf"GRANT SELECT ON TABLE ([\w.]+) TO ROLE {snow_env['viewer_role']};", grants
    )

    assert sorted(viewer_selects) == sorted(
        [
            f"{snow_env['database_name']}.FEATURE_STORE.ONLINE_FEATURES",
            f"{snow_env['database_name']}.ML_MODELS.MODEL_PREDICTIONS",
        ]
    )


def test_sql_no_public_endpoint_privilege(rendered_sql: dict[str, str]) -> None:
    """No script grants BIND SERVICE ENDPOINT: no endpoint of the pipeline is public."""
    for name, text in rendered_sql.items():
        assert "BIND SERVICE ENDPOINT ON ACCOUNT TO" not in text, name


def test_sql_indexed_tables_are_hybrid(rendered_sql: dict[str, str], support: ModuleType) -> None:
    """Every table that declares an index, inline or with CREATE INDEX, is a hybrid table."""
    hybrid: set[str] = set()
    for _, sql in _all_rendered(rendered_sql, support):
        match = re.match(r"CREATE HYBRID TABLE IF NOT EXISTS ([\w.]+)", sql)
        if match:
            hybrid.add(match.group(1))
    for name, sql in _all_rendered(rendered_sql, support):
        inline = re.match(r"CREATE (?:OR REPLACE )?(?:\w+ )?TABLE (?:IF NOT EXISTS )?([\w.]+)", sql)
        if inline and re.search(r"\bINDEX \w+ \(", sql):
            assert inline.group(1) in hybrid, name
        separate = re.match(r"CREATE INDEX (?:IF NOT EXISTS )?\w+ ON ([\w.]+)", sql)
        if separate:
            assert separate.group(1) in hybrid, name

    assert len(hybrid) == 3


def test_smoke_test_checks_named_ok(rendered_sql: dict[str, str]) -> None:
    """The smoke test exposes its checks as OK_* columns, which deploy.sh asserts."""
    checks = re.findall(r"\bAS (ok_\w+)", rendered_sql["11_smoke_test.sql"])

    assert {
        "ok_health",
        "ok_registry_model",
        "ok_score_is_probability",
        "ok_policy_echoed",
        "ok_under_100_ms",
        "ok_row",
        "ok_persisted",
    } == set(checks)


def test_smoke_test_expects_configured_model_version(
    rendered_sql: dict[str, str], snow_env: dict[str, str]
) -> None:
    """The smoke test expects REGISTRY_<model_version>, the label the gateway reports."""
    assert f"'REGISTRY_{snow_env['model_version']}'" in rendered_sql["11_smoke_test.sql"]
