"""``evidence-score``: score one MIB/Rx pair against a running gateway or in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer
from evidence_logging import hide_url_credentials
from evidence_model_client.config import ClientSettings, get_client_settings
from rich.console import Console

from evidence_gateway.cli.render import prediction_details, prediction_table
from evidence_gateway.cli.xml_text import XmlDecodeError, decode_xml
from evidence_gateway.config import Settings
from evidence_gateway.settings_check import check_settings

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, help=__doc__)

EXIT_REJECTED = 1
EXIT_INVALID_OPTION = 2
EXIT_BAD_INPUT = 3
EXIT_UNREACHABLE = 4
EXIT_NO_QUEUE = 5


def _read(path: Path | None, option: str) -> str | None:
    """Read an XML file as bytes and decode it as an XML parser would.

    Raises:
        typer.Exit: with ``EXIT_BAD_INPUT`` when the file cannot be read or decoded.
    """
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        typer.echo(f"error: cannot read {option} {str(path)!r}: {exc.strerror}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    try:
        return decode_xml(data)
    except XmlDecodeError as exc:
        typer.echo(f"error: cannot decode {option} {str(path)!r}: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from exc


def _url_problem(url: str) -> str | None:
    """Return why ``url`` cannot be a gateway base URL, or None when it can."""
    if any(character.isspace() for character in url):
        return "it contains whitespace"
    try:
        parts = urlsplit(url)
        # .port raises ValueError for a port outside 0-65535, which httpx would only reject
        # with an OverflowError while connecting.
        parts.port  # noqa: B018
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in {"http", "https"}:
        return "the scheme must be http or https"
    if not parts.hostname:
        return "it names no host"
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        return str(exc)
    return None


def _check_url(url: str) -> None:
    """Stop with ``EXIT_INVALID_OPTION`` and one line on stderr unless ``url`` is usable."""
    problem = _url_problem(url)
    if problem is None:
        return
    typer.echo(
        f"error: --url {hide_url_credentials(url)!r} is invalid "
        f"({hide_url_credentials(problem)}); pass the gateway's base URL, such as "
        "http://127.0.0.1:8000",
        err=True,
    )
    raise typer.Exit(EXIT_INVALID_OPTION)


def _check_queue(settings: Settings, create_queue: bool) -> None:
    """Stop unless the in-process app would append to an existing queue file.

    A queue file created by accident, such as ``var/queue.sqlite3`` under another working
    directory, is drained by no worker, so its predictions never reach the tables.
    """
    path = settings.queue_path
    if create_queue or path.is_file():
        return
    message = f"error: no queue file at {str(path.resolve())!r}"
    if not path.is_absolute():
        message += f" (GATEWAY_QUEUE_PATH {str(path)!r} is relative to the current directory)"
    typer.echo(
        f"{message}; set GATEWAY_QUEUE_PATH to the queue that the persistence worker drains, "
        "run from the directory of the stack, or pass --create-queue to create it",
        err=True,
    )
    raise typer.Exit(EXIT_NO_QUEUE)


async def _post_in_process(
    settings: Settings, body: dict[str, Any], token: str | None
) -> httpx.Response:
    # Imported here so scoring against a remote gateway does not load the feature library.
    from evidence_gateway.app import create_app

    gateway = create_app(settings)
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
        bool,
        typer.Option(
            help="Build the gateway in this process (GATEWAY_* and MODEL_CLIENT_* settings "
            "apply); it appends to the queue file at GATEWAY_QUEUE_PATH."
        ),
    ] = False,
    create_queue: Annotated[
        bool,
        typer.Option(help="With --in-process, create the queue file when it does not exist."),
    ] = False,
    token: Annotated[
        str | None, typer.Option(envvar="EVIDENCE_SCORE_TOKEN", help="Bearer token for /v1.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="HTTP timeout in seconds.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON response.")] = False,
) -> None:
    """Score one applicant and print the prediction.

    Files are read as bytes and decoded as an XML parser would: a byte order mark first, then
    the encoding of the XML declaration, then UTF-8. Exit status: 0 scored, 1 rejected by the
    gateway, 2 invalid options, 3 input file unreadable or not decodable, 4 gateway
    unreachable or another server at --url, 5 no queue file for --in-process.
    """
    if mib is None and rx is None:
        raise typer.BadParameter("pass --mib, --rx or both")
    if as_of is not None:
        try:
            date.fromisoformat(as_of)
        except ValueError as exc:
            msg = f"--as-of {as_of!r} is not a YYYY-MM-DD date"
            raise typer.BadParameter(msg) from exc
    if not in_process:
        _check_url(url)
    body = {
        "policy_number": policy,
        "mib_xml": _read(mib, "--mib"),
        "rx_xml": _read(rx, "--rx"),
        "as_of": as_of,
    }
    try:
        if in_process:
            # The in-process app listens on no socket, so it runs in local mode: the bearer
            # token is optional here, but still checked when GATEWAY_API_TOKEN is set. The
            # scorer reads MODEL_CLIENT_* only in the app's lifespan, so those are checked now.
            check_settings(
                {Settings: lambda: Settings(local_mode=True), ClientSettings: get_client_settings}
            )
            settings = Settings(local_mode=True)
            _check_queue(settings, create_queue)
            # The app logs to stdout, which must carry only the result (the JSON with --json).
            with contextlib.redirect_stdout(sys.stderr):
                response = asyncio.run(_post_in_process(settings, body, token))
        else:
            response = asyncio.run(_post_remote(url, body, token, timeout))
    except httpx.HTTPError as exc:
        typer.echo(
            f"error: request to {hide_url_credentials(url)} failed: {exc.__class__.__name__}; "
            "is the gateway up?",
            err=True,
        )
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    try:
        response_body = response.json()
    except ValueError:
        response_body = None
    if not isinstance(response_body, dict):
        # Another server on that port (the dashboard, a proxy's HTML page) is not the gateway.
        typer.echo(
            f"error: {hide_url_credentials(url)} responded with HTTP {response.status_code} "
            "without the gateway's JSON "
            "object; check that --url points at the gateway",
            err=True,
        )
        raise typer.Exit(EXIT_UNREACHABLE)
    console = Console()
    if as_json:
        console.print_json(json.dumps(response_body))
    elif response.status_code == 200:
        console.print(
            prediction_table("prediction", [("API", response_body)], details_column=False)
        )
        for line in prediction_details(response_body):
            console.print(f"  {line}", highlight=False, markup=False)
        for reason in response_body.get("reasons", []):
            console.print(
                f"  {reason['feature']:<40} value={reason['value']:<10g} "
                f"contribution={reason['contribution']:+.4f}",
                highlight=False,
                markup=False,
            )
    else:
        error = response_body.get("error", {})
        typer.echo(f"HTTP {response.status_code}: {error.get('message', response_body)}", err=True)
        for line in _detail_lines(response_body.get("details")):
            typer.echo(f"  {line}", err=True)
    if response.status_code != 200:
        raise typer.Exit(EXIT_REJECTED)


def _detail_lines(details: object) -> list[str]:
    """Return one line per entry of a validation error's ``details``: where, then what."""
    if not isinstance(details, list):
        return []
    lines = []
    for detail in details:
        if not isinstance(detail, dict):
            continue
        location = ".".join(str(part) for part in detail.get("loc", []))
        lines.append(f"{location}: {detail.get('msg', '')}")
    return lines


def main() -> None:
    """Entry point of ``evidence-score``."""
    app()
