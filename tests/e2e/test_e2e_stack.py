"""``evidence-stack --once`` from the repository root, on free ports and a temporary var/."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from evidence_gateway.testing import free_port, script_path

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_stack_once_scores_samples(tmp_path: Path, trained_model_dir: Path) -> None:
    """The stack comes up, scores every sample through both paths and finds them stored."""
    var_dir = tmp_path / "var"
    shutil.copytree(trained_model_dir, var_dir / "model")

    result = subprocess.run(
        [
            script_path("evidence-stack"),
            "--once",
            "--root",
            str(REPO_ROOT),
            "--var-dir",
            str(var_dir),
            "--gateway-port",
            str(free_port()),
            "--model-port",
            str(free_port()),
            "--dashboard-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    output = result.stdout
    stored = re.search(r"(\d+) of (\d+) predictions are in ML_MODELS__MODEL_PREDICTIONS", output)
    assert stored is not None, output[-3000:]
    assert stored.group(1) == stored.group(2)
    samples = len([p for p in (REPO_ROOT / "data" / "samples").iterdir() if p.is_dir()])
    # One API and one SQL prediction per sample folder; smoke/ adds two applicants.
    assert int(stored.group(2)) == 2 * (samples + 1)
    # The API and the SQL path score the same policies, and the table keeps one row per policy.
    online = re.search(r"FEATURE_STORE__ONLINE_FEATURES rows: (\d+)\n", output)
    assert online is not None, output[-3000:]
    assert int(online.group(1)) == samples + 1
    assert "TEST-001" in output
    assert "REGISTRY_V2" in output
    assert "RULE_BASED" not in output
    assert "REGISTRY_UNKNOWN" not in output
    # --once stops the stack right after scoring, so it prints no URLs, which would not respond.
    assert "local stack" not in output
    assert "/docs" not in output
    assert (var_dir / "store.sqlite3").is_file()
    # supervisord logs a stop at INFO level only when the process exits with status 0.
    stack_log = (var_dir / "stack.log").read_text(encoding="utf-8")
    for name in ("model", "gateway", "worker", "dashboard"):
        assert f"INFO stopped: {name} (exit status 0)" in stack_log, stack_log
    assert "terminated by" not in stack_log, stack_log


# One row of a result table: path, policy, risk_score, risk_level and model_version.
_RESULT_ROW = re.compile(r"^\s*│ (API|SQL)\s+│ (\S+)\s+│\s+([\d.]+) │ (\w+)\s+│ (\w+)\s+│", re.M)


def _readme_excerpt_rows() -> list[tuple[str, ...]]:
    """Return the result rows of the README's sample-results excerpt under `make run`."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### `make run`") : readme.index("### `make test`")]
    return [match.groups() for match in _RESULT_ROW.finditer(section)]


def test_stack_first_run_matches_readme(tmp_path: Path) -> None:
    """A first run trains as `make run` does, prints the README's scores and logs cleanly.

    The stack trains with its default rows and seed, so its scores must equal the excerpt.
    """
    expected = _readme_excerpt_rows()
    var_dir = tmp_path / "var"

    result = subprocess.run(
        [
            script_path("evidence-stack"),
            "--once",
            "--no-dashboard",
            "--root", str(REPO_ROOT),
            "--var-dir", str(var_dir),
            "--gateway-port", str(free_port()),
            "--model-port", str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert len(expected) >= 2, "the README excerpt lost its result rows"
    printed = {row[:2]: row for row in (m.groups() for m in _RESULT_ROW.finditer(result.stdout))}
    for row in expected:
        assert printed.get(row[:2]) == row, f"README row {row} differs from the stack's output"
    stack_log = (var_dir / "stack.log").read_text(encoding="utf-8")
    assert "\r" not in stack_log, "progress bars reached the stack log"
    gateway_log = (var_dir / "logs" / "gateway.log").read_text(encoding="utf-8")
    assert "health check failed" not in gateway_log
    waiting = [line for line in gateway_log.splitlines() if "waiting for model service" in line]
    assert all("error_kind" not in line for line in waiting), waiting
    assert not (var_dir / "model.partial").exists()
    assert f"moved the trained model from {var_dir / 'model.partial'} to {var_dir / 'model'}" in (
        stack_log
    )
