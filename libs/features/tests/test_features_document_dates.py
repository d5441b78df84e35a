"""Document dates that cannot be the day a report was made are not used as the as-of date.

Every document is written out by hand, and the expected as-of dates and window features are
computed by hand from the dates in them. Unless a test says otherwise, the fills are dated
2023-06-10 and 2024-03-01, the MIB records 2021-05-10 and 2023-09-01, and a correct report is
dated 2024-03-16.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from evidence_features import FeatureVector, FeatureWarning, extract_batch, extract_features
from evidence_features.errors import DocumentKind

IMPLAUSIBLE = "implausible_document_date"
FILL = (
    "<DrugFill><FillDate>{day}</FillDate><DrugGenericName>{drug}</DrugGenericName>"
    "<Quantity>30</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
)
MIB_RECORD = (
    '<FormInstance id="F{index}" ProviderPartyID="C1"><SubmitDate>{day}</SubmitDate>'
    "<FormResponse><ResponseData>{code}</ResponseData></FormResponse></FormInstance>"
)
# Neighbouring records differ in drug or code, so two records of one day stay two records.
DRUGS = ("LISINOPRIL", "METFORMIN")
CODES = ("311", "650E")
FILL_DAYS = ("2023-06-10", "2024-03-01")
RECORD_DAYS = ("2021-05-10", "2023-09-01")


def rx_report(report_date: str, fill_days: tuple[str, ...] = FILL_DAYS) -> bytes:
    fills = "".join(
        FILL.format(day=day, drug=DRUGS[index % 2]) for index, day in enumerate(fill_days)
    )
    return (
        f"<IntelRX><IntelRXResponse><ReportDate>{report_date}</ReportDate><Result>HIT</Result>"
        f"{fills}</IntelRXResponse></IntelRX>"
    ).encode()


def mib_report(trans_exe_date: str, record_days: tuple[str, ...] = RECORD_DAYS) -> bytes:
    records = "".join(
        MIB_RECORD.format(index=index, day=day, code=CODES[index % 2])
        for index, day in enumerate(record_days)
    )
    return (
        "<TXLife><TXLifeResponse>"
        f"<TransExeDate>{trans_exe_date}</TransExeDate><TransResult><ResultCode tc='1'>Success"
        f"</ResultCode><RecordsFound>{len(record_days)}</RecordsFound></TransResult><OLifE>"
        '<Party id="C1"><Carrier><CarrierCode>XA1</CarrierCode></Carrier></Party>'
        f"{records}</OLifE></TXLifeResponse></TXLife>"
    ).encode()


def kinds(vector: FeatureVector) -> set[tuple[str, str]]:
    return {(warning.kind, warning.document) for warning in vector.warnings}


def today() -> date:
    return datetime.now(UTC).date()


@pytest.mark.parametrize("report_date", ["1900-01-01", "1924-03-16", "1970-01-01", "2023-03-16"])
def test_rx_implausible_date_uses_latest_fill(report_date: str) -> None:
    """A placeholder, wrong century or wrong year before the fills falls back to the last fill."""
    vector = extract_features(None, rx_report(report_date))
    features = vector.as_dict()

    assert vector.as_of == date(2024, 3, 1)
    assert FeatureWarning(IMPLAUSIBLE, "RX", 1) in vector.warnings
    # 2024-03-01 is 0 days old and 2023-06-10 is 265 days old, both inside 12 months.
    assert features["RX_FILLS_LAST_12M"] == 2.0
    assert features["RX_DAYS_SINCE_LAST_FILL"] == 0.0
    assert features["RX_HISTORY_SPAN_DAYS"] == 265.0
    assert features["META_FUTURE_DATED_RECORDS"] == 0.0
    assert ("future_dated", "RX") not in kinds(vector)


@pytest.mark.parametrize("trans_exe_date", ["1900-01-01", "1924-03-16", "2021-03-16"])
def test_mib_implausible_date_uses_latest_record(trans_exe_date: str) -> None:
    """An MIB-only pair with a wrong TransExeDate is read as of its latest record."""
    vector = extract_features(mib_report(trans_exe_date), None)
    features = vector.as_dict()

    assert vector.as_of == date(2023, 9, 1)
    assert FeatureWarning(IMPLAUSIBLE, "MIB", 1) in vector.warnings
    # 2023-09-01 is 0 days old; 2021-05-10 is 844 days old, inside 60 months only.
    assert features["MIB_RECORDS_LAST_12M"] == 1.0
    assert features["MIB_RECORDS_LAST_24M"] == 1.0
    assert features["MIB_RECORDS_LAST_60M"] == 2.0
    assert features["MIB_DAYS_SINCE_LAST_REPORT"] == 0.0
    assert features["META_FUTURE_DATED_RECORDS"] == 0.0


def test_normal_dates_vector_unchanged() -> None:
    """Correct dates keep the report date as the as-of date and raise no date warning."""
    vector = extract_features(mib_report("2024-03-16"), rx_report("2024-03-16"))
    features = vector.as_dict()

    assert vector.as_of == date(2024, 3, 16)
    assert kinds(vector) == set()
    # Fills are 15 and 280 days old; MIB records 197 and 1041 days old.
    assert features["RX_FILLS_LAST_12M"] == 2.0
    assert features["RX_DAYS_SINCE_LAST_FILL"] == 15.0
    assert features["MIB_RECORDS_LAST_12M"] == 1.0
    assert features["MIB_RECORDS_LAST_24M"] == 1.0
    assert features["MIB_RECORDS_LAST_60M"] == 2.0
    assert features["MIB_DAYS_SINCE_LAST_REPORT"] == 197.0


@pytest.mark.parametrize(
    ("mib_date", "rx_date", "warned"),
    [("2024-03-16", "1900-01-01", "RX"), ("1924-03-16", "2024-03-16", "MIB")],
)
def test_other_document_date_keeps_vector(mib_date: str, rx_date: str, warned: str) -> None:
    """With one implausible date, the other document's date gives the normal vector."""
    normal = extract_features(mib_report("2024-03-16"), rx_report("2024-03-16"))

    vector = extract_features(mib_report(mib_date), rx_report(rx_date))

    assert vector.as_of == date(2024, 3, 16)
    assert vector.values.tolist() == normal.values.tolist()
    assert kinds(vector) == {(IMPLAUSIBLE, warned)}


def test_both_dates_implausible_use_latest_record() -> None:
    """With both document dates wrong, the latest record of either document is the as-of."""
    vector = extract_features(mib_report("1900-01-01"), rx_report("1924-03-16"))
    features = vector.as_dict()

    assert vector.as_of == date(2024, 3, 1)
    assert kinds(vector) == {(IMPLAUSIBLE, "MIB"), (IMPLAUSIBLE, "RX")}
    # The MIB record of 2023-09-01 is 182 days before 2024-03-01.
    assert features["MIB_DAYS_SINCE_LAST_REPORT"] == 182.0
    assert features["MIB_RECORDS_LAST_12M"] == 1.0
    assert features["RX_FILLS_LAST_12M"] == 2.0
    assert features["RX_DAYS_SINCE_LAST_FILL"] == 0.0
    assert features["META_FUTURE_DATED_RECORDS"] == 0.0


def test_report_date_day_before_fills_accepted() -> None:
    """A report dated one day before its two fills is kept: the slack covers time zones."""
    vector = extract_features(None, rx_report("2024-02-29", ("2024-03-01", "2024-03-01")))
    features = vector.as_dict()

    assert vector.as_of == date(2024, 2, 29)
    assert kinds(vector) == {("missing_document", "MIB")}
    # Fills of 2024-03-01 count as made on the as-of date, as the windows allow.
    assert features["RX_DAYS_SINCE_LAST_FILL"] == 0.0
    assert features["RX_FILLS_LAST_12M"] == 2.0
    assert features["META_FUTURE_DATED_RECORDS"] == 0.0


def test_report_date_two_days_before_fills_skipped() -> None:
    """A report dated two days before its two fills is skipped."""
    vector = extract_features(None, rx_report("2024-02-28", ("2024-03-01", "2024-03-01")))

    assert vector.as_of == date(2024, 3, 1)
    assert FeatureWarning(IMPLAUSIBLE, "RX", 1) in vector.warnings
    assert vector.as_dict()["META_FUTURE_DATED_RECORDS"] == 0.0


@pytest.mark.parametrize(
    ("trans_exe_date", "as_of", "skipped"),
    [("2023-08-31", date(2023, 8, 31), False), ("2023-08-30", date(2023, 9, 1), True)],
)
def test_mib_date_slack_before_records(trans_exe_date: str, as_of: date, skipped: bool) -> None:
    """An MIB reply dated one day before its two records is kept, two days before skipped."""
    vector = extract_features(mib_report(trans_exe_date, ("2023-09-01", "2023-09-01")), None)

    assert vector.as_of == as_of
    assert ((IMPLAUSIBLE, "MIB") in kinds(vector)) is skipped
    assert vector.as_dict()["MIB_DAYS_SINCE_LAST_REPORT"] == 0.0
    assert vector.as_dict()["META_FUTURE_DATED_RECORDS"] == 0.0


@pytest.mark.parametrize(("report_date", "skipped"), [("1998-02-09", True), ("1998-02-10", False)])
def test_report_without_records_floor(report_date: str, skipped: bool) -> None:
    """Without records, only the 1998-02-10 floor can reject a report date."""
    before = today()
    vector = extract_features(None, rx_report(report_date, fill_days=()))
    after = today()

    if skipped:
        assert before <= vector.as_of <= after
        assert FeatureWarning(IMPLAUSIBLE, "RX", 1) in vector.warnings
    else:
        assert vector.as_of == date(1998, 2, 10)
        assert (IMPLAUSIBLE, "RX") not in kinds(vector)


def test_report_without_records_placeholder_uses_mib() -> None:
    """An Rx report without fills dated 1900-01-01 leaves the as-of to the MIB date."""
    vector = extract_features(mib_report("2024-03-16"), rx_report("1900-01-01", fill_days=()))

    assert vector.as_of == date(2024, 3, 16)
    assert kinds(vector) == {(IMPLAUSIBLE, "RX")}
    assert vector.as_dict()["MIB_DAYS_SINCE_LAST_REPORT"] == 197.0


def test_year_one_date_reads_unparseable() -> None:
    """A date before 1900 such as 0001-01-01 is unparseable, never a document date."""
    vector = extract_features(None, rx_report("0001-01-01"))

    assert vector.as_of == date(2024, 3, 1)
    assert FeatureWarning("unparseable_date", "RX", 1) in vector.warnings
    assert (IMPLAUSIBLE, "RX") not in kinds(vector)
    assert vector.as_dict()["META_UNPARSEABLE_DATES"] == 1.0


def test_future_fill_does_not_reject_date() -> None:
    """A fill dated after tomorrow is future-dated and leaves a correct report date in place."""
    vector = extract_features(None, rx_report("2024-03-16", ("2024-03-01", "2124-03-01")))

    assert vector.as_of == date(2024, 3, 16)
    assert (IMPLAUSIBLE, "RX") not in kinds(vector)
    assert FeatureWarning("future_dated", "RX", 1) in vector.warnings


def test_fill_date_typo_stays_future_dated() -> None:
    """One fill dated a year late, but before today, leaves a correct report date in place.

    One of three fills comes after the report date, not more than half, so the fill is taken
    for the typo: it is future-dated and stays out of the windows.
    """
    rx = rx_report("2024-03-16", ("2023-06-10", "2024-03-01", "2025-03-01"))

    vector = extract_features(None, rx)
    features = vector.as_dict()

    assert vector.as_of == date(2024, 3, 16)
    assert kinds(vector) == {("missing_document", "MIB"), ("future_dated", "RX")}
    assert features["RX_FILLS_LAST_12M"] == 2.0
    assert features["META_FUTURE_DATED_RECORDS"] == 1.0


@pytest.mark.parametrize(
    ("fill_days", "skipped"),
    [
        (("2023-06-10", "2024-03-01", "2024-03-05"), True),
        (("2023-06-10", "2023-12-01", "2024-03-01", "2024-03-05"), False),
    ],
)
def test_report_date_before_most_fills(fill_days: tuple[str, ...], skipped: bool) -> None:
    """A report date is skipped when more than half of its fills come two or more days later."""
    # 2024-02-28 is more than one day before 2024-03-01 and 2024-03-05: two of three fills
    # in the first case, two of four (half, not more) in the second.
    vector = extract_features(None, rx_report("2024-02-28", fill_days))
    features = vector.as_dict()

    if skipped:
        assert vector.as_of == date(2024, 3, 5)
        assert FeatureWarning(IMPLAUSIBLE, "RX", 1) in vector.warnings
        assert features["META_FUTURE_DATED_RECORDS"] == 0.0
    else:
        assert vector.as_of == date(2024, 2, 28)
        assert (IMPLAUSIBLE, "RX") not in kinds(vector)
        assert features["META_FUTURE_DATED_RECORDS"] == 2.0


@pytest.mark.parametrize(
    ("mib", "rx", "document", "as_of"),
    [
        (mib_report("2023-03-16", ("2023-09-01",)), None, "MIB", date(2023, 3, 16)),
        (None, rx_report("2024-02-28"), "RX", date(2024, 2, 28)),
    ],
)
def test_single_later_record_future_dated(
    mib: bytes | None, rx: bytes | None, document: DocumentKind, as_of: date
) -> None:
    """One record after its document date is future-dated; one record never rejects the date."""
    vector = extract_features(mib, rx)

    assert vector.as_of == as_of
    assert (IMPLAUSIBLE, document) not in kinds(vector)
    assert FeatureWarning("future_dated", document, 1) in vector.warnings
    assert vector.as_dict()["META_FUTURE_DATED_RECORDS"] == 1.0


def test_explicit_as_of_skips_check() -> None:
    """An explicit as_of is used as given, with no document date warning."""
    vector = extract_features(None, rx_report("1900-01-01"), as_of=date(2024, 3, 16))

    assert vector.as_of == date(2024, 3, 16)
    assert (IMPLAUSIBLE, "RX") not in kinds(vector)
    assert vector.as_dict()["RX_FILLS_LAST_12M"] == 2.0


def test_batch_rows_match_single_extraction() -> None:
    """Strict and lenient batches give each pair the vector of a single extraction."""
    pairs = [
        (mib_report("2024-03-16"), rx_report("2024-03-16")),
        (None, rx_report("1900-01-01")),
        (None, rx_report("1924-03-16")),
        (mib_report("1900-01-01"), None),
        (mib_report("1900-01-01"), rx_report("1924-03-16")),
        (mib_report("2024-03-16"), rx_report("1900-01-01", fill_days=())),
        (None, rx_report("2024-02-29", ("2024-03-01", "2024-03-01"))),
        (None, rx_report("2024-02-28", ("2024-03-01", "2024-03-01"))),
        (None, rx_report("2024-03-16", ("2023-06-10", "2024-03-01", "2025-03-01"))),
    ]
    singles = [extract_features(mib, rx).values.tolist() for mib, rx in pairs]

    strict = extract_batch(pairs)
    lenient = extract_batch(pairs, lenient=True)

    assert strict.tolist() == singles
    assert lenient.tolist() == singles


def test_skipped_date_keeps_own_records_in_windows() -> None:
    """The as-of date is at least the skipped report's latest fill, not the MIB date before it.

    MIB dated 2023-01-01 with records of 2021-05-10 and 2022-09-01; Rx dated 2023-03-16, which
    both fills (2023-06-10, 2024-03-01) follow, so the Rx date is skipped and the as-of date is
    2024-03-01. Counted back from it, the 2022-09-01 record is 547 days old.
    """
    vector = extract_features(
        mib_report("2023-01-01", ("2021-05-10", "2022-09-01")), rx_report("2023-03-16")
    )
    features = vector.as_dict()

    assert vector.as_of == date(2024, 3, 1)
    assert kinds(vector) == {(IMPLAUSIBLE, "RX")}
    assert features["RX_FILLS_LAST_12M"] == 2.0
    assert features["META_FUTURE_DATED_RECORDS"] == 0.0
    assert features["MIB_DAYS_SINCE_LAST_REPORT"] == 547.0
    assert features["MIB_RECORDS_LAST_12M"] == 0.0
    assert features["MIB_RECORDS_LAST_24M"] == 1.0
    assert features["MIB_RECORDS_LAST_60M"] == 2.0
