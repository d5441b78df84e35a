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
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from evidence_features._memo import MAX_KEY_CHARS, TextMemo
from evidence_features._numbers import STRENGTH
from evidence_features._strengths import Strength, parse_strength
from evidence_features._text import normalise_text

__all__ = [
    "CombinationRule",
    "DrugCatalog",
    "DrugInfo",
    "FormRule",
    "load_drug_catalog",
    "opioid_dose",
]

_SEPARATORS = re.compile(r"\s+W/\s*|\s+WITH\s+|\s+AND\s+|[-/+,;&]")
_NUMERIC = re.compile(r"^[\d.#()]+")
_PUNCTUATION = str.maketrans({"(": " ", ")": " ", "[": " ", "]": " ", '"': " ", "*": " "})
# Separators inside dosage-form texts ("SOLUTION, OPHTHALMIC", "SUSPENSION/DROPS",
# "EYE-DROPS") that split them into the words the form rules compare.
_WORD_SEPARATORS = str.maketrans(
    {"(": " ", ")": " ", "[": " ", "]": " ", '"': " ", "*": " ", "/": " ", ",": " ", ";": " ",
     ":": " ", "-": " "}
)  # fmt: skip
_MAX_CACHE = 65_536


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
    """A rule: a product that contains all of `ingredients` also gets `class_id`.

    The class table lists these rules as `[[combination_rules]]`.
    """

    ingredients: frozenset[str]
    class_id: str


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
