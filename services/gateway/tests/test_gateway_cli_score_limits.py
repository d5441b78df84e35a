"""``evidence-score`` size limits: files over the gateway's document limit and 413 responses."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidence_gateway.config import Settings
from evidence_gateway.testing import free_port, start_gateway

from .score_cli_kit import run_score_cli, serve_fixed_response

pytestmark = pytest.mark.slow

DEFAULT_LIMIT = Settings.model_fields["max_document_bytes"].default


def _write_xml(path: Path, size: int) -> Path:
    """Write an XML document of exactly ``size`` bytes of ASCII, so UTF-8 size equals ``size``."""
    path.write_bytes(b"<r>" + b"a" * (size - 7) + b"</r>")
    return path


def _in_process_env(tmp_path: Path, max_document_bytes: int) -> dict[str, str]:
    return {
        "GATEWAY_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
        "GATEWAY_LOG_LEVEL": "error",
        "GATEWAY_MAX_DOCUMENT_BYTES": str(max_document_bytes),
        # Nothing listens there, so the rule-based fallback scores the pair.
        "MODEL_CLIENT_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "MODEL_CLIENT_REASON_PROFILE_DIR": str(tmp_path / "no-model"),
    }


@pytest.fixture(scope="module")
def default_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway process with the default limits; its model server is down, so it falls back."""
    directory = tmp_path_factory.mktemp("gateway-default")
    server, url = start_gateway(
        directory, f"http://127.0.0.1:{free_port()}", directory / "no-model"
    )
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def small_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway process with a 1000-byte document limit, far under the CLI's --url limit."""
    directory = tmp_path_factory.mktemp("gateway-small")
    server, url = start_gateway(
        directory,
        f"http://127.0.0.1:{free_port()}",
        directory / "no-model",
        GATEWAY_MAX_DOCUMENT_BYTES="1000",
    )
    try:
        yield url
    finally:
        server.stop()


@pytest.mark.parametrize("options", [("--rx",), ("--mib", "--rx")])
def test_score_cli_document_limit_in_process(tmp_path: Path, options: tuple[str, ...]) -> None:
    """In-process, files at GATEWAY_MAX_DOCUMENT_BYTES score and a file one byte over exits 3.

    Runs with no file, each single file and every file over the limit; --mib is read first.
    """
    env = _in_process_env(tmp_path, 1000)
    at_limit = {option: _write_xml(tmp_path / f"{option[2:]}-1000.xml", 1000) for option in options}
    over = {option: _write_xml(tmp_path / f"{option[2:]}-1001.xml", 1001) for option in options}
    over_sets: list[tuple[str, ...]] = [(option,) for option in options]
    if len(options) > 1:
        over_sets.append(options)

    scored = run_score_cli(
        [*(part for option in options for part in (option, str(at_limit[option]))),
         "--in-process", "--create-queue", "--json"],
        env,
    )  # fmt: skip

    assert scored.returncode == 0, scored.stderr[-2000:]
    for over_options in over_sets:
        files = {o: over[o] if o in over_options else at_limit[o] for o in options}
        result = run_score_cli(
            [*(part for option in options for part in (option, str(files[option]))),
             "--in-process", "--create-queue", "--json"],
            env,
        )  # fmt: skip
        rejected = "--mib" if "--mib" in over_options else "--rx"

        assert result.returncode == 3, (over_options, result.stderr[-2000:])
        assert result.stderr.splitlines() == [
            f"error: {rejected} '{over[rejected]}' is 1001 bytes as UTF-8 text, over the "
            "gateway's limit of 1000 bytes (GATEWAY_MAX_DOCUMENT_BYTES) per document; send a "
            "smaller report"
        ]
        assert result.stdout == ""


def test_score_cli_limit_counts_utf8_text(tmp_path: Path) -> None:
    """A UTF-16 file larger than the limit on disk scores: the limit applies to its UTF-8 text."""
    text = '<?xml version="1.0" encoding="UTF-16"?><r>' + "a" * 900 + "</r>"
    path = tmp_path / "rx.xml"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert path.stat().st_size > 1000
    over = tmp_path / "rx-over.xml"
    over.write_bytes(codecs.BOM_UTF16_LE + (text + " " * 100).encode("utf-16-le"))
    env = _in_process_env(tmp_path, 1000)

    within = run_score_cli(["--rx", str(path), "--in-process", "--create-queue", "--json"], env)
    rejected = run_score_cli(["--rx", str(over), "--in-process", "--create-queue", "--json"], env)

    assert within.returncode == 0, within.stderr[-2000:]
    assert rejected.returncode == 3, rejected.stderr[-2000:]
    assert f"--rx '{over}' is {len(text) + 100} bytes as UTF-8 text" in rejected.stderr


@pytest.mark.parametrize(
    ("in_process", "message"),
    [
        (
            False,
            f"has more than {DEFAULT_LIMIT * 4 + 4} bytes, more than a UTF-32 file needs for "
            f"the gateway's limit of {DEFAULT_LIMIT} bytes (the default "
            "GATEWAY_MAX_DOCUMENT_BYTES) of UTF-8 text per document; send a smaller report",
        ),
        (
            True,
            "has more than 4004 bytes, more than a UTF-32 file needs for the gateway's limit of "
            "1000 bytes (GATEWAY_MAX_DOCUMENT_BYTES) of UTF-8 text per document; send a "
            "smaller report",
        ),
    ],
)
def test_score_cli_dev_zero_stops_reading(tmp_path: Path, in_process: bool, message: str) -> None:
    """--rx /dev/zero stops after the read limit and exits 3 instead of reading for ever."""
    if in_process:
        mode = ["--in-process", "--create-queue"]
    else:
        mode = ["--url", f"http://127.0.0.1:{free_port()}"]

    result = run_score_cli(["--rx", "/dev/zero", *mode], _in_process_env(tmp_path, 1000))

    assert result.returncode == 3, result.stderr[-2000:]
    assert result.stderr.splitlines() == [f"error: --rx '/dev/zero' {message}"]
    assert result.stdout == ""


def test_score_cli_url_default_limit(default_gateway: str, tmp_path: Path) -> None:
    """With --url, a file at the default document limit scores and one byte more exits 3.

    The larger file would have been sent, and rejected by the gateway with 413.
    """
    within = _write_xml(tmp_path / "within.xml", DEFAULT_LIMIT)
    over = _write_xml(tmp_path / "over.xml", DEFAULT_LIMIT + 1)

    scored = run_score_cli(["--rx", str(within), "--url", default_gateway, "--json"], {})
    rejected = run_score_cli(["--rx", str(over), "--url", default_gateway], {})

    assert scored.returncode == 0, scored.stderr[-2000:]
    assert rejected.returncode == 3, rejected.stderr[-2000:]
    assert rejected.stderr.splitlines() == [
        f"error: --rx '{over}' is {DEFAULT_LIMIT + 1} bytes as UTF-8 text, over the gateway's "
        f"limit of {DEFAULT_LIMIT} bytes (the default GATEWAY_MAX_DOCUMENT_BYTES) per document; "
        "send a smaller report"
    ]


def test_score_cli_very_large_file(default_gateway: str, tmp_path: Path) -> None:
    """A 20 MB file, over the gateway's body limit, exits 3 before any request is sent."""
    path = tmp_path / "big.xml"
    with path.open("wb") as file:
        file.truncate(20_000_000)

    result = run_score_cli(["--mib", str(path), "--url", default_gateway], {})

    assert result.returncode == 3, result.stderr[-2000:]
    assert f"error: --mib '{path}' has more than {DEFAULT_LIMIT * 4 + 4} bytes" in result.stderr


def test_score_cli_413_rejected(small_gateway: str, tmp_path: Path) -> None:
    """A 413 from the gateway or from a proxy exits 1 with the server's message, not 4."""
    path = _write_xml(tmp_path / "rx.xml", 1001)

    from_gateway = run_score_cli(["--rx", str(path), "--url", small_gateway], {})
    proxy_page = b"<html><body>413 Request Entity Too Large</body></html>"
    with serve_fixed_response(413, "text/html", proxy_page) as proxy_url:
        from_proxy = run_score_cli(["--rx", str(path), "--url", proxy_url], {})

    assert from_gateway.returncode == 1, from_gateway.stderr[-2000:]
    assert from_gateway.stderr.splitlines() == [
        "HTTP 413: rx_xml is larger than GATEWAY_MAX_DOCUMENT_BYTES=1000 bytes; send a "
        "smaller report"
    ]
    assert from_gateway.stdout == ""
    assert from_proxy.returncode == 1, from_proxy.stderr[-2000:]
    assert from_proxy.stderr.splitlines() == [
        "HTTP 413: Request Entity Too Large, from a server that is not the gateway, such as a "
        "proxy in front of it; send smaller files or raise that server's body size limit"
    ]
    assert from_proxy.stdout == ""
