"""``evidence-score``: score one MIB/Rx pair against a running gateway or in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import httpx
import typer
from evidence_logging import hide_url_credentials
from evidence_model_client.config import ClientSettings, get_client_settings
from pydantic import ValidationError
from rich.console import Console

from evidence_gateway.cli.render import prediction_details, prediction_table
from evidence_gateway.cli.xml_text import XmlDecodeError, decode_xml
from evidence_gateway.config import Settings
from evidence_gateway.schemas import PredictionResponse
from evidence_gateway.settings_check import check_settings

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, help=__doc__)

EXIT_SCORED = 0
EXIT_REJECTED = 1
EXIT_INVALID_OPTION = 2
EXIT_BAD_INPUT = 3
EXIT_UNREACHABLE = 4
EXIT_NO_QUEUE = 5
EXIT_FALLBACK = 6


# The bytes a document within the UTF-8 limit can take on disk: UTF-32 takes 4 bytes for a
# character that UTF-8 stores in 1, plus a 4-byte byte order mark. Reading stops there, so a
# huge file or /dev/zero costs at most this much memory.
# NOTE: a rarer codec that can take more per character, such as UTF-7, may hit this bound with
# a text that is within the limit.
_MAX_BYTES_PER_UTF8_BYTE = 4
_MAX_BOM_BYTES = 4


def _read(path: Path | None, option: str, max_document_bytes: int, limit_name: str) -> str | None:
    """Read an XML file as bytes and decode it as an XML parser would.

    ``max_document_bytes`` is the gateway's limit on the document as UTF-8 text, the size
    the gateway checks; ``limit_name`` is its value and source, for the error message.

    Raises:
        typer.Exit: with ``EXIT_BAD_INPUT`` when the file cannot be read or decoded, or is
            over the limit.
    """
    if path is None:
        return None
    max_file_bytes = max_document_bytes * _MAX_BYTES_PER_UTF8_BYTE + _MAX_BOM_BYTES
    try:
        with path.open("rb") as file:
            data = file.read(max_file_bytes + 1)
    except OSError as exc:
        typer.echo(f"error: cannot read {option} {str(path)!r}: {exc.strerror}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    if len(data) > max_file_bytes:
        _reject_large_file(
            f"{option} {str(path)!r} has more than {max_file_bytes} bytes, more than a UTF-32 "
            f"file needs for the gateway's limit of {limit_name} of UTF-8 text per document"
        )
    try:
        text = decode_xml(data)
    except XmlDecodeError as exc:
        typer.echo(f"error: cannot decode {option} {str(path)!r}: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    # surrogatepass: a lone surrogate (possible with codecs such as unicode_escape) still gets
    # a size here, and the gateway then rejects it with its own message.
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_document_bytes:
        _reject_large_file(
            f"{option} {str(path)!r} is {size} bytes as UTF-8 text, over the gateway's limit "
            f"of {limit_name} per document"
        )
    return text


def _reject_large_file(problem: str) -> NoReturn:
    typer.echo(f"error: {problem}; send a smaller report", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _document_limit(settings: Settings | None) -> tuple[int, str]:
    """Return the per-document limit in UTF-8 bytes and its description for messages.

    ``settings`` are those of the in-process gateway, or None for a gateway at --url.
    """
    if settings is not None:
        limit = settings.max_document_bytes
        return limit, f"{limit} bytes (GATEWAY_MAX_DOCUMENT_BYTES)"
    # The remote gateway's limit is unknown, so the CLI assumes the default. Two documents of
    # that size stay under the default GATEWAY_MAX_BODY_BYTES (16 MB). A gateway rejects a
    # larger body by closing the connection while the CLI is still sending, which loses its 413.
    # NOTE: a remote gateway with a raised GATEWAY_MAX_DOCUMENT_BYTES still gets at most this.
    default = Settings.model_fields["max_document_bytes"].default
    return default, f"{default} bytes (the default GATEWAY_MAX_DOCUMENT_BYTES)"


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
    ctx: typer.Context,
    mib: Annotated[Path | None, typer.Option(help="MIB report XML file.")] = None,
    rx: Annotated[Path | None, typer.Option(help="Rx report XML file.")] = None,
    policy: Annotated[str, typer.Option(help="Policy number sent with the request.")] = "CLI-0001",
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Look-back end date, YYYY-MM-DD; by default the reports' own date, as the "
            "gateway decides it."
        ),
    ] = None,
    url: Annotated[
        str, typer.Option(help="Gateway base URL; not with --in-process.")
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
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="With --in-process, log the gateway's JSON lines from info level up to "
            "stderr, as GATEWAY_LOG_LEVEL=info does; without it only errors show unless "
            "GATEWAY_LOG_LEVEL is set in the environment.",
        ),
    ] = False,
    fail_on_fallback: Annotated[
        bool,
        typer.Option(
            help="Exit with status 6 when the rule-based fallback scored the request because "
            "the model service did not; the prediction is printed all the same."
        ),
    ] = False,
) -> None:
    """Score one applicant and print the prediction.

    Files are read as bytes and decoded as an XML parser would: a byte order
    mark first, then the encoding of the XML declaration, then UTF-8. The text
    of each may be at most the gateway's document limit as UTF-8. Exit status:
    0 scored, 1 rejected by the gateway or a proxy (413 included), 2 invalid
    options, 3 input file unreadable, not decodable or over the limit, 4
    gateway unreachable or another server at --url, 5 no queue file for
    --in-process, 6 scored by the rule-based fallback with --fail-on-fallback.
    A fallback score is also named on stderr. When the reader of stdout closes
    it early, as `| head -1` does, the command stops printing quietly and keeps
    that status.
    """
    if mib is None and rx is None:
        raise typer.BadParameter("pass --mib, --rx or both")
    # typer bundles its own copy of click, so the source is compared by name.
    url_source = ctx.get_parameter_source("url")
    if in_process and url_source is not None and url_source.name != "DEFAULT":
        msg = "--url and --in-process exclude each other; pass one of them"
        raise typer.BadParameter(msg, param_hint="'--url'")
    if as_of is not None:
        try:
            date.fromisoformat(as_of)
        except ValueError as exc:
            msg = f"--as-of {as_of!r} is not a YYYY-MM-DD date"
            raise typer.BadParameter(msg) from exc
    settings: Settings | None = None
    if in_process:
        # The in-process app listens on no socket, so it runs in local mode: the bearer
        # token is optional here, but still checked when GATEWAY_API_TOKEN is set. The
        # scorer reads MODEL_CLIENT_* only in the app's lifespan, so those are checked now.
        check_settings(
            {Settings: lambda: Settings(local_mode=True), ClientSettings: get_client_settings}
        )
        settings = _quiet_by_default(Settings(local_mode=True), verbose)
    else:
        _check_url(url)
    max_document_bytes, limit_name = _document_limit(settings)
    body = {
        "policy_number": policy,
        "mib_xml": _read(mib, "--mib", max_document_bytes, limit_name),
        "rx_xml": _read(rx, "--rx", max_document_bytes, limit_name),
        "as_of": as_of,
    }
    try:
        if settings is not None:
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
    prediction = _print_response(response, url, as_json)
    reason = prediction.get("fallback_reason")
    if reason:
        model_url = str(get_client_settings().base_url).rstrip("/") if settings else None
        typer.echo(_fallback_note(str(reason), model_url), err=True)
        if fail_on_fallback:
            raise typer.Exit(EXIT_FALLBACK)


# Fallback reasons for which the model service runs but the gateway could not use its answer,
# so "start the model server" would mislead. Other reasons mean that no model answered in time.
_FALLBACK_FIXES = {
    "model_request_rejected": (
        "the model service rejected the request; see its log and the gateway's warning line "
        "(--verbose)"
    ),
    "spec_hash_mismatch": (
        "the model was trained on another feature spec; deploy a model trained with this "
        "feature library"
    ),
    "model_info_invalid": (
        "the model service reports an invalid model version, name or spec hash; check the "
        "model artifact"
    ),
    "features_out_of_range": (
        "a feature value is outside the range the model accepts; check the evidence documents"
    ),
}


def _fallback_note(reason: str, model_url: str | None) -> str:
    """Return the stderr line saying that the rule-based fallback scored the request.

    ``model_url`` is the in-process gateway's MODEL_CLIENT_BASE_URL, or None for a gateway at
    --url, whose model service this command does not know.
    """
    if model_url is None:
        where = "the gateway's model service"
    else:
        where = f"the model service at {hide_url_credentials(model_url)}"
    fix = _FALLBACK_FIXES.get(reason)
    if fix is None:
        fix = (
            "check the gateway's model service"
            if model_url is None
            else "start the model server or set MODEL_CLIENT_BASE_URL (--verbose logs each try)"
        )
    return (
        f"note: {where} did not score this request ({reason}), so the score above is the "
        f"rule-based fallback; {fix}"
    )


def _quiet_by_default(settings: Settings, verbose: bool) -> Settings:
    """Lower the in-process gateway's log level to errors unless asked for more.

    A one-off command needs no "gateway started" or "request completed" lines around its
    result, and the warnings of a fallback are summed up by one plain line (``_fallback_note``)
    instead of raw JSON. A GATEWAY_LOG_LEVEL in the environment wins over --verbose. Settings
    reads no .env file, so a value there counts only when a launcher such as honcho exports it.
    """
    if "log_level" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"log_level": "info" if verbose else "error"})


class _StdoutConsole(Console):
    """A Rich console whose broken pipe leaves the exit status to the command.

    Rich's own handler exits with status 1, which this command uses for a rejected request.
    """

    def on_broken_pipe(self) -> None:
        # The reader of stdout, such as `head -1`, has closed it. Python's documented recipe:
        # point stdout at /dev/null so that the flush at exit cannot raise again. The command
        # goes on without printing, so the fallback note and --fail-on-fallback still apply.
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _print_response(response: httpx.Response, url: str, as_json: bool) -> dict[str, Any]:
    """Print a prediction to stdout or an error to stderr; return the prediction's JSON object.

    Raises:
        typer.Exit: ``EXIT_REJECTED`` for an error response of the gateway, ``EXIT_UNREACHABLE``
            for a response that the gateway would not send.
    """
    try:
        response_body = response.json()
    except ValueError:
        response_body = None
    if response.status_code == 413:
        # The gateway or a proxy in front of it rejected the body as too large. A proxy may
        # respond with HTML, so this status is a rejection even without the gateway's JSON.
        _print_rejection(response, response_body)
        raise typer.Exit(EXIT_REJECTED)
    problem = _not_gateway_problem(response.status_code, response_body)
    if problem is not None:
        # Another server on that port (the model server, the dashboard, a proxy's HTML page).
        typer.echo(
            f"error: {hide_url_credentials(url)} is not the gateway: POST /v1/predict returned "
            f"HTTP {response.status_code} {problem}; check that --url points at the "
            "gateway, such as http://127.0.0.1:8000",
            err=True,
        )
        raise typer.Exit(EXIT_UNREACHABLE)
    assert isinstance(response_body, dict)  # checked by _not_gateway_problem
    if response.status_code != 200:
        _print_rejection(response, response_body)
        raise typer.Exit(EXIT_REJECTED)
    console = _StdoutConsole()
    if as_json:
        console.print_json(json.dumps(response_body))
        return response_body
    console.print(prediction_table("prediction", [("API", response_body)], details_column=False))
    for line in prediction_details(response_body):
        console.print(f"  {line}", highlight=False, markup=False)
    for reason in response_body.get("reasons", []):
        console.print(
            f"  {reason['feature']:<40} value={reason['value']:<10g} "
            f"contribution={reason['contribution']:+.4f}",
            highlight=False,
            markup=False,
        )
    return response_body


def _not_gateway_problem(status_code: int, response_body: object) -> str | None:
    """Return what shows that the response is not the gateway's, or None when it could be."""
    if status_code == 404:
        # The gateway always has the route, so a 404 comes from another server or a wrong
        # path prefix in --url.
        return "(the gateway always has that route)"
    if not isinstance(response_body, dict):
        return "with a body that is not a JSON object"
    if status_code != 200:
        return None
    try:
        # Strict, so that a number sent as text fails here instead of in the printing; JSON
        # mode, in which strict still reads enum values and dates from their JSON text.
        PredictionResponse.model_validate_json(json.dumps(response_body), strict=True)
    except ValidationError as exc:
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        return (
            f"with a JSON object that is not a prediction (missing or invalid: {', '.join(fields)})"
        )
    return None


def _print_rejection(response: httpx.Response, response_body: object) -> None:
    """Print the status and the gateway's error message, with the invalid fields of a 422."""
    error = response_body.get("error") if isinstance(response_body, dict) else None
    if isinstance(error, dict) and "message" in error:
        message = str(error["message"])
    elif isinstance(response_body, dict):
        message = json.dumps(response_body)
    else:
        # Only a 413 gets here without a JSON object: _not_gateway_problem catches the rest.
        message = (
            f"{response.reason_phrase}, from a server that is not the gateway, such as a proxy "
            "in front of it; send smaller files or raise that server's body size limit"
        )
    if response.status_code == 401:
        # The gateway's message names the HTTP header, and this adds the command's own options.
        message += "; pass --token or set EVIDENCE_SCORE_TOKEN"
    typer.echo(f"HTTP {response.status_code}: {message}", err=True)
    details = response_body.get("details") if isinstance(response_body, dict) else None
    for line in _detail_lines(details):
        typer.echo(f"  {line}", err=True)


def _detail_lines(details: object) -> list[str]:
    """Return one line per entry of a validation error's ``details``: where, then what."""
    if not isinstance(details, list):
        return []
    lines = []
    for detail in details:
        if not isinstance(detail, dict):
            continue
        loc = detail.get("loc", [])
        location = ".".join(str(part) for part in loc) if isinstance(loc, list) else str(loc)
        lines.append(f"{location}: {detail.get('msg', '')}")
    return lines


def main() -> None:
    """Entry point of ``evidence-score``."""
    app()
