"""deploy/snow_json.py reads snow CLI JSON output: smoke-test checks, the model's DNS name and
its endpoint port."""

from __future__ import annotations

import importlib.util
import io
import json
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="module")
def snow_json(support: ModuleType) -> ModuleType:
    """deploy/snow_json.py loaded as a module (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "deploy_snow_json", support.DEPLOY_DIR / "snow_json.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch, command: str, text: str
) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", stderr)
    code = snow_json.main(command.split())
    return code, stdout.getvalue(), stderr.getvalue()


def test_parse_documents_reads_concatenated_json(snow_json: ModuleType) -> None:
    """Several documents in a row, as one per statement, parse as a list."""
    text = '[{"A": 1}]\n[]\n  [{"OK_X": true}] \n'

    assert snow_json.parse_documents(text) == [[{"A": 1}], [], [{"OK_X": True}]]
    assert snow_json.parse_documents("") == []


def test_ok_columns_all_true(snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every OK_* true across nested results: exit 0 and a count."""
    text = json.dumps([[{"OK_HEALTH": True, "STATUS": "healthy"}], [{"ok_row": True}] * 3])

    code, stdout, stderr = _run(snow_json, monkeypatch, "ok-columns", text)

    assert code == 0
    assert stdout == "4 of 4 checks passed\n"
    assert stderr == ""


@pytest.mark.parametrize("value", [False, None, "TRUE", 1])
def test_ok_columns_not_true_fails(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    """Only JSON true passes: false, null, a string and 1 each fail and are named."""
    text = json.dumps([{"OK_A": True}, {"OK_B": value}])

    code, stdout, stderr = _run(snow_json, monkeypatch, "ok-columns", text)

    assert code == 1
    assert f"FAILED: OK_B = {value!r}" in stderr
    assert stdout == "1 of 2 checks passed\n"


def test_ok_columns_none_found_fails(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output without any OK_* column means the smoke test did not run: exit 1."""
    code, _, stderr = _run(snow_json, monkeypatch, "ok-columns", '[{"STATUS": "healthy"}]')

    assert code == 1
    assert "no OK_* column" in stderr


def test_invalid_json_fails(snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output that is not JSON (an error text from snow) is reported, not a traceback."""
    code, _, stderr = _run(snow_json, monkeypatch, "ok-columns", "002003 (02000): not found")

    assert code == 1
    assert "not valid JSON" in stderr


def test_dns_name_one_service(snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """One service row: its dns_name is printed."""
    row = {"name": "RISK_MODEL_SVC", "dns_name": "risk-model-svc.ab12.svc.spcs.internal"}
    text = json.dumps([row])

    code, stdout, _ = _run(snow_json, monkeypatch, "dns-name", text)

    assert code == 0
    assert stdout == "risk-model-svc.ab12.svc.spcs.internal\n"


@pytest.mark.parametrize("rows", [[], [{"dns_name": "a"}, {"dns_name": "b"}], [{"name": "X"}]])
def test_dns_name_needs_exactly_one(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, str]]
) -> None:
    """No service, two services or a row without dns_name: exit 1 with the names found."""
    code, stdout, stderr = _run(snow_json, monkeypatch, "dns-name", json.dumps(rows))

    assert code == 1
    assert stdout == ""
    assert "expected one dns_name" in stderr


def test_endpoint_port_of_named_endpoint(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port of the endpoint named `inference` is printed, whatever its case or type."""
    rows = [
        {"name": "metrics", "port": "9090", "protocol": "HTTP"},
        {"name": "INFERENCE", "port": 5123, "protocol": "HTTP", "is_public": "false"},
    ]

    code, stdout, _ = _run(snow_json, monkeypatch, "endpoint-port inference", json.dumps(rows))

    assert code == 0
    assert stdout == "5123\n"


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [{"name": "metrics", "port": "9090"}],
        [{"name": "inference", "port": None, "port_range": "5000-5010"}],
        [{"name": "inference", "port": "5000"}, {"name": "inference", "port": "5001"}],
    ],
)
def test_endpoint_port_needs_exactly_one(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, object]]
) -> None:
    """No such endpoint, one without a port, or two: exit 1 with the ports found."""
    code, stdout, stderr = _run(snow_json, monkeypatch, "endpoint-port inference", json.dumps(rows))

    assert code == 1
    assert stdout == ""
    assert "expected one port of endpoint 'inference'" in stderr


def test_unknown_command_prints_usage(snow_json: ModuleType) -> None:
    """An unknown command exits 2."""
    assert snow_json.main(["everything"]) == 2


_METADATA = json.dumps({"metrics": {"feature_spec_hash": "dde4b34144d5dda8", "auc": 0.8}})


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([{"name": "V2", "metadata": _METADATA, "comment": "spec hash 0000"}], "dde4b34144d5dda8"),
        (
            [{"name": "V2", "metadata": None, "comment": "M V2: spec hash 0123456789abcdef, x"}],
            "0123456789abcdef",
        ),
        (
            [{"name": "V2", "metadata": "not json", "comment": "spec hash 0123456789abcdef"}],
            "0123456789abcdef",
        ),
        ([[{"status": "ok"}], [{"name": "V2", "metadata": _METADATA}] * 2], "dde4b34144d5dda8"),
    ],
)
def test_spec_hash_read_from_version(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch, rows: list[Any], expected: str
) -> None:
    """The metadata metric wins, the comment is the fallback, and repeats count once."""
    code, stdout, stderr = _run(snow_json, monkeypatch, "spec-hash", json.dumps(rows))

    assert code == 0, stderr
    assert stdout == f"{expected}\n"


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [{"name": "V2", "metadata": None, "comment": "trained without a hash"}],
        [
            {"name": "V2", "comment": "spec hash aaaaaaaaaaaaaaaa"},
            {"name": "V3", "comment": "spec hash bbbbbbbbbbbbbbbb"},
        ],
    ],
)
def test_spec_hash_none_or_several_fails(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch, rows: list[Any]
) -> None:
    """No hash, or two different ones: exit 1 and list the hashes found."""
    code, stdout, stderr = _run(snow_json, monkeypatch, "spec-hash", json.dumps(rows))

    assert code == 1
    assert stdout == ""
    assert "expected the feature spec hash of one model version" in stderr


@pytest.mark.parametrize(
    ("rows", "invalid"),
    [
        (
            [{"name": "V2", "metadata": json.dumps({"metrics": {"feature_spec_hash": "ab'; x"}})}],
            "ab'; x",
        ),
        ([{"name": "V2", "comment": "spec hash 0123456789abcdef'; DROP"}], "0123456789abcdef';"),
        ([{"name": "V2", "comment": "spec hash abc123, trained"}], "abc123"),
        (
            [{"name": "V2", "metadata": json.dumps({"metrics": {"feature_spec_hash": "A" * 16}})}],
            "A" * 16,
        ),
    ],
)
def test_spec_hash_invalid_format_fails(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch, rows: list[Any], invalid: str
) -> None:
    """A hash that is not 16 lowercase hex digits, such as one with a quote, is not printed."""
    code, stdout, stderr = _run(snow_json, monkeypatch, "spec-hash", json.dumps(rows))

    assert code == 1
    assert stdout == ""
    assert "the feature spec hash recorded on the model version is invalid" in stderr
    assert repr(invalid) in stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"status": "ok"}] [{"ROWS_STORED": 0}]', "0\n"),
        ('[{"rows_stored": 7}]', "7\n"),
    ],
)
def test_value_prints_one_column(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    """The one value of the column, found case-insensitively across documents."""
    code, stdout, _ = _run(snow_json, monkeypatch, "value ROWS_STORED", text)

    assert code == 0
    assert stdout == expected


@pytest.mark.parametrize(
    "text", ["[]", '[{"ROWS_STORED": null}]', '[{"ROWS_STORED": 1}, {"ROWS_STORED": 2}]']
)
def test_value_missing_or_repeated_fails(
    snow_json: ModuleType, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """No value or several values: exit 1 naming the column."""
    code, stdout, stderr = _run(snow_json, monkeypatch, "value ROWS_STORED", text)

    assert code == 1
    assert stdout == ""
    assert "'ROWS_STORED'" in stderr
