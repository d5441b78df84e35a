"""Tests of chunked work in forked workers and of the command line's lazy imports."""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import evidence_training
import numpy as np
import pytest
from evidence_synthetic import generate_pairs, write_pairs
from evidence_training.dataset import load_directory_set
from evidence_training.workers import run_chunks


def _square(value: int) -> int:
    return value * value


def _fail(value: int) -> int:
    msg = f"chunk {value} failed"
    raise ValueError(msg)


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_chunks_keeps_task_order(jobs: int) -> None:
    """Results come back in task order with one process or with two workers."""
    tasks = [partial(_square, value) for value in range(7)]

    results = run_chunks(tasks, sizes=[1] * 7, jobs=jobs, progress=False)

    assert results == [0, 1, 4, 9, 16, 25, 36]


def test_run_chunks_preload_imports_module() -> None:
    """Modules named in preload are imported in the calling process."""
    sys.modules.pop("colorsys", None)

    run_chunks([partial(_square, 2)], sizes=[1], jobs=2, progress=False, preload=("colorsys",))

    assert "colorsys" in sys.modules


def test_run_chunks_worker_error_propagates() -> None:
    """An exception raised in a worker reaches the caller unchanged."""
    with pytest.raises(ValueError, match="chunk 3 failed"):
        run_chunks([partial(_fail, 3), partial(_square, 1)], sizes=[1, 1], jobs=2, progress=False)


def test_load_directory_set_workers_match_single_process(tmp_path: Path) -> None:
    """Workers that read the files themselves build the same matrix as one process."""
    data = tmp_path / "data"
    write_pairs(generate_pairs(30, seed=6), data)

    single = load_directory_set(data, jobs=1, progress=False)
    parallel = load_directory_set(data, jobs=2, progress=False)

    np.testing.assert_array_equal(single.matrix, parallel.matrix)
    assert single.policy_numbers == parallel.policy_numbers


def test_cli_import_skips_heavy_libraries() -> None:
    """Importing the command line loads neither scikit-learn, matplotlib nor pandas."""
    code = (
        "import sys, evidence_training.cli; "
        "print(sorted(m for m in ('sklearn', 'matplotlib', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "[]"


def test_package_lazy_names_resolve() -> None:
    """Every name in evidence_training.__all__ resolves, and an unknown one raises."""
    for name in evidence_training.__all__:
        assert getattr(evidence_training, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = evidence_training.missing
