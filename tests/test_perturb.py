"""Perturbations: each changes what it says, records the edit, composes, and leaves alone
the inputs it does not apply to."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from msl.builtins import perturb
from msl.lexicons import load_lexicon
from msl.values import ListSet, Record, Transform

MALE = ListSet(load_lexicon("names.male"))
FEMALE = ListSet(load_lexicon("names.female"))
RNG = random.Random(0)


def apply(t: Transform, text: str) -> Record | None:
    return t.apply(text, random.Random(1))


def test_swap_maps_aligned_words_both_ways_in_one_pass() -> None:
    swap = perturb.swap(None, MALE, FEMALE)
    out = apply(swap, "James met Mary.")
    assert out is not None and out.text == "Mary met James."
    assert out.edits == ("swap 'James' → 'Mary', 'Mary' → 'James'",)
    assert out.original is not None and out.original.text == "James met Mary."
    assert apply(swap, "Nobody here.") is None  # does not apply: left out of the claim


def test_swap_keeps_slot_fields_in_step() -> None:
    swap = perturb.swap(None, MALE, FEMALE)
    record = Record.of(text="Kevin said it was good.", name="Kevin", adj="good")
    out = swap.apply(record, RNG)
    assert out is not None and out.get("name") == "Michelle" and out.get("adj") == "good"


@given(st.lists(st.sampled_from(load_lexicon("names.male") + load_lexicon("names.female") + ("said", "and", "the")),
                min_size=1, max_size=8))
def test_swap_twice_is_the_identity(words: list[str]) -> None:
    swap = perturb.swap(None, MALE, FEMALE)
    text = " ".join(words)
    once = apply(swap, text)
    if once is None:
        assert not set(words) & set(load_lexicon("names.male") + load_lexicon("names.female"))
        return
    twice = apply(swap, once.text)
    assert twice is not None and twice.text == text


def test_replace_whole_words_and_capitalised_forms() -> None:
    t = perturb.replace(None, "good", "bad")
    assert apply(t, "Good food, goodness, good!").text == "Bad food, goodness, bad!"
    assert apply(t, "Nothing to see.") is None


@given(st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Zs")), min_size=3, max_size=40))
def test_typos_are_seeded_and_keep_the_letters(text: str) -> None:
    t = perturb.typos(None, 1, 7)
    first, second = apply(t, text), apply(t, text)
    assert (first is None) == (second is None)
    if first is not None:
        assert first.text == second.text and sorted(first.text) == sorted(text)
        assert first.edits[0].startswith("typos ")


def test_case_punctuation_contractions_negation_affixes() -> None:
    assert apply(perturb.lowercase(None), "The Soup").text == "the soup"
    assert apply(perturb.lowercase(None), "soup") is None  # nothing to change
    assert apply(perturb.uppercase(None), "soup").text == "SOUP"
    assert apply(perturb.titlecase(None), "the soup was good").text == "The Soup Was Good"
    assert apply(perturb.strip_punctuation(None), "Good, isn't it?").text == "Good isn't it"
    assert apply(perturb.punctuate(None, "!"), "It was good.").text == "It was good!"
    assert apply(perturb.contract(None), "It is not good.").text == "It isn't good."
    assert apply(perturb.expand(None), "It isn't good.").text == "It is not good."
    assert apply(perturb.negate(None), "The soup was good.").text == "The soup was not good."
    assert apply(perturb.negate(None), "The soup was not good.") is None  # already negated
    assert apply(perturb.prepend(None, "Honestly, "), "it was good.").text == "Honestly, it was good."
    assert apply(perturb.append(None, " Thanks!"), "Good.").text == "Good. Thanks!"


def test_composition_records_every_edit_in_order() -> None:
    t = perturb.swap(None, MALE, FEMALE).then(perturb.uppercase(None))
    out = apply(t, "James said hi.")
    assert out is not None and out.text == "MARY SAID HI."
    assert len(out.edits) == 2 and out.edits[0].startswith("swap") and out.edits[1] == "uppercase"
    assert perturb.swap(None, MALE, FEMALE).then(perturb.uppercase(None)).apply("no names", RNG) is None


def test_refill_changes_one_slot_to_another_value() -> None:
    t = perturb.refill(None, "adj", ListSet(("good", "great")))
    out = t.apply(Record.of(text="It was good.", adj="good"), RNG)
    assert out is not None and out.text == "It was great." and out.get("adj") == "great"
