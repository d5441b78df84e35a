"""deploy/deploy.sh runs the steps in order, reads settings, and fails on a bad smoke test.

There is no Snowflake account here, so ``snow`` and ``docker`` are replaced by small fakes on
PATH that record their arguments and print canned JSON, the boundary the script talks to.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]

_FAKE_SNOW = r"""#!/usr/bin/env bash
# Record the call and the model host in its environment, then print what the Snowflake CLI
# would print for the queries deploy.sh parses.
printf '%s | dns=%s\n' "$(printf '%s' "$*" | tr '\n' ' ')" "${model_service_dns:-}" >> "$FAKE_LOG"
ready_default='[{"OK_READY": true}]'
smoke_default='[[{"STATUS": "healthy", "OK_HEALTH": true}], [{"OK_ROW": true}]]'
args="$*"
case "$args" in
    *"image-repository url"*) echo "org-acct.registry.snowflakecomputing.com/db/spcs/images" ;;
    *"SHOW SERVICES LIKE"*)
        if [[ -n "${FAKE_NO_MODEL:-}" ]]; then echo '[]'; else
        echo '[{"name": "RISK_MODEL_SVC", "status": "RUNNING",
        "dns_name": "risk-model-svc.ab12.svc.spcs.internal"}]'; fi ;;
    *"ok_ready"*) echo "${FAKE_READY_JSON:-$ready_default}" ;;
    *"10_smoke_test.sql"*) echo "${FAKE_SMOKE_JSON:-$smoke_default}" ;;
esac
exit 0
"""

_FAKE_DOCKER = """#!/usr/bin/env bash
printf 'docker %s\\n' "$*" >> "$FAKE_LOG"
"""

_FAKE_TRAIN = """#!/usr/bin/env bash
printf 'evidence-train %s\\n' "$*" >> "$FAKE_LOG"
"""


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
    # Stands in for the dashboard's bundle.py: records its arguments and writes lib/.
    (app / "bundle.py").write_text(
        "import os, pathlib, sys\n"
        "app = pathlib.Path(__file__).parent\n"
        "(app / 'lib' / 'evidence_dashboard').mkdir(parents=True, exist_ok=True)\n"
        "with open(os.environ['FAKE_LOG'], 'a') as log:\n"
        "    log.write('bundle ' + ' '.join(sys.argv[1:]) + '\\n')\n",
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
    deploy_copy: Path, fake_bin: Path, tmp_path: Path, *args: str, **extra_env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = tmp_path / "calls.log"
    log.write_text("", encoding="utf-8")
    environment = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "HOME": str(tmp_path),
        **extra_env,
    }
    result = subprocess.run(
        ["bash", str(deploy_copy / "deploy.sh"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, log.read_text(encoding="utf-8").splitlines()


def _sql_files(calls: list[str]) -> list[str]:
    files = []
    for call in calls:
        words = call.split(" | ")[0].split()
        if words[:1] == ["sql"] and "-f" in words:
            files.append(words[words.index("-f") + 1])
    return files


def test_deploy_all_runs_steps_in_order(deploy_copy: Path, fake_bin: Path, tmp_path: Path) -> None:
    """`all` runs the ten numbered scripts in order, with images and uploads in between."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "-c", "prod", "all")

    assert result.returncode == 0, result.stderr
    assert _sql_files(calls) == [
        "sql/01_account_setup.sql",
        "sql/02_database.sql",
        "sql/03_hybrid_tables.sql",
        "sql/04_compute_pool_and_repository.sql",
        "sql/05_grants.sql",
        "sql/06_model_service.sql",
        "sql/07_inference_service.sql",
        "sql/08_service_functions.sql",
        "sql/09_streamlit.sql",
        "sql/10_smoke_test.sql",
    ]
    without_connection = [
        call
        for call in calls
        if call.startswith(("sql ", "spcs ", "stage ")) and "-c prod" not in call
    ]
    assert without_connection == []


def test_deploy_images_built_for_amd64_and_pushed(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """The gateway and worker images are built for linux/amd64 with the tag and pushed."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "images", image_tag="9.9.9")
    repository = "org-acct.registry.snowflakecomputing.com/db/spcs/images"
    docker_calls = [call for call in calls if call.startswith("docker ")]

    assert result.returncode == 0, result.stderr
    assert len(docker_calls) == 4
    for image in ("gateway", "worker"):
        build = next(call for call in docker_calls if f"{image}.Dockerfile" in call)
        assert "--platform linux/amd64" in build
        assert f"-t {repository}/evidence-{image}:9.9.9" in build
        assert f"docker push {repository}/evidence-{image}:9.9.9" in docker_calls


def test_deploy_service_passes_model_dns(deploy_copy: Path, fake_bin: Path, tmp_path: Path) -> None:
    """The model step reads dns_name and exports it before the gateway service is created."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "service")
    create = next(call for call in calls if "07_inference_service.sql" in call)
    model_check = next(call for call in calls if "06_model_service.sql" in call)

    assert result.returncode == 0, result.stderr
    assert create.endswith("dns=risk-model-svc.ab12.svc.spcs.internal")
    assert model_check.endswith("dns=")


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
    """An unknown command exits 2 with the usage text and runs nothing."""
    result, calls = _run(deploy_copy, fake_bin, tmp_path, "deploy-everything")

    assert result.returncode == 2
    assert "Usage: deploy/deploy.sh" in result.stderr
    assert calls == []


def test_deploy_teardown_needs_confirmation(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """Teardown runs only when the database name is typed back."""
    log = tmp_path / "calls.log"
    environment = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "HOME": str(tmp_path),
    }
    refused = subprocess.run(
        ["bash", str(deploy_copy / "deploy.sh"), "teardown"],
        input="yes\n",
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    confirmed = subprocess.run(
        ["bash", str(deploy_copy / "deploy.sh"), "teardown"],
        input="REALTIME_ML_PIPELINE\n",
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert refused.returncode == 1
    assert "teardown cancelled" in refused.stderr
    assert confirmed.returncode == 0, confirmed.stderr
    assert _sql_files(log.read_text(encoding="utf-8").splitlines()) == ["sql/ops/teardown.sql"]


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
    assert _sql_files(calls) == ["sql/09_streamlit.sql"]


def test_deploy_streamlit_requires_main_file(
    deploy_copy: Path, fake_bin: Path, tmp_path: Path
) -> None:
    """The Streamlit step stops when the app's main file is missing."""
    (deploy_copy / "streamlit" / "streamlit_app.py").unlink()

    result, calls = _run(deploy_copy, fake_bin, tmp_path, "streamlit")

    assert result.returncode == 1
    assert "streamlit_app.py not found" in result.stderr
    assert calls == []
