"""Drug catalogue (real generic and brand names with label strengths) and treatment regimens.

The products live in `data/drugs.toml`. Class names follow the underwriting classes of the feature
library: its `RX_DRUG_*` flags and the six antihypertensive classes. `OTHER` marks drugs outside
every class, such as antibiotics. NDCs are made up at render time.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

__all__ = ["ACUTE_DRUGS", "DRUGS", "REGIMENS", "Drug", "Regimen", "RegimenSlot"]


@dataclass(frozen=True, slots=True)
class Drug:
    """One dispensable product: names, label strengths, dosage form and typical use."""

    key: str
    generic: str
    brand: str
    strengths: tuple[str, ...]
    form: str
    units_per_day: tuple[float, ...]
    drug_class: str
    controlled: bool = False
    # Dispensed quantity per 30 days for products not counted in units (inhalers, pens, vials).
    package_quantity: float | None = None


@dataclass(frozen=True, slots=True)
class RegimenSlot:
    """One drug choice taken with `probability`. Non-chronic slots give short fills.

    `companions` are filled alongside whichever drug the slot picks, for products that are
    only one part of a regimen, such as an NRTI backbone next to an integrase inhibitor.
    """

    probability: float
    drug_keys: tuple[str, ...]
    chronic: bool = True
    companions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Regimen:
    """The drugs that treat one latent condition and the specialties that prescribe them."""

    specialties: tuple[str, ...]
    slots: tuple[RegimenSlot, ...]


def _load_drugs() -> dict[str, Drug]:
    """Read the catalogue shipped in `data/drugs.toml`, keyed by the table names."""
    text = resources.files("evidence_synthetic").joinpath("data/drugs.toml").read_text("utf-8")
    drugs: dict[str, Drug] = {}
    for key, entry in tomllib.loads(text).items():
        drugs[key] = Drug(
            key=key,
            generic=entry["generic"],
            brand=entry["brand"],
            strengths=tuple(entry["strengths"]),
            form=entry["form"],
            units_per_day=tuple(float(u) for u in entry["units_per_day"]),
            drug_class=entry["class"],
            controlled=entry.get("controlled", False),
            package_quantity=entry.get("package_quantity"),
        )
    return drugs


DRUGS: dict[str, Drug] = _load_drugs()

_S = RegimenSlot
_PCP = ("FAMILY MEDICINE", "INTERNAL MEDICINE", "NURSE PRACTITIONER", "PHYSICIAN ASSISTANT")

# Condition name -> regimen. Condition names are those of the latent health state.
REGIMENS: dict[str, Regimen] = {
    "hypertension": Regimen(
        (*_PCP, "CARDIOLOGY"),
        (
            _S(0.7, ("lisinopril", "losartan", "valsartan", "olmesartan", "enalapril")),
            _S(0.45, ("amlodipine", "diltiazem")),
            _S(0.35, ("hctz", "chlorthalidone")),
            _S(0.25, ("metoprolol_er", "atenolol", "carvedilol")),
            _S(0.05, ("clonidine", "spironolactone")),
        ),
    ),
    "hyperlipidemia": Regimen(
        _PCP, (_S(0.95, ("atorvastatin", "rosuvastatin", "simvastatin", "pravastatin")),)
    ),
    "diabetes": Regimen(
        (*_PCP, "ENDOCRINOLOGY"),
        (
            _S(0.9, ("metformin", "metformin_er")),
            _S(0.3, ("glipizide", "glimepiride", "sitagliptin")),
            _S(0.25, ("empagliflozin", "dapagliflozin", "dulaglutide", "semaglutide")),
            _S(0.6, ("atorvastatin", "rosuvastatin")),
        ),
    ),
    "insulin_dependent": Regimen(
        ("ENDOCRINOLOGY", *_PCP),
        (
            _S(1.0, ("glargine",)),
            _S(0.6, ("lispro", "aspart")),
        ),
    ),
    "coronary_disease": Regimen(
        ("CARDIOLOGY", "INTERVENTIONAL CARDIOLOGY", *_PCP[:2]),
        (
            _S(0.8, ("clopidogrel", "ticagrelor")),
            _S(0.9, ("atorvastatin", "rosuvastatin")),
            _S(0.7, ("metoprolol_er", "carvedilol", "metoprolol")),
            _S(0.4, ("nitroglycerin",)),
            _S(0.3, ("isosorbide", "ranolazine")),
        ),
    ),
    "heart_failure": Regimen(
        ("CARDIOLOGY", *_PCP[:2]),
        (
            _S(0.9, ("furosemide", "torsemide")),
            _S(0.5, ("entresto", "digoxin", "eplerenone")),
            _S(0.6, ("carvedilol", "metoprolol_er")),
            _S(0.4, ("spironolactone",)),
        ),
    ),
    "atrial_fibrillation": Regimen(
        ("CARDIOLOGY", "CARDIAC ELECTROPHYSIOLOGY", *_PCP[:2]),
        (
            _S(0.85, ("apixaban", "rivaroxaban", "warfarin")),
            _S(0.3, ("amiodarone", "flecainide", "sotalol")),
            _S(0.5, ("metoprolol_er", "diltiazem")),
        ),
    ),
    "copd": Regimen(
        ("PULMONARY DISEASE", *_PCP),
        (
            _S(0.9, ("albuterol",)),
            _S(0.7, ("tiotropium", "umeclidinium")),
            _S(0.5, ("advair", "symbicort")),
            _S(0.1, ("roflumilast",)),
            _S(0.5, ("prednisone", "medrol"), chronic=False),
        ),
    ),
    "asthma": Regimen(
        (*_PCP, "ALLERGY & IMMUNOLOGY", "PULMONARY DISEASE"),
        (
            _S(0.9, ("albuterol",)),
            _S(0.4, ("montelukast",)),
            _S(0.35, ("advair", "symbicort")),
            _S(0.2, ("prednisone", "medrol"), chronic=False),
        ),
    ),
    "depression": Regimen(
        (*_PCP, "PSYCHIATRY"),
        (
            _S(
                0.95,
                (
                    "sertraline",
                    "escitalopram",
                    "fluoxetine",
                    "bupropion",
                    "duloxetine",
                    "venlafaxine",
                ),
            ),
            _S(0.2, ("trazodone",)),
            _S(0.25, ("alprazolam", "lorazepam", "clonazepam")),
        ),
    ),
    "serious_mental_illness": Regimen(
        ("PSYCHIATRY", "PSYCHIATRIC NURSE PRACTITIONER"),
        (
            _S(0.9, ("quetiapine", "aripiprazole", "olanzapine")),
            _S(0.35, ("lithium", "lamotrigine")),
            _S(0.4, ("sertraline", "bupropion", "trazodone")),
            _S(0.3, ("clonazepam", "lorazepam")),
        ),
    ),
    "chronic_pain": Regimen(
        ("PAIN MEDICINE", "ORTHOPAEDIC SURGERY", "PHYSICAL MEDICINE & REHABILITATION", *_PCP),
        (
            _S(0.5, ("tramadol", "hydrocodone_apap")),
            _S(0.45, ("gabapentin", "pregabalin")),
            _S(0.4, ("meloxicam", "cyclobenzaprine")),
            _S(0.2, ("duloxetine",)),
        ),
    ),
    "opioid_misuse": Regimen(
        ("PAIN MEDICINE", "EMERGENCY MEDICINE", "DENTIST", "ANESTHESIOLOGY", *_PCP),
        (
            _S(1.0, ("oxycodone", "oxycodone_apap", "hydrocodone_apap", "hydromorphone")),
            _S(0.5, ("oxycontin", "morphine_er", "fentanyl_patch", "methadone", "tapentadol")),
            _S(0.6, ("alprazolam", "clonazepam", "diazepam")),
            _S(0.3, ("carisoprodol",)),
            _S(0.35, ("gabapentin", "pregabalin")),
        ),
    ),
    "alcohol_use": Regimen(
        ("ADDICTION MEDICINE", "PSYCHIATRY", *_PCP),
        (
            _S(0.5, ("naltrexone", "acamprosate", "disulfiram")),
            _S(0.3, ("lorazepam", "diazepam", "gabapentin"), chronic=False),
        ),
    ),
    "cancer": Regimen(
        ("HEMATOLOGY/ONCOLOGY", "MEDICAL ONCOLOGY", "UROLOGY"),
        (
            _S(
                0.85,
                (
                    "tamoxifen",
                    "anastrozole",
                    "letrozole",
                    "abiraterone",
                    "enzalutamide",
                    "imatinib",
                    "capecitabine",
                    "ibrutinib",
                ),
            ),
            _S(0.5, ("ondansetron",), chronic=False),
            _S(0.3, ("dexamethasone",), chronic=False),
            _S(0.3, ("oxycodone", "hydrocodone_apap", "morphine_er")),
        ),
    ),
    "ckd": Regimen(
        ("NEPHROLOGY",),
        (
            _S(0.6, ("sevelamer", "calcitriol", "cinacalcet")),
            _S(0.6, ("furosemide", "torsemide")),
            _S(0.6, ("amlodipine", "losartan")),
        ),
    ),
    "hiv": Regimen(
        ("INFECTIOUS DISEASE",),
        (
            _S(0.75, ("biktarvy",)),
            # Emtricitabine/tenofovir alone is usually PrEP, and the feature library gives it
            # no HIV flag, so Descovy is only filled as the backbone of dolutegravir.
            _S(0.25, ("dolutegravir",), companions=("descovy",)),
        ),
    ),
    "hepatitis_c": Regimen(
        ("GASTROENTEROLOGY", "INFECTIOUS DISEASE", "HEPATOLOGY"), (_S(0.8, ("epclusa", "mavyret")),)
    ),
    "autoimmune": Regimen(
        ("RHEUMATOLOGY", "DERMATOLOGY", "GASTROENTEROLOGY"),
        (
            _S(0.5, ("methotrexate",)),
            _S(0.45, ("adalimumab", "tofacitinib")),
            _S(0.4, ("prednisone",), chronic=False),
        ),
    ),
    "transplant": Regimen(
        ("NEPHROLOGY", "TRANSPLANT SURGERY"),
        (
            _S(1.0, ("tacrolimus",)),
            _S(0.5, ("prednisone",)),
        ),
    ),
    "epilepsy": Regimen(
        ("NEUROLOGY",), (_S(0.95, ("levetiracetam", "lamotrigine", "topiramate")),)
    ),
    "neurodegenerative": Regimen(
        ("NEUROLOGY", "GERIATRIC MEDICINE"),
        (
            _S(0.9, ("donepezil", "memantine", "sinemet", "pramipexole")),
            _S(0.3, ("quetiapine",)),
        ),
    ),
    "adhd": Regimen(
        ("PSYCHIATRY", "NURSE PRACTITIONER"), (_S(0.95, ("adderall", "vyvanse", "concerta")),)
    ),
    "smoker": Regimen(_PCP, (_S(0.15, ("varenicline",), chronic=False),)),
    "insomnia": Regimen(
        (*_PCP, "PSYCHIATRY"),
        (
            _S(0.6, ("zolpidem", "eszopiclone")),
            _S(0.3, ("trazodone",)),
        ),
    ),
    "hypothyroid": Regimen((*_PCP, "ENDOCRINOLOGY"), (_S(1.0, ("levothyroxine",)),)),
    "gerd": Regimen((*_PCP, "GASTROENTEROLOGY"), (_S(1.0, ("omeprazole", "pantoprazole")),)),
    "allergy": Regimen(
        (*_PCP, "ALLERGY & IMMUNOLOGY"),
        (
            _S(0.7, ("fluticasone_nasal", "cetirizine")),
            _S(0.3, ("montelukast",)),
        ),
    ),
    "weight_management": Regimen((*_PCP, "ENDOCRINOLOGY"), (_S(1.0, ("wegovy",)),)),
}

# Everyday short fills anybody may have, with the specialties that write them.
ACUTE_DRUGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("amoxicillin", (*_PCP, "URGENT CARE", "DENTIST")),
    ("amox_clav", (*_PCP, "URGENT CARE", "OTOLARYNGOLOGY")),
    ("azithromycin", (*_PCP, "URGENT CARE")),
    ("cephalexin", (*_PCP, "URGENT CARE", "DERMATOLOGY")),
    ("ciprofloxacin", (*_PCP, "UROLOGY")),
    ("nitrofurantoin", (*_PCP, "OBSTETRICS & GYNECOLOGY")),
    ("fluconazole", (*_PCP, "OBSTETRICS & GYNECOLOGY")),
    ("benzonatate", (*_PCP, "URGENT CARE")),
    ("ibuprofen", (*_PCP, "ORTHOPAEDIC SURGERY", "EMERGENCY MEDICINE")),
    ("medrol", (*_PCP, "URGENT CARE")),
    ("prednisone", (*_PCP, "URGENT CARE")),
    (
        "hydrocodone_apap",
        ("EMERGENCY MEDICINE", "ORTHOPAEDIC SURGERY", "GENERAL SURGERY", "DENTIST"),
    ),
    ("oxycodone_apap", ("GENERAL SURGERY", "ORTHOPAEDIC SURGERY", "ORAL & MAXILLOFACIAL SURGERY")),
    ("tramadol", ("EMERGENCY MEDICINE", "URGENT CARE", *_PCP[:2])),
    ("cyclobenzaprine", (*_PCP, "URGENT CARE")),
    ("ondansetron", ("EMERGENCY MEDICINE", "URGENT CARE")),
    ("valacyclovir", (*_PCP, "DERMATOLOGY")),
    ("promethazine", ("EMERGENCY MEDICINE", *_PCP[:2])),
    ("sildenafil", ("UROLOGY", *_PCP[:2])),
    ("tretinoin", ("DERMATOLOGY",)),
)
