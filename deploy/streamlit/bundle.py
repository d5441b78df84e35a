"""Copy the dashboard's sources into this folder so Streamlit in Snowflake can import them.

Streamlit in Snowflake's warehouse runtime installs packages only from the Snowflake Anaconda
channel, so the project's own packages travel as source files on the app's stage. This script
writes ``lib/evidence_dashboard``, ``lib/evidence_features``, ``lib/evidence_logging`` and,
when the model artifact exists, ``model/metadata.json`` (the training histograms the drift
panel compares against).
It uses only the standard library, so any Python 3.11 runs it.

Usage: ``python3 deploy/streamlit/bundle.py [--artifact-dir var/model]``
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parents[1]
PACKAGES = {
    "evidence_dashboard": REPO_ROOT / "services" / "dashboard" / "src" / "evidence_dashboard",
    "evidence_features": REPO_ROOT / "libs" / "features" / "src" / "evidence_features",
    "evidence_logging": REPO_ROOT / "libs" / "logging" / "src" / "evidence_logging",
}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "app.py", "cli.py")


def bundle(app_dir: Path, artifact_dir: Path) -> list[Path]:
    """Write the package sources and the model metadata under ``app_dir``; return the roots.

    ``app.py`` (the local entry point) and ``cli.py`` (the local launcher) are left out, since
    Streamlit in Snowflake starts ``streamlit_app.py``.

    Raises:
        FileNotFoundError: a package source directory is missing.
    """
    lib = app_dir / "lib"
    if lib.exists():
        shutil.rmtree(lib)
    written = []
    for name, source in PACKAGES.items():
        if not source.is_dir():
            msg = f"package source {source} not found; run bundle.py from a full checkout"
            raise FileNotFoundError(msg)
        target = lib / name
        shutil.copytree(source, target, ignore=IGNORED)
        written.append(target)
    metadata = artifact_dir / "metadata.json"
    model_dir = app_dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    if metadata.is_file():
        model_dir.mkdir()
        shutil.copy2(metadata, model_dir / "metadata.json")
        written.append(model_dir)
    else:
        print(f"bundle.py: {metadata} not found; the drift panel will say it is unavailable")
    return written


def main() -> None:
    """Parse the arguments and write the bundle."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--artifact-dir",
        type=Path,
        default=REPO_ROOT / "var" / "model",
        help="Model artifact directory whose metadata.json is bundled (default: var/model).",
    )
    args = parser.parse_args()
    for path in bundle(APP_DIR, args.artifact_dir):
        print(f"bundle.py: wrote {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
