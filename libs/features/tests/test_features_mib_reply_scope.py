"""ACORD ids resolve inside their own TXLifeResponse when a document carries several."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from evidence_features import extract_batch, extract_features

AS_OF = date(2024, 3, 16)


def _olife(party: str, carrier: str, form: str, submitted: str, code: str, role: str) -> str:
    return (
        f'<OLifE><Party id="{party}"><Carrier><CarrierCode>{carrier}</CarrierCode></Carrier>'
        f'</Party><FormInstance id="{form}" ProviderPartyID="{party}">'
        f"<SubmitDate>{submitted}</SubmitDate><FormResponse><ResponseData>{code}</ResponseData>"
        f'</FormResponse></FormInstance><Relation OriginatingObjectID="{form}">{role}</Relation>'
        "</OLifE>"
    )


HIT = '<RelationRoleCode tc="1001">Hit</RelationRoleCode>'
TRY = '<RelationRoleCode tc="1002"/>'


def _txlife(*replies: str) -> bytes:
    body = "".join(f"<TXLifeResponse>{reply}</TXLifeResponse>" for reply in replies)
    return f'<TXLife xmlns="http://ACORD.org/Standards/Life/2">{body}</TXLife>'.encode()


def _counts(document: bytes) -> tuple[float, float, float, float]:
    values = extract_features(document, None, as_of=AS_OF).as_dict()
    return (
        values["MIB_TOTAL_RECORDS"],
        values["MIB_HIT_COUNT"],
        values["MIB_TRY_COUNT"],
        values["MIB_UNIQUE_COMPANIES"],
    )


@pytest.mark.parametrize(
    ("second_party", "second_form"),
    [("C2", "F2"), ("C1", "F1")],
    ids=["distinct-ids", "reused-ids"],
)
def test_two_replies_resolve_own_ids(second_party: str, second_form: str) -> None:
    """A Hit from XA1 and a Try from QB7 stay apart whether or not the replies reuse ids."""
    document = _txlife(
        _olife("C1", "XA1", "F1", "2023-01-01", "311", HIT),
        _olife(second_party, "QB7", second_form, "2023-02-01", "503", TRY),
    )
    assert _counts(document) == (2.0, 1.0, 1.0, 2.0)


def test_three_replies_reusing_ids() -> None:
    """Each of three replies with the same ids keeps its own carrier and match type."""
    document = _txlife(
        _olife("C1", "XA1", "F1", "2023-01-01", "311", HIT),
        _olife("C1", "QB7", "F1", "2023-02-01", "503", TRY),
        _olife("C1", "KD9", "F1", "2023-03-01", "911", HIT),
    )
    assert _counts(document) == (3.0, 2.0, 1.0, 3.0)


def _form(form: str, party: str, submitted: str, code: str) -> str:
    return (
        f'<FormInstance id="{form}" ProviderPartyID="{party}"><SubmitDate>{submitted}</SubmitDate>'
        f"<FormResponse><ResponseData>{code}</ResponseData></FormResponse></FormInstance>"
    )


def test_party_from_other_reply() -> None:
    """A form whose Party sits only in another reply takes that reply's carrier."""
    orphan = f"<OLifE>{_form('F2', 'C1', '2023-02-01', '503')}</OLifE>"
    document = _txlife(_olife("C1", "XA1", "F1", "2023-01-01", "311", HIT), orphan)
    # The orphan form has no match type, and its company is XA1, not the raw id "C1".
    assert _counts(document) == (2.0, 1.0, 0.0, 1.0)


def test_repeated_record_with_party_in_other_reply_merges() -> None:
    """A follow-up reply repeating a record merges with it when its Party is only in reply 1."""
    repeat = f"<OLifE>{_form('F1', 'C1', '2023-01-01', '311')}</OLifE>"
    document = _txlife(_olife("C1", "XA1", "F1", "2023-01-01", "311", HIT), repeat)
    assert _counts(document) == (1.0, 1.0, 0.0, 1.0)


def test_many_replies_fall_back_to_one_party() -> None:
    """Forms in the second and third replies all resolve the Party of the first."""
    document = _txlife(
        _olife("C1", "XA1", "F1", "2023-01-01", "311", HIT),
        f"<OLifE>{_form('F2', 'C1', '2023-02-01', '503')}</OLifE>",
        f"<OLifE>{_form('F3', 'C1', '2023-03-01', '911')}</OLifE>",
    )
    assert _counts(document) == (3.0, 1.0, 0.0, 1.0)


def test_own_reply_party_wins() -> None:
    """A Party of the form's own reply wins, even without a CarrierCode of its own."""
    own = f'<OLifE><Party id="C1"/>{_form("F2", "C1", "2023-02-01", "503")}</OLifE>'
    document = _txlife(_olife("C1", "XA1", "F1", "2023-01-01", "311", HIT), own)
    # The second form's company is its own reply's Party: no carrier, so the raw id "C1".
    assert _counts(document) == (2.0, 1.0, 0.0, 2.0)


def test_party_nowhere_keeps_raw_id() -> None:
    """A ProviderPartyID that no Party defines stays the raw id, and a blank one no company."""
    document = _txlife(
        f"<OLifE>{_form('F1', 'C9', '2023-01-01', '311')}</OLifE>",
        f"<OLifE>{_form('F2', '', '2023-02-01', '503')}</OLifE>",
    )
    assert _counts(document) == (2.0, 0.0, 0.0, 1.0)


def test_relation_missing_its_form_applies_to_other_reply() -> None:
    """A Relation whose form is only in another reply gives that form its match type."""
    first = f'<OLifE><Relation OriginatingObjectID="F2">{TRY}</Relation></OLifE>'
    second = (
        '<OLifE><Party id="C2"><Carrier><CarrierCode>QB7</CarrierCode></Carrier></Party>'
        f"{_form('F2', 'C2', '2023-02-01', '503')}</OLifE>"
    )
    assert _counts(_txlife(first, second)) == (1.0, 0.0, 1.0, 1.0)


def test_relation_of_own_form_does_not_leak() -> None:
    """A Relation about its own reply's form never reaches a same-id form of another reply."""
    bare = f"<OLifE>{_form('F1', 'C1', '2023-02-01', '503')}</OLifE>"
    document = _txlife(_olife("C1", "XA1", "F1", "2023-01-01", "311", HIT), bare)
    # Both forms name XA1, but only the first one is a Hit.
    assert _counts(document) == (2.0, 1.0, 0.0, 1.0)


def test_own_relation_wins_over_fallback() -> None:
    """A form's own Relation wins over a Relation from another reply that lacks the form."""
    first = f'<OLifE><Relation OriginatingObjectID="F2">{HIT}</Relation></OLifE>'
    second = (
        '<OLifE><Party id="C2"><Carrier><CarrierCode>QB7</CarrierCode></Carrier></Party>'
        f'{_form("F2", "C2", "2023-02-01", "503")}<Relation OriginatingObjectID="F2">{TRY}'
        "</Relation></OLifE>"
    )
    assert _counts(_txlife(first, second)) == (1.0, 0.0, 1.0, 1.0)


def test_single_reply_resolves_across_document() -> None:
    """With one TXLifeResponse, a party outside it still names the carrier of its forms."""
    reply = (
        '<OLifE><FormInstance id="F1" ProviderPartyID="C1"><SubmitDate>2023-01-01</SubmitDate>'
        "<FormResponse><ResponseData>311</ResponseData></FormResponse></FormInstance>"
        f'<Relation OriginatingObjectID="F1">{HIT}</Relation></OLifE>'
    )
    party = '<Party id="C1"><Carrier><CarrierCode>XA1</CarrierCode></Carrier></Party>'
    second = '<FormInstance id="F2" ProviderPartyID="C1"><FormResponse><ResponseData>503'
    second += "</ResponseData></FormResponse></FormInstance>"
    document = f"<TXLife><TXLifeResponse>{reply}</TXLifeResponse>{party}{second}</TXLife>"
    # Both forms resolve C1 to XA1, so one company.
    assert _counts(document.encode()) == (2.0, 1.0, 0.0, 1.0)


def test_no_reply_wrapper_resolves_across_document() -> None:
    """Without any TXLifeResponse, a bare OLifE resolves ids across the document."""
    document = _olife("C1", "XA1", "F1", "2023-01-01", "311", TRY).encode()
    assert _counts(document) == (1.0, 0.0, 1.0, 1.0)


def test_reply_outside_wrappers_resolves_among_unwrapped() -> None:
    """With several replies, forms outside every TXLifeResponse see only unwrapped parties."""
    unwrapped = _olife("C1", "ZC3", "F1", "2023-04-01", "650", HIT)
    document = _txlife(
        _olife("C1", "XA1", "F1", "2023-01-01", "311", HIT),
        _olife("C1", "QB7", "F1", "2023-02-01", "503", TRY),
    ).replace(b"</TXLife>", unwrapped.encode() + b"</TXLife>")
    assert _counts(document) == (3.0, 2.0, 1.0, 3.0)


def test_reply_scope_batch_matches_single() -> None:
    """extract_batch gives the same rows as extract_features for reused and fallback ids."""
    documents = [
        _txlife(
            _olife("C1", "XA1", "F1", "2023-01-01", "311", HIT),
            _olife("C1", "QB7", "F1", "2023-02-01", "503", TRY),
        ),
        _txlife(
            _olife("C1", "XA1", "F1", "2023-01-01", "311", HIT),
            f"<OLifE>{_form('F2', 'C1', '2023-02-01', '503')}</OLifE>",
        ),
    ]
    batch = extract_batch([(document, None) for document in documents], as_of=AS_OF)
    for row, document in zip(batch, documents, strict=True):
        single = extract_features(document, None, as_of=AS_OF).values
        np.testing.assert_array_equal(single, row)
