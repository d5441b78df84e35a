"""``evidence-score`` as a subprocess, in-process mode against the built-in model server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evidence_gateway.testing import free_port

from .score_cli_kit import rule_based_env, run_score_cli

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "samples" / "02-diabetic"


def test_score_cli_in_process_json(model_server_url: str, tmp_path: Path) -> None:
    """--in-process --json prints the prediction of the sample pair."""
    env = {
        "GATEWAY_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
        "GATEWAY_LOG_LEVEL": "error",
        "MODEL_CLIENT_BASE_URL": model_server_url,
        "MODEL_CLIENT_DEADLINE_MS": "3000",
        "MODEL_CLIENT_REASON_PROFILE_DIR": str(tmp_path / "no-model"),
    }

    result = run_score_cli(
        ["--mib", str(SAMPLE / "mib.xml"), "--rx", str(SAMPLE / "rx.xml"), "--policy", "CLI-7",
         "--in-process", "--create-queue", "--json"],
        env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-2000:]
    body = json.loads(result.stdout)
    assert body["policy_number"] == "CLI-7"
    assert body["model_version"] == "REGISTRY_BUILTIN"
    assert (tmp_path / "queue.sqlite3").is_file()


def test_score_cli_needs_a_document(tmp_path: Path) -> None:
    """Without --mib and --rx the command exits with a usage error."""
    result = run_score_cli(["--in-process"], {"GATEWAY_QUEUE_PATH": str(tmp_path / "q.sqlite3")})

    assert result.returncode == 2
    assert "pass --mib, --rx or both" in result.stderr


def test_score_cli_url_with_in_process_rejected(tmp_path: Path) -> None:
    """--url beside --in-process is a usage error, not silently ignored."""
    options = ["--rx", str(SAMPLE / "rx.xml"), "--in-process", "--create-queue"]
    env = {"GATEWAY_QUEUE_PATH": str(tmp_path / "q.sqlite3")}

    both = run_score_cli([*options, "--url", "http://127.0.0.1:8000"], env)

    assert both.returncode == 2
    assert "--url and --in-process exclude each other" in both.stderr
    assert not (tmp_path / "q.sqlite3").exists()


def test_score_cli_gateway_unreachable(tmp_path: Path) -> None:
    """An unreachable gateway gives exit status 4 and a message naming the URL."""
    url = f"http://127.0.0.1:{free_port()}"

    result = run_score_cli(["--rx", str(SAMPLE / "rx.xml"), "--url", url, "--timeout", "2"], {})

    assert result.returncode == 4
    assert url in result.stderr


def test_score_cli_details_fit_80_columns(tmp_path: Path) -> None:
    """At 80 columns the fallback reason and each warning still print, on lines of their own."""
    cardiac = SAMPLE.parent / "03-cardiac"
    env = {
        "COLUMNS": "80",
        "GATEWAY_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
        "GATEWAY_LOG_LEVEL": "error",
        # Nothing listens there, so the rule-based fallback scores the pair.
        "MODEL_CLIENT_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "MODEL_CLIENT_REASON_PROFILE_DIR": str(tmp_path / "no-model"),
    }

    result = run_score_cli(
        ["--mib", str(cardiac / "mib.xml"), "--rx", str(cardiac / "rx.xml"), "--in-process",
         "--create-queue", "--policy", "POLICY-2026-0000012345"],
        env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "fallback_reason: model_unavailable" in lines
    assert "warning: MIB undated_record ×1" in lines
    assert "warning: MIB unparseable_date ×1" in lines
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    # The policy number wraps rather than being cut short, and no header is cut either.
    assert "…" not in result.stdout
    table = "".join(result.stdout.split("│"))
    assert "POLICY-2026-" in table
    assert "0000012345" in table


def test_score_cli_prints_error_details(tmp_path: Path) -> None:
    """A 422 prints each invalid field and its problem to stderr, not only the summary."""
    env = {
        "GATEWAY_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
        "GATEWAY_LOG_LEVEL": "error",
        "MODEL_CLIENT_BASE_URL": f"http://127.0.0.1:{free_port()}",
    }

    result = run_score_cli(
        ["--rx", str(SAMPLE / "rx.xml"), "--in-process", "--create-queue", "--policy", "P 1"],
        env,
    )

    assert result.returncode == 1
    assert "HTTP 422: the request body is invalid in 1 place(s); see details" in result.stderr
    assert "  body.policy_number: String should match pattern" in result.stderr
    assert result.stdout == ""


def test_score_cli_prints_warning_message(tmp_path: Path) -> None:
    """A partial error reply prints its warning and, under it, the library's message."""
    # An IntelRX reply whose Result is neither a hit nor a no-hit, but which carries fills.
    fills = "".join(
        f"<DrugFill><FillDate>2024-0{month}-15</FillDate><DrugGenericName>METFORMIN"
        "</DrugGenericName><Quantity>60</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
        for month in (1, 2)
    )
    rx = tmp_path / "rx.xml"
    rx.write_text(
        f"<IntelRX><IntelRXResponse><Result>VENDOR ERROR</Result>{fills}</IntelRXResponse>"
        "</IntelRX>"
    )
    env = rule_based_env(tmp_path)

    result = run_score_cli(["--rx", str(rx), "--in-process", "--create-queue"], env)

    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.strip() for line in result.stdout.splitlines()]
    warning_line = lines.index("warning: RX partial_error_reply ×1")
    assert lines[warning_line + 1].startswith("RX document reports a vendor error but carries")
    assert "VENDOR ERROR" not in result.stdout
    assert lines.count("warning: MIB missing_document ×1") == 1
