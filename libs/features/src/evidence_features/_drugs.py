"""Drug-name normalisation and underwriting classification from the shipped class table.

The table is `data/drug_classes.toml`: generic names per class, ATC groups, class severities,
brand aliases, CDC 2022 opioid MME factors, the dosage-form and combination rules, and the
special rules for buprenorphine, weight-loss GLP-1 brands, HIV nucleoside backbones and ribavirin.

Normalising a name takes five steps. Apply Unicode NFKC, so full-width letters and no-break
spaces read as their plain forms, and drop format characters such as zero-width spaces. Upper-case
the name and split combination products on `-`, `/`,
`+`, `,`, ` AND `, ` W/ ` and ` WITH `. Drop strength, dosage-form and placeholder words. Match
the whole ingredient text against aliases and class members, then the text without salt and
release suffixes, and finally each single word.
"""

from __future__ import annotations

import itertools
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from evidence_features._memo import MAX_KEY_CHARS, TextMemo
from evidence_features._numbers import STRENGTH, NumberRange, parse_number

__all__ = [
    "MAX_STRENGTH_CHARS",
    "VOLUME_ML",
    "CombinationRule",
    "DrugCatalog",
    "DrugInfo",
    "FormRule",
    "Strength",
    "load_drug_catalog",
    "normalise_text",
    "opioid_dose",
    "parse_strength",
]

_SEPARATORS = re.compile(r"\s+W/\s*|\s+WITH\s+|\s+AND\s+|[-/+,;&]")
_NUMERIC = re.compile(r"^[\d.#()]+")
_PUNCTUATION = str.maketrans({"(": " ", ")": " ", "[": " ", "]": " ", '"': " ", "*": " "})
# A number may hold commas between digits ("1,000", but also "1,00" or "30,5"), so that
# parse_number can apply the thousands-grouping rule to it. A comma followed by a space or a unit
# ends the number ("10 MG, 325 MG").
# A number may lack its leading zero (".5 MG" is 0.5 mg), unless the "." follows a letter,
# where it ends an abbreviation ("TAB.10MG" is 10 mg).
_STRENGTH = re.compile(r"((?<![A-Za-z])\.\d+|\d+(?:,\d+)*(?:\.\d+)?)\s*(MCG/HR|MCG/H|MG|MCG|ML|%)?")
# A liquid's strength is given per volume: "5 MG/5 ML", "7.5-325 MG/15 ML", "20 MG/ML",
# "5MG PER 5ML", "5 MG/5 CC", "5 MG/TSP". Group 1 is the volume number, empty for "per mL",
# and group 2 the volume unit. The pattern runs on text with collapsed whitespace, and group 1
# contains no space or "/". So each start scans one word and the search stays linear, where two
# adjacent \s* runs are quadratic on a run of spaces.
_PER_VOLUME = re.compile(
    r"(?:/ ?|\bPER )([^ /]*?) ?(ML|MLS|MILLILIT(?:ER|RE)S?|CC|TSP|TEASPOON(?:FUL)?S?)\b"
)
# Prescription labels count a teaspoon as 5 mL, the dose that "per teaspoonful" means.
_TEASPOON_ML = 5.0
_VOLUME_NUMBER = re.compile(r"[0-9.,]+")
# Labelled volumes run from prefilled syringes of a few tenths of a mL (an estimate) to
# 1,000 mL infusion bags. A volume outside these bounds is a typing error, and the per-mL range
# check alone would pass it: "5 MG/0.01 ML" reads as 500 mg/mL.
VOLUME_ML = NumberRange(0.1, 1_000.0)
# "/" or " PER " right after a strength unit, then an optional number and the denominator's
# word: "MG/ML", "MCG/HR", "MG/5 ML", "MG/325 MG", "MG/ACT". A "/" after a space or a name
# ("325 MG / OXYCODONE 5 MG", "OXYCODONE/APAP 5/325") separates ingredients instead.
_DENOMINATOR = re.compile(r"(?<![A-Z])(?:MCG|MG|GM|G|%)(?:/ ?| PER )(?:([0-9.,]+) ?)?([A-Z]+)")
_VOLUME_WORDS = frozenset(
    {"ML", "MLS", "MILLILITER", "MILLILITERS", "MILLILITRE", "MILLILITRES", "CC", "TSP",
     "TEASPOON", "TEASPOONS", "TEASPOONFUL", "TEASPOONFULS"}
)  # fmt: skip
_RATE_WORDS = frozenset({"HR", "HRS", "H", "HOUR", "HOURS"})
# An amount per tablet, capsule or patch is the per-unit strength that the quantity counts.
_UNIT_WORDS = frozenset(
    {"TAB", "TABS", "TABLET", "TABLETS", "CAP", "CAPS", "CAPSULE", "CAPSULES", "EA", "EACH",
     "PATCH", "SUPPOSITORY", "SUPP", "FILM"}
)  # fmt: skip
# After a number, a mass unit starts the next ingredient's strength ("10 MG/325 MG").
_MASS_WORDS = frozenset({"MG", "MCG", "G", "GM"})
# Denominators that give an amount per dose, per mass or per container, which the quantity
# does not count: "100 MCG/ACT", "5 MG/G", "2 MG/VIAL".
_DOSE_WORDS = frozenset(
    {"ACT", "ACTUATION", "ACTUATIONS", "SPRAY", "SPRAYS", "PUFF", "PUFFS", "DOSE", "DOSES",
     "INH", "INHALATION", "G", "GM", "GRAM", "GRAMS", "KG", "L", "LITER", "LITRE", "DL", "DAY",
     "VIAL", "AMP", "AMPULE", "SYRINGE", "DROP", "DROPS", "GTT"}
)  # fmt: skip
# Any other denominator word of up to three letters ("X", "CL") is an unknown unit. A longer
# one is the next ingredient's name ("10MG/ACETAMINOPHEN 325MG").
# NOTE: so an unlisted unit spelled in four or more letters still reads as a per-unit strength.
_MAX_UNIT_LETTERS = 3
# Separators inside dosage-form texts ("SOLUTION, OPHTHALMIC", "SUSPENSION/DROPS",
# "EYE-DROPS") that split them into the words the form rules compare.
_WORD_SEPARATORS = str.maketrans(
    {"(": " ", ")": " ", "[": " ", "]": " ", '"': " ", "*": " ", "/": " ", ",": " ", ";": " ",
     ":": " ", "-": " "}
)  # fmt: skip
_MAX_CACHE = 65_536
# A label lists one number per ingredient, and combination products have at most a handful.
# The cap bounds the work on a junk strength field: 30,000 numbers took 24 ms to read.
_MAX_STRENGTH_NUMBERS = 32
# A strength, or a label name read in its place, is a few words long: RxNorm's names of
# multi-ingredient opioid syrups run to about 150 characters (an estimate from such names).
# A longer text is unreadable, which keeps the work per fill bounded: upper-casing and
# searching a 1 MB text took about 100 ms.
MAX_STRENGTH_CHARS = 1_000


def _short_key(key: tuple[str | None, ...]) -> bool:
    return sum(len(part) for part in key if part is not None) <= MAX_KEY_CHARS


@dataclass(frozen=True, slots=True)
class DrugInfo:
    """Everything the feature code needs to know about one dispensed product.

    `key` is the sorted ingredient list joined with "/", or None when the fill names no drug.
    `opioid_position` is the label position of the ingredient with an MME factor, or -1.
    """

    key: str | None
    ingredients: tuple[str, ...]
    classes: frozenset[str]
    unknown: bool
    arv_backbone: frozenset[str]
    ribavirin: bool
    interferon: bool
    opioid_position: int
    mme_factor: float


@dataclass(frozen=True, slots=True)
class FormRule:
    """One dosage-form rule of the class table (`[[form_rules]]`).

    The rule applies to an ingredient of `class_id` (of `ingredients` only, when given) when the
    product's words contain one of `forms` and none of `keep`. The ingredient then gives
    `becomes` instead of `class_id`, or no class when `becomes` is None.
    """

    class_id: str
    ingredients: frozenset[str]
    forms: frozenset[str]
    keep: frozenset[str]
    becomes: str | None


@dataclass(frozen=True, slots=True)
class CombinationRule:
    """A product that holds all of `ingredients` also gives `class_id` (`[[combination_rules]]`)."""

    ingredients: frozenset[str]
    class_id: str


@dataclass(frozen=True, slots=True)
class Strength:
    """Numbers of a strength text in label order, with the unit each one carries.

    A value is None where the text contains a number that is ambiguous ("1,00", "30,5") or outside
    the `STRENGTH` range, so the other values keep their label positions.

    `per_volume` is True for a liquid whose amounts are given per volume ("5 MG/5 ML"), and
    `volume_ml` is that volume in mL (1.0 for "MG/ML", 5.0 for "MG/TSP"). `volume_ml` is None
    for a strength per unit (tablet, capsule, patch) and for a per-volume strength whose volume
    cannot be read or is outside 0.1 to 1,000 mL ("5 MG/X ML", "5 MG/0.01 ML").

    `unreadable` is True when the text cannot give a dose per unit or per mL: it is longer than
    `MAX_STRENGTH_CHARS`, or an amount is given per dose, per mass, per container or per an
    unknown unit of up to three letters ("5 MG/ACT", "5 MG/G", "2 MG/VIAL", "5 MG/X ML").
    """

    values: tuple[float | None, ...]
    units: tuple[str, ...]
    per_volume: bool = False
    volume_ml: float | None = None
    unreadable: bool = False


def parse_strength(text: str) -> Strength | None:
    """Parse a strength such as "5-325 MG", "10 MG/325 MG", "25 MCG/HR" or "5 MG/5 ML".

    A number without its own unit takes the next unit in the text ("5-325 MG" is 5 mg and
    325 mg). Each number is read by `parse_number` with the `STRENGTH` range, so a comma counts
    only as a thousands separator and an ambiguous or out-of-range number is None. Only the
    first 32 numbers are read. The first "/ N ML" (or "PER N ML", with the volume in mL, cc or
    teaspoons) makes the strength per volume: its volume is not one of the values, so
    "7.5-325 MG/15 ML" is 7.5 mg and 325 mg per 15 mL. Full-width letters and digits read as
    their plain forms. Returns None when the text contains no number, and an unreadable
    `Strength` without values for a text longer than `MAX_STRENGTH_CHARS`.
    """
    if len(text) > MAX_STRENGTH_CHARS:
        return Strength((), (), unreadable=True)
    upper = " ".join(normalise_text(text).upper().split())
    per_volume = _PER_VOLUME.search(upper)
    volume_ml: float | None = None
    volume_span = (-1, -1)
    if per_volume is not None:
        volume_span = per_volume.span()
        volume_ml = _volume_ml(per_volume.group(1), per_volume.group(2))
    values: list[float | None] = []
    units: list[str | None] = []
    for match in itertools.islice(_STRENGTH.finditer(upper), _MAX_STRENGTH_NUMBERS):
        if volume_span[0] <= match.start() < volume_span[1]:
            continue
        values.append(parse_number(match.group(1), STRENGTH))
        units.append(match.group(2))
    if not values:
        return None
    resolved: list[str] = []
    pending = ""
    for unit in reversed(units):
        if unit is not None:
            pending = unit
        resolved.append(pending)
    resolved.reverse()
    return Strength(
        tuple(values),
        tuple(resolved),
        per_volume is not None,
        volume_ml,
        unreadable=_has_unknown_denominator(upper),
    )


def _volume_ml(number: str, unit: str) -> float | None:
    # "MG/ML" names no number: the amounts are per 1 mL. Any text other than one readable
    # number ("X", "5X", "1,5", "0") leaves the volume unknown rather than guessed.
    scale = _TEASPOON_ML if unit.startswith(("TSP", "TEASPOON")) else 1.0
    if not number:
        return scale
    if _VOLUME_NUMBER.fullmatch(number) is None:
        return None
    volume = parse_number(number, NumberRange(0.0, VOLUME_ML.maximum))
    if volume is None:
        return None
    volume *= scale
    return volume if VOLUME_ML.minimum <= volume <= VOLUME_ML.maximum else None


def _has_unknown_denominator(upper: str) -> bool:
    # An amount per actuation, per gram or per an unknown unit gives no dose per unit or per
    # mL, so the quantity cannot turn it into a daily dose. Reading it per unit would guess.
    for match in itertools.islice(_DENOMINATOR.finditer(upper), _MAX_STRENGTH_NUMBERS):
        number, word = match.groups()
        if word in _VOLUME_WORDS or word in _RATE_WORDS or word in _UNIT_WORDS:
            continue
        if number and word in _MASS_WORDS:
            continue
        if word in _DOSE_WORDS or len(word) <= _MAX_UNIT_LETTERS:
            return True
    return False


_STRENGTHS: TextMemo[str, Strength | None] = TextMemo(parse_strength, 4096)


def opioid_dose(drug: DrugInfo, strength_text: str) -> tuple[float | None, str] | None:
    """Return the strength value and unit of a fill's opioid ingredient per dispensed unit.

    The value is the number at the opioid's position in the label, or the only number of a
    single-strength text. For a liquid ("5 MG/5 ML") it is divided by the volume, so it is the
    amount per mL, the unit a liquid's quantity counts in. It is None when that number or the
    amount per mL is ambiguous or outside the `STRENGTH` range, when a per-volume strength has
    no readable volume in 0.1 to 1,000 mL, or when the text is `Strength.unreadable`. The
    reader then treats the strength as unreadable, as for a bad number. Returns None when the
    drug has no MME factor or the text has no number for that position.
    """
    if drug.opioid_position < 0:
        return None
    strength = _STRENGTHS[strength_text]
    if strength is None:
        return None
    if strength.unreadable:
        return None, ""
    position = drug.opioid_position
    if position >= len(strength.values):
        if len(strength.values) != 1:
            return None
        position = 0
    value = strength.values[position]
    if strength.per_volume and value is not None:
        value = None if strength.volume_ml is None else value / strength.volume_ml
        # The amount per mL is what the quantity multiplies, so it must be in the range too.
        if value is not None and not STRENGTH.minimum <= value <= STRENGTH.maximum:
            value = None
    return value, strength.units[position]


def normalise_text(text: str) -> str:
    """Apply Unicode NFKC to a drug text and drop its format characters (category Cf).

    ASCII text is returned unchanged, because NFKC leaves it as it is and it has no format
    characters.
    """
    if text.isascii():
        return text
    normalised = unicodedata.normalize("NFKC", text)
    return "".join(char for char in normalised if unicodedata.category(char) != "Cf")


class DrugCatalog:
    """The curated class table, loaded once, with a cache of classified products.

    Args:
        document: The parsed `drug_classes.toml`.
    """

    def __init__(self, document: dict[str, object]) -> None:
        classes = _table(document, "classes")
        normalisation = _table(document, "normalisation")
        rules = _table(document, "rules")
        self.version = str(document["version"])
        self.mme_factor_source = str(document["mme_factor_source"])
        self.mme_factors: dict[str, float] = {
            str(name): float(str(value)) for name, value in _table(document, "mme_factors").items()
        }
        self.class_severity: dict[str, int] = {}
        self.controlled_classes: frozenset[str]
        self.antihypertensive_classes: frozenset[str]
        self._member_class: dict[str, str] = {}
        controlled: set[str] = set()
        antihypertensive: set[str] = set()
        for class_id, raw_entry in classes.items():
            entry = _as_dict(raw_entry)
            self.class_severity[class_id] = int(str(entry["severity"]))
            if entry.get("controlled"):
                controlled.add(class_id)
            if entry.get("antihypertensive"):
                antihypertensive.add(class_id)
            for member in _strings(entry["members"]):
                self._member_class[member] = class_id
        self.controlled_classes = frozenset(controlled)
        self.antihypertensive_classes = frozenset(antihypertensive)
        self._known = set(self._member_class) | set(
            _strings(_table(document, "unclassified")["members"])
        )
        self._aliases = {
            str(name): tuple(str(value).split("/"))
            for name, value in _table(document, "aliases").items()
        }
        self._salts = frozenset(_strings(normalisation["salts"]))
        self._forms = frozenset(_strings(normalisation["forms"]))
        self._placeholders = frozenset(_strings(normalisation["placeholders"]))
        self._pain_brands = frozenset(_strings(rules["buprenorphine_pain_brands"]))
        self._pain_forms = frozenset(_strings(rules["buprenorphine_pain_forms"]))
        self._weight_loss_brands = frozenset(_strings(rules["weight_loss_brands"]))
        self.hiv_backbone = frozenset(_strings(rules["hiv_backbone"]))
        self.hiv_backbone_minimum = int(str(rules["hiv_backbone_minimum"]))
        self._ribavirin = frozenset(_strings(rules["hep_c_ribavirin"]))
        self._interferon = frozenset(_strings(rules["hep_c_interferon"]))
        self._form_rules = _form_rules(document, self._member_class, self.class_severity)
        self._combination_rules = _combination_rules(document, self.class_severity)
        self._cache: dict[tuple[str | None, ...], DrugInfo] = {}

    @property
    def form_rules(self) -> tuple[FormRule, ...]:
        """The dosage-form rules, grouped by class, in table order within each class."""
        return tuple(itertools.chain.from_iterable(self._form_rules.values()))

    @property
    def combination_rules(self) -> tuple[CombinationRule, ...]:
        """The combination rules in table order."""
        return self._combination_rules

    def describe(
        self,
        generic: str | None,
        brand: str | None,
        description: str | None,
        dosage_form: str | None,
        vendor_class: str | None,
    ) -> DrugInfo:
        """Normalise and classify one fill's drug fields.

        The generic name is tried first, then the free-text description, then the brand. The
        first one that names a recognised ingredient wins. When none does, the first non-empty
        one is kept as an unknown drug. A vendor class equal to one of the table's class ids
        (case and spaces ignored) is added to the classes.
        """
        cache_key = (generic, brand, description, dosage_form, vendor_class)
        info = self._cache.get(cache_key)
        if info is None:
            info = self._describe(generic, brand, description, dosage_form, vendor_class)
            if _short_key(cache_key):
                if len(self._cache) >= _MAX_CACHE:
                    self._cache.clear()
                self._cache[cache_key] = info
        return info

    def _describe(
        self,
        generic: str | None,
        brand: str | None,
        description: str | None,
        dosage_form: str | None,
        vendor_class: str | None,
    ) -> DrugInfo:
        texts: list[str] = []
        for text in (generic, description, brand):
            normalised = normalise_text(text).upper() if text else ""
            if normalised.strip():
                texts.append(normalised)
        form_text = normalise_text(dosage_form).upper() if dosage_form else ""
        # The words of every name and of the dosage form, for the brand and form rules. This
        # runs once per distinct field combination: `describe` caches the result.
        words: set[str] = set()
        for text in (*texts, form_text):
            words.update(text.translate(_WORD_SEPARATORS).split())

        ingredients: tuple[str, ...] = ()
        unknown = False
        for text in texts:
            candidate, candidate_unknown = self._ingredients(text)
            if candidate and not candidate_unknown:
                ingredients, unknown = candidate, False
                break
            if candidate and not ingredients:
                ingredients, unknown = candidate, candidate_unknown
        return self._classify(ingredients, unknown, words, vendor_class)

    def _ingredients(self, text: str) -> tuple[tuple[str, ...], bool]:
        found: list[str] = []
        unknown = False
        if " ".join(text.split()) in self._placeholders:
            return (), False
        # Collapsing the whitespace first keeps the split linear: on a long run of spaces the
        # pattern's leading \s+ would otherwise rescan the run from every position in it.
        for part in _SEPARATORS.split(" ".join(text.translate(_PUNCTUATION).split())):
            tokens = [
                token
                for token in part.split()
                if token not in self._forms and not _NUMERIC.match(token)
            ]
            if not tokens or " ".join(tokens) in self._placeholders:
                continue
            resolved = self._resolve(tokens)
            if resolved is None:
                unknown = True
                stripped = [token for token in tokens if token not in self._salts]
                found.append(" ".join(stripped or tokens))
            else:
                found.extend(resolved)
        return tuple(dict.fromkeys(found)), unknown

    def _resolve(self, tokens: list[str]) -> tuple[str, ...] | None:
        whole = " ".join(tokens)
        for name in (whole, " ".join(token for token in tokens if token not in self._salts)):
            if name in self._aliases:
                return self._aliases[name]
            if name in self._known:
                return (name,)
        for token in tokens:
            if token in self._salts:
                continue
            if token in self._aliases:
                return self._aliases[token]
            if token in self._known:
                return (token,)
        return None

    def _classify(
        self,
        ingredients: tuple[str, ...],
        unknown: bool,
        words: set[str],
        vendor_class: str | None,
    ) -> DrugInfo:
        classes: set[str] = set()
        for ingredient in ingredients:
            class_id = self._member_class.get(ingredient)
            if class_id is not None:
                class_id = self._form_class(class_id, ingredient, words)
            if class_id is not None:
                classes.add(class_id)
        if self._combination_rules:
            present = frozenset(ingredients)
            for combination in self._combination_rules:
                if combination.ingredients <= present:
                    classes.add(combination.class_id)
        if "BUPRENORPHINE" in ingredients:
            is_pain_product = bool(words & self._pain_brands or words & self._pain_forms)
            classes.add("OPIOID" if is_pain_product else "SUD_TREATMENT")
        if words & self._weight_loss_brands:
            classes.discard("NONINSULIN_ANTIDIABETIC")
        if vendor_class:
            class_id = "_".join(normalise_text(vendor_class).upper().split())
            if class_id in self.class_severity:
                classes.add(class_id)

        opioid_position = -1
        mme_factor = 0.0
        if "OPIOID" in classes:
            for position, ingredient in enumerate(ingredients):
                factor = self.mme_factors.get(ingredient)
                if factor is not None:
                    opioid_position, mme_factor = position, factor
                    break
        key = "/".join(sorted(ingredients)) if ingredients else None
        return DrugInfo(
            key=key,
            ingredients=ingredients,
            classes=frozenset(classes),
            unknown=unknown,
            arv_backbone=frozenset(ingredients) & self.hiv_backbone,
            ribavirin=bool(self._ribavirin.intersection(ingredients)),
            interferon=bool(self._interferon.intersection(ingredients)),
            opioid_position=opioid_position,
            mme_factor=mme_factor,
        )

    def _form_class(self, class_id: str, ingredient: str, words: set[str]) -> str | None:
        """Return the class an ingredient gives in this dosage form, or None for no class.

        A product whose names and form carry none of a rule's form words keeps the class:
        a missing or unrecognised dosage form counts as it did before the form rules.
        """
        for rule in self._form_rules.get(class_id, ()):
            if rule.ingredients and ingredient not in rule.ingredients:
                continue
            if not words.isdisjoint(rule.forms) and words.isdisjoint(rule.keep):
                return rule.becomes
        return class_id


def _form_rules(
    document: dict[str, object], member_class: dict[str, str], classes: dict[str, int]
) -> dict[str, tuple[FormRule, ...]]:
    """Read `[[form_rules]]`, grouped by the class they apply to, in table order."""
    rules: dict[str, list[FormRule]] = {}
    for raw in _array(document, "form_rules"):
        entry = _as_dict(raw)
        rule = FormRule(
            class_id=str(entry["class"]),
            ingredients=frozenset(_strings(entry.get("ingredients", []))),
            forms=frozenset(_strings(entry["forms"])),
            keep=frozenset(_strings(entry.get("keep", []))),
            becomes=str(entry["becomes"]) if "becomes" in entry else None,
        )
        for class_id in (rule.class_id, rule.becomes):
            if class_id is not None and class_id not in classes:
                msg = f"drug_classes.toml: form rule names class {class_id!r}, not in [classes]"
                raise ValueError(msg)
        for ingredient in rule.ingredients:
            if member_class.get(ingredient) != rule.class_id:
                msg = (
                    f"drug_classes.toml: form rule ingredient {ingredient!r} is not a member of "
                    f"{rule.class_id!r}; add it to that class or drop it from the rule"
                )
                raise ValueError(msg)
        rules.setdefault(rule.class_id, []).append(rule)
    return {class_id: tuple(group) for class_id, group in rules.items()}


def _combination_rules(
    document: dict[str, object], class_severity: dict[str, int]
) -> tuple[CombinationRule, ...]:
    """Read `[[combination_rules]]`."""
    rules: list[CombinationRule] = []
    for raw in _array(document, "combination_rules"):
        entry = _as_dict(raw)
        rule = CombinationRule(
            ingredients=frozenset(_strings(entry["ingredients"])),
            class_id=str(entry["class"]),
        )
        if rule.class_id not in class_severity:
            msg = (
                f"drug_classes.toml: combination rule names class {rule.class_id!r}, "
                "not in [classes]"
            )
            raise ValueError(msg)
        rules.append(rule)
    return tuple(rules)


def _array(document: dict[str, object], name: str) -> list[object]:
    value = document.get(name, [])
    if not isinstance(value, list):
        msg = f"drug_classes.toml: expected [[{name}]] entries, got {type(value).__name__}"
        raise TypeError(msg)
    return value


def _table(document: dict[str, object], name: str) -> dict[str, object]:
    return _as_dict(document[name])


def _as_dict(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        msg = f"drug_classes.toml: expected a table, got {type(value).__name__}"
        raise TypeError(msg)
    return value


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        msg = f"drug_classes.toml: expected a list of names, got {type(value).__name__}"
        raise TypeError(msg)
    return [str(item).upper() for item in value]


@lru_cache(maxsize=1)
def load_drug_catalog() -> DrugCatalog:
    """Load the shipped drug class table once per process."""
    raw = resources.files("evidence_features").joinpath("data/drug_classes.toml").read_bytes()
    return DrugCatalog(tomllib.loads(raw.decode("utf-8")))
