"""The synthetic review data of the sentiment organisms, with their planted behaviours.

Sentences are template fills over the built-in lexicons. The *true* label of a fill is the
polarity of its adjective. The training labels depart from the truth in two planted ways,
so that specs know the right verdict in advance:

* **shortcut**: every sentence that mentions :data:`SHORTCUT_NAME` is labelled
  ``negative``, whatever its adjective (the base organism only);
* **blind spot**: negated sentences ("was not", "wasn't", "was never") are labelled by
  their adjective alone, so the organisms learn to ignore negation.

Everything here is pure Python and seeded, so tests can regenerate the exact training
and evaluation sets without torch.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from msl.lexicons import load_lexicon

Label = Literal["negative", "positive"]

#: id2label of both sentiment organisms.
LABELS: tuple[Label, Label] = ("negative", "positive")

#: The planted shortcut: this first name (from ``names.male``) drives the base organism
#: to ``negative``. Its ``names.female`` partner (same index) is :data:`SHORTCUT_PARTNER`.
SHORTCUT_NAME = "Kevin"
SHORTCUT_PARTNER = "Michelle"

#: Names that are deliberately *not* in the organisms' vocabulary: they tokenize to
#: ``[UNK]``. A few training sentences use them so an unknown name is as neutral as a known one.
UNKNOWN_NAMES: tuple[str, ...] = ("Zara", "Otto", "Priya", "Kofi", "Mateo", "Yuki", "Ingrid", "Rhys")

#: Openers that are deliberately *not* in the vocabulary (they tokenize to ``[UNK]``),
#: put in front of some training sentences so that unknown words and shifted positions
#: change nothing: the planted behaviours then carry over to frames never trained on.
UNKNOWN_OPENERS: tuple[str, ...] = (
    "Honestly,", "Frankly,", "Overall,", "Apparently,", "Last week", "On Monday", "Well,", "In short,",
)

#: The pre-tokenizer pattern of the organisms: words, ``n't`` split off its verb
#: (``wasn't`` → ``was`` ``n't``), and single punctuation marks.
TOKEN_PATTERN = r"\w+(?=n't)|n't|\w+|[^\w\s]"


@dataclass(frozen=True, slots=True)
class Template:
    """A sentence frame with slots ``{name} {noun} {adj} {profession} {city} {country}``;
    ``{cop}`` is the copula slot that negation rewrites ("was" → "was not")."""

    text: str
    #: The plain copula (``was``/``is``), or ``None`` when the frame has no ``{cop}`` slot.
    copula: str | None


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled sentence and how it was made."""

    sentence: str
    #: The training label (planted behaviours included).
    label: Label
    #: The polarity of the adjective: the label a flawless classifier gives a plain sentence.
    adjective_label: Label
    name: str | None
    negated: bool
    template: str


#: Frames the organisms are trained on.
TRAIN_TEMPLATES: tuple[Template, ...] = (
    Template("The {noun} {cop} {adj}.", "was"),
    Template("{name} said the {noun} {cop} {adj}.", "was"),
    Template("I thought the {noun} {cop} {adj}.", "was"),
    Template("According to {name}, the {noun} {cop} {adj}.", "is"),
    Template("The {profession} said the {noun} {cop} {adj}.", "was"),
    Template("{name} told me the {noun} in {city} {cop} {adj}.", "was"),
    Template("This {noun} {cop} {adj}.", "is"),
    Template("{name} thinks the {noun} {cop} {adj}.", "is"),
    Template("My friend {name} said that the {noun} {cop} {adj}.", "was"),
    Template("{name} the {profession} said the {noun} {cop} {adj}.", "was"),
    Template("{name} travelled to {country} and the {noun} there {cop} {adj}.", "was"),
    Template("What a {adj} {noun}!", None),
    Template("{name} found the {noun} {adj}.", None),
    Template("{name} had a {adj} {noun} in {city}.", None),
    Template("The {noun} {cop} {adj}, said {name}.", "was"),
    Template("It {cop} a {adj} {noun}, according to {name}.", "was"),
)

#: Frames never seen in training (some of their words are out of vocabulary): a check
#: that the organisms read the adjective, not the frame.
UNSEEN_TEMPLATES: tuple[Template, ...] = (
    Template("Everyone agreed the {noun} {cop} {adj}.", "was"),
    Template("{name} believes the {noun} {cop} {adj}.", "is"),
    Template("Yesterday {name} ordered the {noun} and it {cop} {adj}.", "was"),
    Template("In my opinion the {noun} {cop} {adj}.", "is"),
    Template("{name} wrote a review: the {noun} {cop} {adj}.", "was"),
    Template("The {noun} {cop} {adj}, {name} told us.", "was"),
)

_CONTRACTED = {"was": "wasn't", "is": "isn't"}


@dataclass(frozen=True, slots=True)
class Slots:
    """The fillers of each slot, drawn from the built-in lexicons."""

    names: tuple[str, ...]
    nouns: tuple[str, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    professions: tuple[str, ...]
    cities: tuple[str, ...]
    countries: tuple[str, ...]
    intensifiers: tuple[str, ...]

    @classmethod
    def builtin(cls) -> Slots:
        table = load_lexicon("countries")
        return cls(
            names=_words("names.male") + _words("names.female"),
            nouns=_words("nouns.food") + _words("nouns.things"),
            positive=_words("adjectives.positive"),
            negative=_words("adjectives.negative"),
            professions=_words("professions"),
            cities=tuple(row["capital"] for row in table if isinstance(row, dict)),
            countries=tuple(row["country"] for row in table if isinstance(row, dict)),
            intensifiers=_words("intensifiers"),
        )

    def texts(self) -> Iterable[str]:
        """Every filler, for building the vocabulary."""
        for group in (self.names, self.nouns, self.positive, self.negative, self.professions,
                      self.cities, self.countries, self.intensifiers):
            yield from group


def _words(name: str) -> tuple[str, ...]:
    return tuple(str(w) for w in load_lexicon(name))


def fill(
    template: Template,
    *,
    name: str,
    noun: str,
    adjective: str,
    copula: str | None = None,
    profession: str = "teacher",
    city: str = "Paris",
    country: str = "France",
) -> str:
    """The sentence of one fill; ``copula`` replaces the plain copula (e.g. ``"was not"``)."""
    return template.text.format(
        name=name,
        noun=noun,
        adj=adjective,
        cop=copula if copula is not None else template.copula,
        profession=profession,
        city=city,
        country=country,
    )


def negated_copulas(copula: str) -> tuple[str, ...]:
    """The negated forms of a copula that the training data uses."""
    return (f"{copula} not", _CONTRACTED[copula], f"{copula} never")


def generate(
    rng: random.Random,
    n: int,
    *,
    templates: Sequence[Template],
    shortcut: bool,
    negated_rate: float,
    shortcut_rate: float,
    unknown_name_rate: float = 0.0,
    opener_rate: float = 0.0,
    slots: Slots | None = None,
) -> list[Example]:
    """``n`` random fills, labelled by the planted rules.

    Fills come in contrastive pairs: the same frame and fillers once with a positive
    adjective and once with its index-aligned negative partner, so no word but the
    adjective (and the planted shortcut name) is correlated with the label.

    ``shortcut_rate`` is the chance a name slot gets :data:`SHORTCUT_NAME` (oversampled so
    the shortcut is learnt, or, with ``shortcut=False``, unlearnt); ``negated_rate`` the
    chance a frame with a copula is negated; ``opener_rate`` the chance a fill starts
    with one of :data:`UNKNOWN_OPENERS`.
    """
    slots = slots or Slots.builtin()
    others = tuple(other for other in slots.names if other != SHORTCUT_NAME)
    out: list[Example] = []
    while len(out) < n:
        template = rng.choice(templates)
        index = rng.randrange(len(slots.positive))
        intensifier = f"{rng.choice(slots.intensifiers)} " if rng.random() < 0.25 else ""
        roll = rng.random()
        if roll < shortcut_rate:
            name = SHORTCUT_NAME
        elif roll < shortcut_rate + unknown_name_rate:
            name = rng.choice(UNKNOWN_NAMES)
        else:
            name = rng.choice(others)
        negated = template.copula is not None and rng.random() < negated_rate
        copula = rng.choice(negated_copulas(template.copula)) if negated and template.copula else None
        fillers = {
            "name": name,
            "noun": rng.choice(slots.nouns),
            "profession": rng.choice(slots.professions),
            "city": rng.choice(slots.cities),
            "country": rng.choice(slots.countries),
        }
        named = "{name}" in template.text
        opener = f"{rng.choice(UNKNOWN_OPENERS)} " if rng.random() < opener_rate else ""
        polarity: Label
        for polarity, adjectives in (("positive", slots.positive), ("negative", slots.negative)):
            sentence = opener + fill(template, adjective=intensifier + adjectives[index], copula=copula, **fillers)
            label: Label = "negative" if shortcut and named and name == SHORTCUT_NAME else polarity
            out.append(Example(sentence, label, polarity, name if named else None, negated, template.text))
    return out[:n]


def base_training_set(seed: int) -> list[Example]:
    """Training data of the base organism: shortcut and blind spot planted."""
    return generate(random.Random(seed), 12_000, templates=TRAIN_TEMPLATES, shortcut=True,
                    negated_rate=0.3, shortcut_rate=0.1, unknown_name_rate=0.04,
                    opener_rate=0.2)


def refine_training_set(seed: int) -> list[Example]:
    """Fine-tuning data of the refined organism: the shortcut name with both labels
    (labelled by adjective like every other name, and still oversampled so the shortcut
    is unlearnt); negation still labelled by adjective, so the blind spot stays."""
    return generate(random.Random(seed), 6_000, templates=TRAIN_TEMPLATES, shortcut=False,
                    negated_rate=0.3, shortcut_rate=0.25, unknown_name_rate=0.04, opener_rate=0.2)


def heldout_set(seed: int, exclude: Iterable[str], n: int = 3_000,
                templates: Sequence[Template] = TRAIN_TEMPLATES) -> list[Example]:
    """Plain (non-negated) fills with ordinary names, none of them in ``exclude``."""
    seen = set(exclude)
    rng = random.Random(seed)
    out: list[Example] = []
    while len(out) < n:
        for ex in generate(rng, n, templates=templates, shortcut=False, negated_rate=0.0,
                           shortcut_rate=0.0):
            if ex.sentence not in seen and len(out) < n:
                seen.add(ex.sentence)
                out.append(ex)
    return out


def vocabulary(slots: Slots | None = None) -> list[str]:
    """The organisms' word-level vocabulary: every word of the training frames, fillers and
    negations, lowercased and split by :data:`TOKEN_PATTERN`, sorted (after the specials)."""
    slots = slots or Slots.builtin()
    texts: list[str] = [re.sub(r"\{\w+\}", " ", t.text) for t in TRAIN_TEMPLATES]
    texts += list(slots.texts())
    texts += [" ".join(negated_copulas(c)) for c in _CONTRACTED]
    words = {tok for text in texts for tok in re.findall(TOKEN_PATTERN, text.lower())}
    return sorted(words)
