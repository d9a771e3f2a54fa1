"""The checker: names across imports, types of built-ins, measurements against model
kinds, units, the rules of each claim kind, and unused declarations."""

from __future__ import annotations

from pathlib import Path

import pytest

from msl import types as T
from msl.builtins import functions, measurements
from msl.check import check_file
from msl.errors import MslError, Severity, SpecErrors
from msl.ir import CheckedSpec
from msl.pipeline import check_paths

MODELS = """msl 1.0
model lm: causal_lm
model clf: classifier
model enc: encoder
model net: network
data prompts = ["a", "b"]
"""
#: The header above is this many lines; messages below give lines of the body.
BODY = MODELS.count("\n")


def check(tmp_path: Path, body: str, name: str = "spec.msl", **others: str) -> CheckedSpec:
    for other, text in others.items():
        path = tmp_path / other.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return check_file(path)


def problems(tmp_path: Path, body: str, **others: str) -> list[tuple[str, int, str]]:
    """(severity, line, message) of everything the checker says, errors and warnings."""
    try:
        spec = check(tmp_path, body, **others)
    except SpecErrors as exc:
        found: list[MslError] = list(exc.errors)
    else:
        found = spec.warnings
    return [
        ("warning" if p.severity is Severity.WARNING else "error", p.span.line if p.span else 0, p.message)
        for p in found
    ]


def errors(tmp_path: Path, body: str, **others: str) -> list[str]:
    return [m for s, _, m in problems(tmp_path, body, **others) if s == "error"]


def in_claim(statements: str, kind: str = "verify") -> str:
    return MODELS + f"{kind} c {{\n{statements}\n}}\n"


# ── Imports ──────────────────────────────────────────────────────────────────────────────


def test_names_come_from_imports_but_claims_do_not(tmp_path: Path) -> None:
    spec = check(
        tmp_path,
        'msl 1.0\nimport "lib/common.msl"\nverify c { for p in shared\n expect lm.top(p) == " x" }\n',
        **{"lib__common.msl": 'msl 1.0\nmodel lm: causal_lm\ndata shared = ["a"]\n'
                              'verify theirs { expect lm.top("a") == "b" }\n'},
    )
    assert [c.name for c in spec.claims] == ["c"]
    assert spec.symbols["shared"].file.endswith("lib/common.msl")
    assert spec.claims[0].roles == ("lm",)


def test_imports_are_relative_to_the_importing_file_and_a_diamond_is_fine(tmp_path: Path) -> None:
    spec = check(
        tmp_path,
        'msl 1.0\nimport "a/x.msl"\nimport "b/y.msl"\nverify c { expect lm.prob("p", " q") > base_rate }\n',
        **{
            "a__x.msl": 'msl 1.0\nimport "../shared/d.msl"\n',
            "b__y.msl": 'msl 1.0\nimport "../shared/d.msl"\n',
            "shared__d.msl": "msl 1.0\nmodel lm: causal_lm\nlet base_rate = 0.5\n",
        },
    )
    assert sorted(spec.symbols) == ["base_rate", "lm"]
    assert len(spec.modules) == 4


def test_an_import_cycle_is_reported_with_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = problems(
        tmp_path,
        'msl 1.0\nimport "b.msl"\nlet a = 1\nverify c { expect a > 0 }\n',
        **{"b.msl": 'msl 1.0\nimport "c.msl"\n', "c.msl": 'msl 1.0\n# cycle\nimport "spec.msl"\n'},
    )
    assert found == [("error", 3, "import cycle: spec.msl → b.msl → c.msl → spec.msl")]


def test_a_name_declared_in_two_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = problems(
        tmp_path,
        'msl 1.0\nimport "other.msl"\n\nlet rate_floor = 2\nverify c { expect rate_floor > 1 }\n',
        **{"other.msl": "msl 1.0\n\nlet rate_floor = 1\n"},
    )
    assert found == [("error", 4, "`rate_floor` is already declared at other.msl:3:5")]


def test_a_name_declared_twice_in_one_file(tmp_path: Path) -> None:
    found = problems(tmp_path, MODELS + "let x = 1\nlet x = 2\nverify c { expect x > 0 and lm.top(\"a\") == \"b\" }\n")
    assert ("error", BODY + 2, f"`x` is already declared at line {BODY + 1}") in found


def test_errors_of_an_imported_file_are_reported_at_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecErrors) as caught:
        check(tmp_path, 'msl 1.0\nimport "broken.msl"\n', **{"broken.msl": "msl 1.0\nlet = 1\n"})
    (error,) = caught.value.errors
    assert str(error.span) == "broken.msl:2:5"


def test_lint_of_a_folder_reports_a_shared_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib.msl").write_text("msl 1.0\nlet x = \n", encoding="utf-8")
    for name in ("a.msl", "b.msl"):
        (tmp_path / name).write_text('msl 1.0\nimport "lib.msl"\n', encoding="utf-8")
    _, found = check_paths([tmp_path])
    assert [str(p.span) for p in found] == ["lib.msl:2:8"]


# ── Types of built-ins ───────────────────────────────────────────────────────────────────


def type_of(tmp_path: Path, expression: str, before: str = "") -> T.Type:
    spec = check(tmp_path, MODELS + before + f"let v = {expression}\nverify c {{ expect len(prompts) > 0 }}\n")
    return spec.symbols["v"].type


@pytest.mark.parametrize(("expression", "expected"), [
    ('lm.logprob("a", " b")', "number"),
    ('lm.prob("a", " b")', "number"),
    ('lm.rank("a", " b")', "number"),
    ('lm.top("a")', "str"),
    ('lm.generate("a", tokens: 5)', "str"),
    ('lm.next("a")', "dist"),
    ('lm.perplexity("a")', "number"),
    ('lm.lens_rank("a", " b")', "series[number]"),
    ('lm.lens_prob("a", " b")', "series[number]"),
    ('clf.label("a")', "str"),
    ('clf.prob("a", "pos")', "number"),
    ('clf.probs("a")', "dist"),
    ('enc.embed("a")', "vector"),
    ("net([1, 2])", "vector"),
    ("net.output([1, 2])", "vector"),
    ("net([1, 2])[0]", "number"),
    ("lm.resid_post", "sites"),
    ("lm.mlp_out[-1]", "site"),
    ('template("{a} {b}", a: ["x"], b: ["y"])', "set[record]"),
    ('sample(["a", "b"], 1)', "set[str]"),
    ("range(0, 10, 2)", "set[number]"),
    ("[1, 2]", "set[number]"),
    ('["a", "b"]', "set[str]"),
    ("{a: 1}", "record"),
    ('swap(["a"], ["b"])', "transform"),
    ("typos(1) then lowercase", "transform"),
    ('mean_diff(lm.resid_post[1], ["a"], ["b"])', "vector"),
    ('add(enc.embed("a"), at: lm.resid_post[1], scale: 2)', "intervention"),
    ("zero(at: lm.attn_out[2])", "intervention"),
    ("box(lower: [0], upper: [1])", "domain"),
    ("linf_ball(center: [0, 0], radius: 0.1)", "domain"),
    ('probe(lm.resid_post, [{text: "a", label: "x"}])', "series[number]"),
    ('mean(lm.prob(p, " a") for p in prompts)', "number"),
    ('rate(lm.top(p) == "a" for p in prompts)', "number"),
    ('all(lm.top(p) == "a" for p in prompts)', "bool"),
    ('cosine(enc.embed("a"), enc.embed("b"))', "number"),
    ('kl(lm.next("a"), lm.next("b"))', "number"),
    ('first(lm.lens_rank("a", " b") <= 1)', "number"),
    ('lm.lens_rank("a", " b") <= 1', "series[bool]"),
    ('abs(-lm.prob("a", " b"))', "number"),
    ('"a" + lm.top("b")', "str"),
    ('enc.embed("a") - enc.embed("b")', "vector"),
    ('lm.top("a") with zero(at: lm.mlp_out[1])', "str"),
])
def test_types_of_builtins(tmp_path: Path, expression: str, expected: str) -> None:
    assert str(type_of(tmp_path, expression)) == expected


def test_template_fields_are_its_slots_and_text(tmp_path: Path) -> None:
    t = type_of(tmp_path, 'template("{name} is {adj}", name: ["a"], adj: ["b"])')
    assert t.elem.fields == frozenset({"text", "name", "adj"})


@pytest.mark.parametrize(("expression", "message"), [
    ('cosine("a", "b")', "`cosine`'s `a` must be a vector, not a string"),
    ('lm.prob("a", 1)', "`prob`'s `token` must be a string, not a number"),
    ("mean(3)", "`mean` aggregates a collection, not a number"),
    ('sample(["a"], 0)', "sample size must be a whole number, or a fraction like 10%"),
    ('add(enc.embed("a"), at: lm.resid_post)', "`add`'s `at` must be a site, not a family of sites"),
    ('add(enc.embed("a"), at: lm.resid_post[1], tokens: "first")',
     "bad token selector 'first': use \"last\", \"all\", \"from K\" or a position"),
    ('template("{a", a: ["x"])', "bad template: stray `{` (write `{{` for a literal brace)"),
    ("lm.resid_post[1.5]", "an index is a whole number"),
    ("typos(1) then 3", "`then` composes transformations, not a number"),
    ('lm.top("a") with 3', "`with` takes an intervention, not a number"),
    ("net.resid_post", "sites belong to transformer models, not networks"),
    ("lm.logprob", "`logprob` is a measurement: call it"),
    ('"a" < 3', "`<` compares numbers, not a string"),
    ("mean", "`mean` is a built-in function: call it"),
    ("[1] + 2 * \"a\"", "cannot apply `*` to a number and a string"),
])
def test_argument_and_operator_errors(tmp_path: Path, expression: str, message: str) -> None:
    assert message in errors(tmp_path, MODELS + f"let v = {expression}\nverify c {{ expect len(prompts) > 0 }}\n")


# ── Measurements against model kinds ─────────────────────────────────────────────────────

KINDS = {"causal_lm": "lm", "classifier": "clf", "encoder": "enc", "network": "net"}
EVERY_MEASUREMENT = sorted({name for kind in KINDS for name in measurements(kind)})
_EXAMPLE = {"text": '"a"', "str": '" b"', "number": "1", "vector": "[1, 2]"}


def _call(kind: str, name: str) -> str:
    fn = measurements(kind).get(name) or next(measurements(k)[name] for k in KINDS if name in measurements(k))
    args = ", ".join(_EXAMPLE[str(p.type)] for p in fn.params if p.required)
    return f"{KINDS[kind]}.{name}({args})"


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("name", EVERY_MEASUREMENT)
def test_every_measurement_on_every_kind(tmp_path: Path, kind: str, name: str) -> None:
    found = errors(tmp_path, MODELS + f"let v = {_call(kind, name)}\nverify c {{ expect len(prompts) > 0 }}\n")
    if name in measurements(kind):
        assert found == []
    else:
        owners = " and ".join(sorted(k for k in KINDS if name in measurements(k)))
        article = "an" if kind[0] in "aeiou" else "a"
        assert found == [f"`{name}` is a measurement of {owners} models, and this is {article} {kind}"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_calling_a_model(tmp_path: Path, kind: str) -> None:
    found = errors(tmp_path, MODELS + f"let v = {KINDS[kind]}([1, 2])\nverify c {{ expect len(prompts) > 0 }}\n")
    article = "an" if kind[0] in "aeiou" else "a"
    assert found == (
        [] if kind == "network" else [f"{article} {kind} model cannot be called; use one of its measurements"]
    )


@pytest.mark.parametrize("site", ["resid_pre", "resid_post", "attn_out", "mlp_out"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sites_on_every_kind(tmp_path: Path, kind: str, site: str) -> None:
    found = errors(tmp_path, MODELS + f"let v = {KINDS[kind]}.{site}[0]\nverify c {{ expect len(prompts) > 0 }}\n")
    assert found == (["sites belong to transformer models, not networks"] if kind == "network" else [])


def test_misspelt_measurement_and_unknown_kind(tmp_path: Path) -> None:
    assert problems(tmp_path, MODELS + 'verify c { expect lm.probb("a", " b") > 0.5 }\n') == [
        ("error", BODY + 1, "a causal_lm has no measurement or site `probb`")
    ]
    assert errors(tmp_path, "msl 1.0\nmodel m: encodr\nverify c { expect 1 > 0 }\n") == ["unknown model kind `encodr`"]


# ── Units: percent and fraction ──────────────────────────────────────────────────────────


@pytest.mark.parametrize(("tolerate", "message"), [
    ("tolerate 5%", None),
    ("tolerate 0.05", None),
    ("tolerate 0", None),
    ("tolerate 5% at 99% confidence", None),
    ("tolerate 5% at 0.9 confidence", None),
    ("tolerate 5", "the tolerated violation rate is a fraction in [0, 1]"),
    ("tolerate 150%", "the tolerated violation rate must be in [0%, 100%]"),
    ("tolerate -1%", "the tolerated violation rate must be in [0%, 100%]"),
    ("tolerate 5% at 95 confidence", "the confidence is a fraction in [0, 1]"),
    ("tolerate 5% at 100% confidence", "the confidence must be in (0%, 100%), e.g. 95%"),
    ("tolerate 5% at 0% confidence", "the confidence must be in (0%, 100%), e.g. 95%"),
    ("tolerate prompts", "the tolerated violation rate must be a number literal such as 5%"),
])
def test_tolerance_and_confidence(tmp_path: Path, tolerate: str, message: str | None) -> None:
    found = errors(tmp_path, in_claim(f'  for p in prompts\n  expect lm.prob(p, " a") > 0.5\n  {tolerate}'))
    assert found == ([message] if message else [])


def test_tolerance_values_reach_the_checked_claim(tmp_path: Path) -> None:
    spec = check(
        tmp_path, in_claim('  for p in prompts\n  expect lm.prob(p, " a") > 0.5\n  tolerate 2.5% at 99% confidence')
    )
    (claim,) = spec.claims
    assert (claim.tolerance, claim.confidence) == (pytest.approx(0.025), pytest.approx(0.99))
    spec = check(tmp_path, in_claim('  for p in prompts\n  expect lm.prob(p, " a") > 0.5'))
    assert (spec.claims[0].tolerance, spec.claims[0].confidence) == (0.0, 0.95)


@pytest.mark.parametrize(("condition", "message"), [
    ('rate(lm.top(p) == "a" for p in prompts) >= 90', "a rate or probability is at most 1, so 90 is out of reach"),
    ('lm.prob("a", " b") > 50', "a rate or probability is at most 1, so 50 is out of reach"),
    ('lm.prob("a", " b") > 150%', "a rate or probability is at most 100%"),
    ('lm.prob("a", " b") > 50%', None),
    ('lm.logprob("a", " b") > -50', None),
])
def test_fraction_valued_measurements(tmp_path: Path, condition: str, message: str | None) -> None:
    assert errors(tmp_path, in_claim(f"  expect {condition}")) == ([message] if message else [])


# ── Claim-kind rules ─────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("kind", "statements", "expected"), [
    ("refine", '  refined = lm\n  expect refined.top("a") == "b"',
     [("error", "a refine claim names its `base` model")]),
    ("refine", '  base = lm\n  expect base.top("a") == "b"', [("error", "a refine claim names its `refined` model")]),
    ("refine", '  base = lm\n  refined = clf\n  expect 1 > 0',
     [("error", "`base` and `refined` must be models of the same kind")]),
    ("refine", "  base = lm\n  refined = prompts\n  expect 1 > 0",
     [("error", "`refined` must be a model role, not a set of strings")]),
    ("refine", '  base = lm\n  refined = lm with zero(at: lm.mlp_out[1])\n  for p in prompts\n'
               '  expect refined.top(p) == base.top(p)', []),
    ("verify", '  base = lm\n  expect lm.top("a") == "b"', [("error", "`base` belongs in a refine claim")]),
    ("steer", '  for p in prompts\n  expect lm.prob(p, " a") > 0.5',
     [("error", "a steer claim states what an intervention does: use `with` or `under` an intervention")]),
    ("steer", '  for p in prompts\n  expect lm.prob(p, " a") with zero(at: lm.mlp_out[1]) > 0.5', []),
    ("steer", '  for p in prompts\n  expect increases lm.prob(p, " a") under zero(at: lm.mlp_out[1]) by 0.1', []),
    ("explore", '  let acc = probe(lm.resid_post, [{text: "a", label: "x"}])',
     [("warning", "this explore claim states no expectation: its results are reported, its verdict is inconclusive")]),
    ("explore", '  let acc = probe(lm.resid_post, [{text: "a", label: "x"}])\n  expect max(acc) > 0.5', []),
    ("verify", "  for p in prompts", [("error", "this claim has no expectation, so nothing could be checked")]),
    ("verify", "  forall x in box(lower: [0], upper: [1])\n  expect net(x)[0] > 0\n  tolerate 1%",
     [("error", "a `forall` claim is universal: it tolerates no violation")]),
    ("verify", "  forall x in box(lower: [0], upper: [1])\n  for p in prompts\n  expect net(x)[0] > 0",
     [("error", "a `forall` claim has exactly one quantifier")]),
    ("verify", "  for x in box(lower: [0], upper: [1])\n  expect net(x)[0] > 0",
     [("error", "`for` runs over a finite set; a domain needs `forall`")]),
    ("verify", '  expect lm.top("a") == "b"\n  tolerate 5%',
     [("error", "`tolerate` needs per-instance expectations (`for x in ...` and `expect` on x)")]),
    ("verify", '  for p in prompts\n  expect lm.prob(p, " a") > mean(lm.prob(p, " a"))',
     [("error", "this expectation mixes per-instance values with aggregates over the instances")]),
    ("verify", '  for p in prompts\n  expect invariant lm.prob("x", " a") under lowercase within 0',
     [("error", "`under` a transformation needs an expression that reads the claim's input")]),
    ("verify", '  for p in prompts\n  for p in prompts\n  expect lm.top(p) == "a"',
     [("error", "`p` is already bound in this claim")]),
    ("verify", '  for p in prompts\n  let p = 1\n  expect lm.top(p) == "a"',
     [("error", "`p` is the claim's quantified variable")]),
    ("verify", '  severity urgent\n  expect lm.top("a") == "b"', [("error", "unknown severity `urgent`")]),
    ("verify", '  description "a"\n  description "b"\n  expect lm.top("a") == "b"',
     [("error", "`description` is given twice in this claim")]),
    ("verify", '  expect lm.prob("a", " b")', [("error", "an expectation must be a condition, not a number")]),
])
def test_claim_kind_rules(tmp_path: Path, kind: str, statements: str, expected: list[tuple[str, str]]) -> None:
    found = [(s, m) for s, _, m in problems(tmp_path, in_claim(statements, kind))]
    found = [f for f in found if "is declared but never used" not in f[1]]
    assert found == expected


def test_preserves(tmp_path: Path) -> None:
    core = 'msl 1.0\nmodel lm: causal_lm\nverify k { expect lm.top("a") == "b" }\n'
    two_roles = 'msl 1.0\nmodel a: causal_lm\nmodel b: causal_lm\nverify k { expect a.top("x") == b.top("x") }\n'
    claim = 'refine r {{\n  base = lm\n  refined = lm with zero(at: lm.mlp_out[1])\n  preserves {target}\n}}\n'
    ok = MODELS + claim.format(target='"core.msl" role lm')
    assert errors(tmp_path, ok, **{"core.msl": core}) == []
    assert errors(tmp_path, MODELS + claim.format(target='"core.msl"'), **{"core.msl": core}) == []
    assert errors(tmp_path, MODELS + claim.format(target='"missing.msl"')) == ["no spec 'missing.msl' next to this one"]
    assert errors(tmp_path, MODELS + claim.format(target='"spec.msl"')) == [
        "a spec cannot preserve itself (directly or through another spec)"
    ]
    assert errors(tmp_path, MODELS + claim.format(target='"core.msl" role other'), **{"core.msl": core}) == [
        "'core.msl' has no model role `other`"
    ]
    assert errors(tmp_path, MODELS + claim.format(target='"two.msl"'), **{"two.msl": two_roles}) == [
        "say which role of 'two.msl' to rebind: `preserves 'two.msl' role NAME`"
    ]
    assert errors(tmp_path, MODELS + claim.format(target='"code.py"')) == [
        "`preserves` names a .msl file relative to this one"
    ]


# ── Unused declarations ──────────────────────────────────────────────────────────────────


def test_unused_declarations_are_warnings(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MODELS + 'lexicon spare = ["x"]\nmeasure m(t) = lm.prob(t, " a")\nverify c { expect lm.top("a") == "b" }\n',
    )
    assert found == [
        ("warning", 3, "model role `clf` is declared but never used"),
        ("warning", 4, "model role `enc` is declared but never used"),
        ("warning", 5, "model role `net` is declared but never used"),
        ("warning", 6, "data `prompts` is declared but never used"),
        ("warning", 7, "lexicon `spare` is declared but never used"),
        ("warning", 8, "measure `m` is declared but never used"),
    ]


def test_uses_through_measures_and_imports_count(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        'msl 1.0\nimport "lib.msl"\nmodel lm: causal_lm\nmeasure m(t) = lm.prob(t, " a")\n'
        'verify c { expect m("x") > 0.5 }\n',
        **{"lib.msl": "msl 1.0\nlet unused_in_lib = 1\n"},
    )
    assert found == []  # declarations of imported files are not the root's to warn about


def test_no_unused_warnings_when_there_are_errors(tmp_path: Path) -> None:
    found = problems(tmp_path, MODELS + 'verify c { expect lm.top("a") == 3 + "b" }\n')
    assert [s for s, _, _ in found] == ["error"]


def test_no_unused_warnings_for_a_library_without_claims(tmp_path: Path) -> None:
    assert problems(tmp_path, MODELS + "let spare = 1\n") == []


def test_use_before_declaration(tmp_path: Path) -> None:
    with pytest.raises(SpecErrors) as caught:
        check(tmp_path, "msl 1.0\nlet a = b\nlet b = 1\n")
    (error,) = caught.value.errors
    assert (error.message, error.hint) == ("unknown name `b`", "`b` is declared further down; declare it before use")


def test_did_you_mean_for_names_and_fields(tmp_path: Path) -> None:
    with pytest.raises(SpecErrors) as caught:
        check(tmp_path, in_claim('  for p in promtps\n  expect lm.top(p) == "a"'))
    assert caught.value.errors[0].hint == "did you mean `prompts`?"
    with pytest.raises(SpecErrors) as caught:
        check(tmp_path, in_claim('  for r in [{text: "a", label: "x"}]\n  expect clf.label(r) == r.lable'))
    assert (caught.value.errors[0].message, caught.value.errors[0].hint) == (
        "the input has no field `lable`", "did you mean `label`?"
    )


def test_every_builtin_function_is_known_to_the_checker(tmp_path: Path) -> None:
    """A name the registry lists is never 'unknown' (the registry and the checker agree)."""
    body = "".join(f"let v{i} = {name}\n" for i, name in enumerate(sorted(functions())))
    found = errors(tmp_path, MODELS + body + "verify c { expect len(prompts) > 0 }\n")
    assert not [m for m in found if m.startswith("unknown name")]
