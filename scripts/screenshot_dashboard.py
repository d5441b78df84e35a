"""Take a headless Chromium screenshot of the dashboard, on a demo stack or a running instance.

Without ``--url`` the script builds a demo on 127.0.0.1 in a temporary directory: it trains a
small model on synthetic evidence, starts the model server, gateway, persistence worker and
dashboard on free ports, scores synthetic pairs through the gateway (some while the model server
is stopped, so the fallback share shows, and some with a later ``as_of`` date, so drift shows),
waits for the worker to store them, and photographs the page. With ``--url`` it only takes the
screenshot of a dashboard that is already running.

Usage::

    .venv/bin/python scripts/screenshot_dashboard.py --out docs/img/dashboard.png
    .venv/bin/python scripts/screenshot_dashboard.py --url http://127.0.0.1:8501 --out shot.png

Needs Debian's ``chromium`` package (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import httpx
from evidence_gateway.testing import (
    ServerProcess,
    free_port,
    script_path,
    start_gateway,
    start_model_server,
    start_worker,
)
from evidence_synthetic import generate_pairs

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
BATCH_SIZE = 50


def take_screenshot(url: str, out: Path, *, window_size: str, budget_ms: int) -> None:
    """Photograph ``url`` with headless Chromium into ``out`` (PNG)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        msg = "chromium not found; install it with: apt-get update && apt-get install -y chromium"
        raise SystemExit(msg)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dashboard-chromium-") as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={out.resolve()}",
            f"--window-size={window_size}",
            f"--virtual-time-budget={budget_ms}",
            url,
        ]
        completed = subprocess.run(  # noqa: S603 - fixed program and flags
            command, capture_output=True, text=True, timeout=180, check=False
        )
    if completed.returncode != 0 or not out.is_file():
        msg = f"chromium failed with exit code {completed.returncode}: {completed.stderr[-1500:]}"
        raise SystemExit(msg)
    print(f"screenshot written to {out} ({out.stat().st_size:,} bytes)")


def wait_for(url: str, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    msg = f"{url} did not answer 200 within {timeout:.0f} s"
    raise SystemExit(msg)


def score(gateway_url: str, pairs: list[object], *, as_of: date | None = None) -> int:
    """Send ``pairs`` to the gateway's batch endpoint; return how many were scored."""
    scored = 0
    for start in range(0, len(pairs), BATCH_SIZE):
        items = []
        for pair in pairs[start : start + BATCH_SIZE]:
            item = {
                "policy_number": pair.policy_number,  # type: ignore[attr-defined]
                "mib_xml": pair.mib_xml.decode("utf-8"),  # type: ignore[attr-defined]
                "rx_xml": pair.rx_xml.decode("utf-8"),  # type: ignore[attr-defined]
            }
            if as_of is not None:
                item["as_of"] = as_of.isoformat()
            items.append(item)
        response = httpx.post(f"{gateway_url}/v1/predict/batch", json={"items": items}, timeout=60)
        response.raise_for_status()
        scored += int(response.json()["scored"])
    return scored


@contextmanager
def demo_stack(directory: Path, *, pairs: int) -> Iterator[str]:
    """Run the demo stack and the dashboard; yield the dashboard URL."""
    artifact_dir = directory / "model"
    subprocess.run(  # noqa: S603 - console script of this workspace
        [script_path("evidence-train"), "--synthetic", "1500", "--seed", "7",
         "--out", str(artifact_dir), "--no-progress"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    processes: list[ServerProcess] = []
    try:
        model, model_url = start_model_server(directory, artifact_dir)
        processes.append(model)
        gateway, gateway_url = start_gateway(directory, model_url, artifact_dir)
        processes.append(gateway)
        processes.append(start_worker(directory))

        synthetic = generate_pairs(pairs, seed=11)
        third = len(synthetic) // 3
        print(f"scored {score(gateway_url, synthetic[:third])} pairs with the model up")
        # A later as_of date shifts every "days since" feature, which the drift panel shows.
        later = date.today() + timedelta(days=900)
        print(f"scored {score(gateway_url, synthetic[third : 2 * third], as_of=later)} later pairs")
        model.stop()
        print(f"scored {score(gateway_url, synthetic[2 * third :])} pairs with the model down")
        time.sleep(3.0)  # the worker polls every 50 ms; leave it time to drain the queue

        port = free_port()
        env = {
            **os.environ,
            "DASHBOARD_STORE_PATH": str(directory / "store.sqlite3"),
            "DASHBOARD_QUEUE_PATH": str(directory / "queue.sqlite3"),
            "DASHBOARD_ARTIFACT_DIR": str(artifact_dir),
            "DASHBOARD_GATEWAY_URL": gateway_url,
        }
        log = (directory / "dashboard.log").open("wb")
        dashboard = subprocess.Popen(  # noqa: S603 - console script of this workspace
            [script_path("evidence-dashboard"), "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(f"{url}/_stcore/health")
            yield url
        finally:
            dashboard.terminate()
            dashboard.wait(timeout=15)
            log.close()
    finally:
        for process in reversed(processes):
            process.stop()


def main() -> None:
    """Parse the arguments, run the demo if needed and take the screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="Photograph this running dashboard instead of a demo.")
    parser.add_argument("--out", type=Path, default=Path("docs/img/dashboard.png"))
    parser.add_argument("--window-size", default="1400,2000", help="Width,height in pixels.")
    parser.add_argument(
        "--budget-ms", type=int, default=20_000, help="Chromium virtual time budget in ms."
    )
    parser.add_argument("--pairs", type=int, default=600, help="Synthetic pairs the demo scores.")
    args = parser.parse_args()
    if args.url:
        take_screenshot(args.url, args.out, window_size=args.window_size, budget_ms=args.budget_ms)
        return
    with tempfile.TemporaryDirectory(prefix="dashboard-demo-") as directory:
        with demo_stack(Path(directory), pairs=args.pairs) as url:
            take_screenshot(url, args.out, window_size=args.window_size, budget_ms=args.budget_ms)


if __name__ == "__main__":
    sys.exit(main())
