"""Take a headless Chromium screenshot of the dashboard, on a demo stack or a running instance.

Without ``--url`` the script builds a demo on 127.0.0.1 in a temporary directory. It trains a
small model on synthetic evidence and starts the model server, gateway, persistence worker and
dashboard on free ports. Then it scores synthetic pairs through the gateway, waits for the worker
to store them and photographs the page. Some pairs are scored while the model server is
stopped, so the fallback share shows, and some with a later ``as_of`` date, so drift shows.
With ``--url`` it only takes the screenshot of a dashboard that is already running.

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
from evidence_synthetic import EvidencePair, generate_pairs

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
    # Without this flag Chromium 156 captures the page before painting the frames that the
    # Streamlit client builds from its websocket messages, and the PNG shows only skeletons.
    "--run-all-compositor-stages-before-draw",
)


def _chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        msg = "chromium not found; install it with: apt-get update && apt-get install -y chromium"
        raise SystemExit(msg)
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
    return subprocess.run(  # noqa: S603 - fixed program and flags
        command, capture_output=True, text=True, timeout=180, check=False
    )


def wait_until_rendered(url: str, scratch: Path, *, marker: str, timeout: float) -> None:
    """Load the page with ``--dump-dom`` until its DOM contains ``marker``.

    A freshly started Streamlit server imports the app's modules during the first page load,
    which takes longer than Chromium's virtual time budget lets a screenshot wait, so the
    screenshot is taken only once a load has rendered the page.
    """
    deadline = time.monotonic() + timeout
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        profile = scratch / f"dom-{attempt}"
        profile.mkdir()
        completed = _chromium(profile, "--virtual-time-budget=10000", "--dump-dom", url)
        if marker in completed.stdout:
            return
        time.sleep(1.0)
    msg = f"{url} did not render {marker!r} within {timeout:.0f} s"
    raise SystemExit(msg)


def take_screenshot(url: str, out: Path, *, window_size: str, budget_ms: int) -> None:
    """Wait until the page renders, then photograph it with headless Chromium into ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dashboard-chromium-") as scratch:
        wait_until_rendered(url, Path(scratch), marker="Service state", timeout=120.0)
        profile = Path(scratch) / "screenshot"
        profile.mkdir()
        completed = _chromium(
            profile,
            f"--screenshot={out.resolve()}",
            f"--window-size={window_size}",
            f"--virtual-time-budget={budget_ms}",
            url,
        )
    if completed.returncode != 0 or not out.is_file():
        msg = f"chromium failed with exit code {completed.returncode}: {completed.stderr[-1500:]}"
        raise SystemExit(msg)
    print(f"screenshot written to {out} ({out.stat().st_size:,} bytes)")


def wait_for(url: str, timeout: float = 60.0) -> None:
    """Poll ``url`` until it returns HTTP 200."""
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


def _documents(pair: EvidencePair) -> tuple[str, str] | None:
    try:
        return pair.mib_xml.decode("utf-8"), pair.rx_xml.decode("utf-8")
    except UnicodeDecodeError:
        return None


def score(gateway_url: str, pairs: list[EvidencePair], *, as_of: date | None = None) -> int:
    """Score ``pairs`` one request each: two thirds through ``/v1/predict`` (source API), one
    third as one-row batches of the service-function endpoint (source SQL).

    Pairs whose documents are not UTF-8 (the generator's encoding edge cases) are skipped,
    because both endpoints carry the documents as JSON text. Returns the number scored.
    """
    scored = 0
    with httpx.Client(base_url=gateway_url, timeout=30.0) as client:
        for index, pair in enumerate(pairs):
            documents = _documents(pair)
            if documents is None:
                continue
            mib_xml, rx_xml = documents
            if index % 3 == 2:
                body = {"data": [[0, pair.policy_number, mib_xml, rx_xml]]}
                headers = {"sf-external-function-query-batch-id": f"demo-{pair.policy_number}"}
                response = client.post("/functions/predict", json=body, headers=headers)
            else:
                item = {"policy_number": pair.policy_number, "mib_xml": mib_xml, "rx_xml": rx_xml}
                if as_of is not None:
                    item["as_of"] = as_of.isoformat()
                response = client.post("/v1/predict", json=item)
            response.raise_for_status()
            scored += 1
    return scored


@contextmanager
def demo_stack(directory: Path, *, pairs: int, spread_seconds: float) -> Iterator[str]:
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
        sixth = len(synthetic) // 6
        rounds = [synthetic[i * sixth : (i + 1) * sixth] for i in range(6)]
        # A later as_of date shifts every "days since" feature, which the drift panel shows.
        later = date.today() + timedelta(days=900)
        for number, chunk in enumerate(rounds):
            if number == 4:
                model.stop()
            as_of = later if number in (2, 3) else None
            print(f"round {number + 1}: scored {score(gateway_url, chunk, as_of=as_of)} pairs")
            if number < len(rounds) - 1:
                time.sleep(spread_seconds / (len(rounds) - 1))
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
            try:
                dashboard.wait(timeout=15)
            except subprocess.TimeoutExpired:
                dashboard.kill()
                dashboard.wait(timeout=5)
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

    parser.add_argument(
        "--spread",
        type=float,
        default=150.0,
        help="Seconds over which the demo spreads its six scoring rounds.",
    )
    parser.add_argument(
        "--tall-out",
        type=Path,
        default=None,
        help="Also photograph the whole page, 1400x3400 pixels, into this file.",
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="Seconds to keep the demo stack running after the screenshot, to look at it.",
    )
    args = parser.parse_args()

    if args.url:
        take_screenshot(args.url, args.out, window_size=args.window_size, budget_ms=args.budget_ms)
        if args.tall_out is not None:
            take_screenshot(
                args.url, args.tall_out, window_size="1400,3400", budget_ms=args.budget_ms
            )
        return
    with (
        tempfile.TemporaryDirectory(prefix="dashboard-demo-") as directory,
        demo_stack(Path(directory), pairs=args.pairs, spread_seconds=args.spread) as url,
    ):
        take_screenshot(url, args.out, window_size=args.window_size, budget_ms=args.budget_ms)
        if args.tall_out is not None:
            take_screenshot(url, args.tall_out, window_size="1400,3400", budget_ms=args.budget_ms)
        if args.hold > 0:
            print(f"dashboard running at {url} for {args.hold:.0f} s (demo files: {directory})")
            time.sleep(args.hold)


if __name__ == "__main__":
    sys.exit(main())
