"""MIB features, columns 1-30 of the spec."""

from __future__ import annotations

from dataclasses import dataclass

from evidence_features._codemap import CodeMap
from evidence_features._records import MibRecord, MibReport
from evidence_features._spec import FEATURE_NAMES
from evidence_features._window import (
    DAYS_12M,
    DAYS_24M,
    DAYS_60M,
    MAX_RECENCY_DAYS,
    DateClass,
    classify_date,
)

__all__ = ["MibSummary", "fill_mib_features"]

_I = {name: index for index, name in enumerate(FEATURE_NAMES)}
_REPLY_RANK = {None: 0, "TRY": 1, "HIT": 2}
_CATEGORY_FEATURES = {
    "CARDIOVASCULAR": "MIB_CAT_CARDIOVASCULAR",
    "ENDOCRINE_DIABETES": "MIB_CAT_ENDOCRINE_DIABETES",
    "CANCER": "MIB_CAT_CANCER",
    "RESPIRATORY": "MIB_CAT_RESPIRATORY",
    "MENTAL_HEALTH": "MIB_CAT_MENTAL_HEALTH",
    "SUBSTANCE_USE": "MIB_CAT_SUBSTANCE_USE",
    "NEURO": "MIB_CAT_NEURO",
    "RENAL_HEPATIC_GI": "MIB_CAT_RENAL_HEPATIC_GI",
    "AVOCATION_DRIVING": "MIB_CAT_AVOCATION_DRIVING",
}


@dataclass(frozen=True, slots=True)
class MibSummary:
    """Counts the combined features and warnings need."""

    undated: int
    unparseable: int
    future: int


def deduplicate_records(records: list[MibRecord]) -> list[MibRecord]:
    """Merge records identical on (date, company, code list).

    Two unparseable dates are identical only when their texts are, and two missing dates are
    identical. Of a merged group the strongest match type (Hit over Try over none) and the
    highest BMI are kept, so the result does not depend on record order.
    """
    merged: dict[tuple[object, ...], MibRecord] = {}
    for record in records:
        # NOTE: two missing dates compare equal, as for Rx fills, which the reference leaves open.
        key = (record.date, record.date_text, record.company, tuple(sorted(record.codes)))
        kept = merged.get(key)
        if kept is None:
            merged[key] = record
            continue
        reply = max(kept.reply, record.reply, key=_REPLY_RANK.__getitem__)
        bmis = [value for value in (kept.bmi, record.bmi) if value is not None]
        merged[key] = kept._replace(reply=reply, bmi=max(bmis) if bmis else None)
    return list(merged.values())


def fill_mib_features(
    values: list[float], report: MibReport, as_of: int, code_map: CodeMap
) -> MibSummary:
    """Write the 30 MIB features into `values` (spec order) and return counts for later use."""
    records = deduplicate_records(report.records)
    total = len(records)
    hits = sum(1 for record in records if record.reply == "HIT")
    tries = sum(1 for record in records if record.reply == "TRY")
    values[_I["MIB_TOTAL_RECORDS"]] = total
    values[_I["MIB_HIT_COUNT"]] = hits
    values[_I["MIB_TRY_COUNT"]] = tries
    values[_I["MIB_HAS_HIT"]] = 1.0 if hits else 0.0
    values[_I["MIB_HIT_RATIO"]] = hits / total if total else 0.0

    infos = [code_map.lookup(code) for record in records for code in record.codes]
    values[_I["MIB_CODE_COUNT"]] = len(infos)
    values[_I["MIB_UNIQUE_CODES"]] = len({info.base for info in infos})
    values[_I["MIB_DUPLICATE_CODE_COUNT"]] = len(infos) - len({info.code for info in infos})
    values[_I["MIB_UNIQUE_COMPANIES"]] = len({r.company for r in records if r.company})
    values[_I["MIB_IAI_INQUIRIES_24M"]] = report.iai_inquiries or 0
    values[_I["MIB_MAX_SEVERITY"]] = max((info.severity for info in infos), default=0)
    categories = {info.category for info in infos}
    for category, feature in _CATEGORY_FEATURES.items():
        values[_I[feature]] = 1.0 if category in categories else 0.0
    values[_I["MIB_UNMAPPED_CODE_COUNT"]] = sum(1 for info in infos if info.category is None)

    dated: list[int] = []
    undated = unparseable = future = 0
    for record in records:
        day = classify_date(record.date, as_of)
        if day >= 0:
            dated.append(day)
        elif day == DateClass.FUTURE:
            future += 1
        else:
            undated += 1
            unparseable += day == DateClass.UNPARSEABLE
    values[_I["MIB_RECORDS_LAST_12M"]] = sum(1 for day in dated if as_of - day < DAYS_12M)
    values[_I["MIB_RECORDS_LAST_24M"]] = sum(1 for day in dated if as_of - day < DAYS_24M)
    values[_I["MIB_RECORDS_LAST_60M"]] = sum(1 for day in dated if as_of - day < DAYS_60M)
    if dated:
        latest, earliest = max(dated), min(dated)
        values[_I["MIB_DAYS_SINCE_LAST_REPORT"]] = min(as_of - latest, MAX_RECENCY_DAYS)
        values[_I["MIB_REPORT_SPAN_DAYS"]] = latest - earliest
    values[_I["MIB_UNDATED_RECORDS"]] = undated

    bmis = [record.bmi for record in records if record.bmi is not None] + report.extra_bmi
    if bmis:
        values[_I["MIB_AVG_BMI"]] = sum(bmis) / len(bmis)
        values[_I["MIB_MAX_BMI"]] = max(bmis)
        values[_I["MIB_BMI_PRESENT"]] = 1.0
    return MibSummary(undated=undated, unparseable=unparseable, future=future)
