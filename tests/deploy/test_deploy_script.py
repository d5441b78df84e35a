"""deploy/deploy.sh runs the steps in order, reads settings, and fails on a bad smoke test.

There is no Snowflake account here, so ``snow`` and ``docker`` are replaced by small fakes on
PATH that record their arguments and print canned JSON, the boundary the script talks to. Each
fake also records the SHA-256 of GATEWAY_API_TOKEN in its environment (``token=-`` when unset),
so tests can follow the /v1 token without the log ever holding it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]

# Shared part of every fake: sets $token to the SHA-256 of GATEWAY_API_TOKEN, or "-" if unset.
_DIGEST_SHELL_CODE = r"""
if [[ -n "${GATEWAY_API_TOKEN+set}" ]]; then
    token="$(printf '%s' "$GATEWAY_API_TOKEN" | sha256sum | cut -d' ' -f1)"
else
    token="-"
fi
"""

_FAKE_SNOW = (
    r"""#!/usr/bin/env bash
# Record the call, the token digest and the model host in its environment, then print what the
# Snowflake CLI would print for the queries deploy.sh parses.
"""
    + _DIGEST_SHELL_CODE
    + r"""
printf '%s | token=%s | port=%s | hash=%s | dns=%s\n' "$(printf '%s' "$*" | tr '\n' ' ')" \
    "$token" "${model_service_port:-}" "${model_feature_spec_hash:-}" "${model_service_dns:-}" \
    >> "$FAKE_LOG"
# Render ctx.env.GATEWAY_API_TOKEN in a -f file as snow does: fail when the variable is unset,
# and print the statement with the value, as Snowflake CLI releases that echo statements do.
file=""
previous=""
for arg in "$@"; do
    [[ "$previous" == "-f" ]] && file="$arg"
    previous="$arg"
done
placeholder="<% ctx.env.GATEWAY_API_TOKEN %>"
if [[ -n "$file" ]] && grep -qF "$placeholder" "$file"; then
    if [[ -z "${GATEWAY_API_TOKEN+set}" ]]; then
        echo "fake snow: ctx.env.GATEWAY_API_TOKEN is undefined in $file" >&2
        exit 1
    fi
    content="$(<"$file")"
    printf '%s\n' "${content//"$placeholder"/$GATEWAY_API_TOKEN}"
fi
ready_default='[{"OK_READY": true}]'
smoke_default='[[{"STATUS": "healthy", "OK_HEALTH": true}], [{"OK_ROW": true}]]'
endpoints_default='[{"name": "inference", "port": "5123", "protocol": "HTTP"}]'
versions_default='[{"name": "V2", "comment": "EVIDENCE_RISK_MODEL V2: spec hash 0123abcd",
"metadata": "{\"metrics\": {\"feature_spec_hash\": \"dde4b34144d5dda8\"}}"}]'
secret_row='[{"name": "GATEWAY_API_TOKEN", "schema_name": "SPCS", "secret_type": "GENERIC_STRING"}]'
args="$*"
# suspend.sql and resume.sql set the gateway service's status that SHOW SERVICES reports.
suspended="$FAKE_LOG.suspended"
[[ "$file" == *"ops/suspend.sql" ]] && : > "$suspended"
[[ "$file" == *"ops/resume.sql" ]] && rm -f "$suspended"
case "$args" in
    *"image-repository url"*) echo "org-acct.registry.snowflakecomputing.com/db/spcs/images" ;;
    *"SHOW SERVICES LIKE 'INFERENCE_SERVICE'"*)
        status="${FAKE_INFERENCE_STATUS:-RUNNING}"
        if [[ -z "${FAKE_INFERENCE_STATUS:-}" && -e "$suspended" ]]; then status=SUSPENDED; fi
        if [[ "$status" == absent ]]; then echo '[]'; else
        echo "[{\"name\": \"INFERENCE_SERVICE\", \"status\": \"$status\"}]"; fi ;;
    *"SHOW SERVICES LIKE"*)
        if [[ -n "${FAKE_NO_MODEL:-}" ]]; then echo '[]'; else
        echo '[{"name": "RISK_MODEL_SVC", "status": "RUNNING",
        "dns_name": "risk-model-svc.ab12.svc.spcs.internal"}]'; fi ;;
    *"SHOW VERSIONS LIKE"*) echo "${FAKE_VERSIONS_JSON:-$versions_default}" ;;
    *"ROWS_STORED"*)
        # One count per call from the lines of FAKE_COUNTS; the last line repeats. A line
        # "fail" fails the query as a missing table or grant does.
        count="$(head -n 1 "$FAKE_COUNTS")"
        if [[ "$(wc -l < "$FAKE_COUNTS")" -gt 1 ]]; then sed -i 1d "$FAKE_COUNTS"; fi
        if [[ "$count" == fail ]]; then
            echo "002003 (42S02): SQL compilation error: Object 'MODEL_PREDICTIONS' does not" \
                "exist or not authorized." >&2
            exit 1
        fi
        echo '[{"status": "Statement executed successfully."}]'
        echo "[{\"ROWS_STORED\": $count}]" ;;
    *"SHOW ENDPOINTS IN SERVICE"*) echo "${FAKE_ENDPOINTS_JSON:-$endpoints_default}" ;;
    *"SHOW SECRETS LIKE"*)
        if [[ -n "${FAKE_SECRETS_FOUND:-}" ]]; then echo "$secret_row"; else echo '[]'; fi ;;
    *"ok_ready"*) echo "${FAKE_READY_JSON:-$ready_default}" ;;
    *"11_smoke_test.sql"*) echo "${FAKE_SMOKE_JSON:-$smoke_default}" ;;
esac
exit 0
"""
)

_FAKE_DOCKER = (
    "#!/usr/bin/env bash\n"
    + _DIGEST_SHELL_CODE
    + """printf 'docker %s | token=%s\\n' "$*" "$token" >> "$FAKE_LOG"\n"""
)

_FAKE_TRAIN = (
    "#!/usr/bin/env bash\n"
    + _DIGEST_SHELL_CODE
    + """printf 'evidence-train %s | token=%s\\n' "$*" "$token" >> "$FAKE_LOG"\n"""
)

# A valid operator token, and its digest as the fakes record it.
_TOKEN = "operator-token-0123456789-ABCDEFGHIJ_abcdefghij"  # noqa: S105 - test value
_TOKEN_SHA256 = hashlib.sha256(_TOKEN.encode()).hexdigest()


@pytest.fixture
def deploy_copy(tmp_path: Path) -> Path:
    """A copy of deploy/ with a minimal streamlit/ folder, so the test owns every file."""
    target = tmp_path / "repo" / "deploy"
    shutil.copytree(
        _REPO / "deploy",
        target,
        ignore=shutil.ignore_patterns("__pycache__", "streamlit"),
    )
    app = target / "streamlit"
    app.mkdir()
    (app / "streamlit_app.py").write_text("import streamlit\n", encoding="utf-8")
    (app / "environment.yml").write_text("name: test\n", encoding="utf-8")
    # Stands in for the dashboard's bundle.py: records its arguments and token digest as the
    # fakes do, and writes lib/.
    (app / "bundle.py").write_text(
        "import hashlib, os, pathlib, sys\n"
        "app = pathlib.Path(__file__).parent\n"
        "(app / 'lib' / 'evidence_dashboard').mkdir(parents=True, exist_ok=True)\n"
        "token = os.environ.get('GATEWAY_API_TOKEN')\n"
        "digest = '-' if token is None else hashlib.sha256(token.encode()).hexdigest()\n"
        "with open(os.environ['FAKE_LOG'], 'a') as log:\n"
        "    log.write('bundle ' + ' '.join(sys.argv[1:]) + ' | token=' + digest + '\\n')\n",
        encoding="utf-8",
    )
    return target


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A directory with fake snow, docker and evidence-train executables."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, body in (
        ("snow", _FAKE_SNOW),
        ("docker", _FAKE_DOCKER),
        ("evidence-train", _FAKE_TRAIN),
    ):
        path = directory / name
        path.write_text(body, encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return directory


def _run(
    deploy_copy: Path,
    fake_bin: Path,
    tmp_path: Path,
    *args: str,
    stdin: str | None = None,
    **extra_env: str,
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = tmp_path / "calls.log"
    log.write_text("", encoding="utf-8")
    environment = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "HOME": str(tmp_path),
        **extra_env,
    }
    # A new session has no controlling terminal, so /dev/tty cannot be opened, as in CI.
    result = subprocess.run(
        ["bash", str(deploy_copy / "deploy.sh"), *args],
        input=stdin,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,
    )
    return result, log.read_text(encoding="utf-8").splitlines()


def _run_service(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, **extra_env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the service step with the /v1 token secret already present in the fake account."""
    return _run(deploy_copy, fake_bin, tmp_path, "service", FAKE_SECRETS_FOUND="1", **extra_env)


def _sql_files(calls: list[str]) -> list[str]:
    files = []
    for call in calls:
        words = call.split(" | ")[0].split()
        if words[:1] == ["sql"] and "-f" in words:
            files.append(words[words.index("-f") + 1])
    return files


def _token_fields(calls: list[str]) -> list[str]:
    """Return the token digest each recorded call had in its environment ("-" for none)."""
    fields = []
    for call in calls:
        match = re.search(r" \| token=(\S+)", call)
        assert match is not None, call
        fields.append(match.group(1))
    return fields


def _calls_with_token(calls: list[str]) -> list[str]:
    return [call for call, field in zip(calls, _token_fields(calls), strict=True) if field != "-"]


def test_deploy_all_runs_steps_in_order(deploy_copy: Path, fake_bin: Path, tmp_path: Path) -> None:
    """`all` runs the eleven numbered scripts in order, with images and uploads in between."""
    result, calls = _run(
        deploy_copy, fake_bin, tmp_path, "-c", "prod", "all", GATEWAY_API_TOKEN=_TOKEN
    )

    assert result.returncode == 0, result.stderr
    assert _sql_files(calls) == [
        "sql/01_account_setup.sql",
        "sql/02_database.sql",
        "sql/03_hybrid_tables.sql",
        "sql/04_compute_pool_and_repository.sql",
        "sql/05_grants.sql",
        "sql/06_model_service.sql",
        "sql/07_gateway_secret.sql",
        "sql/08_inference_service.sql",
        "sql/09_service_functions.sql",
        "sql/10_streamlit.sql",
        "sql/11_smoke_test.sql",
    ]
    without_connection = [
        call
        for call in calls
        if call.startswith(("sql ", "spcs ", "stage ")) and "-c prod" not in call
    ]
    assert without_connection == []


def test_deploy_all_token_reaches_secret_only(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """In `all`, the one call that stores the secret gets the token; docker and the rest do not."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "all", GATEWAY_API_TOKEN=_TOKEN)
    show_secrets = [i for i, call in enumerate(calls) if "SHOW SECRETS LIKE" in call]
    create = next(i for i, call in enumerate(calls) if "07_gateway_secret.sql" in call)

    assert result.returncode == 0, result.stderr
    assert len(show_secrets) == 1
    assert show_secrets[0] < create
    assert [calls[create]] == _calls_with_token(calls)
    assert f"token={_TOKEN_SHA256}" in calls[create]
    assert any(call.startswith("docker build ") for call in calls)
    assert _TOKEN not in result.stdout + result.stderr
    assert _TOKEN not in "\n".join(calls)


def test_deploy_images_built_for_amd64_and_pushed(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """The gateway and worker images are built for linux/amd64 with the tag and pushed."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "images", image_tag="9.9.9")
    repository = "org-acct.registry.snowflakecomputing.com/db/spcs/images"
    docker_calls = [call.split(" | ")[0] for call in calls if call.startswith("docker ")]

    assert result.returncode == 0, result.stderr
    assert len(docker_calls) == 4
    for image in ("gateway", "worker"):
        build = next(call for call in docker_calls if f"{image}.Dockerfile" in call)
        assert "--platform linux/amd64" in build
        assert f"-t {repository}/evidence-{image}:9.9.9" in build
        assert f"docker push {repository}/evidence-{image}:9.9.9" in docker_calls


def test_deploy_service_passes_model_dns(deploy_copy: Path, fake_bin: Path, tmp_path: Path) -> None:
    """The model step reads dns_name and exports it before the gateway service is created."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "service", FAKE_SECRETS_FOUND="1")
    create = next(call for call in calls if "08_inference_service.sql" in call)
    model_check = next(call for call in calls if "06_model_service.sql" in call)

    assert result.returncode == 0, result.stderr
    assert create.endswith("dns=risk-model-svc.ab12.svc.spcs.internal")
    assert model_check.endswith("dns=")


def test_deploy_service_passes_model_port(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """The model step reads the `inference` endpoint's port and exports it for the service."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "service", FAKE_SECRETS_FOUND="1")
    create = next(call for call in calls if "08_inference_service.sql" in call)
    model_check = next(call for call in calls if "06_model_service.sql" in call)
    endpoints = [call for call in calls if "SHOW ENDPOINTS IN SERVICE" in call]

    assert result.returncode == 0, result.stderr
    assert " | port=5123 | " in create
    assert " | port= | " in model_check
    assert len(endpoints) == 1
    assert "REALTIME_ML_PIPELINE.ML_MODELS.RISK_MODEL_SVC" in endpoints[0]


@pytest.mark.parametrize("command", ["service", "rollout"])
def test_deploy_passes_registered_spec_hash(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, command: str
) -> None:
    """The hash recorded on the registered version reaches the spec's USING clause."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, command, FAKE_SECRETS_FOUND="1")
    applied = next(
        call
        for call in calls
        if "08_inference_service.sql" in call or "rollout_inference_service.sql" in call
    )
    versions = [call for call in calls if "SHOW VERSIONS LIKE" in call]

    assert result.returncode == 0, result.stderr
    assert " | hash=dde4b34144d5dda8 | " in applied
    assert len(versions) == 1
    assert "SHOW VERSIONS LIKE 'V2' IN MODEL" in versions[0]
    assert "REALTIME_ML_PIPELINE.ML_MODELS.EVIDENCE_RISK_MODEL" in versions[0]


@pytest.mark.parametrize(
    "versions",
    [
        "[]",
        '[{"name": "V2", "comment": "no hash here", "metadata": null}]',
        '[{"name": "V2", "comment": "spec hash aaaaaaaaaaaaaaaa"},'
        ' {"name": "V3", "comment": "spec hash bbbbbbbbbbbbbbbb"}]',
    ],
)
def test_deploy_service_needs_spec_hash(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, versions: str
) -> None:
    """No single recorded hash: the step fails before the service is created."""
    result, calls = _run_service(deploy_copy, fake_bin, tmp_path, FAKE_VERSIONS_JSON=versions)

    assert result.returncode != 0
    assert "expected the feature spec hash of one model version" in result.stderr
    assert not [call for call in calls if "08_inference_service.sql" in call]


_NO_HASH_VERSIONS = '[{"name": "V2", "comment": "no hash here", "metadata": null}]'


def test_deploy_missing_hash_names_working_fix(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """The message names model and version, and the register command it gives runs."""
    failed, _ = _run_service(deploy_copy, fake_bin, tmp_path, FAKE_VERSIONS_JSON=_NO_HASH_VERSIONS)
    artifact = deploy_copy.parent / "var" / "model"
    artifact.mkdir(parents=True)
    (artifact / "metadata.json").write_text("{}", encoding="utf-8")
    registered, register_calls = _run(
        deploy_copy,
        fake_bin,
        tmp_path,
        "register",
        FAKE_NO_MODEL="1",
        model_version="V3",
        model_service="RISK_MODEL_SVC_V3",
    )
    trainer = [call for call in register_calls if call.startswith("evidence-train register")]

    assert failed.returncode == 1
    assert (
        "version V2 of model REALTIME_ML_PIPELINE.ML_MODELS.EVIDENCE_RISK_MODEL records no valid"
        " feature spec hash"
    ) in failed.stderr
    assert "model_version=<new version, such as V3>" in failed.stderr
    assert "deploy/deploy.sh register" in failed.stderr
    assert registered.returncode == 0, registered.stderr
    assert len(trainer) == 1
    assert "--version V3" in trainer[0]
    assert "--service-name RISK_MODEL_SVC_V3" in trainer[0]


@pytest.mark.parametrize(
    "spec_hash",
    ["dde4b34144d5dda8'); DROP DATABASE X; --", 'dde4b34144d5dda8"', "DDE4B34144D5DDA8"],
)
def test_deploy_service_rejects_bad_hash(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, spec_hash: str
) -> None:
    """A recorded hash that is not 16 lowercase hex digits never reaches the SQL."""
    versions = json.dumps(
        [{"name": "V2", "metadata": json.dumps({"metrics": {"feature_spec_hash": spec_hash}})}]
    )
    result, calls = _run_service(deploy_copy, fake_bin, tmp_path, FAKE_VERSIONS_JSON=versions)

    assert result.returncode == 1
    assert "the feature spec hash recorded on the model version is invalid" in result.stderr
    assert "records no valid feature spec hash" in result.stderr
    assert _sql_files(calls) == ["sql/06_model_service.sql"]


def test_deploy_rollout_checks_hash_before_build(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Without a recorded hash, rollout stops before any image build, push or spec upload."""
    result, calls = _run(
        deploy_copy, fake_bin, tmp_path, "rollout", FAKE_VERSIONS_JSON=_NO_HASH_VERSIONS
    )

    assert result.returncode == 1
    assert "records no valid feature spec hash" in result.stderr
    assert not [call for call in calls if call.startswith("docker")]
    assert not [call for call in calls if "stage copy" in call]
    assert not [call for call in calls if "image-registry login" in call]
    assert "sql/ops/rollout_inference_service.sql" not in _sql_files(calls)


@pytest.mark.parametrize("command", ["service", "rollout"])
@pytest.mark.parametrize("spec_hash", ["set-by-deploy-sh", "abc", "dde4b34144d5dda8'"])
def test_deploy_hand_set_hash_checked(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, command: str, spec_hash: str
) -> None:
    """Model values exported by hand with a hash that is not one: stop before any change."""
    result, calls = _run(
        deploy_copy,
        fake_bin,
        tmp_path,
        command,
        FAKE_SECRETS_FOUND="1",
        model_service_dns="risk-model-svc.ab12.svc.spcs.internal",
        model_service_port="5000",
        model_feature_spec_hash=spec_hash,
    )

    assert result.returncode == 2
    assert f"model_feature_spec_hash is '{spec_hash}', not a feature spec hash" in result.stderr
    assert _sql_files(calls) == []
    assert not [call for call in calls if call.startswith("docker")]


@pytest.mark.parametrize(
    "endpoints",
    ["[]", '[{"name": "inference", "port": ""}]', '[{"name": "other", "port": "5000"}]'],
)
def test_deploy_service_needs_inference_port(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, endpoints: str
) -> None:
    """No `inference` endpoint with a port: the step fails before the service is created."""
    result, calls = _run_service(deploy_copy, fake_bin, tmp_path, FAKE_ENDPOINTS_JSON=endpoints)

    assert result.returncode != 0
    assert "expected one port of endpoint 'inference'" in result.stderr
    assert not [call for call in calls if "08_inference_service.sql" in call]


def test_deploy_register_creates_model_service(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Without RISK_MODEL_SVC, register logs the artifact with the configured names."""
    artifact = deploy_copy.parent / "var" / "model"
    artifact.mkdir(parents=True)
    (artifact / "metadata.json").write_text("{}", encoding="utf-8")

    result, calls = _run(deploy_copy, fake_bin, tmp_path, "register", FAKE_NO_MODEL="1")
    register = [call for call in calls if call.startswith("evidence-train ")]

    assert result.returncode == 0, result.stderr
    assert len(register) == 1
    for option in (
        f"--artifact {artifact}",
        "--connection default",
        "--database REALTIME_ML_PIPELINE",
        "--schema ML_MODELS",
        "--version V2",
        "--compute-pool ML_INFERENCE_POOL",
        "--image-repo REALTIME_ML_PIPELINE.SPCS.IMAGES",
        "--service-name RISK_MODEL_SVC",
    ):
        assert option in register[0]


def test_deploy_register_skips_existing_service(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """An existing RISK_MODEL_SVC is left alone, so `all` can run twice."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "register")

    assert result.returncode == 0, result.stderr
    assert not any(call.startswith("evidence-train ") for call in calls)
    assert "RISK_MODEL_SVC exists" in result.stdout


def test_deploy_register_needs_artifact(deploy_copy: Path, fake_bin: Path, tmp_path: Path) -> None:
    """Without a trained artifact, register prints how to train one."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "register", FAKE_NO_MODEL="1")

    assert result.returncode == 1
    assert "evidence-train --synthetic" in result.stderr
    assert not any(call.startswith("evidence-train ") for call in calls)


def test_deploy_model_not_ready_fails(deploy_copy: Path, fake_bin: Path, tmp_path: Path) -> None:
    """A model service that is not READY stops the deployment with a pointer to the docs."""
    result, calls = _run(
        deploy_copy,
        fake_bin,
        tmp_path,
        "model",
        FAKE_READY_JSON=json.dumps([{"OK_READY": False}]),
    )

    assert result.returncode == 1
    assert "RISK_MODEL_SVC is not READY" in result.stderr
    assert not any("SHOW SERVICES" in call for call in calls)


@pytest.mark.parametrize(
    ("payload", "returncode", "message"),
    [
        ([[{"OK_HEALTH": True}], [{"OK_ROW": True}]], 0, "2 of 2 checks passed"),
        ([[{"OK_HEALTH": True}], [{"OK_ROW": False}]], 1, "FAILED: OK_ROW = False"),
        ([[{"OK_HEALTH": None}]], 1, "FAILED: OK_HEALTH = None"),
        ([[{"STATUS": "healthy"}]], 1, "no OK_* column"),
    ],
)
def test_deploy_smoke_asserts_ok_columns(
    deploy_copy: Path,
    fake_bin: Path,
    tmp_path: Path,
    payload: object,
    returncode: int,
    message: str,
) -> None:
    """The smoke step passes only when every OK_* column is TRUE, and names what failed."""
    result, _ = _run(deploy_copy, fake_bin, tmp_path, "smoke", FAKE_SMOKE_JSON=json.dumps(payload))

    assert returncode == result.returncode
    assert message in result.stdout + result.stderr


def test_deploy_unknown_command_prints_usage(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """An unknown command exits 2, names the command, then prints the usage and runs nothing."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "deploy-everything")

    assert result.returncode == 2
    assert result.stderr.startswith("deploy.sh: unknown command 'deploy-everything'\n")
    assert "Usage: deploy/deploy.sh" in result.stderr
    assert calls == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "deploy.sh: missing command"),
        (("-x", "all"), "deploy.sh: unknown option '-x'"),
        (("-c",), "deploy.sh: option -c requires a value"),
    ],
)
def test_deploy_usage_errors_name_cause(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """A missing command, an unknown option or a missing value is named before the usage."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, *args)

    assert result.returncode == 2
    assert result.stderr.startswith(message + "\n")
    assert "Usage: deploy/deploy.sh" in result.stderr
    assert calls == []


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_deploy_help_prints_usage(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, flag: str
) -> None:
    """-h and --help print the usage on stdout, exit 0 and run nothing."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, flag)

    assert result.returncode == 0, result.stderr
    assert "Usage: deploy/deploy.sh" in result.stdout
    assert result.stderr == ""
    assert calls == []


def test_deploy_unknown_long_option(deploy_copy: Path, fake_bin: Path, tmp_path: Path) -> None:
    """A long option other than --help is named in full before the usage."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "--connection=dev", "all")

    assert result.returncode == 2
    assert result.stderr.startswith("deploy.sh: unknown option '--connection=dev'\n")
    assert calls == []


def _path_without(program: str) -> str:
    """Return this process's PATH without the folders that contain ``program``."""
    folders = os.environ["PATH"].split(os.pathsep)
    return os.pathsep.join(
        folder for folder in folders if not os.access(Path(folder) / program, os.X_OK)
    )


_NO_SNOW = (
    "deploy.sh: the Snowflake CLI (snow) was not found on PATH; install Snowflake CLI 3.x "
    "with 'pip install snowflake-cli' (see docs/deploy.md, Prerequisites)"
)
_NO_DOCKER = (
    "deploy.sh: docker was not found on PATH; install Docker with buildx to build the "
    "images (see docs/deploy.md, Prerequisites)"
)


@pytest.mark.parametrize(
    ("program", "command", "message"),
    [
        *(
            ("snow", command, _NO_SNOW)
            for command in ("secret", "account", "images", "teardown", "all")
        ),
        *(("docker", command, _NO_DOCKER) for command in ("images", "all", "rollout")),
    ],
)
def test_deploy_missing_tool_stops_first(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, program: str, command: str, message: str
) -> None:
    """Without a tool it needs on PATH, a command exits 1 naming the tool, before any step."""
    (fake_bin / program).unlink()

    result, calls = _run(
        deploy_copy,
        fake_bin,
        tmp_path,
        "-c",
        "x",
        command,
        PATH=f"{fake_bin}{os.pathsep}{_path_without(program)}",
        GATEWAY_API_TOKEN=_TOKEN,
    )

    assert result.returncode == 1
    assert result.stderr.splitlines() == [message]
    assert "command not found" not in result.stderr
    assert "==>" not in result.stdout
    assert calls == []


@pytest.mark.parametrize("command", ["secret", "spec"])
def test_deploy_without_docker_other_commands_run(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, command: str
) -> None:
    """Commands that build no image do not need docker."""
    (fake_bin / "docker").unlink()

    result, _ = _run(
        deploy_copy,
        fake_bin,
        tmp_path,
        command,
        PATH=f"{fake_bin}{os.pathsep}{_path_without('docker')}",
        GATEWAY_API_TOKEN=_TOKEN,
    )

    assert "docker was not found" not in result.stderr
    assert result.returncode == 0, result.stderr


def _teardown(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, inputs: str, counts: str, **extra: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run teardown with typed ``inputs`` and MODEL_PREDICTIONS row ``counts``, one a poll."""
    count_file = tmp_path / "counts.txt"
    count_file.write_text(counts, encoding="utf-8")
    drain_settings = {"teardown_drain_quiet_secs": "0", "teardown_drain_poll_secs": "0"}
    return _run(
        deploy_copy,
        fake_bin,
        tmp_path,
        "teardown",
        stdin=inputs,
        FAKE_COUNTS=str(count_file),
        **{**drain_settings, **extra},
    )


# Both confirmations typed, and the SQL files of a teardown that drops everything.
_CONFIRMED = "REALTIME_ML_PIPELINE\nDROP\n"
_TEARDOWN_FILES = ["sql/ops/teardown_stop_traffic.sql", "sql/ops/teardown.sql"]


def _teardown_never_drains(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, inputs: str, **extra: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run teardown while the count grows on every poll, with a 1 s drain timeout."""
    growing = "".join(f"{n}\n" for n in range(1, 2000))
    return _teardown(
        deploy_copy,
        fake_bin,
        tmp_path,
        inputs,
        growing,
        teardown_drain_quiet_secs="30",
        teardown_drain_timeout_secs="1",
        **extra,
    )


def _assert_cancelled_after_stop(
    result: subprocess.CompletedProcess[str], calls: list[str]
) -> None:
    """Teardown exited 3 after the functions were dropped, and the service was kept."""
    assert result.returncode == 3
    assert "Teardown cancelled after the service functions were dropped." in result.stderr
    assert _sql_files(calls) == ["sql/ops/teardown_stop_traffic.sql"]


def test_deploy_teardown_needs_confirmation(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Teardown runs only when the database name is typed back."""
    rejected, rejected_calls = _teardown(deploy_copy, fake_bin, tmp_path, "yes\n", "0\n")
    confirmed, confirmed_calls = _teardown(deploy_copy, fake_bin, tmp_path, _CONFIRMED, "0\n")

    assert rejected.returncode == 3
    assert "invalid input 'yes', expected 'REALTIME_ML_PIPELINE'" in rejected.stderr
    assert "Teardown cancelled, nothing was dropped." in rejected.stderr
    assert rejected_calls == []
    assert confirmed.returncode == 0, confirmed.stderr
    assert _sql_files(confirmed_calls) == _TEARDOWN_FILES


def test_deploy_teardown_drains_before_drop(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """A count, then the functions go, then counts are read until they stop growing."""
    result, calls = _teardown(
        deploy_copy,
        fake_bin,
        tmp_path,
        _CONFIRMED,
        "10\n15\n18\n18\n",
        teardown_drain_quiet_secs="1",
    )
    stop = next(i for i, call in enumerate(calls) if "teardown_stop_traffic.sql" in call)
    drop = next(i for i, call in enumerate(calls) if "ops/teardown.sql" in call)
    counts = [i for i, call in enumerate(calls) if "ROWS_STORED" in call]

    assert result.returncode == 0, result.stderr
    assert len(counts) >= 4
    assert counts[0] < stop < counts[1]
    assert counts[-1] < drop
    assert "contains 18 rows, unchanged for 1s: queue drained" in result.stdout
    assert "ML_MODELS.MODEL_PREDICTIONS" in calls[counts[0]]


def test_deploy_teardown_second_confirmation(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Without DROP typed after the drain, the service and its volumes stay."""
    result, calls = _teardown(deploy_copy, fake_bin, tmp_path, "REALTIME_ML_PIPELINE\nno\n", "5\n")

    _assert_cancelled_after_stop(result, calls)
    assert "invalid input 'no', expected 'DROP'" in result.stderr


def test_deploy_teardown_drain_timeout_warns(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Counts that keep growing past the timeout give a warning before the second question."""
    result, calls = _teardown_never_drains(
        deploy_copy, fake_bin, tmp_path, "REALTIME_ML_PIPELINE\nno\n"
    )

    assert result.returncode == 3
    assert "the queue drain timed out" in result.stderr
    assert "MODEL_PREDICTIONS still grew after 1s" in result.stderr
    assert "deletes the predictions still queued on its volumes" in result.stderr
    assert "ops/teardown.sql" not in " ".join(_sql_files(calls))


@pytest.mark.parametrize(
    ("counts", "queries"),
    [("fail\n", 1), ("5\nfail\n", 2), ("5\n5\nfail\n", 3)],
)
def test_deploy_teardown_count_failure_stops(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, counts: str, queries: int
) -> None:
    """A failed count, first or while draining, stops before the drop and names the query."""
    result, calls = _teardown(
        deploy_copy, fake_bin, tmp_path, _CONFIRMED, counts, teardown_drain_quiet_secs="30"
    )

    assert result.returncode == 1
    assert "counting the rows of REALTIME_ML_PIPELINE.ML_MODELS.MODEL_PREDICTIONS failed" in (
        result.stderr
    )
    assert "run deploy.sh teardown again" in result.stderr
    assert "queue drained" not in result.stdout
    assert len([call for call in calls if "ROWS_STORED" in call]) == queries
    assert "sql/ops/teardown.sql" not in _sql_files(calls)
    if queries == 1:
        assert _sql_files(calls) == []
    else:
        assert "Run deploy.sh functions to create them again" in result.stderr


@pytest.mark.parametrize(
    "name", ["teardown_drain_quiet_secs", "teardown_drain_poll_secs", "teardown_drain_timeout_secs"]
)
@pytest.mark.parametrize("value", ["2m", "-1", "1.5", "ten"])
def test_deploy_teardown_rejects_drain_setting(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, name: str, value: str
) -> None:
    """A drain setting that is not whole seconds exits 2 naming it, before any question."""
    result, calls = _teardown(deploy_copy, fake_bin, tmp_path, _CONFIRMED, "5\n", **{name: value})

    assert result.returncode == 2
    assert f"invalid {name} '{value}'. Set it to a whole number of seconds" in result.stderr
    assert "Type the database name" not in result.stderr
    assert calls == []


def test_deploy_teardown_no_input_cancels(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Empty stdin: the question is on stderr, then exit 3 naming the expected input."""
    result, calls = _teardown(deploy_copy, fake_bin, tmp_path, "", "5\n")

    assert result.returncode == 3
    assert "Type the database name: " in result.stderr
    assert "missing input, because stdin ended before 'REALTIME_ML_PIPELINE' was typed" in (
        result.stderr
    )
    assert "Teardown cancelled, nothing was dropped." in result.stderr
    assert calls == []


def test_deploy_teardown_input_ends_before_drop(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Stdin ends after the name: exit 3 with the message that the functions are gone."""
    result, calls = _teardown(deploy_copy, fake_bin, tmp_path, "REALTIME_ML_PIPELINE\n", "5\n")

    _assert_cancelled_after_stop(result, calls)
    assert "Type DROP: " in result.stderr
    assert "missing input, because stdin ended before 'DROP' was typed" in result.stderr
    assert "Run deploy.sh functions to create them again" in result.stderr


def test_deploy_teardown_input_without_newline(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """A last input without a final newline still counts."""
    result, calls = _teardown(deploy_copy, fake_bin, tmp_path, "REALTIME_ML_PIPELINE\nDROP", "5\n")

    assert result.returncode == 0, result.stderr
    assert _sql_files(calls) == _TEARDOWN_FILES


def test_deploy_teardown_confirm_variable(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """TEARDOWN_CONFIRM_DATABASE with the database name replaces both confirmations."""
    result, calls = _teardown(
        deploy_copy, fake_bin, tmp_path, "", "5\n", TEARDOWN_CONFIRM_DATABASE="REALTIME_ML_PIPELINE"
    )

    assert result.returncode == 0, result.stderr
    assert "Type" not in result.stderr
    assert _sql_files(calls) == _TEARDOWN_FILES


@pytest.mark.parametrize("value", ["", "OTHER_DB", "realtime_ml_pipeline"])
def test_deploy_teardown_confirm_variable_mismatch(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, value: str
) -> None:
    """A TEARDOWN_CONFIRM_DATABASE that is not the database name cancels before any call."""
    result, calls = _teardown(
        deploy_copy, fake_bin, tmp_path, _CONFIRMED, "5\n", TEARDOWN_CONFIRM_DATABASE=value
    )

    assert result.returncode == 3
    assert f"TEARDOWN_CONFIRM_DATABASE is '{value}', not 'REALTIME_ML_PIPELINE'" in result.stderr
    assert calls == []


def test_deploy_teardown_confirm_variable_keeps_undrained(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Without questions, a queue that did not drain in time is kept: exit 3 before the drop."""
    result, calls = _teardown_never_drains(
        deploy_copy, fake_bin, tmp_path, "", TEARDOWN_CONFIRM_DATABASE="REALTIME_ML_PIPELINE"
    )

    _assert_cancelled_after_stop(result, calls)
    assert "MODEL_PREDICTIONS still grew after 1s" in result.stderr


def test_deploy_teardown_rejects_after_suspend(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """After suspend, teardown drops nothing until resume has run."""
    suspend, _ = _run(deploy_copy, fake_bin, tmp_path, "suspend")
    rejected, rejected_calls = _teardown(deploy_copy, fake_bin, tmp_path, _CONFIRMED, "5\n")
    resume, _ = _run(deploy_copy, fake_bin, tmp_path, "resume")
    confirmed, confirmed_calls = _teardown(deploy_copy, fake_bin, tmp_path, _CONFIRMED, "5\n")

    assert suspend.returncode == 0, suspend.stderr
    assert rejected.returncode == 1
    assert "REALTIME_ML_PIPELINE.ML_MODELS.INFERENCE_SERVICE is SUSPENDED" in rejected.stderr
    assert "Run deploy.sh resume" in rejected.stderr
    assert _sql_files(rejected_calls) == []
    assert not [call for call in rejected_calls if "ROWS_STORED" in call]
    assert resume.returncode == 0, resume.stderr
    assert confirmed.returncode == 0, confirmed.stderr
    assert _sql_files(confirmed_calls) == _TEARDOWN_FILES


@pytest.mark.parametrize("status", ["SUSPENDING", "PENDING", "FAILED"])
def test_deploy_teardown_needs_running_service(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, status: str
) -> None:
    """Any status but RUNNING stops teardown before the first drop."""
    result, calls = _teardown(
        deploy_copy, fake_bin, tmp_path, _CONFIRMED, "5\n", FAKE_INFERENCE_STATUS=status
    )

    assert result.returncode == 1
    assert f"INFERENCE_SERVICE is {status}, and only a running service drains" in result.stderr
    assert _sql_files(calls) == []


def test_deploy_teardown_without_service_proceeds(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """No gateway service means no queue, so teardown goes on."""
    result, calls = _teardown(
        deploy_copy, fake_bin, tmp_path, _CONFIRMED, "5\n", FAKE_INFERENCE_STATUS="absent"
    )

    assert result.returncode == 0, result.stderr
    assert "INFERENCE_SERVICE does not exist, so no queue is left to drain" in result.stdout
    assert _sql_files(calls) == _TEARDOWN_FILES


def test_deploy_streamlit_bundles_then_uploads(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """The dashboard sources are bundled first, then the app files and lib/ go to the stage."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "streamlit")
    stage = "@REALTIME_ML_PIPELINE.STREAMLIT_APP.STREAMLIT_STAGE"
    steps = [call.split(" | ")[0] for call in calls]
    app = deploy_copy / "streamlit"

    assert result.returncode == 0, result.stderr
    assert steps[0] == f"bundle --artifact-dir {deploy_copy.parent / 'var' / 'model'}"
    assert f"stage copy {app / 'streamlit_app.py'} {stage} -c default --overwrite" in steps
    assert f"stage copy {app / 'environment.yml'} {stage} -c default --overwrite" in steps
    assert f"stage copy {app / 'lib'} {stage}/lib -c default --recursive --overwrite" in steps
    assert not any("/model " in step for step in steps)
    assert _sql_files(calls) == ["sql/10_streamlit.sql"]


def test_deploy_streamlit_requires_main_file(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """The Streamlit step stops when the app's main file is missing."""
    (deploy_copy / "streamlit" / "streamlit_app.py").unlink()

    result, calls = _run(deploy_copy, fake_bin, tmp_path, "streamlit")

    assert result.returncode == 1
    assert "streamlit_app.py not found" in result.stderr
    assert calls == []


def _assert_token_hidden(
    token: str, result: subprocess.CompletedProcess[str], calls: list[str]
) -> None:
    """The token is in no output of deploy.sh and in no recorded argument list."""
    assert token not in result.stdout
    assert token not in result.stderr
    assert token not in "\n".join(calls)


def test_deploy_secret_stores_supplied_token(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """A missing secret is created from GATEWAY_API_TOKEN, passed in snow's environment only."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "secret", GATEWAY_API_TOKEN=_TOKEN)
    create = [call for call in calls if "07_gateway_secret.sql" in call]

    assert result.returncode == 0, result.stderr
    assert _sql_files(calls) == ["sql/07_gateway_secret.sql"]
    assert "SHOW SECRETS LIKE 'GATEWAY_API_TOKEN' IN SCHEMA REALTIME_ML_PIPELINE.SPCS" in calls[0]
    assert create == _calls_with_token(calls)
    assert f"token={_TOKEN_SHA256}" in create[0]
    assert "with the value of GATEWAY_API_TOKEN" in result.stdout
    # The fake snow echoes the rendered statement; deploy.sh must discard that output.
    _assert_token_hidden(_TOKEN, result, calls)


def test_deploy_secret_existing_left_unchanged(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """An existing secret keeps its value; a supplied token is reported as not stored."""
    result, calls = _run(
        deploy_copy,
        fake_bin,
        tmp_path,
        "secret",
        GATEWAY_API_TOKEN=_TOKEN,
        FAKE_SECRETS_FOUND="1",
    )

    assert result.returncode == 0, result.stderr
    assert _sql_files(calls) == []
    assert _calls_with_token(calls) == []
    assert "its value is unchanged" in result.stdout
    assert "GATEWAY_API_TOKEN was not stored" in result.stderr
    assert "rotate-token" in result.stderr
    _assert_token_hidden(_TOKEN, result, calls)


def test_deploy_secret_rerun_without_token(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Once the secret exists, a re-run needs no token and no terminal."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "secret", FAKE_SECRETS_FOUND="1")

    assert result.returncode == 0, result.stderr
    assert _sql_files(calls) == []
    assert result.stderr == ""


def test_deploy_secret_needs_token_without_terminal(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """With no token and no terminal to show a generated one on, nothing is created."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "secret")

    assert result.returncode == 1
    assert "GATEWAY_API_TOKEN is not set and there is no terminal" in result.stderr
    assert _sql_files(calls) == []


@pytest.mark.parametrize(
    "token",
    [
        "short-token",
        "a" * 31,
        "quote-ends-the-sql-string-'-0123456789abcdef",
        "space inside the token 0123456789abcdefghij",
        "template-end-%>-0123456789abcdefghijklmnopq",
        "padding-=-in-the-middle-0123456789abcdefghij",
    ],
)
def test_deploy_secret_rejects_invalid_token(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, token: str
) -> None:
    """A short token, or one outside the bearer-token characters, is rejected and not echoed."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "secret", GATEWAY_API_TOKEN=token)

    assert result.returncode == 2
    assert "GATEWAY_API_TOKEN is invalid" in result.stderr
    assert _sql_files(calls) == []
    assert token not in result.stdout + result.stderr


def test_deploy_secret_accepts_padded_token(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """A base64 token with '+', '/' and '=' padding is a valid bearer token."""
    token = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/ab=="  # noqa: S105 - test value
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "secret", GATEWAY_API_TOKEN=token)

    assert result.returncode == 0, result.stderr
    assert _sql_files(calls) == ["sql/07_gateway_secret.sql"]
    _assert_token_hidden(token, result, calls)


def test_deploy_service_creates_missing_secret_first(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """`service` on its own creates a missing secret before the service, which reads it."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "service", GATEWAY_API_TOKEN=_TOKEN)

    assert result.returncode == 0, result.stderr
    assert _sql_files(calls) == [
        "sql/06_model_service.sql",
        "sql/07_gateway_secret.sql",
        "sql/08_inference_service.sql",
    ]
    assert len(_calls_with_token(calls)) == 1


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) from util-linux")
def test_deploy_secret_generated_token_on_terminal_only(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Without GATEWAY_API_TOKEN, a generated token is shown on the terminal and nowhere else.

    script(1) gives deploy.sh a pseudo-terminal as /dev/tty, while its stdout and stderr go to
    files, as they would with `deploy.sh all | tee deploy.log`.
    """
    log = tmp_path / "calls.log"
    stdout_file = tmp_path / "deploy.out"
    stderr_file = tmp_path / "deploy.err"
    command = f"bash {deploy_copy / 'deploy.sh'} secret >{stdout_file} 2>{stderr_file}"
    environment = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "HOME": str(tmp_path),
        "SHELL": "/bin/bash",
    }
    terminal = subprocess.run(
        ["script", "--quiet", "--return", "--command", command, "/dev/null"],
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = log.read_text(encoding="utf-8").splitlines()
    shown = re.findall(r"^ {4}([A-Za-z0-9_-]{43})\s*$", terminal.stdout, re.MULTILINE)

    assert terminal.returncode == 0, stderr_file.read_text(encoding="utf-8")
    assert len(shown) == 1, terminal.stdout
    token = shown[0]
    assert "Snowflake never shows a secret value again" in terminal.stdout
    # The token shown is the one stored: the fake snow recorded its digest.
    create = _calls_with_token(calls)
    assert len(create) == 1
    assert "07_gateway_secret.sql" in create[0]
    assert f"token={hashlib.sha256(token.encode()).hexdigest()}" in create[0]
    assert "shown on the terminal only" in stdout_file.read_text(encoding="utf-8")
    # No file written during the run contains it, the outputs of deploy.sh included.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_deploy_rotate_token_alters_secret(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """rotate-token stores the new value and prints how to restart the service."""
    result, calls = _run(
        deploy_copy,
        fake_bin,
        tmp_path,
        "rotate-token",
        GATEWAY_API_TOKEN=_TOKEN,
        FAKE_SECRETS_FOUND="1",
    )
    rotate = _calls_with_token(calls)
    service = "REALTIME_ML_PIPELINE.ML_MODELS.INFERENCE_SERVICE"

    assert result.returncode == 0, result.stderr
    assert _sql_files(calls) == ["sql/ops/rotate_gateway_token.sql"]
    assert len(rotate) == 1
    assert f"token={_TOKEN_SHA256}" in rotate[0]
    assert "until its containers" in result.stdout
    assert f"ALTER SERVICE {service} SUSPEND" in result.stdout
    assert f"ALTER SERVICE {service} RESUME" in result.stdout
    _assert_token_hidden(_TOKEN, result, calls)


def test_deploy_rotate_token_needs_secret(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """rotate-token stops when there is no secret to rotate, and stores nothing."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "rotate-token", GATEWAY_API_TOKEN=_TOKEN)

    assert result.returncode == 1
    assert "does not exist; create it with deploy.sh secret" in result.stderr
    assert _sql_files(calls) == []
    assert _calls_with_token(calls) == []


def test_deploy_rotate_token_needs_token_without_terminal(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """rotate-token without a token or terminal stops before it alters the secret."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "rotate-token", FAKE_SECRETS_FOUND="1")

    assert result.returncode == 1
    assert "there is no terminal" in result.stderr
    assert _sql_files(calls) == []


def test_deploy_secret_query_failure_stops(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """A failed SHOW SECRETS stops the step instead of being read as "no secret"."""
    snow = fake_bin / "snow"
    snow.write_text(
        snow.read_text(encoding="utf-8").replace(
            '    *"SHOW SECRETS LIKE"*)\n', '    *"SHOW SECRETS LIKE"*) exit 1 ;;\n    *"never"*)\n'
        ),
        encoding="utf-8",
    )

    result, calls = _run(deploy_copy, fake_bin, tmp_path, "secret", GATEWAY_API_TOKEN=_TOKEN)

    assert result.returncode == 1
    assert "SHOW SECRETS in REALTIME_ML_PIPELINE.SPCS failed" in result.stderr
    assert _sql_files(calls) == []
