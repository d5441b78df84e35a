"""``evidence-score`` input files: encodings, exit statuses, stdout and the queue file."""

from __future__ import annotations

import codecs
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from evidence_features import extract_features
from evidence_gateway.cli.xml_text import XmlDecodeError, decode_xml, detect_xml_encoding
from evidence_gateway.testing import free_port, script_path

from .score_cli_kit import run_score_cli, serve_fixed_response

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "samples" / "02-diabetic"
UTF8_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def sample_rx(declared: str) -> str:
    """The sample Rx report with a non-ASCII last name and ``declared`` as its encoding."""
    text = (SAMPLE / "rx.xml").read_text(encoding="utf-8")
    assert text.startswith(UTF8_DECLARATION)
    text = text.replace(UTF8_DECLARATION, f'<?xml version="1.0" encoding="{declared}"?>', 1)
    return text.replace("<LastName>DIABETIC</LastName>", "<LastName>MÜLLER</LastName>", 1)


@pytest.mark.parametrize(
    ("data", "encoding", "bom_length"),
    [
        (b"<r/>", "utf-8", 0),
        (codecs.BOM_UTF8 + b"<r/>", "utf-8", 3),
        (codecs.BOM_UTF16_LE + "<r/>".encode("utf-16-le"), "utf-16-le", 2),
        (codecs.BOM_UTF16_BE + "<r/>".encode("utf-16-be"), "utf-16-be", 2),
        ('<?xml version="1.0"?><r/>'.encode("utf-16-le"), "utf-16-le", 0),
        (b"<?xml version='1.0' encoding='ISO-8859-1'?><r/>", "ISO-8859-1", 0),
        (b'<?xml version="1.0" encoding = "windows-1252" ?><r/>', "windows-1252", 0),
        ('<?xml version="1.0" encoding="IBM037"?><r/>'.encode("cp037"), "IBM037", 0),
        ('<?xml version="1.0" encoding="cp500"?><r/>'.encode("cp500"), "cp500", 0),
        ('<?xml version="1.0" encoding="cp1026"?><r/>'.encode("cp1026"), "cp1026", 0),
    ],
)
def test_detect_xml_encoding_cases(data: bytes, encoding: str, bom_length: int) -> None:
    """A byte order mark decides first, then the zero bytes of UTF-16, then the declaration."""
    assert detect_xml_encoding(data) == (encoding, bom_length)


def test_decode_xml_latin1_declaration() -> None:
    """An ISO-8859-1 file decodes to the same text as its UTF-8 form."""
    text = sample_rx("ISO-8859-1")

    assert decode_xml(text.encode("iso-8859-1")) == text


def test_decode_xml_ebcdic_declaration() -> None:
    """An EBCDIC (IBM037) file decodes to the same text as its UTF-8 form."""
    text = sample_rx("IBM037")

    assert decode_xml(text.encode("cp037")) == text


def test_decode_xml_ebcdic_without_encoding() -> None:
    """An EBCDIC declaration without an encoding raises an error naming what to add."""
    with pytest.raises(XmlDecodeError, match='names no encoding; add encoding="IBM037"'):
        decode_xml('<?xml version="1.0"?><r/>'.encode("cp037"))


def test_decode_xml_utf16_drops_bom() -> None:
    """A UTF-16 file with a byte order mark decodes to the text without the mark."""
    text = sample_rx("UTF-16")

    assert decode_xml(codecs.BOM_UTF16_LE + text.encode("utf-16-le")) == text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<?xml version="1.0" encoding="NO-SUCH-CODEC"?><r/>', "unknown encoding 'NO-SUCH-CODEC'"),
        (b"<r>caf\xe9</r>", "not valid utf-8 (first invalid byte at offset 6)"),
    ],
)
def test_decode_xml_rejects_bad_bytes(data: bytes, message: str) -> None:
    """An unknown declared encoding and invalid UTF-8 raise an error naming the problem."""
    with pytest.raises(XmlDecodeError, match=re.escape(message)):
        decode_xml(data)


@pytest.mark.parametrize(
    ("declared", "codec"), [("ISO-8859-1", "iso-8859-1"), ("UTF-16", "utf-16")]
)
def test_decoded_text_scores_like_bytes(declared: str, codec: str) -> None:
    """The feature library reads the decoded str as it reads the file's bytes.

    The gateway receives the str over JSON. A declaration that still names ISO-8859-1 must not
    make the library decode the text a second time.
    """
    raw = sample_rx(declared).encode(codec)

    from_bytes = extract_features(None, raw)
    from_text = extract_features(None, decode_xml(raw))

    np.testing.assert_array_equal(from_text.values, from_bytes.values)
    assert from_text.warnings == from_bytes.warnings
    assert from_bytes.values.any()


def test_score_cli_missing_file_exit_3(tmp_path: Path) -> None:
    """A file that cannot be read gives exit status 3 and names the option and path."""
    missing = tmp_path / "missing.xml"

    result = run_score_cli(["--rx", str(missing), "--url", f"http://127.0.0.1:{free_port()}"], {})

    assert result.returncode == 3
    assert f"cannot read --rx '{missing}'" in result.stderr


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:99999", "(Port out of range 0-65535)"),
        ("http://[::1", "(Invalid IPv6 URL)"),
        ("http://127.0.0.1:-1", "(Port could not be cast to integer value as '-1')"),
        ("ftp://127.0.0.1:8000", "(the scheme must be http or https)"),
        ("127.0.0.1:8000", "(the scheme must be http or https)"),
        ("http://", "(it names no host)"),
        ("http://:8000", "(it names no host)"),
        ("http://gate way:8000", "(it contains whitespace)"),
        ("", "(the scheme must be http or https)"),
    ],
)
def test_score_cli_invalid_url_exit_2(url: str, reason: str) -> None:
    """An unusable --url gives exit status 2 and one line naming it, before any request."""
    result = run_score_cli(["--rx", str(SAMPLE / "rx.xml"), "--url", url], {})

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: --url {url!r} is invalid {reason}; pass the gateway's base URL, such as "
        "http://127.0.0.1:8000"
    ]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("port", "status"),
    [("99999", 2), (None, 4)],
)
def test_score_cli_url_password_hidden(port: str | None, status: int) -> None:
    """A password in --url never reaches stderr, for an invalid or an unreachable URL."""
    url = f"http://svc:Pa55w0rd-XYZ@127.0.0.1:{port or free_port()}"

    result = run_score_cli(["--rx", str(SAMPLE / "rx.xml"), "--url", url], {})

    assert result.returncode == status
    assert "Pa55w0rd-XYZ" not in result.stderr + result.stdout
    assert "http://(hidden)@127.0.0.1:" in result.stderr


def test_score_cli_invalid_url_in_process_rejected(tmp_path: Path) -> None:
    """--url beside --in-process is a usage error before the files or the URL are checked."""
    result = run_score_cli(
        ["--rx", str(tmp_path / "missing.xml"), "--in-process", "--url", "http://[::1"], {}
    )

    assert result.returncode == 2
    assert "--url and --in-process exclude each other" in result.stderr
    assert "missing.xml" not in result.stderr


def test_score_cli_valid_urls_accepted() -> None:
    """Host names, IPv6 literals, https and a path prefix pass the check and reach the request."""
    port = free_port()
    urls = (
        f"http://127.0.0.1:{port}",
        f"https://127.0.0.1:{port}",
        f"http://[::1]:{port}",
        f"http://127.0.0.1:{port}/gw",
    )
    for url in urls:
        result = run_score_cli(["--rx", str(SAMPLE / "rx.xml"), "--url", url, "--timeout", "2"], {})

        assert result.returncode == 4, (url, result.stderr)
        assert f"request to {url} failed" in result.stderr


def test_score_cli_undecodable_file_exit_3(tmp_path: Path) -> None:
    """A file that is not valid in its declared encoding gives exit status 3."""
    path = tmp_path / "rx.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?><r>caf\xe9</r>')

    result = run_score_cli(["--rx", str(path), "--url", f"http://127.0.0.1:{free_port()}"], {})

    assert result.returncode == 3
    assert f"cannot decode --rx '{path}'" in result.stderr


PREDICTION = {
    "policy_number": "CLI-0001",
    "prediction_id": "p-1",
    "risk_score": 0.5,
    "risk_level": "MEDIUM",
    "model_version": "RULE_BASED",
    "feature_spec_version": "1",
    "reasons": [],
    "warnings": [],
    "inference_ms": 1.0,
}
NOT_JSON = "with a body that is not a JSON object"
NOT_FOUND = "(the gateway always has that route)"
ALL_FIELDS = (
    "feature_spec_version, inference_ms, model_version, policy_number, prediction_id, reasons, "
    "risk_level, risk_score, warnings"
)


def not_a_prediction(fields: str) -> str:
    """The problem named for a JSON object that lacks or breaks the prediction ``fields``."""
    return f"with a JSON object that is not a prediction (missing or invalid: {fields})"


@pytest.mark.parametrize(
    ("status", "content_type", "body", "problem"),
    [
        (200, "text/html", b"<html><body>not the gateway</body></html>", NOT_JSON),
        (200, "application/json", b"[1, 2]", NOT_JSON),
        (200, "application/json", b"{}", not_a_prediction(ALL_FIELDS)),
        (200, "application/json", b'{"foo": 1}', not_a_prediction(ALL_FIELDS)),
        (
            200,
            "application/json",
            json.dumps({**PREDICTION, "risk_level": None}).encode(),
            not_a_prediction("risk_level"),
        ),
        (
            200,
            "application/json",
            json.dumps(
                {**PREDICTION, "risk_score": "high", "reasons": [{"feature": "x"}]}
            ).encode(),
            not_a_prediction("reasons.0.contribution, reasons.0.value, risk_score"),
        ),
        (404, "application/json", b'{"detail": "Not Found"}', NOT_FOUND),
        (404, "text/html", b"<html>Not Found</html>", NOT_FOUND),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_score_cli_non_gateway_server(
    tmp_path: Path, status: int, content_type: str, body: bytes, problem: str, as_json: bool
) -> None:
    """A response that the gateway would not send exits 4 with one line, also with --json."""
    path = tmp_path / "rx.xml"
    path.write_bytes(b"<r/>")

    with serve_fixed_response(status, content_type, body) as url:
        result = run_score_cli(
            ["--rx", str(path), "--url", url, *(["--json"] if as_json else [])], {}
        )

    assert result.returncode == 4, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {url} is not the gateway: POST /v1/predict returned HTTP {status} {problem}; "
        "check that --url points at the gateway, such as http://127.0.0.1:8000"
    ]
    assert result.stdout == ""


def test_score_cli_prediction_shape_checked(tmp_path: Path) -> None:
    """A 200 with every prediction field prints; the same without risk_score exits 4."""
    path = tmp_path / "rx.xml"
    path.write_bytes(b"<r/>")
    # Fields the CLI does not know are allowed, so a newer gateway still works.
    prediction = {**PREDICTION, "fallback_reason": None, "extra_field": 1}
    partial = {key: value for key, value in prediction.items() if key != "risk_score"}

    with serve_fixed_response(200, "application/json", json.dumps(prediction).encode()) as url:
        printed = run_score_cli(["--rx", str(path), "--url", url, "--json"], {})
    with serve_fixed_response(200, "application/json", json.dumps(partial).encode()) as url:
        rejected = run_score_cli(["--rx", str(path), "--url", url, "--json"], {})

    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == prediction
    assert rejected.returncode == 4, rejected.stderr
    assert not_a_prediction("risk_score") in rejected.stderr
    assert rejected.stdout == ""


@pytest.mark.parametrize(
    ("reason", "options", "status"),
    [
        (None, ["--fail-on-fallback"], 0),
        ("model_timeout", [], 0),
        ("model_timeout", ["--fail-on-fallback"], 6),
    ],
)
def test_score_cli_remote_fallback_note(
    tmp_path: Path, reason: str | None, options: list[str], status: int
) -> None:
    """A gateway's fallback score is named on stderr; --fail-on-fallback then exits 6."""
    path = tmp_path / "rx.xml"
    path.write_bytes(b"<r/>")
    answer = {**PREDICTION, "fallback_reason": reason}

    with serve_fixed_response(200, "application/json", json.dumps(answer).encode()) as url:
        result = run_score_cli(["--rx", str(path), "--url", url, *options], {})

    assert result.returncode == status, result.stderr
    assert "RULE_BASED" in result.stdout
    expected = [] if reason is None else [
        f"note: the gateway's model service did not score this request ({reason}), so the "
        "score above is the rule-based fallback; check the gateway's model service"
    ]  # fmt: skip
    assert result.stderr.splitlines() == expected


def test_score_cli_text_number_not_a_prediction(tmp_path: Path) -> None:
    """A reason value sent as text is not a prediction: exit 4, not a traceback."""
    path = tmp_path / "rx.xml"
    path.write_bytes(b"<r/>")
    reason = {"feature": "RX_TOTAL_FILLS", "value": "0.5", "contribution": 0.1}
    answer = {**PREDICTION, "reasons": [reason]}

    with serve_fixed_response(200, "application/json", json.dumps(answer).encode()) as url:
        result = run_score_cli(["--rx", str(path), "--url", url], {})

    assert result.returncode == 4, result.stderr
    assert not_a_prediction("reasons.0.value") in result.stderr
    assert "Traceback" not in result.stderr


def test_score_cli_odd_error_details_printed(tmp_path: Path) -> None:
    """A 422 whose detail locations are not lists still prints its lines and exits 1."""
    path = tmp_path / "rx.xml"
    path.write_bytes(b"<r/>")
    answer = {
        "error": {"type": "validation_error", "message": "invalid"},
        "details": [{"loc": 7, "msg": "bad"}, {"loc": ["body", "rx_xml"], "msg": "worse"}],
    }

    with serve_fixed_response(422, "application/json", json.dumps(answer).encode()) as url:
        result = run_score_cli(["--rx", str(path), "--url", url], {})

    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == ["HTTP 422: invalid", "  7: bad", "  body.rx_xml: worse"]


@pytest.mark.slow
def test_score_cli_model_server_url(model_server_url: str, tmp_path: Path) -> None:
    """--url at the model server, which has no /v1/predict, exits 4 as not the gateway."""
    path = tmp_path / "rx.xml"
    path.write_bytes(b"<r/>")

    result = run_score_cli(["--rx", str(path), "--url", model_server_url], {})

    assert result.returncode == 4, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {model_server_url} is not the gateway: POST /v1/predict returned HTTP 404 "
        "(the gateway always has that route); check that --url points at the gateway, such as "
        "http://127.0.0.1:8000"
    ]


def test_score_cli_in_process_needs_queue(tmp_path: Path) -> None:
    """--in-process without a queue file exits 5 from a foreign directory and creates none."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}

    result = subprocess.run(
        [script_path("evidence-score"), "--rx", str(SAMPLE / "rx.xml"), "--in-process"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )

    assert result.returncode == 5
    stderr = " ".join(result.stderr.split())
    assert f"no queue file at '{tmp_path}/var/queue.sqlite3'" in stderr
    assert "GATEWAY_QUEUE_PATH" in stderr
    assert "--create-queue" in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_score_cli_encodings_in_process(model_server_url: str, tmp_path: Path) -> None:
    """UTF-8, ISO-8859-1, UTF-16 and EBCDIC files score alike; stdout contains only the JSON."""
    env = {
        "GATEWAY_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
        "GATEWAY_LOG_LEVEL": "info",
        "MODEL_CLIENT_BASE_URL": model_server_url,
        "MODEL_CLIENT_DEADLINE_MS": "3000",
        "MODEL_CLIENT_REASON_PROFILE_DIR": str(tmp_path / "no-model"),
    }
    files = {}
    encodings = [
        ("UTF-8", "utf-8"), ("ISO-8859-1", "iso-8859-1"), ("UTF-16", "utf-16"), ("IBM037", "cp037")
    ]  # fmt: skip
    for declared, codec in encodings:
        files[declared] = tmp_path / f"rx-{declared}.xml"
        files[declared].write_bytes(sample_rx(declared).encode(codec))

    scores = {}
    for declared, path in files.items():
        result = run_score_cli(["--rx", str(path), "--in-process", "--create-queue", "--json"], env)
        assert result.returncode == 0, result.stderr[-2000:]
        body = json.loads(result.stdout)
        assert '"event"' in result.stderr
        scores[declared] = (body["risk_score"], body["warnings"])

    assert scores["ISO-8859-1"] == scores["UTF-8"]
    assert scores["UTF-16"] == scores["UTF-8"]
    assert scores["IBM037"] == scores["UTF-8"]
