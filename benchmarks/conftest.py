"""Run modes and result files shared by every benchmark under ``benchmarks/``.

``--bench-mode quick`` (the default) runs the ratio gates with small sample counts and skips
the tests marked ``bench_full``; CI runs it as part of ``make test``. ``--bench-mode full`` runs
everything at full size, including the load sweep, the faults under load and the scaling runs,
and writes their figures as JSON under ``--bench-out`` for ``scripts/bench_report.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from evidence_persistence import PredictionRecord

BenchMode = Literal["quick", "full"]
REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("evidence benchmarks")
    group.addoption(
        "--bench-mode",
        choices=("quick", "full"),
        default="quick",
        help="quick: ratio gates with small samples (CI). full: every benchmark at full size, "
        "with load, fault and scaling runs. Default: quick.",
    )
    group.addoption(
        "--bench-out",
        default=str(REPO_ROOT / "var" / "bench"),
        help="Directory for the JSON results of the stack benchmarks in full mode "
        "(default: var/bench at the repository root).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bench_full: runs only with --bench-mode full (load, faults, scaling)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--bench-mode") == "full":
        return
    skip = pytest.mark.skip(reason="full-mode benchmark; run with --bench-mode full")
    for item in items:
        if item.get_closest_marker("bench_full") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bench_mode(request: pytest.FixtureRequest) -> BenchMode:
    """The run mode chosen with ``--bench-mode``."""
    mode: BenchMode = request.config.getoption("--bench-mode")
    return mode


def _without_samples(value: Any) -> Any:
    """Return ``value`` without the raw ``samples_ms`` lists, for printing."""
    if isinstance(value, dict):
        return {k: _without_samples(v) for k, v in value.items() if k != "samples_ms"}
    return value


@pytest.fixture(scope="session")
def record_result(request: pytest.FixtureRequest) -> Callable[[str, dict[str, Any]], None]:
    """Return a function that writes one named result as JSON; it writes only in full mode.

    Quick runs leave the files of the last full run in place, so the report always shows
    full-size figures.
    """
    out = Path(request.config.getoption("--bench-out"))
    full = request.config.getoption("--bench-mode") == "full"

    def record(name: str, data: dict[str, Any]) -> None:
        data = {**data, "load_average_1m": round(os.getloadavg()[0], 2)}
        print(f"\n{name}: {json.dumps(_without_samples(data))}")
        if not full:
            return
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    return record


def bench_record(index: int, prefix: str) -> PredictionRecord:
    """Return a prediction record with id ``{prefix}-{index}`` and made-up feature values.

    The persistence and stack benchmarks share it, so their records stay alike.
    """
    return PredictionRecord(
        prediction_id=f"{prefix}-{index:09d}",
        policy_number=f"POL{index:09d}",
        features=tuple(float(index % 13) + c / 7 for c in range(len(FEATURE_NAMES))),
        feature_spec_version=FEATURE_SPEC_VERSION,
        risk_score=0.42,
        risk_level="MEDIUM",
        model_name="EVIDENCE_RISK_MODEL",
        model_version="REGISTRY_V2",
        source="API",
        inference_ms=3.7,
        created_at=datetime.now(UTC),
        warnings=("unknown_drug",),
    )
