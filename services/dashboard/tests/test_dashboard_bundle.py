"""The Streamlit-in-Snowflake bundle: self-contained sources and a complete environment.yml."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
import yaml

if TYPE_CHECKING:
    from .conftest import StoreFixture

REPO_ROOT = Path(__file__).resolve().parents[3]
DEPLOY_DIR = REPO_ROOT / "deploy" / "streamlit"
STANDARD_LIBRARY = set(sys.stdlib_module_names)
# Import name -> conda package name where the two differ.
CONDA_NAMES = {
    "pydantic_settings": "pydantic-settings",
    "snowflake": "snowflake-snowpark-python",
    "pydantic": "pydantic-settings",  # installed with pydantic-settings
}
FIRST_PARTY = {"evidence_dashboard", "evidence_features", "evidence_logging"}


def load_bundle_module() -> ModuleType:
    """Import deploy/streamlit/bundle.py by path."""
    spec = importlib.util.spec_from_file_location("dashboard_bundle", DEPLOY_DIR / "bundle.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bundle_dir(tmp_path: Path, filled_store: StoreFixture) -> Path:
    """A copy of the app folder with the bundle written into it."""
    for name in ("streamlit_app.py", "environment.yml"):
        (tmp_path / name).write_bytes((DEPLOY_DIR / name).read_bytes())
    load_bundle_module().bundle(tmp_path, filled_store.artifact_dir)
    return tmp_path


def test_bundle_writes_packages_and_metadata(bundle_dir: Path) -> None:
    """The bundle contains the three packages, the feature spec data and the model metadata."""
    assert (bundle_dir / "lib" / "evidence_dashboard" / "page.py").is_file()
    assert (bundle_dir / "lib" / "evidence_logging" / "__init__.py").is_file()
    assert (bundle_dir / "lib" / "evidence_features" / "data" / "feature_spec.toml").is_file()
    assert (bundle_dir / "model" / "metadata.json").is_file()
    assert not (bundle_dir / "lib" / "evidence_dashboard" / "cli.py").exists()


def test_bundle_imports_from_its_own_folder(bundle_dir: Path) -> None:
    """With only lib/ prepended, the page imports the bundled copies, not the workspace's."""
    lib = bundle_dir / "lib"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import evidence_dashboard.page, evidence_features; "
        "print(evidence_dashboard.page.__file__); print(len(evidence_features.FEATURE_NAMES))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(lib)], capture_output=True, text=True, check=False
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    page_file, feature_count = completed.stdout.split()
    assert Path(page_file).is_relative_to(lib)
    assert feature_count == "105"


def test_environment_lists_every_third_party_import(bundle_dir: Path) -> None:
    """Each third-party package the bundled code imports is a dependency in environment.yml."""
    environment = yaml.safe_load((DEPLOY_DIR / "environment.yml").read_text(encoding="utf-8"))
    declared = {
        dependency.split("=")[0].split(">")[0].split("<")[0].strip()
        for dependency in environment["dependencies"]
    }
    imported: set[str] = set()
    for path in (bundle_dir / "lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - STANDARD_LIBRARY - FIRST_PARTY - {"__future__"}

    missing = {name for name in third_party if CONDA_NAMES.get(name, name) not in declared}
    assert set() == missing
