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


def test_reply_ignores_ids_of_another_reply() -> None:
    """A form whose party and relation sit in another reply gets neither from that reply."""
    orphan = (
        '<OLifE><FormInstance id="F2" ProviderPartyID="C1"><SubmitDate>2023-02-01</SubmitDate>'
        "<FormResponse><ResponseData>503</ResponseData></FormResponse></FormInstance></OLifE>"
    )
    document = _txlife(_olife("C1", "XA1", "F1", "2023-01-01", "311", HIT), orphan)
    # The orphan form counts as a record without match type, and its company is the raw id
    # "C1", not the carrier XA1 of the first reply.
    assert _counts(document) == (2.0, 1.0, 0.0, 2.0)


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
    """extract_batch gives the same row as extract_features for reused ids."""
    document = _txlife(
        _olife("C1", "XA1", "F1", "2023-01-01", "311", HIT),
        _olife("C1", "QB7", "F1", "2023-02-01", "503", TRY),
    )
    single = extract_features(document, None, as_of=AS_OF).values
    batch = extract_batch([(document, None)], as_of=AS_OF)[0]
    np.testing.assert_array_equal(single, batch)
