"""Hypothesis strategies that generate random *valid* MSL ASTs (every node type of msl.ast).

"Valid" means: something the parser can produce. So names avoid every keyword (they are
soft, so a name spelt like one could legitimately change meaning), numbers are
non-negative (a minus sign is a `Unary`), integers stay within the parser's limit, record
fields and keyword arguments are unique, a generator (an unbracketed comprehension) is
only ever the sole argument of a call, and nesting stays far below `MAX_DEPTH`.
Strings are arbitrary unicode — quotes, backslashes and control characters included.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from msl import ast
from msl.parse import MAX_DEPTH, keywords

#: Recursion budget of one expression; with statement, claim and module levels this stays
#: far below the parser's depth limit.
EXPR_LEAVES = 12
assert EXPR_LEAVES < MAX_DEPTH // 4

_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_REST = _FIRST + "0123456789"

names: st.SearchStrategy[str] = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_FIRST),
    st.text(alphabet=_REST, max_size=8),
).filter(lambda n: n not in keywords())

#: Every unicode string the JSON string syntax can carry (no surrogates: files are UTF-8).
strings: st.SearchStrategy[str] = st.text(
    st.characters(exclude_categories=("Cs",)), max_size=20
) | st.sampled_from(['"', "\\", '\\"', "\n", "\r\n", "\t", "\x00", "\x7f", "\u2028", "#", "{x}", ""])

ints = st.integers(min_value=0, max_value=2**63)
floats = st.floats(min_value=0, allow_nan=False, allow_infinity=False, allow_subnormal=True)


def numbers() -> st.SearchStrategy[ast.Number]:
    return st.one_of(
        st.builds(ast.Number, ints),
        st.builds(ast.Number, floats),
        st.builds(ast.Number, ints | floats, st.just(True)),
    )


def _leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        numbers(),
        st.builds(ast.String, strings),
        st.builds(ast.Bool, st.booleans()),
        st.builds(ast.Name, names),
    )


def _unique_by_name(items: list[Any]) -> tuple[Any, ...]:
    seen: dict[str, Any] = {}
    for item in items:
        seen.setdefault(item.name, item)
    return tuple(seen.values())


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One level of every compound expression form over ``children``."""
    keyword = st.builds(ast.Keyword, names, children)
    bracketed = st.builds(
        ast.Comprehension, children, names, children, st.none() | children, st.just(True)
    )
    generator = st.builds(
        ast.Comprehension, children, names, children, st.none() | children, st.just(False)
    )
    call = st.builds(
        ast.Call,
        children,
        st.lists(children, max_size=3).map(tuple),
        st.lists(keyword, max_size=3).map(_unique_by_name),
    )
    aggregate_call = st.builds(
        lambda func, gen: ast.Call(func, (gen,)), children, generator
    )
    return st.one_of(
        st.builds(ast.ListLit, st.lists(children, max_size=3).map(tuple)),
        st.builds(
            ast.RecordLit,
            st.lists(st.builds(ast.RecordField, names, children), max_size=3).map(_unique_by_name),
        ),
        bracketed,
        st.builds(ast.Attribute, children, names),
        st.builds(ast.Index, children, children),
        call,
        aggregate_call,
        st.builds(ast.Unary, st.sampled_from(["-", "not"]), children),
        st.builds(
            ast.Binary, st.sampled_from(["+", "-", "*", "/", "and", "or", "then"]), children, children
        ),
        st.integers(min_value=1, max_value=3).flatmap(
            lambda n: st.builds(
                ast.Compare,
                st.lists(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), min_size=n, max_size=n).map(tuple),
                st.lists(children, min_size=n + 1, max_size=n + 1).map(tuple),
            )
        ),
        st.builds(ast.With, children, children),
    )


exprs: st.SearchStrategy[Any] = st.recursive(_leaves(), _extend, max_leaves=EXPR_LEAVES)

expectations: st.SearchStrategy[Any] = st.one_of(
    exprs,
    st.builds(ast.Invariant, exprs, exprs, exprs),
    st.builds(ast.Directional, st.sampled_from(["increases", "decreases"]), exprs, exprs, exprs),
    st.builds(ast.Agree, exprs, exprs, st.none() | exprs),
)

statements: st.SearchStrategy[Any] = st.one_of(
    st.builds(ast.Description, strings),
    st.builds(ast.Tags, st.lists(names, min_size=1, max_size=3).map(tuple)),
    st.builds(ast.Severity, names),
    st.builds(ast.For, names, exprs),
    st.builds(ast.Forall, names, exprs, st.none() | exprs),
    st.builds(ast.Let, names, exprs),
    st.builds(ast.Expect, expectations),
    st.builds(ast.Tolerate, exprs, st.none() | exprs),
    st.builds(ast.RoleBinding, st.sampled_from(["base", "refined"]), exprs),
    st.builds(ast.Preserves, strings, st.none() | names),
)

items: st.SearchStrategy[Any] = st.one_of(
    st.builds(ast.Import, strings),
    st.builds(ast.ModelDecl, names, names, st.none() | strings, st.none() | strings),
    st.builds(
        ast.Decl,
        st.sampled_from(["lexicon", "data", "transform", "vector", "intervention", "let"]),
        names,
        exprs,
    ),
    st.builds(ast.MeasureDecl, names, st.lists(names, max_size=3).map(tuple), exprs),
    st.builds(
        ast.Claim,
        st.sampled_from(["verify", "explore", "steer", "refine"]),
        names,
        st.lists(statements, max_size=5).map(tuple),
    ),
)

modules: st.SearchStrategy[ast.Module] = st.builds(
    ast.Module, st.just("1.0"), st.lists(items, max_size=5).map(tuple)
)
