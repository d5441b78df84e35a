"""Latent health state of one applicant and the outcome drawn from it.

The state is never written into the evidence directly. The Rx report shows the conditions that are
treated within the PBM eligibility window. The MIB report shows the conditions that some member
company coded on an earlier application. Smoking, build (BMI), frailty and age act on the
outcome but reach the evidence only partly or not at all, which caps how well any model of the
evidence can rank applicants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CONDITIONS", "ConditionSpec", "HealthState", "draw_health_state", "sigmoid"]


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    """Prevalence, outcome weight and visibility of one latent condition."""

    name: str
    prevalence_at_50: float
    age_log_odds_per_decade: float
    outcome_weight: float
    # Chance that an affected applicant with Rx coverage has fills for the condition.
    treated_probability: float
    # Chance that a member company coded the condition, given an earlier application.
    mib_probability: float
    # Categories of the MIB code map a member company would code the condition under.
    mib_categories: tuple[str, ...] = ()


_C = ConditionSpec

# Order matters: a condition may raise the odds of conditions listed after it (_COMORBIDITY).
CONDITIONS: tuple[ConditionSpec, ...] = (
    _C("hypertension", 0.28, 0.55, 0.25, 0.85, 0.25, ("CARDIOVASCULAR",)),
    _C("hyperlipidemia", 0.25, 0.45, 0.05, 0.75, 0.05, ("CARDIOVASCULAR",)),
    _C("diabetes", 0.09, 0.45, 0.55, 0.85, 0.45, ("ENDOCRINE_DIABETES",)),
    _C("coronary_disease", 0.035, 0.75, 0.85, 0.9, 0.55, ("CARDIOVASCULAR",)),
    _C("heart_failure", 0.008, 0.85, 1.4, 0.9, 0.6, ("CARDIOVASCULAR",)),
    _C("atrial_fibrillation", 0.015, 0.85, 0.55, 0.85, 0.45, ("CARDIOVASCULAR",)),
    _C("copd", 0.025, 0.55, 1.0, 0.85, 0.45, ("RESPIRATORY",)),
    _C("asthma", 0.07, -0.05, 0.15, 0.8, 0.15, ("RESPIRATORY",)),
    _C("depression", 0.13, -0.1, 0.25, 0.7, 0.3, ("MENTAL_HEALTH",)),
    _C("serious_mental_illness", 0.018, -0.15, 0.8, 0.8, 0.5, ("MENTAL_HEALTH",)),
    _C("chronic_pain", 0.08, 0.3, 0.3, 0.8, 0.15, ("OTHER",)),
    _C("opioid_misuse", 0.012, -0.25, 1.5, 1.0, 0.35, ("SUBSTANCE_USE",)),
    _C("alcohol_use", 0.03, 0.0, 1.1, 0.35, 0.5, ("SUBSTANCE_USE", "RENAL_HEPATIC_GI")),
    _C("cancer", 0.02, 0.6, 1.6, 0.8, 0.6, ("CANCER",)),
    _C("ckd", 0.01, 0.75, 1.1, 0.75, 0.45, ("RENAL_HEPATIC_GI",)),
    _C("hiv", 0.004, -0.1, 0.7, 0.95, 0.5, ("OTHER",)),
    _C("hepatitis_c", 0.005, 0.0, 0.7, 0.6, 0.45, ("RENAL_HEPATIC_GI",)),
    _C("autoimmune", 0.03, 0.1, 0.35, 0.8, 0.2, ("OTHER",)),
    _C("transplant", 0.0015, 0.2, 1.3, 1.0, 0.6, ("RENAL_HEPATIC_GI",)),
    _C("epilepsy", 0.01, 0.0, 0.5, 0.9, 0.4, ("NEURO",)),
    _C("neurodegenerative", 0.003, 1.2, 1.3, 0.85, 0.4, ("NEURO",)),
    _C("adhd", 0.045, -0.5, 0.1, 0.85, 0.05, ("MENTAL_HEALTH",)),
    _C("insomnia", 0.06, 0.2, 0.1, 0.7, 0.0),
    _C("hypothyroid", 0.07, 0.3, 0.0, 0.95, 0.05, ("ENDOCRINE_DIABETES",)),
    _C("gerd", 0.1, 0.2, 0.0, 0.6, 0.0),
    _C("allergy", 0.12, -0.2, -0.05, 0.6, 0.0),
    _C("weight_management", 0.02, 0.0, 0.05, 1.0, 0.0),
    # Non-medical risks that only the MIB report can show.
    _C("hazardous_avocation", 0.03, -0.4, 0.45, 0.0, 0.7, ("AVOCATION_DRIVING",)),
    _C("adverse_driving", 0.035, -0.3, 0.55, 0.0, 0.7, ("AVOCATION_DRIVING",)),
)
CONDITION_BY_NAME = {spec.name: spec for spec in CONDITIONS}

# (condition, risk factor or earlier condition) -> added log-odds of having the condition.
_COMORBIDITY: dict[str, tuple[tuple[str, float], ...]] = {
    "hypertension": (("obese", 0.6),),
    "diabetes": (("obese", 1.0), ("hypertension", 0.4)),
    "coronary_disease": (("smoker", 0.8), ("diabetes", 0.8), ("hypertension", 0.6)),
    "heart_failure": (("coronary_disease", 1.8), ("hypertension", 0.5), ("diabetes", 0.5)),
    "atrial_fibrillation": (("hypertension", 0.5), ("heart_failure", 1.2)),
    "copd": (("smoker", 1.6),),
    "serious_mental_illness": (("smoker", 0.5),),
    "opioid_misuse": (("chronic_pain", 1.6), ("depression", 0.8), ("smoker", 0.5)),
    "alcohol_use": (("depression", 0.7), ("smoker", 0.6)),
    "cancer": (("smoker", 0.7),),
    "ckd": (("diabetes", 1.1), ("hypertension", 0.8)),
    "hepatitis_c": (("opioid_misuse", 2.0), ("alcohol_use", 0.6)),
    "transplant": (("ckd", 2.0),),
    "insomnia": (("depression", 0.9),),
    "weight_management": (("obese", 1.5),),
}

_AGE_MEAN = 44.0
_AGE_SD = 12.0
_OUTCOME_INTERCEPT = -4.15
_OUTCOME_AGE_PER_YEAR = 0.03
_OUTCOME_MALE = 0.25
_OUTCOME_SMOKER = 0.6
_OUTCOME_BMI_OVER_30 = 0.06
_FRAILTY_SD = 0.35
# Scales every condition weight. It was tuned together with the intercept, so that the positive
# rate is about 16 % and a model on the 105 features reaches a ROC AUC of about 0.77-0.79.
_CONDITION_WEIGHT_SCALE = 2.3


def sigmoid(x: float) -> float:
    """Return the logistic function of x."""
    return 1.0 / (1.0 + math.exp(-x))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass(frozen=True, slots=True)
class HealthState:
    """Latent state of one applicant. `conditions` maps condition name to severity (about 1)."""

    age: int
    sex: str
    smoker: bool
    bmi: float
    frailty: float
    conditions: dict[str, float] = field(default_factory=dict)
    insulin_dependent: bool = False

    @property
    def outcome_logit(self) -> float:
        """Log-odds of the adverse outcome."""
        logit = _OUTCOME_INTERCEPT + _OUTCOME_AGE_PER_YEAR * (self.age - 45)
        logit += _OUTCOME_MALE if self.sex == "M" else 0.0
        logit += _OUTCOME_SMOKER if self.smoker else 0.0
        logit += _OUTCOME_BMI_OVER_30 * max(self.bmi - 30.0, 0.0)
        logit += self.frailty
        for name, severity in self.conditions.items():
            logit += _CONDITION_WEIGHT_SCALE * CONDITION_BY_NAME[name].outcome_weight * severity
        if self.insulin_dependent:
            logit += 0.5
        return logit

    @property
    def risk(self) -> float:
        """Probability of the adverse outcome, the `latent_risk` of a pair."""
        return sigmoid(self.outcome_logit)


def draw_health_state(rng: np.random.Generator) -> HealthState:
    """Draw age, sex, risk factors and conditions with age trends and comorbidity."""
    age = min(max(round(rng.normal(_AGE_MEAN, _AGE_SD)), 18), 80)
    sex = "M" if rng.random() < 0.5 else "F"
    smoker = bool(rng.random() < 0.14)
    bmi = min(max(float(rng.normal(28.0, 5.5)), 16.0), 60.0)
    factors = {"smoker": smoker, "obese": bmi >= 30.0}
    decades = (age - 50) / 10.0

    conditions: dict[str, float] = {}
    for spec in CONDITIONS:
        log_odds = _logit(spec.prevalence_at_50) + spec.age_log_odds_per_decade * decades
        for cause, boost in _COMORBIDITY.get(spec.name, ()):
            if factors.get(cause) or cause in conditions:
                log_odds += boost
        if rng.random() < sigmoid(log_odds):
            conditions[spec.name] = float(rng.lognormal(0.0, 0.45))

    diabetes_severity = conditions.get("diabetes", 0.0)
    insulin_dependent = diabetes_severity > 0 and rng.random() < sigmoid(
        -1.6 + 2.0 * (diabetes_severity - 1.0)
    )
    return HealthState(
        age=age,
        sex=sex,
        smoker=smoker,
        bmi=round(bmi, 1),
        frailty=float(rng.normal(0.0, _FRAILTY_SD)),
        conditions=conditions,
        insulin_dependent=bool(insulin_dependent),
    )
