"""Generation speed of the synthetic evidence: one pair, and Rx reports of 50 and 1,000 fills.

Run with ``pytest benchmarks/synthetic -p no:randomly --benchmark-only``. The gate compares two
report sizes measured in the same run, never an absolute time.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import numpy as np
import pytest
from evidence_synthetic import generate_pair, generate_rx_report

AS_OF = date(2024, 3, 16)


def test_bench_generate_pair(benchmark: Any) -> None:
    """One applicant: latent state, both reports rendered to bytes, label."""
    rng = np.random.default_rng(1)
    benchmark(generate_pair, rng, as_of=AS_OF)


@pytest.mark.parametrize("fills", [50, 1000])
def test_bench_rx_report(benchmark: Any, fills: int) -> None:
    """An IntelRX report with a fixed number of fills."""
    rng = np.random.default_rng(2)
    benchmark(generate_rx_report, rng, fills, as_of=AS_OF)


def _best_cpu_seconds(fills: int, repeats: int) -> float:
    # CPU seconds of this process: on one thread they grow far less than wall time when other
    # processes compete for the cores.
    rng = np.random.default_rng(3)
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        generate_rx_report(rng, fills, as_of=AS_OF)
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.benchmark_gate
def test_bench_rx_report_grows_linearly() -> None:
    """A report with 20x the fills costs at most 40x the time (a quadratic step would be 400x)."""
    small = _best_cpu_seconds(50, repeats=60)
    large = _best_cpu_seconds(1000, repeats=8)
    assert large < 40 * small, f"50 fills {small * 1e3:.2f} ms, 1000 fills {large * 1e3:.2f} ms"
