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
    assert "/docs" in output
    assert (var_dir / "store.sqlite3").is_file()
