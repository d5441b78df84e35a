"""``evidence-score``: score one MIB/Rx pair against a running gateway or in-process."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from evidence_gateway.cli.render import prediction_table

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, help=__doc__)


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {str(path)!r} as UTF-8 text: {exc.__class__.__name__}"
        raise typer.BadParameter(msg) from exc


async def _post_in_process(body: dict[str, Any], token: str | None) -> httpx.Response:
    # Imported here so scoring against a remote gateway does not load the feature library.
    from evidence_gateway.app import create_app
    from evidence_gateway.config import Settings

    # The in-process app listens on no socket, so it runs in local mode: the bearer token is
    # optional here, but still checked when GATEWAY_API_TOKEN is set.
    gateway = create_app(Settings(local_mode=True))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with gateway.router.lifespan_context(gateway):
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
            return await client.post("/v1/predict", json=body, headers=headers)


async def _post_remote(
    url: str, body: dict[str, Any], token: str | None, timeout_seconds: float
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, timeout=timeout_seconds) as client:
        return await client.post("/v1/predict", json=body, headers=headers)


@app.command()
def score(
    mib: Annotated[Path | None, typer.Option(help="MIB report XML file.")] = None,
    rx: Annotated[Path | None, typer.Option(help="Rx report XML file.")] = None,
    policy: Annotated[str, typer.Option(help="Policy number sent with the request.")] = "CLI-0001",
    as_of: Annotated[
        str | None, typer.Option(help="Look-back end date, YYYY-MM-DD; default today.")
    ] = None,
    url: Annotated[
        str, typer.Option(help="Gateway base URL; ignored with --in-process.")
    ] = "http://127.0.0.1:8000",
    in_process: Annotated[
        bool, typer.Option(help="Build the gateway in this process (GATEWAY_* settings apply).")
    ] = False,
    token: Annotated[
        str | None, typer.Option(envvar="EVIDENCE_SCORE_TOKEN", help="Bearer token for /v1.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="HTTP timeout in seconds.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON response.")] = False,
) -> None:
    """Score one applicant and print the prediction; exits 1 when the gateway rejects it."""
    if mib is None and rx is None:
        raise typer.BadParameter("pass --mib, --rx or both")
    if as_of is not None:
        try:
            date.fromisoformat(as_of)
        except ValueError as exc:
            msg = f"--as-of {as_of!r} is not a YYYY-MM-DD date"
            raise typer.BadParameter(msg) from exc
    body = {"policy_number": policy, "mib_xml": _read(mib), "rx_xml": _read(rx), "as_of": as_of}
    try:
        if in_process:
            response = asyncio.run(_post_in_process(body, token))
        else:
            response = asyncio.run(_post_remote(url, body, token, timeout))
    except httpx.HTTPError as exc:
        typer.echo(
            f"request to {url} failed: {exc.__class__.__name__}; is the gateway up?", err=True
        )
        raise typer.Exit(2) from exc
    answer = response.json()
    console = Console()
    if as_json:
        console.print_json(json.dumps(answer))
    elif response.status_code == 200:
        console.print(prediction_table("prediction", [("API", answer)]))
        for reason in answer.get("reasons", []):
            console.print(
                f"  {reason['feature']:<40} value={reason['value']:<10g} "
                f"contribution={reason['contribution']:+.4f}"
            )
    else:
        error = answer.get("error", {})
        typer.echo(f"HTTP {response.status_code}: {error.get('message', answer)}", err=True)
    if response.status_code != 200:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of ``evidence-score``."""
    app()
