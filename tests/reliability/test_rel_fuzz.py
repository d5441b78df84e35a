"""Bounded fuzzing: schemathesis against the gateway's OpenAPI document, and a hypothesis
mutator of valid reports against the feature library.

Both run in the normal test run. The budgets (examples per operation, a time cap, fixed seeds)
keep the two under about 60 seconds together on a 2-core machine.
"""

from __future__ import annotations

import subprocess
from datetime import date

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES, EvidenceFeaturesError, FeatureVector, extract_features
from evidence_gateway.testing import script_path
from evidence_synthetic import generate_pairs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_kit import CANARY_MIB, CANARY_RX, GatewayUnderTest, find_canaries

AS_OF = date(2026, 6, 1)
SEEDS = [
    (CANARY_MIB.encode(), CANARY_RX.encode()),
    *((pair.mib_xml, pair.rx_xml) for pair in generate_pairs(6, seed=91)),
]
# Fragments a mutation may splice in: markup that parsers treat specially, numbers and dates
# that feature code divides by or parses, and bytes that are not valid UTF-8.
FRAGMENTS = [
    b"<!DOCTYPE r [<!ENTITY a 'x'>]>",
    b"&a;",
    b"&#0;",
    b"&#x110000;",
    b"<![CDATA[",
    b"]]>",
    b"<DrugFill>",
    b"</DrugFill>",
    b"<DrugFill/>",
    b"<FormResponse><ResponseData>",
    b"<DaysSupply>0</DaysSupply>",
    b"<Quantity>NaN</Quantity>",
    b"<Quantity>-1e309</Quantity>",
    b"<FillDate>9999-99-99</FillDate>",
    b"<FillDate>0001-01-01</FillDate>",
    b"<BMI>inf</BMI>",
    b'<a b="',
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\xc3\x28",
    b"<" * 20,
    b"<a>" * 70,
]


@st.composite
def mutated_reports(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A valid MIB/Rx pair with one to four byte-level mutations in either document."""
    mib, rx = draw(st.sampled_from(SEEDS))
    documents = [bytearray(mib), bytearray(rx)]
    for _ in range(draw(st.integers(1, 4))):
        target = documents[draw(st.integers(0, 1))]
        position = draw(st.integers(0, len(target)))
        operation = draw(st.sampled_from(["delete", "insert", "fragment", "duplicate", "cut"]))
        if operation == "delete":
            del target[position : position + draw(st.integers(1, 64))]
        elif operation == "insert":
            target[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "fragment":
            target[position:position] = draw(st.sampled_from(FRAGMENTS))
        elif operation == "duplicate":
            size = draw(st.integers(1, 512))
            target[position:position] = target[position : position + size] * 3
        else:
            del target[position:]
    return bytes(documents[0]), bytes(documents[1])


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(pair=mutated_reports())
def test_fuzz_mutated_reports_finite_or_library_error(pair: tuple[bytes, bytes]) -> None:
    """A mutated report gives finite features or the library's own error, never another one."""
    mib, rx = pair
    try:
        vector = extract_features(mib, rx, as_of=AS_OF)
    except EvidenceFeaturesError as exc:
        message = str(exc)
        assert find_canaries(message) == [], message
        assert len(message) < 400, message
        return
    assert isinstance(vector, FeatureVector)
    assert (len(FEATURE_NAMES),) == vector.values.shape
    assert np.isfinite(vector.values).all(), "non-finite feature value"


@given(text=st.text(max_size=300))
@settings(max_examples=100, derandomize=True, deadline=None, database=None)
def test_fuzz_arbitrary_text_finite_or_library_error(text: str) -> None:
    """Any short text as either document gives finite features or the library's error."""
    for mib, rx in ((text, None), (None, text)):
        try:
            vector = extract_features(mib, rx, as_of=AS_OF)
        except EvidenceFeaturesError:
            continue
        assert np.isfinite(vector.values).all()


@pytest.mark.slow
def test_fuzz_schemathesis_no_server_error(gateway: GatewayUnderTest, tmp_path: object) -> None:
    """Schemathesis, positive and negative cases, finds no 5xx and no off-schema response."""
    assert gateway.token is not None
    result = subprocess.run(
        [
            script_path("schemathesis"),
            "run",
            f"{gateway.url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--include-path-regex",
            "^/(v1|functions)/",
            "--header",
            f"Authorization: Bearer {gateway.token}",
            "--mode",
            "all",
            "--max-examples",
            "30",
            "--seed",
            "20261204",
            "--generation-deterministic",
            "--max-time",
            "25",
            "--workers",
            "2",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
    )

    assert 0 == result.returncode, result.stdout[-4000:]
    assert find_canaries(result.stdout) == []
