"""Generate `docs/features.md` from the declared feature spec.

Usage: `python -m evidence_features.docs --write docs/features.md` rewrites the file;
`python -m evidence_features.docs --check docs/features.md` exits with status 1 when it is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evidence_features._codemap import MIB_CATEGORIES, load_code_map
from evidence_features._combined import RISK_SIGNALS
from evidence_features._drugs import DrugCatalog, load_drug_catalog
from evidence_features._numbers import (
    BMI,
    DAYS_SUPPLY,
    HEIGHT_IN,
    INQUIRY_COUNT,
    QUANTITY,
    STRENGTH,
    VENDOR_SCORE,
    WEIGHT_LB,
    NumberRange,
)
from evidence_features._spec import FEATURE_SPEC, FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION
from evidence_features._strengths import VOLUME_ML
from evidence_features._vector import WARNING_GUIDE, WARNING_KINDS

__all__ = ["main", "render_feature_docs"]

_GROUP_TITLES = {
    "mib": "MIB features",
    "rx": "Rx features",
    "combined": "Combined and meta features",
}

_CONVENTIONS = """\
## Conventions

- **Order and types.** The vector is float64 in the order below; `int` columns hold
  non-negative whole numbers unless stated, `bool` columns hold 0 or 1. No value is ever NaN or
  infinite: every column has the default shown, used when its document is missing or empty.
- **As-of date.** The first available of: the `as_of` argument; the latest document date (MIB
  `TransExeDate`, Rx `ReportDate` or `OrderDate`); the latest evidence date in either document;
  today in UTC. Training passes `as_of` for point-in-time correctness. A document or evidence
  date after tomorrow in UTC is taken for a typo and never becomes the as-of date: such a
  document date raises the `future_document_date` warning, and such a record is future-dated.
- **Implausible document dates.** A document date that cannot be the day its report was made
  is skipped like a future one, so the other document's date or the evidence date is used.
  When records showed the date to be too early, the as-of date is at least that document's
  latest record date, so the other document's earlier date cannot push those records out.
  It raises the `implausible_document_date` warning for that document. One such date is a date
  before 1998-02-10, when XML 1.0 became a W3C Recommendation. That catches placeholders such
  as 1900-01-01 and a wrong century such as 1924 for 2024, even in a report without dated
  records. Dates before 1900 read as unparseable instead. The other is a date more than one
  day before at least two, and more than half, of the dated records of the same document (MIB
  record dates, Rx fill dates), because a report lists only records made by the day it was
  made. Records after tomorrow in UTC do not count. When fewer records come later, those
  records are taken for the typos and are future-dated, so one mistyped fill does not move the
  as-of date. The day of slack covers time zones, as for the windows. Limits: a wrong document
  date that precedes one record, or half of the records or fewer (a wrong month, say), is
  kept, and those records raise `future_dated`. A report made before 1998 and converted to XML
  later needs `as_of`.
- **Windows** count back from the as-of date: 6M = 183, 12M = 365, 24M = 730, 60M = 1826 days,
  with the as-of day included. A date up to one day after the as-of date counts as the as-of
  date (time-zone shifts); later dates are future-dated: counted in
  `META_FUTURE_DATED_RECORDS`, kept in totals, excluded from windows, recency, spans and the
  interval features.
- **Recency.** Every `*_DAYS_SINCE_*` column is capped at 3650, which is also its default.
- **De-duplication.** Rx fills identical on (normalised drug, fill date, quantity, days supply,
  pharmacy) merge before every Rx feature except `RX_DUPLICATE_FILLS`; MIB records identical on
  (date, company, codes) merge before every MIB feature. Two unparseable dates are identical
  only when their texts are (`garbage` and `rubbish` stay two fills), and two missing dates
  are identical.
- **Unparseable dates.** `META_UNPARSEABLE_DATES` checks every date field that the readers
  read. These are the fill date and `WrittenDate` of each de-duplicated fill, the date of
  each de-duplicated MIB record, and every Rx `ReportDate`, `OrderDate` and eligibility date
  and MIB `TransExeDate`. A merged fill counts an unparseable `WrittenDate` once when any
  copy carries one. The first readable document date of each document is its document date,
  and `WrittenDate` feeds no other feature.
- **Several MIB replies.** When an MIB document carries more than one `TXLifeResponse`, a
  `ProviderPartyID` or `Relation` id refers to the `Party` and `FormInstance` elements of its
  own `TXLifeResponse`, so replies may reuse ids. An id that its own reply does not define
  resolves across the whole document, so a follow-up reply may name a `Party` of the first
  one. With one or no `TXLifeResponse`, ids resolve across the whole document.
- **Days supply** is clamped to [0, 365]; a missing value counts as 0.
- **Numeric inputs** outside the ranges in the next section, and texts that are not a readable
  number (`NaN`, `Infinity`, `1,20`), read as missing and raise the `implausible_value`
  warning. A comma is read only as a thousands separator between groups of three digits after
  a first group without a leading zero, so `1,200` is 1200 and `0,500` is missing. The same
  rule reads each number of an opioid strength (`1,000 MG` is 1000 mg, `30,5 MG` is missing).
  Only ASCII digits count: `1_200` and digits of other scripts (`١٢`) read as missing too.
  The Rx vendor score must be one plain number (`412.5`, `1e3`), so `7/10`, `0x10` and
  `1,000` read as missing and raise `implausible_value`.
- **Empty records.** A fill or MIB record element (any shape, including a bare
  `<ResponseData>` code) whose whole subtree contains no non-blank text and no non-blank
  attribute value is not counted as a record, and it raises the `empty_record` warning instead.
  Examples are `<DrugFill/>` and `<DrugFill><DrugGenericName/><Quantity> </Quantity></DrugFill>`.
  Namespace declarations do not count as attributes.
- **Parse errors.** `extract_features` raises on malformed or hostile XML, and on an error
  reply in place of a report: an HTML page, a SOAP fault, or a document whose root element is
  `Error`, `Errors`, `ErrorResponse` or `Fault`. Scored as a report, such a reply would look
  like an applicant without evidence. Only `extract_batch(..., lenient=True)` (bulk training
  data) sets `META_*_PARSE_ERROR` to 1 and uses the defaults for that document.
- **Error replies inside a report.** A report without records is an error reply too, and
  raises the same way, when it carries one of these:
  - an MIB `TransResult/ResultCode` other than Success (`tc` 1) or Success with information
    (`tc` 2), such as Failure (`tc` 5) or Received Pending (`tc` 3, 4);
  - an Rx `<Result>` that is neither HIT nor NOHIT nor another wording of them (case, spaces
    and punctuation are ignored, so `No Hit` and `No hit found.` are NOHIT; `_RX_HITS` and
    `_RX_NO_HITS` in `_replies.py` list the wordings);
  - an `Error` or `Errors` element with text, directly under the root or a report element
    (`TXLifeResponse`, `IntelRXResponse`).

  A report that carries such an error and records is scored from its records, because they
  are evidence the vendor did return. A partial failure may have left records out, so it
  raises the `partial_error_reply` warning. Its message names the document and the element,
  and the `tc` of an ACORD `ResultCode` when that is a number of at most 10 digits, but
  repeats no other text from the document. No feature column marks it. An `Error` element
  inside a record, and a blank `<Result>` or `<Errors/>`, are read as data.
- **Records that cannot be read.** Element names are case-sensitive, and the readers match
  them exactly. A report from which no record was read raises `MalformedDocumentError` in
  these cases, so that it never scores as an applicant without evidence:
  - it contains an element whose name differs from a record name only in case, such as
    `<drugfill>` or `<DRUGFILL>` for `<DrugFill>`, or `<responseData>` for `<ResponseData>`
    (Rx: `DrugFill`, `MedicationDispensed`; MIB: `FormInstance`, `MIBRecord`, `ResponseData`).
    The message names the element found and the expected spelling. An MIB reply without
    `FormInstance` or `MIBRecord` elements is checked before its `ResponseData` elements are
    read as the flat shape, so a misspelled `<forminstance>` is not read as flat codes;
  - an Rx report contains a fill field with text (`DrugGenericName`, `FillDate`, `NDC`,
    `DaysSupply` and the other drug-name and fill-date names, in any case), as when a vendor
    wraps its fills in `<Fill>`;
  - an MIB `TransResult/RecordsFound` is 1 or more, or has text that is not a whole number of
    records (`-1`, `1e3`, `+3`), but the reply contains no record element with data. A record
    marked NFD counts as read, because it states that no file was found.

  An MIB record without codes raises the same way when it contains a code element spelled in
  another case (`<responseData>` in a `FormInstance`; `<code>`, `<dataitem>` in an
  `MIBRecord`), because a dated record would otherwise lose its codes without a warning.

  A report that states it has no records (an Rx no-hit `<Result>`, an MIB `RecordsFound` 0) is
  not checked for these signs and stays a clean report without evidence. An Rx hit without
  fills is scored as a report without evidence too, because a hit means the applicant was
  found, and an applicant with prescription coverage may have had no fills. A record element
  whose fields all go unread, such as `<DrugFill><drugGenericName>…</drugGenericName>
  </DrugFill>`, is counted as a record with the `unknown_drug` and `undated_record` warnings,
  and a `<ResponseData>` that carries its data in an attribute or a child element counts as a
  record without a code.
- **Opioid strengths.** `RX_OPIOID_MAX_DAILY_MME` reads the opioid's number from
  `DrugStrength`, else from the drug name. A liquid's strength is per volume (`5 MG/5 ML`,
  `7.5-325 MG/15 ML`, `20 MG/ML`), and its `Quantity` counts mL. So the daily dose is mg per mL
  × mL ÷ days supply × factor. Oxycodone `5 MG/5 ML`, 300 mL over 30 days is 1 × 300 ÷ 30 ×
  1.5 = 15 MME.
  The volume may be written in mL, cc or teaspoons (`5 MG/5 CC`, `5 MG/TSP`, a teaspoon is
  5 mL), and full-width letters and digits read as plain ones. A strength counts as
  unreadable in the cases below, so the fill adds no MME and raises `implausible_value`:
  - a volume that is not one readable number from 0.1 to 1,000 mL (`5 MG/X ML`,
    `5 MG/0.01 ML`);
  - an amount per mL outside the strength range below (`10000 MG/0.5 ML`);
  - an amount per dose, per mass, per container or per an unknown unit of up to three letters
    (`5 MG/ACT`, `5 MG/G`, `2 MG/VIAL`, `5 MG/5 CL`). A longer word after the `/` reads as
    the next ingredient's name (`10MG/ACETAMINOPHEN 325MG`);
  - a strength text longer than 1,000 characters.
- **Dosage forms.** Some class members count only in one route, as the dosage-form rules at
  the end of this page list (for example, hydrocortisone cream is not a systemic steroid). A
  rule reads the words of the drug names and of `DosageForm`. A fill without a form word that
  a rule names keeps its class.
- **Reply type.** An MIB record without an explicit Hit or Try (the bare `<ResponseData>`
  shape) counts in `MIB_TOTAL_RECORDS` but in neither `MIB_HIT_COUNT` nor `MIB_TRY_COUNT`.
  NFD records are not counted.
"""


_INPUT_RANGES: tuple[tuple[str, str, NumberRange], ...] = (
    ("Rx `DaysSupply`", "days", DAYS_SUPPLY),
    ("Rx `Quantity`", "units, mL or g", QUANTITY),
    (
        "Rx strength of the opioid ingredient, for the MME",
        "mg, mcg or mcg/h per unit, or per mL for a liquid",
        STRENGTH,
    ),
    ("Rx volume that a liquid's strength is given per (`5 MG/5 ML`)", "mL", VOLUME_ML),
    ("MIB `BMI`, and the BMI computed from height and weight", "kg/m²", BMI),
    ("MIB `HeightIn`", "inches", HEIGHT_IN),
    ("MIB `WeightLb`", "pounds", WEIGHT_LB),
    ("MIB insurance-activity inquiry count", "inquiries", INQUIRY_COUNT),
    ("Rx vendor score (`RiskScore`, `Score`, `HighestRiskSeverity`)", "vendor scale", VENDOR_SCORE),
)


def _warning_lines() -> list[str]:
    lines = [
        "## Warning kinds",
        "",
        "Each warning names its kind, its document (MIB or RX) and a count, never document text.",
        "",
        "| kind | meaning | what to do |",
        "|---|---|---|",
    ]
    for kind in WARNING_KINDS:
        guide = WARNING_GUIDE[kind]
        lines.append(f"| `{kind}` | {_cell(guide.meaning)} | {_cell(guide.action)} |")
    lines.append("")
    return lines


def _input_range_lines() -> list[str]:
    max_factor = max(load_drug_catalog().mme_factors.values())
    max_mme = STRENGTH.maximum * QUANTITY.maximum / DAYS_SUPPLY.minimum * max_factor
    lines = [
        "## Numeric input ranges",
        "",
        "Plausible values of each numeric input, bounds included. Days supplies from 366 to 999",
        "are read and then clamped to 365 by the features. With these ranges",
        f"`RX_OPIOID_MAX_DAILY_MME` is at most {STRENGTH.maximum:,.0f} × {QUANTITY.maximum:,.0f}"
        f" ÷ {DAYS_SUPPLY.minimum:g} × {max_factor:g} = {max_mme:,.0f}, so every column stays",
        "inside the float32 range.",
        "",
        "| input | unit | minimum | maximum |",
        "|---|---|---|---|",
    ]
    for name, unit, domain in _INPUT_RANGES:
        lines.append(f"| {name} | {unit} | {domain.minimum:g} | {domain.maximum:,.0f} |")
    lines.append("")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default_text(dtype: str, default: float) -> str:
    if dtype == "float":
        return repr(float(default))
    return str(int(default))


def render_feature_docs() -> str:
    """Render the Markdown reference of the 105 features."""
    catalog = load_drug_catalog()
    code_map = load_code_map()
    lines = [
        "# Feature reference",
        "",
        "Generated by `python -m evidence_features.docs --write docs/features.md` from",
        "`libs/features/src/evidence_features/data/feature_spec.toml`; do not edit by hand.",
        "",
        f"- Feature spec version: `{FEATURE_SPEC_VERSION}`, hash `{FEATURE_SPEC_HASH}`",
        f"- Drug class table version: `{catalog.version}`; opioid MME factors:"
        f" {catalog.mme_factor_source}",
        f"- Shipped MIB code map: `{code_map.version}` (invented codes only; carriers pass"
        " their own map)",
        f"- MIB categories: {', '.join(f'`{c}`' for c in MIB_CATEGORIES)}",
        f"- Warning kinds: {', '.join(f'`{kind}`' for kind in WARNING_KINDS)} (see"
        " [Warning kinds](#warning-kinds))",
        "",
        _CONVENTIONS,
        *_warning_lines(),
        *_input_range_lines(),
    ]
    position = 0
    for group, title in _GROUP_TITLES.items():
        specs = [spec for spec in FEATURE_SPEC if spec.group == group]
        lines += [
            f"## {title} ({len(specs)})",
            "",
            "| # | name | dtype | default | definition | source fields |",
            "|---|---|---|---|---|---|",
        ]
        for spec in specs:
            position += 1
            lines.append(
                f"| {position} | `{spec.name}` | {spec.dtype} | "
                f"{_default_text(spec.dtype, spec.default)} | {_cell(spec.description)} | "
                f"{_cell(spec.source_fields)} |"
            )
        lines.append("")
    lines += [
        "## COMBINED_RISK_SCORE signals",
        "",
        "COMBINED_RISK_SCORE = 1 − Π(1 − wₖ · sₖ) with each signal sₖ clipped to [0, 1]. The",
        "weights are placeholders, not actuarial results; the score is 0 without evidence and",
        "never decreases when a signal rises.",
        "",
        "| weight wₖ | signal sₖ |",
        "|---|---|",
    ]
    lines += [f"| {weight:.2f} | `{signal}` |" for weight, signal in RISK_SIGNALS]
    lines += [
        "",
        "## Class severities (placeholders, 0-10)",
        "",
        "| class | severity |",
        "|---|---|",
    ]
    for class_id, severity in sorted(
        catalog.class_severity.items(), key=lambda item: (-item[1], item[0])
    ):
        lines.append(f"| `{class_id}` | {severity} |")
    lines += ["", "## Opioid MME factors", "", "| opioid | factor |", "|---|---|"]
    for name, factor in catalog.mme_factors.items():
        unit = "per mcg/h (transdermal)" if name == "FENTANYL" else "per mg"
        lines.append(f"| {name.lower()} | {factor:g} {unit} |")
    lines += _class_rule_lines(catalog)
    lines.append("")
    return "\n".join(lines)


def _words(names: frozenset[str]) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names)) or "—"


def _class_rule_lines(catalog: DrugCatalog) -> list[str]:
    lines = [
        "",
        "## Dosage-form rules",
        "",
        "A rule covers the ingredients of its class, or only the listed ones. Such an",
        "ingredient gives the result in place of the class when a word of its names or dosage",
        "form is a form word and none is a keep word.",
        "",
        "| class | ingredients | form words | keep words | result |",
        "|---|---|---|---|---|",
    ]
    for rule in catalog.form_rules:
        lines.append(
            f"| `{rule.class_id}` | {_words(rule.ingredients) if rule.ingredients else 'all'} | "
            f"{_words(rule.forms)} | {_words(rule.keep)} | "
            f"{f'`{rule.becomes}`' if rule.becomes else 'no class'} |"
        )
    lines += [
        "",
        "## Combination rules",
        "",
        "A product holding all the listed ingredients also gives the class; each ingredient",
        "keeps its own class too.",
        "",
        "| ingredients | class |",
        "|---|---|",
    ]
    for combination in catalog.combination_rules:
        lines.append(f"| {_words(combination.ingredients)} | `{combination.class_id}` |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Write or check the generated feature reference; return the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m evidence_features.docs")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, metavar="PATH", help="write the Markdown file")
    action.add_argument("--check", type=Path, metavar="PATH", help="exit 1 if PATH is stale")
    arguments = parser.parse_args(argv)
    text = render_feature_docs()
    if arguments.write is not None:
        arguments.write.parent.mkdir(parents=True, exist_ok=True)
        arguments.write.write_text(text, encoding="utf-8")
        return 0
    path: Path = arguments.check
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        sys.stderr.write(f"{path} is stale; run: python -m evidence_features.docs --write {path}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
