"""The built-in lexicons: shape, alignment, no duplicates, documentation, unknown names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from msl.errors import SpecError
from msl.lexicons import UnknownLexiconError, available, describe, load_lexicon

ROOT = Path(__file__).resolve().parent.parent
LEXICON_DIR = ROOT / "msl" / "lexicons"
DOCS = ROOT / "docs" / "lexicons.md"

#: The lexicons the project promises (issue 4, item 1).
REQUIRED = {
    "names.male", "names.female", "countries", "adjectives.positive", "adjectives.negative",
    "professions", "nouns.food", "nouns.things", "contractions", "intensifiers",
}
WORD_LISTS = [n for n in sorted(REQUIRED) if describe(n).fields is None]
TABLES = [n for n in sorted(REQUIRED) if describe(n).fields is not None]


def test_available_lists_exactly_the_data_files() -> None:
    files = sorted(p.stem for p in LEXICON_DIR.glob("*.json"))
    assert available() == files
    assert REQUIRED <= set(files)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_file_declares_its_own_name_and_one_shape(name: str) -> None:
    raw = json.loads((LEXICON_DIR / f"{name}.json").read_text(encoding="utf-8"))
    assert raw["name"] == name
    assert raw["description"] and raw["use"]
    assert ("words" in raw) != ("rows" in raw)
    assert ("fields" in raw) == ("rows" in raw)


@pytest.mark.parametrize("name", WORD_LISTS)
def test_word_lists_are_single_ascii_words_without_duplicates(name: str) -> None:
    words = load_lexicon(name)
    assert all(isinstance(w, str) and re.fullmatch(r"[A-Za-z]+", w) for w in words), words
    assert len({w.lower() for w in words}) == len(words)
    assert describe(name).size == len(words) >= 10


@pytest.mark.parametrize("name", TABLES)
def test_tables_have_string_fields_and_unique_keys(name: str) -> None:
    info = describe(name)
    assert info.fields is not None
    rows = load_lexicon(name)
    assert len(rows) == info.size >= 20
    for row in rows:
        assert isinstance(row, dict) and tuple(row) == info.fields
        assert all(isinstance(v, str) and v.strip() == v and v for v in row.values())
    for field in info.fields:
        assert len({row[field] for row in rows if isinstance(row, dict)}) == len(rows), field


@pytest.mark.parametrize(("a", "b"), [("names.male", "names.female"), ("adjectives.positive", "adjectives.negative")])
def test_aligned_pairs_have_equal_length_and_no_shared_word(a: str, b: str) -> None:
    assert describe(a).aligned_with == b and describe(b).aligned_with == a
    left, right = load_lexicon(a), load_lexicon(b)
    assert len(left) == len(right) == 25
    assert not {str(w).lower() for w in left} & {str(w).lower() for w in right}


def test_no_word_is_in_two_slot_lexicons() -> None:
    """A word in two lists (say a name that is also a noun) would make a swap ambiguous."""
    seen: dict[str, str] = {}
    for name in WORD_LISTS:
        for word in load_lexicon(name):
            assert str(word).lower() not in seen, (word, seen.get(str(word).lower()), name)
            seen[str(word).lower()] = name


def test_countries_read_without_article_and_capitals_are_known() -> None:
    rows = load_lexicon("countries")
    table = {r["country"]: r["capital"] for r in rows if isinstance(r, dict)}
    assert table["France"] == "Paris" and table["Japan"] == "Tokyo" and table["Canada"] == "Ottawa"
    assert not any(c.startswith(("The ", "United ")) for c in table)


def test_contractions_table_expands_to_its_short_form() -> None:
    for row in load_lexicon("contractions"):
        assert isinstance(row, dict)
        assert " " in row["full"] or row["full"] == "cannot"
        assert "'" in row["short"] and " " not in row["short"]


def test_loaded_tables_are_fresh_copies() -> None:
    first = load_lexicon("countries")
    assert isinstance(first[0], dict)
    first[0]["capital"] = "Lyon"
    assert load_lexicon("countries")[0] == {"country": "France", "capital": "Paris"}


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("names.mael", "names.male"), ("name.female", "names.female"), ("countrys", "countries"),
     ("adjectives.postive", "adjectives.positive"), ("profesions", "professions"), ("nouns.fod", "nouns.food")],
)
def test_unknown_name_suggests_the_closest(typo: str, meant: str) -> None:
    with pytest.raises(UnknownLexiconError) as info:
        load_lexicon(typo)
    err = info.value
    assert isinstance(err, SpecError) and isinstance(err, KeyError)
    assert err.suggestion == meant
    assert err.hint == f"did you mean '{meant}'?"
    assert str(err) == f"unknown lexicon '{typo}'"
    assert f"did you mean '{meant}'?" in err.render()


def test_unknown_name_without_close_match_lists_all() -> None:
    with pytest.raises(UnknownLexiconError) as info:
        describe("zzzzzz")
    assert info.value.suggestion is None
    assert info.value.hint is not None and all(name in info.value.hint for name in available())


@given(st.text(max_size=40))
@example("../names.male")
@example("names.male.json")
@example("__init__")
def test_any_other_string_is_an_unknown_lexicon(name: str) -> None:
    """Names are looked up, never turned into paths: anything not listed is refused."""
    if name in available():
        assert load_lexicon(name)
        return
    with pytest.raises(UnknownLexiconError) as info:
        load_lexicon(name)
    assert info.value.name == name and info.value.hint


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_one_letter_slip_is_traced_back(name: str) -> None:
    """Exhaustively: each deleted letter and each swap of neighbours suggests ``name``."""
    deletions = {name[:i] + name[i + 1 :] for i in range(len(name))}
    swaps = {name[:i] + name[i + 1] + name[i] + name[i + 2 :] for i in range(len(name) - 1)}
    for typo in (deletions | swaps) - set(available()):
        with pytest.raises(UnknownLexiconError) as info:
            load_lexicon(typo)
        assert info.value.suggestion == name, typo


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_lexicon_is_documented_with_its_size(name: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = re.search(rf"^### `{re.escape(name)}`\n(.*?)(?=^### |\Z)", text, re.M | re.S)
    assert section, f"docs/lexicons.md has no section for {name}"
    assert f"**Size:** {describe(name).size}" in section.group(1)
