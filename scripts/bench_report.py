"""Render the whole-stack benchmark results as PNG plots and Markdown tables.

Reads the JSON files that ``pytest benchmarks --bench-mode full`` writes to ``var/bench/``,
writes ``docs/img/bench_*.png``, and writes the tables plus the machine and versions to
``var/bench/report.md`` (also printed), to paste into docs/benchmarks.md. A result file that is
missing is skipped with a note, so a partial run still renders what it has.

Usage: python scripts/bench_report.py [--results var/bench] [--images docs/img]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import matplotlib

# The Agg backend (PNG files, no display) must be chosen before pyplot is imported.
matplotlib.use("Agg")
import matplotlib.pyplot as plt

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fastapi", "uvicorn", "starlette", "httpx", "lxml", "numpy", "scikit-learn",
            "orjson", "pydantic")  # fmt: skip
STAGE_LABELS = {
    "extract": "feature extraction",
    "predict": "/v1/predict end to end",
    "model_call": "model call",
    "queue_append": "queue append",
}

Json = dict[str, Any]


def _load(results: Path, name: str) -> Json | None:
    path = results / f"{name}.json"
    if not path.is_file():
        print(f"note: {path} is missing; its plot and table are skipped", file=sys.stderr)
        return None
    loaded: Json = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(value: float) -> str:
    """Format milliseconds with three significant digits below 10 ms, one decimal above."""
    if value < 1:
        return f"{value:,.3f}"
    if value < 10:
        return f"{value:,.2f}"
    return f"{value:,.1f}"


def machine_section() -> str:
    """Machine, operating system and package versions of this interpreter."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return "\n".join([
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"- Packages: {', '.join(versions)}",
    ])  # fmt: skip


def stages_section(data: Json, images: Path) -> str:
    """Floor-versus-subject table, latency budget table and two plots."""
    rows = []
    for key, pair in data["stages"].items():
        for role in ("floor", "subject"):
            part = pair[role]
            rows.append([
                STAGE_LABELS[key] if role == "subject" else "",
                part["name"],
                _ms(part["p50_ms"]), _ms(part["p95_ms"]), _ms(part["p99_ms"]),
                f"{pair['p50_ratio']:.2f}" if role == "subject" else "1",
            ])  # fmt: skip
    stage_table = _table(["stage", "measured", "p50 ms", "p95 ms", "p99 ms", "p50 / floor"], rows)
    budget = data["budget"]
    budget_rows = [[name, _ms(value)] for name, value in budget["parts_ms"].items()]
    budget_rows.append(["**end to end (/v1/predict p50)**", _ms(budget["end_to_end_p50_ms"])])
    budget_table = _table(["part", "p50 ms"], budget_rows)

    figure, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    for axis, (key, pair) in zip(axes, data["stages"].items(), strict=True):
        for role, colour in (("floor", "tab:gray"), ("subject", "tab:blue")):
            samples = sorted(pair[role]["samples_ms"])
            fractions = [(i + 1) / len(samples) for i in range(len(samples))]
            axis.plot(samples, fractions, color=colour, label=pair[role]["name"])
        axis.set_xscale("log")
        axis.set_title(STAGE_LABELS[key])
        axis.set_xlabel("latency (ms, log)")
        axis.legend(fontsize=6, loc="lower right")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of calls")
    figure.suptitle("Latency distributions: each stage against its floor, same run")
    figure.tight_layout()
    figure.savefig(images / "bench_stages_cdf.png", dpi=110)
    plt.close(figure)
    return f"{stage_table}\n\nMedian split of one /v1/predict:\n\n{budget_table}"


def rate_section(data: Json, images: Path) -> str:
    """Rate sweep table and rate-versus-latency plot."""
    steps = data["steps"]
    rows = [[s["rate"], s["achieved_rps"], _ms(s["p50_ms"]), _ms(s["p95_ms"]), _ms(s["p99_ms"]),
             s["errors"], f"{100 * s['fallback_share']:.1f} %"] for s in steps]  # fmt: skip
    table = _table(["offered req/s", "answered req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                    "fallback"], rows)  # fmt: skip
    held = (f"Highest rate held (p99 under the bound, no errors, fallback at most 1 %): "
            f"{data['held_rate_p99_under_100_ms']:g} req/s under 100 ms, "
            f"{data['held_rate_p99_under_10_ms']:g} req/s under 10 ms.")  # fmt: skip

    figure, axis = plt.subplots(figsize=(7, 4))
    rates = [s["rate"] for s in steps]
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
        axis.plot(rates, [s[key] for s in steps], style, label=key.replace("_ms", ""))
    for bound in (10, 100):
        axis.axhline(bound, color="tab:red", linestyle=":", linewidth=1)
        axis.text(rates[0], bound * 1.08, f"{bound} ms", color="tab:red", fontsize=8)
    axis.set_yscale("log")
    axis.set_xlabel("offered rate (requests/s, open loop)")
    axis.set_ylabel("latency (ms, log)")
    axis.set_title("/v1/predict latency against arrival rate, 2 cores shared")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(images / "bench_rate_p99.png", dpi=110)
    plt.close(figure)
    return f"{table}\n\n{held}"


def scaling_section(rx: Json | None, batches: Json | None, images: Path) -> str:
    """Tables and plots of latency against Rx size and against batch size."""
    parts = []
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    if rx is not None:
        reports = rx["reports"]
        parts.append(_table(
            ["fills", "Rx KB", "extract p50 ms", "extract p99 ms", "/v1/predict p50 ms",
             "/v1/predict p99 ms"],
            [[r["fills"], f"{r['rx_bytes'] / 1024:.0f}", _ms(r["extract"]["p50_ms"]),
              _ms(r["extract"]["p99_ms"]), _ms(r["predict"]["p50_ms"]),
              _ms(r["predict"]["p99_ms"])] for r in reports],
        ))  # fmt: skip
        fills = [r["fills"] for r in reports]
        left.plot(fills, [r["extract"]["p50_ms"] for r in reports], "o-", label="extract p50")
        left.plot(fills, [r["predict"]["p50_ms"] for r in reports], "s-", label="/v1/predict p50")
        left.plot(fills, [r["predict"]["p99_ms"] for r in reports], "^--", label="/v1/predict p99")
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xlabel("fills in the Rx report (log)")
        left.set_ylabel("latency (ms, log)")
        left.set_title("Latency against Rx report size")
        left.grid(alpha=0.3)
        left.legend()
    if batches is not None:
        sizes = batches["batches"]
        parts.append(_table(
            ["rows", "wall p50 ms", "wall p99 ms", "server CPU p50 ms", "wall p50 per row ms"],
            [[b["rows"], _ms(b["wall"]["p50_ms"]), _ms(b["wall"]["p99_ms"]), _ms(b["cpu_p50_ms"]),
              _ms(b["wall_p50_per_row_ms"])] for b in sizes],
        ))  # fmt: skip
        rows = [b["rows"] for b in sizes]
        right.plot(rows, [b["wall"]["p50_ms"] for b in sizes], "o-", label="wall p50")
        right.plot(rows, [b["cpu_p50_ms"] for b in sizes], "s-", label="server CPU p50")
        right.axhline(50, color="tab:red", linestyle=":", linewidth=1)
        right.text(rows[0], 55, "50 ms", color="tab:red", fontsize=8)
        right.set_xscale("log")
        right.set_yscale("log")
        right.set_xlabel("rows in one /functions/predict batch (log)")
        right.set_ylabel("ms per batch (log)")
        right.set_title("Latency against service-function batch size")
        right.grid(alpha=0.3)
        right.legend()
    figure.tight_layout()
    figure.savefig(images / "bench_scaling.png", dpi=110)
    plt.close(figure)
    return "\n\n".join(parts)


def faults_section(model: Json | None, worker: Json | None, images: Path) -> str:
    """Tables and a two-panel plot of the faults under load."""
    parts = []
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    if model is not None:
        rows = [[phase, model[phase]["requests"], model[phase]["errors"],
                 f"{100 * model[phase]['fallback_share']:.0f} %", _ms(model[phase]["p50_ms"]),
                 _ms(model[phase]["p99_ms"]), _ms(model[phase]["max_ms"])]
                for phase in ("before", "after")]  # fmt: skip
        parts.append(_table(["model server", "requests", "errors", "fallback", "p50 ms",
                             "p99 ms", "max ms"], rows))  # fmt: skip
        seconds = [b["second"] for b in model["per_second"]]
        left.bar(seconds, [100 * b["fallback_share"] for b in model["per_second"]],
                 color="tab:orange", alpha=0.6, label="fallback share (%)")  # fmt: skip
        twin = left.twinx()
        twin.plot(seconds, [b["p99_ms"] for b in model["per_second"]], "k.-", label="p99 ms")
        twin.set_ylabel("p99 per second (ms)")
        left.axvline(model["seconds"] / 2, color="tab:red", linestyle=":")
        left.set_xlabel("second of the run (model server stopped at the dotted line)")
        left.set_ylabel("fallback share (%)")
        left.set_title(f"Model server stopped at {model['rate']:g} req/s")
    if worker is not None:
        parts.append(_table(
            ["answered", "errors", "queue depth at restart", "restart to empty (s)", "stored"],
            [[worker["answered"], worker["errors"], worker["depth_at_restart"],
              worker["restart_to_empty_seconds"], worker["stored"]]],
        ))  # fmt: skip
        times = [t for t, _ in worker["depths"]]
        right.plot(times, [d for _, d in worker["depths"]], "o-")
        right.axvline(worker["seconds"] / 2, color="tab:red", linestyle=":")
        right.set_xlabel("second of the run (worker stopped at the dotted line)")
        right.set_ylabel("queue depth (records)")
        right.set_title(f"Worker stopped at {worker['rate']:g} req/s")
        right.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(images / "bench_faults.png", dpi=110)
    plt.close(figure)
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO_ROOT / "var" / "bench",
        help="directory of the JSON results (default: var/bench)",
    )
    parser.add_argument("--images", type=Path, default=REPO_ROOT / "docs" / "img",
                        help="directory for the PNG plots (default: docs/img)")  # fmt: skip
    args = parser.parse_args(argv)
    args.images.mkdir(parents=True, exist_ok=True)

    def load(name: str) -> Json | None:
        return _load(args.results, name)

    sections: list[tuple[str, Callable[[], str]]] = [("Machine", machine_section)]
    stages, sweep = load("stages"), load("rate_sweep")
    if stages is not None:
        sections.append(("Stages", lambda: stages_section(stages, args.images)))
    if sweep is not None:
        sections.append(("Rate sweep", lambda: rate_section(sweep, args.images)))
    rx, batches = load("rx_sizes"), load("batch_sizes")
    if rx is not None or batches is not None:
        sections.append(("Scaling", lambda: scaling_section(rx, batches, args.images)))
    model, worker = load("fault_model_stopped"), load("fault_worker_stopped")
    if model is not None or worker is not None:
        sections.append(("Faults", lambda: faults_section(model, worker, args.images)))
    batch = load("batch_200")
    if batch is not None:
        sections.append(("200-row batch", lambda: "```\n" + json.dumps(batch, indent=2) + "\n```"))

    text = "\n\n".join(f"### {title}\n\n{render()}" for title, render in sections)
    (args.results / "report.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
