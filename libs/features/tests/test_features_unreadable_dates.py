"""Unparseable dates: which records they merge and which fields META_UNPARSEABLE_DATES counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pytest
from evidence_features import extract_batch, extract_features
from features_utils.documents import MibRecordSpec, acord_mib, flat_mib

AS_OF = date(2024, 3, 16)


def _fill(fill_date: str | None, written: str = "") -> str:
    date_tag = "" if fill_date is None else f"<FillDate>{fill_date}</FillDate>"
    return (
        f"<DrugFill>{date_tag}<DrugGenericName>LISINOPRIL</DrugGenericName>"
        "<Quantity>30</Quantity><DaysSupply>30</DaysSupply>"
        f"<PharmacyNCPDPID>0300001</PharmacyNCPDPID>{written}</DrugFill>"
    )


def _rx(*fills: str, head: str = "") -> bytes:
    body = "".join(fills)
    return f"<IntelRX><IntelRXResponse>{head}{body}</IntelRXResponse></IntelRX>".encode()


def _rx_values(document: bytes) -> dict[str, float]:
    return extract_features(None, document, as_of=AS_OF).as_dict()


def _mib_values(document: bytes) -> dict[str, float]:
    return extract_features(document, None, as_of=AS_OF).as_dict()


# (first date, second date, de-duplicated count, duplicate count) for two otherwise identical
# records. Two missing dates compare equal.
DATE_PAIRS = [
    ("garbage", "rubbish", 2, 0),
    ("garbage", "garbage", 1, 1),
    ("garbage", "GARBAGE", 2, 0),
    ("garbage", None, 2, 0),
    ("------", "0000-00-00", 2, 0),
    (None, None, 1, 1),
    ("2024-01-01", "01/01/2024", 1, 1),
]


@pytest.mark.parametrize(("first", "second", "total", "duplicates"), DATE_PAIRS)
def test_fill_dedup_unparseable_dates(
    first: str | None, second: str | None, total: int, duplicates: int
) -> None:
    """Fills with unparseable dates merge only when the date texts are identical."""
    values = _rx_values(_rx(_fill(first), _fill(second)))
    assert total == values["RX_TOTAL_FILLS"]
    assert duplicates == values["RX_DUPLICATE_FILLS"]


def test_fill_dedup_many_unparseable_dates() -> None:
    """Four fills with three distinct unreadable date texts leave three fills."""
    document = _rx(_fill("garbage"), _fill("rubbish"), _fill("garbage"), _fill("junk"))
    values = _rx_values(document)
    assert values["RX_TOTAL_FILLS"] == 3.0
    assert values["RX_DUPLICATE_FILLS"] == 1.0
    assert values["META_UNPARSEABLE_DATES"] == 3.0


@pytest.mark.parametrize(("first", "second", "total", "duplicates"), DATE_PAIRS)
@pytest.mark.parametrize("render", [acord_mib, flat_mib], ids=["acord", "flat"])
def test_mib_dedup_unparseable_dates(
    render: Callable[[list[MibRecordSpec]], bytes],
    first: str | None,
    second: str | None,
    total: int,
    duplicates: int,
) -> None:
    """MIB records with unparseable dates merge only when the date texts are identical."""
    records = [MibRecordSpec(day, "XA1", ("311",)) for day in (first, second)]
    values = _mib_values(render(records))
    assert total == values["MIB_TOTAL_RECORDS"]
    # The code count runs over de-duplicated records, so it shows the merge too.
    assert total == values["MIB_CODE_COUNT"]
    assert duplicates == 2 - values["MIB_TOTAL_RECORDS"]


@pytest.mark.parametrize(
    ("written", "unparseable"),
    [
        ("", 0),
        ("<WrittenDate>2024-01-01</WrittenDate>", 0),
        ("<WrittenDate> </WrittenDate>", 0),
        ("<WrittenDate>99/99/2024</WrittenDate>", 1),
        ("<WrittenDate>------</WrittenDate>", 1),
        ("<WrittenDate><Date>2024-13-01</Date></WrittenDate>", 1),
        ('<WrittenDate value="31-FOO-24"/>', 1),
    ],
    ids=["absent", "valid", "blank", "invalid", "unknown", "nested", "attribute"],
)
def test_written_date_counted(written: str, unparseable: int) -> None:
    """A present but unparseable WrittenDate counts in META_UNPARSEABLE_DATES."""
    vector = extract_features(None, _rx(_fill("2024-01-01", written)), as_of=AS_OF)
    assert unparseable == vector.as_dict()["META_UNPARSEABLE_DATES"]
    warned = [w.count for w in vector.warnings if w.kind == "unparseable_date"]
    assert warned == ([unparseable] if unparseable else [])


def test_written_date_many_fills() -> None:
    """Each de-duplicated fill counts its own unparseable WrittenDate, next to its fill date."""
    bad = "<WrittenDate>99/99/2024</WrittenDate>"
    document = _rx(
        _fill("2024-01-01", bad),
        _fill("2024-02-01", bad),
        _fill("garbage", bad),
        head="<ReportDate>not a date</ReportDate>",
    )
    # Three written dates, one fill date and one report date.
    assert _rx_values(document)["META_UNPARSEABLE_DATES"] == 5.0


@pytest.mark.parametrize(
    ("first", "second", "unparseable"),
    [
        ("99/99/2024", "99/99/2024", 1),
        ("99/99/2024", "2024-01-01", 1),
        ("2024-01-01", "99/99/2024", 1),
        ("2024-01-01", "2024-01-02", 0),
    ],
)
def test_written_date_duplicate_fills(first: str, second: str, unparseable: int) -> None:
    """Duplicate fills count one unparseable WrittenDate when any copy carries one."""
    document = _rx(
        _fill("2024-01-01", f"<WrittenDate>{first}</WrittenDate>"),
        _fill("2024-01-01", f"<WrittenDate>{second}</WrittenDate>"),
    )
    values = _rx_values(document)
    assert values["RX_DUPLICATE_FILLS"] == 1.0
    assert unparseable == values["META_UNPARSEABLE_DATES"]


def test_written_date_changes_only_count() -> None:
    """An unparseable WrittenDate changes no feature except META_UNPARSEABLE_DATES."""
    plain = _rx_values(_rx(_fill("2024-01-01")))
    written = _rx_values(_rx(_fill("2024-01-01", "<WrittenDate>99/99/2024</WrittenDate>")))
    assert written.pop("META_UNPARSEABLE_DATES") == 1.0
    assert plain.pop("META_UNPARSEABLE_DATES") == 0.0
    assert plain == written


def test_every_report_date_checked() -> None:
    """An unparseable ReportDate after a readable one still counts, and the readable wins."""
    head = "<ReportDate>2024-03-01</ReportDate><ReportDate>not a date</ReportDate>"
    vector = extract_features(None, _rx(_fill("2024-01-01"), head=head))
    assert vector.as_dict()["META_UNPARSEABLE_DATES"] == 1.0
    assert vector.as_of == date(2024, 3, 1)


def test_every_transaction_date_checked() -> None:
    """Each TransExeDate is checked, and a readable one after an unreadable one is the as-of."""
    reply = (
        "<TXLifeResponse><TransExeDate>{}</TransExeDate><OLifE><FormInstance id='F1'>"
        "<SubmitDate>2023-01-01</SubmitDate><FormResponse><ResponseData>311</ResponseData>"
        "</FormResponse></FormInstance></OLifE></TXLifeResponse>"
    )
    document = f"<TXLife>{reply.format('32/13/2024')}{reply.format('2024-02-01')}</TXLife>"
    vector = extract_features(document.encode(), None)
    assert vector.as_dict()["META_UNPARSEABLE_DATES"] == 1.0
    assert vector.as_of == date(2024, 2, 1)


def test_unreadable_dates_batch_matches_single() -> None:
    """extract_batch gives the same rows as extract_features for these documents."""
    pairs = [
        (None, _rx(_fill("garbage"), _fill("rubbish"))),
        (None, _rx(_fill("2024-01-01", "<WrittenDate>99/99/2024</WrittenDate>"))),
        (flat_mib([MibRecordSpec(d, "XA1", ("311",)) for d in ("------", "junk")]), None),
    ]
    batch = extract_batch(pairs, as_of=AS_OF)
    for row, (mib, rx) in zip(batch, pairs, strict=True):
        np.testing.assert_array_equal(extract_features(mib, rx, as_of=AS_OF).values, row)
