"""Caches keyed on report text: bounded in entries and in key length."""

from __future__ import annotations

import pytest
from evidence_features import _drugs, _fields, _mib, extract_features
from evidence_features._drugs import load_drug_catalog
from evidence_features._memo import MAX_KEY_CHARS, TextMemo
from evidence_features._strengths import parse_strength


def test_memo_computes_once_per_short_text() -> None:
    """A short text is computed on its first lookup only; None is a valid key."""
    calls: list[str | None] = []

    def length(text: str | None) -> int:
        calls.append(text)
        return -1 if text is None else len(text)

    memo: TextMemo[str | None, int] = TextMemo(length, 10)

    assert memo["abc"] == 3
    assert memo["abc"] == 3
    assert memo[None] == -1
    assert memo[None] == -1
    assert calls == ["abc", None]


def test_memo_keeps_no_long_text() -> None:
    """A text over MAX_KEY_CHARS is computed every time and never stored."""
    memo: TextMemo[str, int] = TextMemo(len, 10)
    long_text = "x" * (MAX_KEY_CHARS + 1)
    edge_text = "y" * MAX_KEY_CHARS

    assert memo[long_text] == MAX_KEY_CHARS + 1
    assert memo[edge_text] == MAX_KEY_CHARS
    assert long_text not in memo
    assert edge_text in memo


def test_memo_starts_over_when_full() -> None:
    """The entry after max_entries empties the memo first, so it never contains more."""
    memo: TextMemo[str, int] = TextMemo(len, 3)
    for text in ("a", "bb", "ccc"):
        assert memo[text] == len(text)
    assert len(memo) == 3

    assert memo["dddd"] == 4
    assert dict(memo) == {"dddd": 4}


def test_catalog_cache_skips_long_names() -> None:
    """Describing a 60 KB drug name leaves no entry behind; a short new name does."""
    catalog = load_drug_catalog()
    before = len(catalog._cache)

    catalog.describe("Q" * 60_000, None, None, None, None)
    after_long = len(catalog._cache)
    catalog.describe("ZZTESTDRUGNAME", None, None, None, None)

    assert after_long == before
    assert len(catalog._cache) == before + 1


def test_long_fields_still_read() -> None:
    """A long unknown drug name still counts as one unknown fill, cached or not."""
    rx = (
        "<IntelRXResponse><DrugFill><FillDate>2024-01-01</FillDate>"
        f"<DrugGenericName>{'Q' * 5_000}</DrugGenericName></DrugFill></IntelRXResponse>"
    )

    first = extract_features(None, rx).as_dict()
    second = extract_features(None, rx).as_dict()

    assert first == second
    assert first["RX_TOTAL_FILLS"] == 1.0


def test_strength_reads_first_32_numbers() -> None:
    """A junk strength with 40 numbers keeps the first 32, without the unit after the 40th."""
    strength = parse_strength(" ".join(str(number) for number in range(1, 41)) + " MG")

    assert strength is not None
    assert strength.values == tuple(float(number) for number in range(1, 33))
    assert strength.units == ("",) * 32


def test_long_namespaces_are_not_cached() -> None:
    """Tags under a 1,000-character namespace leave no entry in either tag cache."""
    namespace = "urn:" + "n" * 1_000
    rx = (
        f'<IntelRX xmlns="{namespace}"><IntelRXResponse><DrugFill>'
        "<FillDate>2024-01-01</FillDate><DrugGenericName>METFORMIN</DrugGenericName>"
        "</DrugFill></IntelRXResponse></IntelRX>"
    )
    mib = (
        f'<TXLife xmlns="{namespace}"><TXLifeResponse><OLifE><FormInstance>'
        "<SubmitDate>2021-08-20</SubmitDate><FormResponse><ResponseData>101</ResponseData>"
        "</FormResponse></FormInstance></OLifE></TXLifeResponse></TXLife>"
    )

    vector = extract_features(mib, rx).as_dict()

    assert vector["RX_TOTAL_FILLS"] == 1.0
    assert vector["MIB_TOTAL_RECORDS"] == 1.0
    assert not any(namespace in tag for _, tag in _fields._TAG_CACHE)
    assert not any(namespace in tag for tag in _mib._LOCAL_NAMES)


def test_full_catalog_cache_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full drug cache is emptied before the next entry, so new names are cached again."""
    catalog = load_drug_catalog()
    monkeypatch.setattr(catalog, "_cache", {})
    monkeypatch.setattr(_drugs, "_MAX_CACHE", 2)

    catalog.describe("METFORMIN", None, None, None, None)
    catalog.describe("LISINOPRIL", None, None, None, None)
    assert len(catalog._cache) == 2
    catalog.describe("ATORVASTATIN", None, None, None, None)

    assert list(catalog._cache) == [("ATORVASTATIN", None, None, None, None)]
