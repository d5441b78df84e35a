"""Drug-name normalisation, classification rules, strengths and MME."""

from __future__ import annotations

import tomllib
from datetime import date
from importlib import resources

import pytest
from evidence_features import (
    DRUG_TABLE_VERSION,
    MME_FACTOR_SOURCE,
    EvidenceFeaturesError,
    extract_features,
)
from evidence_features._drugs import DrugCatalog, load_drug_catalog
from evidence_features._strengths import parse_strength
from evidence_features._text import normalise_text

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
        # Dosage-form rules: only oral or systemic glucocorticoids are systemic steroids.
        ("HYDROCORTISONE", None, "CREAM", set()),
        ("HYDROCORTISONE 1% OINTMENT", None, None, set()),
        ("HYDROCORTISONE", None, "TABLET", {"SYSTEMIC_STEROID"}),
        ("HYDROCORTISONE", None, None, {"SYSTEMIC_STEROID"}),
        ("HYDROCORTISONE", None, "UNKNOWNFORM", {"SYSTEMIC_STEROID"}),
        ("DEXAMETHASONE", None, "SOLUTION, OPHTHALMIC", set()),
        ("DEXAMETHASONE SODIUM PHOSPHATE", None, "INJECTION", {"SYSTEMIC_STEROID"}),
        ("PREDNISOLONE ACETATE", None, "SUSPENSION/DROPS", set()),
        ("PREDNISOLONE", None, "ORAL DROPS", {"SYSTEMIC_STEROID"}),
        ("HYDROCORTISONE-NEOMYCIN-POLYMYXIN B", None, "OTIC SUSPENSION", set()),
        ("HYDROCORTISONE ACETATE", None, "RECTAL FOAM", set()),
        # Label and pharmacy-system abbreviations of the local forms.
        ("HYDROCORTISONE", None, "OINT", set()),
        ("HYDROCORTISONE", None, "SOLUTION, EXTERNAL", set()),
        ("HYDROCORTISONE 1% CREA", None, None, set()),
        ("HYDROCORTISONE BUTYRATE 0.1% CRM", None, None, set()),
        ("DEXAMETHASONE", None, "SOLN, OPH", set()),
        ("DEXAMETHASONE", None, "OPHT SUSP", set()),
        # Abbreviated oral forms keep the class.
        ("DEXAMETHASONE", None, "SOLN", {"SYSTEMIC_STEROID"}),
        ("PREDNISOLONE", None, "SOLN, ORAL", {"SYSTEMIC_STEROID"}),
        ("PREDNISONE", None, "TAB", {"SYSTEMIC_STEROID"}),
        # Only inhaled corticosteroids are COPD/asthma drugs; other R03 drugs keep oral forms.
        ("BUDESONIDE", None, "CAPSULE", set()),
        ("BUDESONIDE EC", None, "CAPSULE, DELAYED RELEASE", set()),
        ("BUDESONIDE", None, "INHALATION SUSPENSION", {"COPD_ASTHMA"}),
        (None, "PULMICORT", None, {"COPD_ASTHMA"}),
        ("FLUTICASONE PROPIONATE", None, "CREAM", set()),
        ("MOMETASONE FUROATE", None, "OINTMENT", set()),
        ("FLUTICASONE-SALMETEROL", None, "INHALER, ORAL", {"COPD_ASTHMA"}),
        ("TIOTROPIUM BROMIDE", None, "INHALATION CAPSULE", {"COPD_ASTHMA"}),
        ("MONTELUKAST SODIUM", None, "TABLET", {"COPD_ASTHMA"}),
        ("IPRATROPIUM BROMIDE", None, "SPRAY, NASAL", set()),
        # Brands sold in one local form only name that form on their own.
        (None, "FLONASE", None, set()),
        (None, "NASONEX", None, set()),
        ("FLUTICASONE PROPIONATE", "FLONASE", None, set()),
        ("MOMETASONE", "NASONEX", None, set()),
        ("BUDESONIDE", "RHINOCORT", None, set()),
        ("BECLOMETHASONE", "BECONASE AQ", None, set()),
        ("BUDESONIDE", "ENTOCORT EC", None, set()),
        (None, "UCERIS", None, set()),
        ("FLUTICASONE", "CUTIVATE", None, set()),
        (None, "ELOCON", None, set()),
        ("MOMETASONE", "ASMANEX TWISTHALER", None, {"COPD_ASTHMA"}),
        ("FLUTICASONE", "FLOVENT HFA", None, {"COPD_ASTHMA"}),
        ("FLUTICASONE PROPIONATE", None, "CREA", set()),
        ("MOMETASONE FUROATE", None, "OINT", set()),
        # Only oral minoxidil is an antihypertensive.
        ("MINOXIDIL", None, "TOPICAL SOLUTION", set()),
        ("MINOXIDIL 5% FOAM", None, None, set()),
        (None, "ROGAINE", None, set()),
        ("MINOXIDIL", None, "TABLET", {"ANTIHYPERTENSIVE_OTHER"}),
        ("MINOXIDIL", None, None, {"ANTIHYPERTENSIVE_OTHER"}),
        ("MINOXIDIL", None, "SOLN", set()),
        ("MINOXIDIL", None, "TAB", {"ANTIHYPERTENSIVE_OTHER"}),
        # Doxepin cream treats itching; oral doxepin is an antidepressant.
        ("DOXEPIN HCL", None, "CREAM", set()),
        ("DOXEPIN 5% CREAM", None, None, set()),
        ("DOXEPIN HCL", None, "CAPSULE", {"ANTIDEPRESSANT"}),
        ("DOXEPIN HCL", None, None, {"ANTIDEPRESSANT"}),
        ("DOXEPIN", "PRUDOXIN", None, set()),
        ("DOXEPIN", "ZONALON", None, set()),
        (None, "PRUDOXIN", None, set()),
        ("DOXEPIN HCL", None, "CRM", set()),
        ("DOXEPIN HCL", "SILENOR", "TAB", {"ANTIDEPRESSANT"}),
        # Transdermal selegiline is an antidepressant, oral selegiline a Parkinson's drug.
        ("SELEGILINE", None, "TRANSDERMAL PATCH", {"ANTIDEPRESSANT"}),
        (None, "EMSAM", None, {"ANTIDEPRESSANT"}),
        ("SELEGILINE HCL", None, "CAPSULE", {"DEMENTIA_PARKINSON"}),
        ("SELEGILINE HCL", None, None, {"DEMENTIA_PARKINSON"}),
        # BiDil is a heart-failure drug; its nitrate and hydralazine keep their own classes.
        (None, "BIDIL", None, {"HEART_FAILURE", "ANTIANGINAL", "ANTIHYPERTENSIVE_OTHER"}),
        (
            "ISOSORBIDE DINITRATE-HYDRALAZINE HCL",
            None,
            "TABLET",
            {"HEART_FAILURE", "ANTIANGINAL", "ANTIHYPERTENSIVE_OTHER"},
        ),
        ("ISOSORBIDE DINITRATE", None, None, {"ANTIANGINAL"}),
        ("HYDRALAZINE HCL", None, None, {"ANTIHYPERTENSIVE_OTHER"}),
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
        ("10MG/5ML", (10.0,), ("MG",)),
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


@pytest.mark.parametrize(
    ("text", "values", "per_volume", "volume_ml"),
    [
        ("30 MG", (30.0,), False, None),
        ("5 MG/5 ML", (5.0,), True, 5.0),
        ("7.5-325 MG/15 ML", (7.5, 325.0), True, 15.0),
        ("20 MG/ML", (20.0,), True, 1.0),
        ("5mg/5mL", (5.0,), True, 5.0),
        ("5 MG / 5 ML", (5.0,), True, 5.0),
        ("5 MG PER 5 ML", (5.0,), True, 5.0),
        ("100 MG/5 ML (20 MG/ML)", (100.0, 20.0), True, 5.0),
        ("5 MG/X ML", (5.0,), True, None),
        ("5 MG/5X ML", (5.0,), True, None),
        ("5 MG/0 ML", (5.0,), True, None),
        ("5 MG/1,5 ML", (5.0,), True, None),
    ],
)
def test_parse_strength_per_volume(
    text: str, values: tuple[float, ...], per_volume: bool, volume_ml: float | None
) -> None:
    """A liquid's "/ N ML" is its volume, not a strength value. An unreadable volume is None."""
    strength = parse_strength(text)
    assert strength is not None
    assert values == strength.values
    assert per_volume == strength.per_volume
    assert volume_ml == strength.volume_ml


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
        # Liquid: 5 mg per 5 mL is 1 mg/mL, x 300 mL / 30 days x 1.5.
        ("<DrugGenericName>OXYCODONE HCL</DrugGenericName><DrugStrength>5 MG/5 ML</DrugStrength>"
         "<Quantity>300</Quantity><DaysSupply>30</DaysSupply>", 15.0),
        # 7.5 mg hydrocodone per 15 mL is 0.5 mg/mL, x 450 mL / 30 days x 1.
        ("<DrugGenericName>HYDROCODONE BITARTRATE-ACETAMINOPHEN</DrugGenericName>"
         "<DrugStrength>7.5-325 MG/15 ML</DrugStrength>"
         "<Quantity>450</Quantity><DaysSupply>30</DaysSupply>", 7.5),
        # The same liquid with the strength only in the label, written without spaces.
        ("<DrugGenericName>HYDROCODONE-APAP 7.5-325MG/15ML SOLUTION</DrugGenericName>"
         "<Quantity>450</Quantity><DaysSupply>30</DaysSupply>", 7.5),
        # A concentrate per mL: 20 mg/mL x 30 mL / 30 days x 1.5.
        ("<DrugGenericName>OXYCODONE HCL</DrugGenericName><DrugStrength>20 mg/mL</DrugStrength>"
         "<DosageForm>CONCENTRATE</DosageForm><Quantity>30</Quantity><DaysSupply>30</DaysSupply>",
         30.0),
        # Codeine second in the label: 10 mg per 5 mL x 240 mL / 10 days x 0.15.
        ("<DrugGenericName>PROMETHAZINE-CODEINE</DrugGenericName>"
         "<DrugStrength>6.25-10 MG/5 ML</DrugStrength>"
         "<Quantity>240</Quantity><DaysSupply>10</DaysSupply>", 7.2),
        # A liquid with quantity 0 gives no daily dose.
        ("<DrugGenericName>OXYCODONE HCL</DrugGenericName><DrugStrength>5 MG/5 ML</DrugStrength>"
         "<Quantity>0</Quantity><DaysSupply>30</DaysSupply>", 0.0),
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


def test_mme_max_tablet_and_liquid() -> None:
    """The maximum runs over tablets and liquids alike, each in its own unit."""
    fills = (
        "<DrugFill><FillDate>2024-03-01</FillDate><DrugGenericName>TRAMADOL HCL</DrugGenericName>"
        "<DrugStrength>50 MG</DrugStrength><Quantity>120</Quantity><DaysSupply>30</DaysSupply>"
        "</DrugFill><DrugFill><FillDate>2024-03-02</FillDate>"
        "<DrugGenericName>OXYCODONE HCL</DrugGenericName><DrugStrength>5 MG/5 ML</DrugStrength>"
        "<Quantity>300</Quantity><DaysSupply>30</DaysSupply></DrugFill>"
    )
    values = extract_features(None, _opioid_rx(fills)).as_dict()
    assert values["RX_OPIOID_MAX_DAILY_MME"] == pytest.approx(40.0)


@pytest.mark.parametrize("strength", ["5 MG/X ML", "5 MG/0 ML", "5 MG/1,5 ML", "30,5 MG"])
def test_liquid_unreadable_volume_skipped(strength: str) -> None:
    """A per-volume strength without a readable volume is treated like an unreadable number."""
    fill = (
        "<DrugFill><FillDate>2024-03-01</FillDate><DrugGenericName>OXYCODONE HCL</DrugGenericName>"
        f"<DrugStrength>{strength}</DrugStrength><Quantity>300</Quantity>"
        "<DaysSupply>30</DaysSupply></DrugFill>"
    )
    vector = extract_features(None, _opioid_rx(fill))
    assert vector.as_dict()["RX_OPIOID_MAX_DAILY_MME"] == 0.0
    assert vector.as_dict()["RX_DRUG_OPIOID"] == 1.0
    implausible = [w.count for w in vector.warnings if w.kind == "implausible_value"]
    assert implausible == [1]


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


@pytest.mark.parametrize(
    ("fills", "heart_failure", "antianginal"),
    [
        ([], 0.0, 0.0),
        ([("BIDIL", None)], 1.0, 1.0),
        ([(None, "ISOSORBIDE DINITRATE-HYDRALAZINE HCL")], 1.0, 1.0),
        # Two separate products are not the BiDil combination.
        ([(None, "ISOSORBIDE DINITRATE"), (None, "HYDRALAZINE HCL")], 0.0, 1.0),
    ],
)
def test_bidil_is_heart_failure(
    fills: list[tuple[str | None, str | None]], heart_failure: float, antianginal: float
) -> None:
    """BiDil, by brand or as the combination generic, sets RX_DRUG_HEART_FAILURE."""
    parts = []
    for brand, generic in fills:
        names = f"<DrugBrandName>{brand}</DrugBrandName>" if brand else ""
        names += f"<DrugGenericName>{generic}</DrugGenericName>" if generic else ""
        parts.append(f"<DrugFill><FillDate>2024-03-01</FillDate>{names}</DrugFill>")
    values = extract_features(None, _opioid_rx("".join(parts))).as_dict()
    assert heart_failure == values["RX_DRUG_HEART_FAILURE"]
    assert antianginal == values["RX_DRUG_ANTIANGINAL"]


@pytest.mark.parametrize(
    "form_field",
    [
        "<DosageForm>CREAM</DosageForm>",
        '<DosageForm value="CREAM"/>',
        "<DosageForm> Cream </DosageForm>",
    ],
)
def test_form_rule_reads_every_form_field_shape(form_field: str) -> None:
    """The dosage form counts whether given as text, as a value attribute or in lower case."""
    fill = (
        "<DrugFill><FillDate>2024-03-01</FillDate><DrugGenericName>HYDROCORTISONE"
        f"</DrugGenericName>{form_field}</DrugFill>"
    )
    assert extract_features(None, _opioid_rx(fill)).as_dict()["RX_DRUG_SYSTEMIC_STEROID"] == 0.0


def _table_document() -> dict[str, object]:
    raw = resources.files("evidence_features").joinpath("data/drug_classes.toml").read_text("utf-8")
    return tomllib.loads(raw)


def test_table_without_rules_counts_every_form() -> None:
    """Without form or combination rules every member counts, whatever its dosage form."""
    document = _table_document()
    del document["form_rules"], document["combination_rules"]
    catalog = DrugCatalog(document)
    assert catalog.form_rules == ()
    cream = catalog.describe("HYDROCORTISONE", None, None, "CREAM", None)
    assert {"SYSTEMIC_STEROID"} == set(cream.classes)
    assert "HEART_FAILURE" not in catalog.describe(None, "BIDIL", None, None, None).classes


@pytest.mark.parametrize(
    ("table", "entry", "message"),
    [
        ("form_rules", {"class": "NO_SUCH_CLASS", "forms": ["CREAM"]}, "NO_SUCH_CLASS"),
        (
            "form_rules",
            {"class": "STATIN", "forms": ["CREAM"], "becomes": "NO_SUCH_CLASS"},
            "NO_SUCH_CLASS",
        ),
        (
            "form_rules",
            {"class": "STATIN", "ingredients": ["METFORMIN"], "forms": ["CREAM"]},
            "METFORMIN",
        ),
        ("combination_rules", {"ingredients": ["A", "B"], "class": "NO_SUCH_CLASS"}, "NO_SUCH"),
    ],
)
def test_table_rule_errors_name_the_value(
    table: str, entry: dict[str, object], message: str
) -> None:
    """A rule naming an unknown class, or an ingredient outside its class, fails at load."""
    document = _table_document()
    rules = document[table]
    assert isinstance(rules, list)
    rules.append(entry)
    with pytest.raises(ValueError, match=message):
        DrugCatalog(document)
