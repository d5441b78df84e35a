"""What ``evidence-stack`` does with a ``var/model`` that contains no complete artifact.

Training may only fill a missing or empty folder: the stack never deletes an operator's files,
such as an artifact copy that stopped halfway, and a filesystem error becomes a message.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from evidence_gateway.stack.processes import StackError, check_model_dir, install_model
from evidence_gateway.testing import free_port, script_path

REPO_ROOT = Path(__file__).resolve().parents[3]
HALF_COPIED = b"first bytes of model.joblib"


def _staging(tmp_path: Path) -> Path:
    staging = tmp_path / "model.partial"
    staging.mkdir()
    (staging / "model.joblib").write_bytes(b"new model")
    (staging / "metadata.json").write_text("{}")
    return staging


def test_check_model_dir_missing_or_empty(tmp_path: Path) -> None:
    check_model_dir(tmp_path / "model")
    (tmp_path / "model").mkdir()
    check_model_dir(tmp_path / "model")


def test_check_model_dir_half_copied(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.joblib").write_bytes(HALF_COPIED)

    with pytest.raises(StackError, match="contains files but no complete artifact") as info:
        check_model_dir(model_dir)

    assert str(model_dir) in str(info.value)
    assert "move the folder away" in str(info.value)
    assert (model_dir / "model.joblib").read_bytes() == HALF_COPIED


def test_check_model_dir_many_entries(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "plots").mkdir(parents=True)
    (model_dir / "report.json").write_text("{}")
    (model_dir / "metadata.json").write_text("{}")

    with pytest.raises(StackError, match="contains files"):
        check_model_dir(model_dir)

    assert sorted(path.name for path in model_dir.iterdir()) == [
        "metadata.json",
        "plots",
        "report.json",
    ]


@pytest.mark.parametrize("dangling", [False, True], ids=["to-empty-folder", "dangling"])
def test_check_model_dir_symlink(tmp_path: Path, dangling: bool) -> None:
    target = tmp_path / "shared-models"
    if not dangling:
        target.mkdir()
    model_dir = tmp_path / "model"
    model_dir.symlink_to(target)

    with pytest.raises(StackError, match="symbolic link") as info:
        check_model_dir(model_dir)

    assert str(model_dir) in str(info.value)
    assert str(target) in str(info.value)
    assert model_dir.is_symlink()
    assert target.is_dir() is not dangling


def test_check_model_dir_file(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.write_text("not a folder")

    with pytest.raises(StackError, match="is not a folder"):
        check_model_dir(model_dir)

    assert model_dir.read_text() == "not a folder"


@pytest.mark.parametrize("existing", [False, True], ids=["missing", "empty"])
def test_install_model_replaces(tmp_path: Path, existing: bool) -> None:
    model_dir = tmp_path / "model"
    if existing:
        model_dir.mkdir()
    staging = _staging(tmp_path)

    install_model(staging, model_dir)

    assert (model_dir / "model.joblib").read_bytes() == b"new model"
    assert not staging.exists()


def test_install_model_keeps_new_files(tmp_path: Path) -> None:
    """A file copied into the folder while training ran is neither deleted nor overwritten."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.joblib").write_bytes(HALF_COPIED)
    staging = _staging(tmp_path)

    with pytest.raises(StackError, match="cannot move the trained model") as info:
        install_model(staging, model_dir)

    assert str(model_dir) in str(info.value)
    assert (model_dir / "model.joblib").read_bytes() == HALF_COPIED
    assert (staging / "model.joblib").read_bytes() == b"new model"


def test_install_model_keeps_symlink(tmp_path: Path) -> None:
    target = tmp_path / "shared-models"
    target.mkdir()
    model_dir = tmp_path / "model"
    model_dir.symlink_to(target)
    staging = _staging(tmp_path)

    with pytest.raises(StackError, match="cannot move the trained model"):
        install_model(staging, model_dir)

    assert model_dir.is_symlink()
    assert target.is_dir()
    assert (staging / "metadata.json").is_file()


def test_install_model_missing_staging(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="cannot move the trained model"):
        install_model(tmp_path / "model.partial", tmp_path / "model")


def _run_stack(var_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script_path("evidence-stack"), "--once", "--root", str(REPO_ROOT),
         "--var-dir", str(var_dir), "--gateway-port", str(free_port()),
         "--model-port", str(free_port()), "--no-dashboard", "--train-rows", "200"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def test_stack_half_copied_artifact_kept(tmp_path: Path) -> None:
    model_dir = tmp_path / "var" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "model.joblib").write_bytes(HALF_COPIED)

    result = _run_stack(tmp_path / "var")

    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "move the folder away" in output
    assert (model_dir / "model.joblib").read_bytes() == HALF_COPIED
    assert not (model_dir / "metadata.json").exists()
    assert not (tmp_path / "var" / "model.partial").exists()


def test_stack_symlinked_model_dir_kept(tmp_path: Path) -> None:
    target = tmp_path / "shared-models"
    target.mkdir()
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    (var_dir / "model").symlink_to(target)

    result = _run_stack(var_dir)

    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "symbolic link" in output
    assert (var_dir / "model").is_symlink()
    assert list(target.iterdir()) == []
