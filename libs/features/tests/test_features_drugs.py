"""Drug-name normalisation, classification rules, strengths and MME."""

from __future__ import annotations

from datetime import date

import pytest
from evidence_features import (
    DRUG_TABLE_VERSION,
    MME_FACTOR_SOURCE,
    EvidenceFeaturesError,
    extract_features,
)
from evidence_features._drugs import load_drug_catalog, normalise_text, parse_strength

CATALOG = load_drug_catalog()


def classes_of(generic: str | None, brand: str | None = None, form: str | None = None) -> set[str]:
    return set(CATALOG.describe(generic, brand, None, form, None).classes)


@pytest.mark.parametrize(
    ("generic", "brand", "form", "expected"),
    [
        ("METFORMIN HCL", None, None, {"NONINSULIN_ANTIDIABETIC"}),
        ("metformin hydrochloride er", None, None, {"NONINSULIN_ANTIDIABETIC"}),
        (None, "GLUCOPHAGE", None, {"NONINSULIN_ANTIDIABETIC"}),
        ("HYDROCODONE-APAP", None, None, {"OPIOID"}),
        ("LOSARTAN/HCTZ", None, None, {"ARB", "THIAZIDE"}),
        ("AMLODIPINE BESYLATE 5 MG TABLET", None, None, {"CCB"}),
        ("DIVALPROEX SODIUM ER", None, None, {"ANTIEPILEPTIC"}),
        ("CALCIUM ACETATE", None, None, {"CKD_ESRD"}),
        ("INSULIN GLARGINE", "LANTUS", None, {"INSULIN"}),
        ("BUPRENORPHINE", "BUTRANS", "PATCH", {"OPIOID"}),
        ("BUPRENORPHINE HCL", None, "TRANSDERMAL PATCH", {"OPIOID"}),
        ("BUPRENORPHINE HCL", None, "SUBLINGUAL TABLET", {"SUD_TREATMENT"}),
        ("BUPRENORPHINE-NALOXONE", "SUBOXONE", "FILM", {"SUD_TREATMENT"}),
        ("SEMAGLUTIDE", "OZEMPIC", None, {"NONINSULIN_ANTIDIABETIC"}),
        ("SEMAGLUTIDE", "WEGOVY", None, set()),
        ("PROMETHAZINE", None, None, set()),
        ("METHOTREXATE", None, None, set()),
        ("EVEROLIMUS", "ZORTRESS", None, {"IMMUNOSUPPRESSANT"}),
        ("FLUTICASONE PROPIONATE", "FLONASE", "NASAL SPRAY", set()),
        ("FLUTICASONE-SALMETEROL", "ADVAIR DISKUS", "INHALATION POWDER", {"COPD_ASTHMA"}),
        ("SACUBITRIL-VALSARTAN", "ENTRESTO", None, {"HEART_FAILURE", "ARB"}),
        ("ZOLPIDEM TARTRATE", None, None, {"SEDATIVE_HYPNOTIC"}),
        ("MIXED AMPHETAMINE SALTS", None, None, {"STIMULANT_ADHD"}),
        ("SEMAGLUTIDE 2 MG/1.5 ML PEN-INJECTOR", None, None, {"NONINSULIN_ANTIDIABETIC"}),
        ("ALBUTEROL SULFATE HFA 90 MCG/ACT", None, None, {"COPD_ASTHMA"}),
        ("ADALIMUMAB 40 MG/0.4 ML AUTO-INJECTOR", None, None, {"IMMUNOSUPPRESSANT"}),
        (None, "TAMBOCOR", None, {"ANTIARRHYTHMIC"}),
        (None, "REVIA", None, {"SUD_TREATMENT"}),
        (None, "SOLTAMOX", None, {"ONCOLOGY"}),
    ],
)
def test_classify_names(
    generic: str | None, brand: str | None, form: str | None, expected: set[str]
) -> None:
    """Salts, strengths, forms, brands and combination separators resolve to the right class."""
    assert expected == classes_of(generic, brand, form)


@pytest.mark.parametrize("name", ["EMPTY", "UNKNOWN", "  ", "N/A"])
def test_placeholder_names_have_no_drug(name: str) -> None:
    """Placeholder names carry no drug identity."""
    info = CATALOG.describe(name, None, None, None, None)
    assert info.key is None
    assert info.ingredients == ()


def test_unknown_name_is_kept_and_flagged() -> None:
    """An unrecognised name keeps its normalised text as the key and is flagged unknown."""
    info = CATALOG.describe("Compounded Cream 2%", None, None, None, None)
    assert info.unknown
    assert info.key == "COMPOUNDED"


def test_combination_key_order_independent() -> None:
    """The drug key of a combination does not depend on ingredient order."""
    first = CATALOG.describe("HYDROCODONE/ACETAMINOPHEN", None, None, None, None)
    second = CATALOG.describe("ACETAMINOPHEN-HYDROCODONE", None, None, None, None)
    assert first.key == second.key


@pytest.mark.parametrize(
    ("text", "values", "units"),
    [
        ("5-325 MG", (5.0, 325.0), ("MG", "MG")),
        ("10 MG/325 MG", (10.0, 325.0), ("MG", "MG")),
        ("25 MCG/HR", (25.0,), ("MCG/HR",)),
        ("HYDROCODONE-APAP 7.5-325 TABLET", (7.5, 325.0), ("", "")),
        ("30 MG", (30.0,), ("MG",)),
        ("0.5 MG", (0.5,), ("MG",)),
        (".5 MG", (0.5,), ("MG",)),
        ("5-.5 MG", (5.0, 0.5), ("MG", "MG")),
        ("TAB.10MG", (10.0,), ("MG",)),
        ("10MG/5ML", (10.0, 5.0), ("MG", "ML")),
        ("10 MG, 325 MG", (10.0, 325.0), ("MG", "MG")),
        ("30, MG", (30.0,), ("",)),
        ("10000 MG", (10_000.0,), ("MG",)),
    ],
)
def test_parse_strength(text: str, values: tuple[float, ...], units: tuple[str, ...]) -> None:
    """Strength numbers keep label order and take the next unit in the text."""
    strength = parse_strength(text)
    assert strength is not None
    assert values == strength.values
    assert units == strength.units


@pytest.mark.parametrize(
    ("text", "values", "units"),
    [
        ("1,000 MG", (1000.0,), ("MG",)),
        ("1,000.5 MG", (1000.5,), ("MG",)),
        ("7.5-1,000 MG", (7.5, 1000.0), ("MG", "MG")),
        ("1,00 MG", (None,), ("MG",)),
        ("30,5 MG", (None,), ("MG",)),
        ("0,500 MG", (None,), ("MG",)),
        ("5-1,00 MG", (5.0, None), ("MG", "MG")),
        ("1,000,000 MG", (None,), ("MG",)),
        ("10001 MG", (None,), ("MG",)),
    ],
)
def test_parse_strength_grouping_and_range(
    text: str, values: tuple[float | None, ...], units: tuple[str, ...]
) -> None:
    """A comma groups thousands only, and ambiguous or out-of-range numbers are None in place."""
    strength = parse_strength(text)
    assert strength is not None
    assert values == strength.values
    assert units == strength.units


@pytest.mark.parametrize("text", ["", "N/A", "MG", ", MG"])
def test_parse_strength_without_number(text: str) -> None:
    """A strength text without any digit gives None."""
    assert parse_strength(text) is None


def test_table_versions_recorded() -> None:
    """The package reports the drug table version and the CDC 2022 MME source."""
    assert DRUG_TABLE_VERSION
    assert MME_FACTOR_SOURCE == "CDC 2022"
    assert CATALOG.mme_factors["TRAMADOL"] == 0.2  # 0.1 in the 2016-era table
    assert CATALOG.mme_factors["METHADONE"] == 4.7


def _opioid_rx(fills: str) -> bytes:
    return f"<IntelRXResponse><ReportDate>2024-03-16</ReportDate>{fills}</IntelRXResponse>".encode()


@pytest.mark.parametrize(
    ("fill", "mme"),
    [
        # 25 mcg/h fentanyl patch x 2.4 per mcg/h, whatever the count of patches.
        ("<DrugGenericName>FENTANYL</DrugGenericName><DrugStrength>25 MCG/HR</DrugStrength>"
         "<DosageForm>PATCH</DosageForm><Quantity>10</Quantity><DaysSupply>30</DaysSupply>", 60.0),
        # 50 mg tramadol x 120 / 30 days x 0.2.
        ("<DrugGenericName>TRAMADOL HCL</DrugGenericName><DrugStrength>50 MG</DrugStrength>"
         "<Quantity>120</Quantity><DaysSupply>30</DaysSupply>", 40.0),
        # Strength only in the label: 7.5 mg hydrocodone x 90 / 30 days x 1.
        ("<DrugGenericName>HYDROCODONE-APAP 7.5-325 MG TABLET</DrugGenericName>"
         "<Quantity>90</Quantity><DaysSupply>30</DaysSupply>", 22.5),
        # No CDC 2022 factor for meperidine: the fill adds no MME.
        ("<DrugGenericName>MEPERIDINE</DrugGenericName><DrugStrength>50 MG</DrugStrength>"
         "<Quantity>30</Quantity><DaysSupply>5</DaysSupply>", 0.0),
        # Days supply 0 cannot give a daily dose.
        ("<DrugGenericName>OXYCODONE</DrugGenericName><DrugStrength>5 MG</DrugStrength>"
         "<Quantity>30</Quantity><DaysSupply>0</DaysSupply>", 0.0),
    ],
)  # fmt: skip
def test_opioid_daily_mme(fill: str, mme: float) -> None:
    """Daily MME uses strength x quantity / days x the CDC 2022 factor, patches per mcg/h."""
    document = _opioid_rx(f"<DrugFill><FillDate>2024-03-01</FillDate>{fill}</DrugFill>")
    values = extract_features(None, document).as_dict()
    assert values["RX_DRUG_OPIOID"] == 1.0
    assert mme == pytest.approx(values["RX_OPIOID_MAX_DAILY_MME"])


def test_mme_window_is_730_days() -> None:
    """An opioid fill older than 730 days adds no MME but still sets the opioid flag."""
    fill = (
        "<DrugFill><FillDate>2022-03-01</FillDate><DrugGenericName>OXYCODONE</DrugGenericName>"
        "<DrugStrength>10 MG</DrugStrength><Quantity>90</Quantity><DaysSupply>30</DaysSupply>"
        "</DrugFill>"
    )
    values = extract_features(None, _opioid_rx(fill), as_of=date(2024, 3, 16)).as_dict()
    assert values["RX_DRUG_OPIOID"] == 1.0
    assert values["RX_OPIOID_MAX_DAILY_MME"] == 0.0


def _generic_fill(name: str) -> str:
    return f"<DrugFill><DrugGenericName>{name}</DrugGenericName></DrugFill>"


@pytest.mark.parametrize(
    ("names", "flag"),
    [
        (["EMTRICITABINE-TENOFOVIR DISOPROXIL"], 0.0),  # PrEP
        (["TENOFOVIR DISOPROXIL"], 0.0),  # hepatitis B possible
        (["DOLUTEGRAVIR"], 1.0),  # an INSTI alone is enough
        (["EMTRICITABINE-TENOFOVIR ALAFENAMIDE", "ZIDOVUDINE"], 1.0),  # three ARV ingredients
    ],
)
def test_hiv_flag_rule(names: list[str], flag: float) -> None:
    """HIV needs an INSTI, NNRTI or PI, or at least three distinct ARV ingredients."""
    document = "<IntelRXResponse>" + "".join(map(_generic_fill, names)) + "</IntelRXResponse>"
    values = extract_features(None, document).as_dict()
    assert flag == values["RX_DRUG_HIV_ANTIRETROVIRAL"]
    assert (8.0 if flag else 1.0) == values["RX_MAX_CLASS_SEVERITY"]


@pytest.mark.parametrize(
    ("names", "flag"),
    [(["RIBAVIRIN"], 0.0), (["RIBAVIRIN", "PEGINTERFERON ALFA-2A"], 1.0), (["EPCLUSA"], 1.0)],
)
def test_hep_c_flag_rule(names: list[str], flag: float) -> None:
    """Hepatitis C needs a direct-acting antiviral, or ribavirin together with an interferon."""
    fills = "".join(f"<DrugFill><DrugBrandName>{name}</DrugBrandName></DrugFill>" for name in names)
    values = extract_features(None, f"<IntelRXResponse>{fills}</IntelRXResponse>").as_dict()
    assert flag == values["RX_DRUG_HEP_C"]


def test_vendor_class_adds_class() -> None:
    """A TherapeuticClass equal to a table class id adds that class to an unknown drug."""
    document = (
        "<IntelRXResponse><DrugFill><DrugGenericName>LOCALBRANDX</DrugGenericName>"
        '<TherapeuticClass system="LOCAL">loop diuretic</TherapeuticClass></DrugFill>'
        "</IntelRXResponse>"
    )
    assert extract_features(None, document).as_dict()["RX_DRUG_LOOP_DIURETIC"] == 1.0


def test_generated_reports_mostly_known() -> None:
    """Fewer than 2 % of the fills in generated reports are unknown drugs."""
    evidence_synthetic = pytest.importorskip("evidence_synthetic")
    fills = unknown = 0
    for pair in evidence_synthetic.generate_pairs(150, seed=21):
        try:
            vector = extract_features(pair.mib_xml, pair.rx_xml, as_of=pair.as_of)
        except EvidenceFeaturesError:
            continue
        fills += int(vector.as_dict()["RX_TOTAL_FILLS"])
        unknown += sum(w.count for w in vector.warnings if w.kind == "unknown_drug")
    assert fills > 1000
    assert unknown < 0.02 * fills


@pytest.mark.parametrize(
    "name",
    [
        "ＭＥＴＦＯＲＭＩＮ",  # full-width letters
        "ｍｅｔｆｏｒｍｉｎ　ＨＣＬ",  # full-width lower case and ideographic space
        "METFORMIN\u200b",  # zero-width space
        "MET\u200dFOR\u00adMIN",  # zero-width joiner and soft hyphen
        "\ufeffMETFORMIN",  # byte-order mark inside the text
        "METFORMIN\u00a0HCL",  # no-break space before the salt
    ],
)
def test_unicode_name_variants_resolve(name: str) -> None:
    """NFKC and dropping format characters map look-alike names to the plain generic."""
    info = CATALOG.describe(name, None, None, None, None)

    assert "METFORMIN" == info.key
    assert not info.unknown
    assert {"NONINSULIN_ANTIDIABETIC"} == set(info.classes)


def test_unicode_brand_and_form_normalised() -> None:
    """Brand names and dosage forms get the same normalisation as generic names."""
    assert {"NONINSULIN_ANTIDIABETIC"} == classes_of(None, "ＧＬＵＣＯＰＨＡＧＥ")
    assert {"OPIOID"} == classes_of("BUPRENORPHINE", None, "TRANSDERMAL\u200b ＰＡＴＣＨ")


def test_format_characters_only_name_is_missing() -> None:
    """A name made only of format characters names no drug, like an empty name."""
    info = CATALOG.describe("\u200b\u200d", None, None, None, None)

    assert info.key is None
    assert not info.unknown


def test_unicode_name_fill_not_unknown() -> None:
    """A full-width generic name in a report raises no unknown_drug warning."""
    document = (
        "<IntelRXResponse><DrugFill><DrugGenericName>ＭＥＴＦＯＲＭＩＮ</DrugGenericName>"
        "</DrugFill><DrugFill><DrugGenericName>LISINOPRIL\u200b</DrugGenericName></DrugFill>"
        "</IntelRXResponse>"
    )
    vector = extract_features(None, document)

    assert 1.0 == vector.as_dict()["RX_DRUG_NONINSULIN_ANTIDIABETIC"]
    assert 1.0 == vector.as_dict()["RX_ANTIHYPERTENSIVE_CLASS_COUNT"]
    assert 2.0 == vector.as_dict()["RX_UNIQUE_DRUGS"]
    assert [] == [w for w in vector.warnings if w.kind == "unknown_drug"]


def test_normalise_text_ascii_unchanged() -> None:
    """ASCII text is returned as the same object, so ordinary names cost nothing extra."""
    text = "LISINOPRIL 10 MG"

    assert normalise_text(text) is text
