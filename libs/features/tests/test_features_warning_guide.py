"""The warning guide: one meaning and one action for every warning kind, in the docs too."""

from __future__ import annotations

from evidence_features import WARNING_GUIDE, WARNING_KINDS
from evidence_features.docs import render_feature_docs


def test_guide_lists_every_kind_sorted() -> None:
    assert list(WARNING_KINDS) == sorted(WARNING_GUIDE)
    assert len(WARNING_KINDS) == len(set(WARNING_KINDS))


def test_guide_texts_are_sentences() -> None:
    for kind, guide in WARNING_GUIDE.items():
        assert guide.meaning.endswith("."), kind
        assert guide.action.endswith("."), kind
        assert guide.meaning[0].isupper(), kind
        assert guide.action[0].isupper(), kind


def test_docs_have_one_row_per_kind() -> None:
    text = render_feature_docs()
    section = text.split("## Warning kinds", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]

    assert [row.split("`")[1] for row in rows] == list(WARNING_KINDS)
    for row, kind in zip(rows, WARNING_KINDS, strict=True):
        assert WARNING_GUIDE[kind].action in row
