"""Perturbations: transformations of inputs for invariance and directional claims.

Each records what it changed (``swap 'John' → 'Mary'``) so a counterexample shows the
edit, and returns ``None`` where it does not apply (no name to swap, nothing to negate):
such instances are left out of the claim, as CheckList does, and counted.
Compose them with ``then``: ``typos(1) then lowercase``.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from msl.builtins import builtin
from msl.values import Context, DataSet, EvalError, Record, Transform

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def _sub_word(text: str, old: str, new: str) -> tuple[str, int]:
    """Replace whole-word ``old`` by ``new`` (and ``Old`` by ``New``); the count replaced."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(old)}(?![\w-])")
    text, n = pattern.subn(new, text)
    if old[:1].islower():
        cap = re.compile(rf"(?<![\w-]){re.escape(old[:1].upper() + old[1:])}(?![\w-])")
        text, m = cap.subn(new[:1].upper() + new[1:], text)
        n += m
    return text, n


def _with_fields(record: Record, changes: dict[str, str]) -> Record:
    """Keep slot fields in step with the text: a swapped name is also the new `x.name`."""
    if not changes:
        return record
    fields = tuple((k, changes.get(v, v) if isinstance(v, str) and k != "text" else v) for k, v in record.fields)
    return Record(fields, record.edits, record.original)


def _words(values: DataSet | Any) -> tuple[str, ...]:
    words = tuple(str(v) for v in values)
    if not words:
        raise EvalError("a word list for a perturbation is empty")
    return words


@builtin("swap(a: set[str], b: set[str]) -> transform")
def swap(ctx: Context, a: DataSet, b: DataSet) -> Transform:
    """Swap words between two aligned lexicons: the i-th of ``a`` ↔ the i-th of ``b``.

    ``swap(builtin("names.male"), builtin("names.female"))`` is a gender swap.
    """
    left, right = _words(a), _words(b)
    if len(left) != len(right):
        raise EvalError(f"swap needs lexicons of equal length ({len(left)} and {len(right)})")
    mapping = dict(zip(left, right, strict=True)) | dict(zip(right, left, strict=True))

    def step(record: Record, rng: random.Random) -> Record | None:
        # One pass over the words, so that John → Mary does not turn back into John.
        edits, changed = [], {}

        def replace(m: re.Match[str]) -> str:
            word = m.group(0)
            target = mapping.get(word)
            if target is None and word[:1].isupper() and word.lower() in mapping:
                target = mapping[word.lower()].capitalize()
            if target is None:
                return word
            edits.append(f"{word!r} → {target!r}")
            changed[word] = target
            return target

        text = _WORD.sub(replace, record.text)
        if not edits:
            return None
        return _with_fields(record.with_text(text, "swap " + ", ".join(edits)), changed)

    return Transform(f"swap({len(left)} pairs)", (step,))


@builtin("replace(old: str, new: str) -> transform")
def replace(ctx: Context, old: str, new: str) -> Transform:
    """Replace a whole word or phrase (and its capitalised form)."""
    if not old:
        raise EvalError("replace needs a non-empty word to replace")

    def step(record: Record, rng: random.Random) -> Record | None:
        text, n = _sub_word(record.text, old, new)
        return record.with_text(text, f"replace {old!r} → {new!r}") if n else None

    return Transform(f"replace({old!r}, {new!r})", (step,))


@builtin("refill(slot: str, values: set[str]) -> transform")
def refill(ctx: Context, slot: str, values: DataSet) -> Transform:
    """Re-fill one slot of a template input with another value of ``values`` (seeded)."""
    options = _words(values)

    def step(record: Record, rng: random.Random) -> Record | None:
        if not record.has(slot):
            return None
        current = str(record.get(slot))
        others = [o for o in options if o != current]
        if not others:
            return None
        new = rng.choice(others)
        text, n = _sub_word(record.text, current, new)
        if not n:
            return None
        return _with_fields(record.with_text(text, f"refill {slot}: {current!r} → {new!r}"), {current: new})

    return Transform(f"refill({slot!r})", (step,))


@builtin("typos(n: number = 1, seed: number = None) -> transform")
def typos(ctx: Context, n: float = 1, seed: float | None = None) -> Transform:
    """Swap two adjacent letters in ``n`` words of 3+ letters (seeded, per input)."""
    count = int(n)
    if count < 1 or count != n:
        raise EvalError("typos: n must be a whole number ≥ 1")

    def step(record: Record, rng: random.Random) -> Record | None:
        local = random.Random(f"{int(seed)}:{record.text}") if seed is not None else rng
        words = [m for m in _WORD.finditer(record.text) if len(m.group(0)) >= 3]
        if not words:
            return None
        chosen = sorted(local.sample(words, min(count, len(words))), key=lambda m: m.start())
        text, shift, edits = record.text, 0, []
        for m in chosen:
            word = m.group(0)
            i = local.randrange(len(word) - 1)
            typo = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            start = m.start() + shift
            text = text[:start] + typo + text[start + len(word) :]
            edits.append(f"{word!r} → {typo!r}")
        return record.with_text(text, "typos " + ", ".join(edits))

    return Transform(f"typos({count})", (step,))


def _case(name: str, fn: Any) -> Transform:
    def step(record: Record, rng: random.Random) -> Record | None:
        text = fn(record.text)
        return record.with_text(text, name) if text != record.text else None

    return Transform(name, (step,))


@builtin("lowercase() -> transform")
def lowercase(ctx: Context) -> Transform:
    """The whole text in lower case."""
    return _case("lowercase", str.lower)


@builtin("uppercase() -> transform")
def uppercase(ctx: Context) -> Transform:
    """The whole text in upper case."""
    return _case("uppercase", str.upper)


@builtin("titlecase() -> transform")
def titlecase(ctx: Context) -> Transform:
    """Every word capitalised."""
    return _case("titlecase", string.capwords)


@builtin("strip_punctuation() -> transform")
def strip_punctuation(ctx: Context) -> Transform:
    """Remove punctuation marks (apostrophes inside words are kept)."""
    table = str.maketrans("", "", string.punctuation.replace("'", ""))
    return _case("strip_punctuation", lambda t: t.translate(table))


@builtin("punctuate(mark: str = \"!\") -> transform")
def punctuate(ctx: Context, mark: str = "!") -> Transform:
    """End the text with ``mark`` instead of its final punctuation."""
    return _case(f"punctuate({mark!r})", lambda t: t.rstrip().rstrip(".!?") + mark)


def _contractions() -> tuple[tuple[str, str], ...]:
    """Full and short forms from the built-in `contractions` lexicon (docs/lexicons.md)."""
    from msl.lexicons import load_lexicon

    return tuple((row["full"], row["short"]) for row in load_lexicon("contractions"))


def _rewrite(name: str, pairs: tuple[tuple[str, str], ...]) -> Transform:
    def step(record: Record, rng: random.Random) -> Record | None:
        text, edits = record.text, []
        for old, new in pairs:
            text, n = _sub_word(text, old, new)
            if n:
                edits.append(f"{old!r} → {new!r}")
        return record.with_text(text, f"{name} " + ", ".join(edits)) if edits else None

    return Transform(name, (step,))


@builtin("contract() -> transform")
def contract(ctx: Context) -> Transform:
    """Contract phrases: "is not" → "isn't", "it is" → "it's"."""
    return _rewrite("contract", _contractions())


@builtin("expand() -> transform")
def expand(ctx: Context) -> Transform:
    """Expand contractions: "isn't" → "is not"."""
    return _rewrite("expand", tuple((short, full) for full, short in _contractions()))


_COPULAS = ("is", "was", "are", "were", "will be", "can", "could", "should", "would", "does", "did")
_NEGATED = re.compile(r"\b(not|never|no|n't)\b|n't\b", re.IGNORECASE)


@builtin("negate() -> transform")
def negate(ctx: Context) -> Transform:
    """Negate by template: the first "is/was/are/were/…" gets a "not" after it.

    Texts that already hold a negation, or no such verb, are left out of the claim.
    """

    def step(record: Record, rng: random.Random) -> Record | None:
        if _NEGATED.search(record.text):
            return None
        for verb in _COPULAS:
            m = re.search(rf"\b{verb}\b", record.text)
            if m:
                text = record.text[: m.end()] + " not" + record.text[m.end() :]
                return record.with_text(text, f"negate: {verb!r} → '{verb} not'")
        return None

    return Transform("negate", (step,))


@builtin("prepend(prefix: str) -> transform")
def prepend(ctx: Context, prefix: str) -> Transform:
    """Put ``prefix`` before the text (``prepend("Honestly, ")``)."""

    def step(record: Record, rng: random.Random) -> Record | None:
        return record.with_text(prefix + record.text, f"prepend {prefix!r}")

    return Transform(f"prepend({prefix!r})", (step,))


@builtin("append(suffix: str) -> transform")
def append(ctx: Context, suffix: str) -> Transform:
    """Put ``suffix`` after the text (``append(" Thanks!")``)."""

    def step(record: Record, rng: random.Random) -> Record | None:
        return record.with_text(record.text + suffix, f"append {suffix!r}")

    return Transform(f"append({suffix!r})", (step,))
