"""Regimens and drug labels of the generator agree with the feature library's classes."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pytest
from evidence_features import extract_features
from evidence_features._drugs import load_drug_catalog
from evidence_synthetic._catalog import DRUGS, REGIMENS, Drug


def _fill(drug: Drug) -> str:
    return (
        "<DrugFill><FillDate>2024-03-01</FillDate>"
        f"<DrugGenericName>{escape(drug.generic)}</DrugGenericName>"
        f"<DrugBrandName>{escape(drug.brand)}</DrugBrandName>"
        f"<DrugStrength>{escape(drug.strengths[0])}</DrugStrength>"
        f"<DosageForm>{escape(drug.form)}</DosageForm>"
        "<Quantity>30</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
    )


def _hiv_flag(drugs: list[Drug]) -> float:
    document = "<IntelRXResponse>" + "".join(map(_fill, drugs)) + "</IntelRXResponse>"
    return extract_features(None, document).as_dict()["RX_DRUG_HIV_ANTIRETROVIRAL"]


_HIV_CHOICES = [(key, slot.companions) for slot in REGIMENS["hiv"].slots for key in slot.drug_keys]


@pytest.mark.parametrize(("key", "companions"), _HIV_CHOICES)
def test_every_hiv_regimen_choice_sets_the_hiv_flag(key: str, companions: tuple[str, ...]) -> None:
    """Whatever an "hiv" applicant draws, the library flags HIV from the drawn fills alone."""
    assert _hiv_flag([DRUGS[key], *(DRUGS[c] for c in companions)]) == 1.0


def test_descovy_alone_is_prep_to_library_and_generator() -> None:
    """Descovy alone is PrEP, so neither the library nor the catalogue labels it HIV."""
    assert _hiv_flag([DRUGS["descovy"]]) == 0.0
    assert DRUGS["descovy"].drug_class == "OTHER"
    assert all("descovy" not in slot.drug_keys for slot in REGIMENS["hiv"].slots)


def test_hiv_labelled_drugs_flag_hiv_alone() -> None:
    """Every product the catalogue labels HIV_ANTIRETROVIRAL is an HIV drug to the library."""
    labelled = [drug for drug in DRUGS.values() if drug.drug_class == "HIV_ANTIRETROVIRAL"]
    assert labelled
    assert [_hiv_flag([drug]) for drug in labelled] == [1.0] * len(labelled)


def test_every_catalogue_class_is_a_library_class() -> None:
    """The class the generator writes as TherapeuticClass is a library class, or OTHER.

    The library reads that field as a vendor class by its id, so a label such as BENZODIAZEPINE
    for the library's BENZO would never match.
    """
    known = set(load_drug_catalog().class_severity) | {"OTHER"}
    labels = {drug.drug_class for drug in DRUGS.values()}
    assert labels - known == set()
    assert "BENZO" in labels
