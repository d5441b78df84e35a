"""Read ``snow sql --format json`` output on stdin for deploy.sh, with the standard library only.

    snow sql --format json -f sql/11_smoke_test.sql | python3 snow_json.py ok-columns
    snow sql --format json -q "SHOW SERVICES ..." | python3 snow_json.py dns-name
    snow sql --format json -q "SHOW ENDPOINTS ..." | python3 snow_json.py endpoint-port inference
    snow sql --format json -q "SHOW VERSIONS LIKE ... IN MODEL ..." | python3 snow_json.py spec-hash
    snow sql --format json -q "SELECT COUNT(*) AS N ..." | python3 snow_json.py value N

``ok-columns`` exits 0 only when every column named ``OK_*`` in every row is true, and 1 otherwise,
naming each failed check. ``dns-name`` prints the one ``dns_name`` in the rows and exits 1 unless
there is exactly one. ``endpoint-port NAME`` prints the ``port`` of the one endpoint row whose
``name`` is NAME (case-insensitive) and exits 1 unless there is exactly one with a port number.
``spec-hash`` prints the feature spec hash that ``evidence-train register`` recorded on the model
version rows: the ``feature_spec_hash`` metric in the ``metadata`` column, or else the
``spec hash <hex>`` part of the ``comment``. It exits 1 unless the rows give exactly one hash,
or when that hash is not 16 lowercase hex digits.
``value COLUMN`` prints the value of COLUMN (case-insensitive) and exits 1 unless exactly one row
has that column with a non-null value.
The input may be one JSON document or several in a row (one per statement), and rows may be
nested in lists of any depth.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any


def parse_documents(text: str) -> list[Any]:
    """Parse one or more JSON documents written one after another."""
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return documents
        document, position = decoder.raw_decode(text, position)
        documents.append(document)


def iter_rows(node: Any) -> Iterator[dict[str, Any]]:
    """Yield every JSON object in ``node``, descending into lists."""
    if isinstance(node, dict):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from iter_rows(item)


def check_ok_columns(documents: list[Any]) -> tuple[int, list[str]]:
    """Return the number of OK_* values seen and a message for each one that is not true."""
    checked = 0
    failures: list[str] = []
    for row in iter_rows(documents):
        for column, value in row.items():
            if column.upper().startswith("OK_"):
                checked += 1
                if value is not True:
                    failures.append(f"FAILED: {column} = {value!r} in row {row}")
    return checked, failures


def column_values(documents: list[Any], column: str) -> list[Any]:
    """Return the non-null values of ``column`` (case-insensitive) across all rows."""
    return [
        value
        for row in iter_rows(documents)
        for key, value in row.items()
        if key.lower() == column.lower() and value is not None
    ]


def endpoint_ports(documents: list[Any], name: str) -> list[str]:
    """Return the ports of the endpoint rows named ``name``; an empty port is returned too."""
    return [
        str(row.get("port") or "")
        for row in iter_rows(documents)
        if str(row.get("name", "")).lower() == name.lower()
    ]


# evidence-train register writes "... spec hash <hex>, trained ..." into the version comment.
_COMMENT_SPEC_HASH = re.compile(r"\bspec hash (\S+?),?(?:\s|$)")
# The format of evidence_features.FEATURE_SPEC_HASH: the first 16 hex digits of a SHA-256.
# deploy.sh puts the hash into SQL and YAML strings, which no other value may end.
SPEC_HASH_FORMAT = re.compile(r"[0-9a-f]{16}")


def _metadata_spec_hash(metadata: Any) -> str | None:
    # SHOW VERSIONS returns the metadata column as a JSON string, such as
    # {"metrics": {"feature_spec_hash": "..."}, "snowpark_ml_schema_version": "..."}.
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            return None
    if not isinstance(metadata, dict):
        return None
    metrics = metadata.get("metrics")
    if not isinstance(metrics, dict):
        return None
    value = metrics.get("feature_spec_hash")
    return value if isinstance(value, str) and value else None


def version_spec_hashes(documents: list[Any]) -> list[str]:
    """Return the distinct feature spec hashes recorded on the model version rows."""
    hashes: list[str] = []
    for row in iter_rows(documents):
        found = _metadata_spec_hash(row.get("metadata"))
        if found is None:
            match = _COMMENT_SPEC_HASH.search(str(row.get("comment") or ""))
            found = match.group(1) if match else None
        if found is not None and found not in hashes:
            hashes.append(found)
    return hashes


def _print_single(found: list[Any], expected: str) -> int:
    """Print the one item of ``found`` and return 0, or report ``expected`` and return 1."""
    if len(found) != 1:
        sys.stderr.write(f"snow_json.py: expected {expected}, found {found!r}\n")
        return 1
    sys.stdout.write(f"{found[0]}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command on the JSON read from stdin."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    valid = arguments in (["ok-columns"], ["dns-name"], ["spec-hash"]) or (
        len(arguments) == 2 and arguments[0] in ("endpoint-port", "value")
    )
    if not valid:
        sys.stderr.write(
            "usage: snow_json.py ok-columns | dns-name | endpoint-port NAME | spec-hash"
            " | value COLUMN"
            "  (JSON on stdin)\n"
        )
        return 2
    try:
        documents = parse_documents(sys.stdin.read())
    except json.JSONDecodeError as exc:
        sys.stderr.write(f"snow_json.py: the snow output is not valid JSON: {exc}\n")
        return 1

    if arguments == ["dns-name"]:
        names = [row["dns_name"] for row in iter_rows(documents) if row.get("dns_name")]
        if len(names) != 1:
            sys.stderr.write(f"snow_json.py: expected one dns_name, found {names!r}\n")
            return 1
        sys.stdout.write(f"{names[0]}\n")
        return 0

    if arguments == ["spec-hash"]:
        hashes = version_spec_hashes(documents)
        invalid = [found for found in hashes if not SPEC_HASH_FORMAT.fullmatch(found)]
        if invalid:
            sys.stderr.write(
                f"snow_json.py: the feature spec hash recorded on the model version is invalid:"
                f" {invalid!r} is not 16 lowercase hex digits\n"
            )
            return 1
        return _print_single(hashes, "the feature spec hash of one model version")

    if arguments[0] == "value":
        return _print_single(
            column_values(documents, arguments[1]), f"one value of column {arguments[1]!r}"
        )

    if arguments[0] == "endpoint-port":
        ports = endpoint_ports(documents, arguments[1])
        if len(ports) != 1 or not ports[0].isdigit():
            sys.stderr.write(
                f"snow_json.py: expected one port of endpoint {arguments[1]!r}, found {ports!r}\n"
            )
            return 1
        sys.stdout.write(f"{ports[0]}\n")
        return 0

    checked, failures = check_ok_columns(documents)
    if checked == 0:
        sys.stderr.write("snow_json.py: no OK_* column found, so nothing was checked\n")
        return 1
    for failure in failures:
        sys.stderr.write(f"{failure}\n")
    sys.stdout.write(f"{checked - len(failures)} of {checked} checks passed\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
