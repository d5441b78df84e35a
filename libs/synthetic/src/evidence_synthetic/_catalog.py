"""Drug catalogue: real generic and brand names with label strengths, grouped into regimens.

Class names follow the underwriting classes of the feature library (`RX_DRUG_*` flags and the six
antihypertensive classes). `OTHER` marks drugs outside every underwriting class, such as
antibiotics, which the feature library counts as unmapped. NDCs are made up at render time.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """One drug choice in a regimen, taken with `probability`; `chronic` False means short fills."""

    probability: float
    drug_keys: tuple[str, ...]
    chronic: bool = True


@dataclass(frozen=True, slots=True)
class Regimen:
    """The drugs that treat one latent condition and the specialties that prescribe them."""

    specialties: tuple[str, ...]
    slots: tuple[RegimenSlot, ...]


def _catalogue(*drugs: Drug) -> dict[str, Drug]:
    return {drug.key: drug for drug in drugs}


_D = Drug

DRUGS: dict[str, Drug] = _catalogue(
    # Antihypertensives, one row per class.
    _D("lisinopril", "LISINOPRIL", "ZESTRIL", ("10 MG", "20 MG", "40 MG"), "TABLET", (1,), "ACE_INHIBITOR"),
    _D("enalapril", "ENALAPRIL MALEATE", "VASOTEC", ("5 MG", "10 MG", "20 MG"), "TABLET", (1, 2), "ACE_INHIBITOR"),
    _D("losartan", "LOSARTAN POTASSIUM", "COZAAR", ("25 MG", "50 MG", "100 MG"), "TABLET", (1,), "ARB"),
    _D("valsartan", "VALSARTAN", "DIOVAN", ("80 MG", "160 MG", "320 MG"), "TABLET", (1,), "ARB"),
    _D("olmesartan", "OLMESARTAN MEDOXOMIL", "BENICAR", ("20 MG", "40 MG"), "TABLET", (1,), "ARB"),
    _D("amlodipine", "AMLODIPINE BESYLATE", "NORVASC", ("2.5 MG", "5 MG", "10 MG"), "TABLET", (1,), "CCB"),
    _D("diltiazem", "DILTIAZEM HCL ER", "CARDIZEM CD", ("120 MG", "180 MG", "240 MG"), "CAPSULE", (1,), "CCB"),
    _D("hctz", "HYDROCHLOROTHIAZIDE", "MICROZIDE", ("12.5 MG", "25 MG"), "TABLET", (1,), "THIAZIDE"),
    _D("chlorthalidone", "CHLORTHALIDONE", "THALITONE", ("25 MG", "50 MG"), "TABLET", (1,), "THIAZIDE"),
    _D("metoprolol_er", "METOPROLOL SUCCINATE ER", "TOPROL XL", ("25 MG", "50 MG", "100 MG"), "TABLET", (1,), "BETA_BLOCKER"),
    _D("metoprolol", "METOPROLOL TARTRATE", "LOPRESSOR", ("25 MG", "50 MG"), "TABLET", (2,), "BETA_BLOCKER"),
    _D("carvedilol", "CARVEDILOL", "COREG", ("3.125 MG", "6.25 MG", "12.5 MG", "25 MG"), "TABLET", (2,), "BETA_BLOCKER"),
    _D("atenolol", "ATENOLOL", "TENORMIN", ("25 MG", "50 MG"), "TABLET", (1,), "BETA_BLOCKER"),
    _D("clonidine", "CLONIDINE HCL", "CATAPRES", ("0.1 MG", "0.2 MG"), "TABLET", (2,), "ANTIHYPERTENSIVE_OTHER"),
    _D("spironolactone", "SPIRONOLACTONE", "ALDACTONE", ("25 MG", "50 MG"), "TABLET", (1,), "ANTIHYPERTENSIVE_OTHER"),
    # Lipids.
    _D("atorvastatin", "ATORVASTATIN CALCIUM", "LIPITOR", ("10 MG", "20 MG", "40 MG", "80 MG"), "TABLET", (1,), "STATIN"),
    _D("rosuvastatin", "ROSUVASTATIN CALCIUM", "CRESTOR", ("5 MG", "10 MG", "20 MG"), "TABLET", (1,), "STATIN"),
    _D("simvastatin", "SIMVASTATIN", "ZOCOR", ("20 MG", "40 MG"), "TABLET", (1,), "STATIN"),
    _D("pravastatin", "PRAVASTATIN SODIUM", "PRAVACHOL", ("20 MG", "40 MG"), "TABLET", (1,), "STATIN"),
    # Diabetes.
    _D("metformin", "METFORMIN HCL", "GLUCOPHAGE", ("500 MG", "850 MG", "1000 MG"), "TABLET", (1, 2), "NONINSULIN_ANTIDIABETIC"),
    _D("metformin_er", "METFORMIN HCL ER", "GLUCOPHAGE XR", ("500 MG", "750 MG"), "TABLET", (2, 4), "NONINSULIN_ANTIDIABETIC"),
    _D("glipizide", "GLIPIZIDE", "GLUCOTROL", ("5 MG", "10 MG"), "TABLET", (1, 2), "NONINSULIN_ANTIDIABETIC"),
    _D("glimepiride", "GLIMEPIRIDE", "AMARYL", ("2 MG", "4 MG"), "TABLET", (1,), "NONINSULIN_ANTIDIABETIC"),
    _D("sitagliptin", "SITAGLIPTIN", "JANUVIA", ("50 MG", "100 MG"), "TABLET", (1,), "NONINSULIN_ANTIDIABETIC"),
    _D("empagliflozin", "EMPAGLIFLOZIN", "JARDIANCE", ("10 MG", "25 MG"), "TABLET", (1,), "NONINSULIN_ANTIDIABETIC"),
    _D("dapagliflozin", "DAPAGLIFLOZIN", "FARXIGA", ("5 MG", "10 MG"), "TABLET", (1,), "NONINSULIN_ANTIDIABETIC"),
    _D("dulaglutide", "DULAGLUTIDE", "TRULICITY", ("0.75 MG/0.5 ML", "1.5 MG/0.5 ML"), "PEN INJECTOR", (1,), "NONINSULIN_ANTIDIABETIC", package_quantity=2),
    _D("semaglutide", "SEMAGLUTIDE", "OZEMPIC", ("0.5 MG/DOSE", "1 MG/DOSE"), "PEN INJECTOR", (1,), "NONINSULIN_ANTIDIABETIC", package_quantity=3),
    _D("glargine", "INSULIN GLARGINE", "LANTUS SOLOSTAR", ("100 UNIT/ML",), "PEN INJECTOR", (1,), "INSULIN", package_quantity=15),
    _D("lispro", "INSULIN LISPRO", "HUMALOG KWIKPEN", ("100 UNIT/ML",), "PEN INJECTOR", (1,), "INSULIN", package_quantity=15),
    _D("aspart", "INSULIN ASPART", "NOVOLOG FLEXPEN", ("100 UNIT/ML",), "PEN INJECTOR", (1,), "INSULIN", package_quantity=15),
    # Cardiac.
    _D("clopidogrel", "CLOPIDOGREL BISULFATE", "PLAVIX", ("75 MG",), "TABLET", (1,), "ANTIPLATELET"),
    _D("ticagrelor", "TICAGRELOR", "BRILINTA", ("90 MG",), "TABLET", (2,), "ANTIPLATELET"),
    _D("nitroglycerin", "NITROGLYCERIN", "NITROSTAT", ("0.4 MG",), "SUBLINGUAL TABLET", (1,), "ANTIANGINAL", package_quantity=25),
    _D("isosorbide", "ISOSORBIDE MONONITRATE ER", "IMDUR", ("30 MG", "60 MG"), "TABLET", (1,), "ANTIANGINAL"),
    _D("ranolazine", "RANOLAZINE ER", "RANEXA", ("500 MG", "1000 MG"), "TABLET", (2,), "ANTIANGINAL"),
    _D("furosemide", "FUROSEMIDE", "LASIX", ("20 MG", "40 MG", "80 MG"), "TABLET", (1, 2), "LOOP_DIURETIC"),
    _D("torsemide", "TORSEMIDE", "DEMADEX", ("10 MG", "20 MG"), "TABLET", (1,), "LOOP_DIURETIC"),
    _D("entresto", "SACUBITRIL-VALSARTAN", "ENTRESTO", ("24-26 MG", "49-51 MG", "97-103 MG"), "TABLET", (2,), "HEART_FAILURE"),
    _D("digoxin", "DIGOXIN", "LANOXIN", ("0.125 MG", "0.25 MG"), "TABLET", (1,), "HEART_FAILURE"),
    _D("eplerenone", "EPLERENONE", "INSPRA", ("25 MG", "50 MG"), "TABLET", (1,), "HEART_FAILURE"),
    _D("apixaban", "APIXABAN", "ELIQUIS", ("2.5 MG", "5 MG"), "TABLET", (2,), "ANTICOAGULANT"),
    _D("rivaroxaban", "RIVAROXABAN", "XARELTO", ("15 MG", "20 MG"), "TABLET", (1,), "ANTICOAGULANT"),
    _D("warfarin", "WARFARIN SODIUM", "COUMADIN", ("2 MG", "5 MG", "7.5 MG"), "TABLET", (1,), "ANTICOAGULANT"),
    _D("amiodarone", "AMIODARONE HCL", "PACERONE", ("200 MG",), "TABLET", (1,), "ANTIARRHYTHMIC"),
    _D("flecainide", "FLECAINIDE ACETATE", "TAMBOCOR", ("50 MG", "100 MG"), "TABLET", (2,), "ANTIARRHYTHMIC"),
    _D("sotalol", "SOTALOL HCL", "BETAPACE", ("80 MG", "120 MG"), "TABLET", (2,), "ANTIARRHYTHMIC"),
    # Respiratory.
    _D("albuterol", "ALBUTEROL SULFATE HFA", "PROAIR HFA", ("90 MCG/ACT",), "INHALER", (1,), "COPD_ASTHMA", package_quantity=8.5),
    _D("tiotropium", "TIOTROPIUM BROMIDE", "SPIRIVA HANDIHALER", ("18 MCG",), "INHALATION CAPSULE", (1,), "COPD_ASTHMA"),
    _D("umeclidinium", "UMECLIDINIUM BROMIDE", "INCRUSE ELLIPTA", ("62.5 MCG/ACT",), "INHALER", (1,), "COPD_ASTHMA", package_quantity=30),
    _D("advair", "FLUTICASONE-SALMETEROL", "ADVAIR DISKUS", ("250-50 MCG", "500-50 MCG"), "INHALER", (1,), "COPD_ASTHMA", package_quantity=60),
    _D("symbicort", "BUDESONIDE-FORMOTEROL", "SYMBICORT", ("160-4.5 MCG/ACT",), "INHALER", (1,), "COPD_ASTHMA", package_quantity=10.2),
    _D("montelukast", "MONTELUKAST SODIUM", "SINGULAIR", ("10 MG",), "TABLET", (1,), "COPD_ASTHMA"),
    _D("roflumilast", "ROFLUMILAST", "DALIRESP", ("500 MCG",), "TABLET", (1,), "COPD_ASTHMA"),
    _D("prednisone", "PREDNISONE", "DELTASONE", ("10 MG", "20 MG"), "TABLET", (2, 3), "SYSTEMIC_STEROID"),
    _D("medrol", "METHYLPREDNISOLONE", "MEDROL DOSEPAK", ("4 MG",), "TABLET", (3.5,), "SYSTEMIC_STEROID"),
    # Mental health.
    _D("sertraline", "SERTRALINE HCL", "ZOLOFT", ("50 MG", "100 MG"), "TABLET", (1, 2), "ANTIDEPRESSANT"),
    _D("escitalopram", "ESCITALOPRAM OXALATE", "LEXAPRO", ("10 MG", "20 MG"), "TABLET", (1,), "ANTIDEPRESSANT"),
    _D("fluoxetine", "FLUOXETINE HCL", "PROZAC", ("20 MG", "40 MG"), "CAPSULE", (1,), "ANTIDEPRESSANT"),
    _D("bupropion", "BUPROPION HCL XL", "WELLBUTRIN XL", ("150 MG", "300 MG"), "TABLET", (1,), "ANTIDEPRESSANT"),
    _D("duloxetine", "DULOXETINE HCL", "CYMBALTA", ("30 MG", "60 MG"), "CAPSULE", (1,), "ANTIDEPRESSANT"),
    _D("venlafaxine", "VENLAFAXINE HCL ER", "EFFEXOR XR", ("75 MG", "150 MG"), "CAPSULE", (1,), "ANTIDEPRESSANT"),
    _D("trazodone", "TRAZODONE HCL", "DESYREL", ("50 MG", "100 MG"), "TABLET", (1,), "ANTIDEPRESSANT"),
    _D("quetiapine", "QUETIAPINE FUMARATE", "SEROQUEL", ("100 MG", "200 MG", "300 MG"), "TABLET", (1, 2), "ANTIPSYCHOTIC"),
    _D("aripiprazole", "ARIPIPRAZOLE", "ABILIFY", ("5 MG", "10 MG", "15 MG"), "TABLET", (1,), "ANTIPSYCHOTIC"),
    _D("olanzapine", "OLANZAPINE", "ZYPREXA", ("10 MG", "20 MG"), "TABLET", (1,), "ANTIPSYCHOTIC"),
    _D("lithium", "LITHIUM CARBONATE", "LITHOBID", ("300 MG",), "CAPSULE", (2, 3), "LITHIUM"),
    _D("lamotrigine", "LAMOTRIGINE", "LAMICTAL", ("100 MG", "200 MG"), "TABLET", (1, 2), "ANTIEPILEPTIC"),
    _D("alprazolam", "ALPRAZOLAM", "XANAX", ("0.25 MG", "0.5 MG", "1 MG", "2 MG"), "TABLET", (2, 3, 4), "BENZODIAZEPINE", controlled=True),
    _D("lorazepam", "LORAZEPAM", "ATIVAN", ("0.5 MG", "1 MG", "2 MG"), "TABLET", (2, 3), "BENZODIAZEPINE", controlled=True),
    _D("clonazepam", "CLONAZEPAM", "KLONOPIN", ("0.5 MG", "1 MG", "2 MG"), "TABLET", (2, 3), "BENZODIAZEPINE", controlled=True),
    _D("diazepam", "DIAZEPAM", "VALIUM", ("5 MG", "10 MG"), "TABLET", (2, 3), "BENZODIAZEPINE", controlled=True),
    _D("zolpidem", "ZOLPIDEM TARTRATE", "AMBIEN", ("5 MG", "10 MG"), "TABLET", (1,), "SEDATIVE_HYPNOTIC", controlled=True),
    _D("eszopiclone", "ESZOPICLONE", "LUNESTA", ("2 MG", "3 MG"), "TABLET", (1,), "SEDATIVE_HYPNOTIC", controlled=True),
    _D("carisoprodol", "CARISOPRODOL", "SOMA", ("350 MG",), "TABLET", (3, 4), "SEDATIVE_HYPNOTIC", controlled=True),
    # Pain and opioids; strengths of combination products give the opioid part first.
    _D("tramadol", "TRAMADOL HCL", "ULTRAM", ("50 MG",), "TABLET", (2, 3, 4), "OPIOID", controlled=True),
    _D("hydrocodone_apap", "HYDROCODONE-ACETAMINOPHEN", "NORCO", ("5-325 MG", "7.5-325 MG", "10-325 MG"), "TABLET", (3, 4, 6), "OPIOID", controlled=True),
    _D("oxycodone_apap", "OXYCODONE-ACETAMINOPHEN", "PERCOCET", ("5-325 MG", "10-325 MG"), "TABLET", (3, 4, 6), "OPIOID", controlled=True),
    _D("oxycodone", "OXYCODONE HCL", "ROXICODONE", ("5 MG", "15 MG", "30 MG"), "TABLET", (4, 6), "OPIOID", controlled=True),
    _D("oxycontin", "OXYCODONE HCL ER", "OXYCONTIN", ("20 MG", "40 MG", "80 MG"), "TABLET", (2, 3), "OPIOID", controlled=True),
    _D("hydromorphone", "HYDROMORPHONE HCL", "DILAUDID", ("2 MG", "4 MG", "8 MG"), "TABLET", (4, 6), "OPIOID", controlled=True),
    _D("morphine_er", "MORPHINE SULFATE ER", "MS CONTIN", ("15 MG", "30 MG", "60 MG"), "TABLET", (2, 3), "OPIOID", controlled=True),
    _D("fentanyl_patch", "FENTANYL", "DURAGESIC", ("25 MCG/HR", "50 MCG/HR", "75 MCG/HR"), "TRANSDERMAL PATCH", (1 / 3,), "OPIOID", controlled=True),
    _D("methadone", "METHADONE HCL", "DOLOPHINE", ("10 MG",), "TABLET", (2, 3), "OPIOID", controlled=True),
    _D("tapentadol", "TAPENTADOL HCL", "NUCYNTA", ("50 MG", "100 MG"), "TABLET", (3, 4), "OPIOID", controlled=True),
    _D("gabapentin", "GABAPENTIN", "NEURONTIN", ("300 MG", "600 MG"), "CAPSULE", (3,), "GABAPENTINOID"),
    _D("pregabalin", "PREGABALIN", "LYRICA", ("75 MG", "150 MG"), "CAPSULE", (2,), "GABAPENTINOID", controlled=True),
    _D("meloxicam", "MELOXICAM", "MOBIC", ("7.5 MG", "15 MG"), "TABLET", (1,), "OTHER"),
    _D("cyclobenzaprine", "CYCLOBENZAPRINE HCL", "FLEXERIL", ("5 MG", "10 MG"), "TABLET", (3,), "OTHER"),
    _D("suboxone", "BUPRENORPHINE-NALOXONE", "SUBOXONE", ("8-2 MG",), "SUBLINGUAL FILM", (1, 2), "SUD_TREATMENT", controlled=True),
    _D("naltrexone", "NALTREXONE HCL", "REVIA", ("50 MG",), "TABLET", (1,), "SUD_TREATMENT"),
    _D("acamprosate", "ACAMPROSATE CALCIUM", "CAMPRAL", ("333 MG",), "TABLET", (6,), "SUD_TREATMENT"),
    _D("disulfiram", "DISULFIRAM", "ANTABUSE", ("250 MG",), "TABLET", (1,), "SUD_TREATMENT"),
    _D("naloxone", "NALOXONE HCL", "NARCAN", ("4 MG/ACT",), "NASAL SPRAY", (1,), "OTHER", package_quantity=2),
    _D("varenicline", "VARENICLINE TARTRATE", "CHANTIX", ("0.5 MG", "1 MG"), "TABLET", (2,), "SMOKING_CESSATION"),
    # Oncology and supportive care.
    _D("tamoxifen", "TAMOXIFEN CITRATE", "SOLTAMOX", ("20 MG",), "TABLET", (1,), "ONCOLOGY"),
    _D("anastrozole", "ANASTROZOLE", "ARIMIDEX", ("1 MG",), "TABLET", (1,), "ONCOLOGY"),
    _D("letrozole", "LETROZOLE", "FEMARA", ("2.5 MG",), "TABLET", (1,), "ONCOLOGY"),
    _D("abiraterone", "ABIRATERONE ACETATE", "ZYTIGA", ("250 MG", "500 MG"), "TABLET", (2, 4), "ONCOLOGY"),
    _D("enzalutamide", "ENZALUTAMIDE", "XTANDI", ("40 MG",), "CAPSULE", (4,), "ONCOLOGY"),
    _D("imatinib", "IMATINIB MESYLATE", "GLEEVEC", ("400 MG",), "TABLET", (1,), "ONCOLOGY"),
    _D("capecitabine", "CAPECITABINE", "XELODA", ("500 MG",), "TABLET", (6, 8), "ONCOLOGY"),
    _D("ibrutinib", "IBRUTINIB", "IMBRUVICA", ("420 MG",), "TABLET", (1,), "ONCOLOGY"),
    _D("ondansetron", "ONDANSETRON HCL", "ZOFRAN", ("4 MG", "8 MG"), "TABLET", (2, 3), "OTHER"),
    _D("dexamethasone", "DEXAMETHASONE", "DECADRON", ("4 MG",), "TABLET", (1, 2), "SYSTEMIC_STEROID"),
    # Kidney, infection, immune, neurology.
    _D("sevelamer", "SEVELAMER CARBONATE", "RENVELA", ("800 MG",), "TABLET", (3, 6), "CKD_ESRD"),
    _D("calcitriol", "CALCITRIOL", "ROCALTROL", ("0.25 MCG", "0.5 MCG"), "CAPSULE", (1,), "CKD_ESRD"),
    _D("cinacalcet", "CINACALCET HCL", "SENSIPAR", ("30 MG", "60 MG"), "TABLET", (1,), "CKD_ESRD"),
    _D("biktarvy", "BICTEGRAVIR-EMTRICITABINE-TENOFOVIR ALAFENAMIDE", "BIKTARVY", ("50-200-25 MG",), "TABLET", (1,), "HIV_ANTIRETROVIRAL"),
    _D("dolutegravir", "DOLUTEGRAVIR SODIUM", "TIVICAY", ("50 MG",), "TABLET", (1,), "HIV_ANTIRETROVIRAL"),
    _D("descovy", "EMTRICITABINE-TENOFOVIR ALAFENAMIDE", "DESCOVY", ("200-25 MG",), "TABLET", (1,), "HIV_ANTIRETROVIRAL"),
    _D("epclusa", "SOFOSBUVIR-VELPATASVIR", "EPCLUSA", ("400-100 MG",), "TABLET", (1,), "HEP_C"),
    _D("mavyret", "GLECAPREVIR-PIBRENTASVIR", "MAVYRET", ("100-40 MG",), "TABLET", (3,), "HEP_C"),
    _D("adalimumab", "ADALIMUMAB", "HUMIRA PEN", ("40 MG/0.4 ML",), "PEN INJECTOR", (1,), "IMMUNOSUPPRESSANT", package_quantity=2),
    _D("tofacitinib", "TOFACITINIB CITRATE", "XELJANZ", ("5 MG",), "TABLET", (2,), "IMMUNOSUPPRESSANT"),
    _D("tacrolimus", "TACROLIMUS", "PROGRAF", ("1 MG",), "CAPSULE", (2, 4), "IMMUNOSUPPRESSANT"),
    _D("methotrexate", "METHOTREXATE SODIUM", "TREXALL", ("2.5 MG",), "TABLET", (1,), "OTHER"),
    _D("levetiracetam", "LEVETIRACETAM", "KEPPRA", ("500 MG", "750 MG"), "TABLET", (2,), "ANTIEPILEPTIC"),
    _D("topiramate", "TOPIRAMATE", "TOPAMAX", ("50 MG", "100 MG"), "TABLET", (2,), "ANTIEPILEPTIC"),
    _D("donepezil", "DONEPEZIL HCL", "ARICEPT", ("5 MG", "10 MG"), "TABLET", (1,), "DEMENTIA_PARKINSON"),
    _D("memantine", "MEMANTINE HCL", "NAMENDA", ("10 MG",), "TABLET", (2,), "DEMENTIA_PARKINSON"),
    _D("sinemet", "CARBIDOPA-LEVODOPA", "SINEMET", ("25-100 MG",), "TABLET", (3,), "DEMENTIA_PARKINSON"),
    _D("pramipexole", "PRAMIPEXOLE DIHYDROCHLORIDE", "MIRAPEX", ("0.5 MG", "1 MG"), "TABLET", (3,), "DEMENTIA_PARKINSON"),
    _D("adderall", "DEXTROAMPHETAMINE-AMPHETAMINE", "ADDERALL", ("10 MG", "20 MG", "30 MG"), "TABLET", (1, 2), "STIMULANT_ADHD", controlled=True),
    _D("vyvanse", "LISDEXAMFETAMINE DIMESYLATE", "VYVANSE", ("30 MG", "50 MG", "70 MG"), "CAPSULE", (1,), "STIMULANT_ADHD", controlled=True),
    _D("concerta", "METHYLPHENIDATE HCL ER", "CONCERTA", ("36 MG", "54 MG"), "TABLET", (1,), "STIMULANT_ADHD", controlled=True),
    # Low-severity chronic drugs and everyday acute fills.
    _D("levothyroxine", "LEVOTHYROXINE SODIUM", "SYNTHROID", ("50 MCG", "75 MCG", "100 MCG"), "TABLET", (1,), "OTHER"),
    _D("omeprazole", "OMEPRAZOLE", "PRILOSEC", ("20 MG", "40 MG"), "CAPSULE", (1,), "OTHER"),
    _D("pantoprazole", "PANTOPRAZOLE SODIUM", "PROTONIX", ("40 MG",), "TABLET", (1,), "OTHER"),
    _D("cetirizine", "CETIRIZINE HCL", "ZYRTEC", ("10 MG",), "TABLET", (1,), "OTHER"),
    _D("fluticasone_nasal", "FLUTICASONE PROPIONATE", "FLONASE", ("50 MCG/ACT",), "NASAL SPRAY", (1,), "OTHER", package_quantity=16),
    _D("tretinoin", "TRETINOIN", "RETIN-A", ("0.05 %",), "CREAM", (1,), "OTHER", package_quantity=45),
    _D("sildenafil", "SILDENAFIL CITRATE", "VIAGRA", ("50 MG", "100 MG"), "TABLET", (0.2,), "OTHER"),
    _D("wegovy", "SEMAGLUTIDE", "WEGOVY", ("1.7 MG/0.75 ML", "2.4 MG/0.75 ML"), "PEN INJECTOR", (1,), "OTHER", package_quantity=3),
    _D("amoxicillin", "AMOXICILLIN", "AMOXIL", ("500 MG", "875 MG"), "CAPSULE", (2, 3), "OTHER"),
    _D("amox_clav", "AMOXICILLIN-CLAVULANATE POTASSIUM", "AUGMENTIN", ("875-125 MG",), "TABLET", (2,), "OTHER"),
    _D("azithromycin", "AZITHROMYCIN", "ZITHROMAX Z-PAK", ("250 MG",), "TABLET", (1.2,), "OTHER"),
    _D("cephalexin", "CEPHALEXIN", "KEFLEX", ("500 MG",), "CAPSULE", (3, 4), "OTHER"),
    _D("ciprofloxacin", "CIPROFLOXACIN HCL", "CIPRO", ("500 MG",), "TABLET", (2,), "OTHER"),
    _D("nitrofurantoin", "NITROFURANTOIN MONOHYDRATE", "MACROBID", ("100 MG",), "CAPSULE", (2,), "OTHER"),
    _D("fluconazole", "FLUCONAZOLE", "DIFLUCAN", ("150 MG",), "TABLET", (1,), "OTHER"),
    _D("benzonatate", "BENZONATATE", "TESSALON PERLES", ("100 MG", "200 MG"), "CAPSULE", (3,), "OTHER"),
    _D("ibuprofen", "IBUPROFEN", "MOTRIN", ("600 MG", "800 MG"), "TABLET", (3,), "OTHER"),
    _D("valacyclovir", "VALACYCLOVIR HCL", "VALTREX", ("1 GM",), "TABLET", (2,), "OTHER"),
    _D("promethazine", "PROMETHAZINE HCL", "PHENERGAN", ("25 MG",), "TABLET", (3,), "OTHER"),
)  # fmt: skip

_S = RegimenSlot
_PCP = ("FAMILY MEDICINE", "INTERNAL MEDICINE", "NURSE PRACTITIONER", "PHYSICIAN ASSISTANT")

# Condition name -> regimen. Condition names are those of the latent health state.
REGIMENS: dict[str, Regimen] = {
    "hypertension": Regimen(_PCP + ("CARDIOLOGY",), (
        _S(0.7, ("lisinopril", "losartan", "valsartan", "olmesartan", "enalapril")),
        _S(0.45, ("amlodipine", "diltiazem")),
        _S(0.35, ("hctz", "chlorthalidone")),
        _S(0.25, ("metoprolol_er", "atenolol", "carvedilol")),
        _S(0.05, ("clonidine", "spironolactone")),
    )),
    "hyperlipidemia": Regimen(_PCP, (
        _S(0.95, ("atorvastatin", "rosuvastatin", "simvastatin", "pravastatin")),
    )),
    "diabetes": Regimen(_PCP + ("ENDOCRINOLOGY",), (
        _S(0.9, ("metformin", "metformin_er")),
        _S(0.3, ("glipizide", "glimepiride", "sitagliptin")),
        _S(0.25, ("empagliflozin", "dapagliflozin", "dulaglutide", "semaglutide")),
        _S(0.6, ("atorvastatin", "rosuvastatin")),
    )),
    "insulin_dependent": Regimen(("ENDOCRINOLOGY",) + _PCP, (
        _S(1.0, ("glargine",)),
        _S(0.6, ("lispro", "aspart")),
    )),
    "coronary_disease": Regimen(("CARDIOLOGY", "INTERVENTIONAL CARDIOLOGY") + _PCP[:2], (
        _S(0.8, ("clopidogrel", "ticagrelor")),
        _S(0.9, ("atorvastatin", "rosuvastatin")),
        _S(0.7, ("metoprolol_er", "carvedilol", "metoprolol")),
        _S(0.4, ("nitroglycerin",)),
        _S(0.3, ("isosorbide", "ranolazine")),
    )),
    "heart_failure": Regimen(("CARDIOLOGY",) + _PCP[:2], (
        _S(0.9, ("furosemide", "torsemide")),
        _S(0.5, ("entresto", "digoxin", "eplerenone")),
        _S(0.6, ("carvedilol", "metoprolol_er")),
        _S(0.4, ("spironolactone",)),
    )),
    "atrial_fibrillation": Regimen(("CARDIOLOGY", "CARDIAC ELECTROPHYSIOLOGY") + _PCP[:2], (
        _S(0.85, ("apixaban", "rivaroxaban", "warfarin")),
        _S(0.3, ("amiodarone", "flecainide", "sotalol")),
        _S(0.5, ("metoprolol_er", "diltiazem")),
    )),
    "copd": Regimen(("PULMONARY DISEASE",) + _PCP, (
        _S(0.9, ("albuterol",)),
        _S(0.7, ("tiotropium", "umeclidinium")),
        _S(0.5, ("advair", "symbicort")),
        _S(0.1, ("roflumilast",)),
        _S(0.5, ("prednisone", "medrol"), chronic=False),
    )),
    "asthma": Regimen(_PCP + ("ALLERGY & IMMUNOLOGY", "PULMONARY DISEASE"), (
        _S(0.9, ("albuterol",)),
        _S(0.4, ("montelukast",)),
        _S(0.35, ("advair", "symbicort")),
        _S(0.2, ("prednisone", "medrol"), chronic=False),
    )),
    "depression": Regimen(_PCP + ("PSYCHIATRY",), (
        _S(0.95, ("sertraline", "escitalopram", "fluoxetine", "bupropion", "duloxetine", "venlafaxine")),
        _S(0.2, ("trazodone",)),
        _S(0.25, ("alprazolam", "lorazepam", "clonazepam")),
    )),
    "serious_mental_illness": Regimen(("PSYCHIATRY", "PSYCHIATRIC NURSE PRACTITIONER"), (
        _S(0.9, ("quetiapine", "aripiprazole", "olanzapine")),
        _S(0.35, ("lithium", "lamotrigine")),
        _S(0.4, ("sertraline", "bupropion", "trazodone")),
        _S(0.3, ("clonazepam", "lorazepam")),
    )),
    "chronic_pain": Regimen(("PAIN MEDICINE", "ORTHOPAEDIC SURGERY", "PHYSICAL MEDICINE & REHABILITATION") + _PCP, (
        _S(0.5, ("tramadol", "hydrocodone_apap")),
        _S(0.45, ("gabapentin", "pregabalin")),
        _S(0.4, ("meloxicam", "cyclobenzaprine")),
        _S(0.2, ("duloxetine",)),
    )),
    "opioid_misuse": Regimen(("PAIN MEDICINE", "EMERGENCY MEDICINE", "DENTIST", "ANESTHESIOLOGY") + _PCP, (
        _S(1.0, ("oxycodone", "oxycodone_apap", "hydrocodone_apap", "hydromorphone")),
        _S(0.5, ("oxycontin", "morphine_er", "fentanyl_patch", "methadone", "tapentadol")),
        _S(0.6, ("alprazolam", "clonazepam", "diazepam")),
        _S(0.3, ("carisoprodol",)),
        _S(0.35, ("gabapentin", "pregabalin")),
    )),
    "alcohol_use": Regimen(("ADDICTION MEDICINE", "PSYCHIATRY") + _PCP, (
        _S(0.5, ("naltrexone", "acamprosate", "disulfiram")),
        _S(0.3, ("lorazepam", "diazepam", "gabapentin"), chronic=False),
    )),
    "cancer": Regimen(("HEMATOLOGY/ONCOLOGY", "MEDICAL ONCOLOGY", "UROLOGY"), (
        _S(0.85, ("tamoxifen", "anastrozole", "letrozole", "abiraterone", "enzalutamide", "imatinib", "capecitabine", "ibrutinib")),
        _S(0.5, ("ondansetron",), chronic=False),
        _S(0.3, ("dexamethasone",), chronic=False),
        _S(0.3, ("oxycodone", "hydrocodone_apap", "morphine_er")),
    )),
    "ckd": Regimen(("NEPHROLOGY",), (
        _S(0.6, ("sevelamer", "calcitriol", "cinacalcet")),
        _S(0.6, ("furosemide", "torsemide")),
        _S(0.6, ("amlodipine", "losartan")),
    )),
    "hiv": Regimen(("INFECTIOUS DISEASE",), (
        _S(0.75, ("biktarvy",)),
        _S(0.25, ("dolutegravir",)),
        _S(0.25, ("descovy",)),
    )),
    "hepatitis_c": Regimen(("GASTROENTEROLOGY", "INFECTIOUS DISEASE", "HEPATOLOGY"), (
        _S(0.8, ("epclusa", "mavyret")),
    )),
    "autoimmune": Regimen(("RHEUMATOLOGY", "DERMATOLOGY", "GASTROENTEROLOGY"), (
        _S(0.5, ("methotrexate",)),
        _S(0.45, ("adalimumab", "tofacitinib")),
        _S(0.4, ("prednisone",), chronic=False),
    )),
    "transplant": Regimen(("NEPHROLOGY", "TRANSPLANT SURGERY"), (
        _S(1.0, ("tacrolimus",)),
        _S(0.5, ("prednisone",)),
    )),
    "epilepsy": Regimen(("NEUROLOGY",), (
        _S(0.95, ("levetiracetam", "lamotrigine", "topiramate")),
    )),
    "neurodegenerative": Regimen(("NEUROLOGY", "GERIATRIC MEDICINE"), (
        _S(0.9, ("donepezil", "memantine", "sinemet", "pramipexole")),
        _S(0.3, ("quetiapine",)),
    )),
    "adhd": Regimen(("PSYCHIATRY", "NURSE PRACTITIONER"), (
        _S(0.95, ("adderall", "vyvanse", "concerta")),
    )),
    "smoker": Regimen(_PCP, (
        _S(0.15, ("varenicline",), chronic=False),
    )),
    "insomnia": Regimen(_PCP + ("PSYCHIATRY",), (
        _S(0.6, ("zolpidem", "eszopiclone")),
        _S(0.3, ("trazodone",)),
    )),
    "hypothyroid": Regimen(_PCP + ("ENDOCRINOLOGY",), (_S(1.0, ("levothyroxine",)),)),
    "gerd": Regimen(_PCP + ("GASTROENTEROLOGY",), (_S(1.0, ("omeprazole", "pantoprazole")),)),
    "allergy": Regimen(_PCP + ("ALLERGY & IMMUNOLOGY",), (
        _S(0.7, ("fluticasone_nasal", "cetirizine")),
        _S(0.3, ("montelukast",)),
    )),
    "weight_management": Regimen(_PCP + ("ENDOCRINOLOGY",), (_S(1.0, ("wegovy",)),)),
}  # fmt: skip

# Everyday short fills anybody may have, with the specialties that write them.
ACUTE_DRUGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("amoxicillin", _PCP + ("URGENT CARE", "DENTIST")),
    ("amox_clav", _PCP + ("URGENT CARE", "OTOLARYNGOLOGY")),
    ("azithromycin", _PCP + ("URGENT CARE",)),
    ("cephalexin", _PCP + ("URGENT CARE", "DERMATOLOGY")),
    ("ciprofloxacin", _PCP + ("UROLOGY",)),
    ("nitrofurantoin", _PCP + ("OBSTETRICS & GYNECOLOGY",)),
    ("fluconazole", _PCP + ("OBSTETRICS & GYNECOLOGY",)),
    ("benzonatate", _PCP + ("URGENT CARE",)),
    ("ibuprofen", _PCP + ("ORTHOPAEDIC SURGERY", "EMERGENCY MEDICINE")),
    ("medrol", _PCP + ("URGENT CARE",)),
    ("prednisone", _PCP + ("URGENT CARE",)),
    ("hydrocodone_apap", ("EMERGENCY MEDICINE", "ORTHOPAEDIC SURGERY", "GENERAL SURGERY", "DENTIST")),
    ("oxycodone_apap", ("GENERAL SURGERY", "ORTHOPAEDIC SURGERY", "ORAL & MAXILLOFACIAL SURGERY")),
    ("tramadol", ("EMERGENCY MEDICINE", "URGENT CARE") + _PCP[:2]),
    ("cyclobenzaprine", _PCP + ("URGENT CARE",)),
    ("ondansetron", ("EMERGENCY MEDICINE", "URGENT CARE")),
    ("valacyclovir", _PCP + ("DERMATOLOGY",)),
    ("promethazine", ("EMERGENCY MEDICINE",) + _PCP[:2]),
    ("sildenafil", ("UROLOGY",) + _PCP[:2]),
    ("tretinoin", ("DERMATOLOGY",)),
)  # fmt: skip
