"""Refine claims: base and refined roles, their measures, `preserves`, ε-equivalence.

Models: the sentiment organisms (a planted shortcut, and its fine-tuned fix), a tiny GPT-2
under an intervention, the edited SmolLM2 organism (slow: built once into the cache), and
the ReLU networks with their pruned and quantized copies. Every number a finding reports
is recomputed here with transformers or onnxruntime directly.
"""

from __future__ import annotations

import importlib.util
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from msl.check import check_file
from msl.engines import worse
from msl.engines.refine import PreservesRun
from msl.findings import Finding
from msl.run import Runner, RunOptions
from tests import tiny_models

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ORGANISMS = ROOT / "msl" / "organisms"
VERDICTS = ("proved", "holds", "inconclusive", "refuted", "violated", "error")

#: ε-equivalence is decided by the formal engine (branch `formal`, merged into main later).
needs_formal = pytest.mark.skipif(
    importlib.util.find_spec("msl.engines.formal") is None
    or importlib.util.find_spec("msl.engines.formal.equivalence") is None,
    reason="waits for the formal engine's verify_equivalence (branch formal)",
)


def check(path: Path, select: tuple[str, ...] = (), bindings: dict[str, str] | None = None) -> dict[str, Finding]:
    spec = check_file(path)
    options = RunOptions(select=select, bindings=bindings or {}, progress=False, cache=False)
    return {f.claim.name: f for f in Runner(options).check([spec]).findings}


def worse_named(finding: Finding) -> set[str]:
    """The claims a `preserves` finding's table marks as worse on refined."""
    (table,) = finding.tables
    return {row[0].split(":", 1)[1] for row in table.rows if row[3] == "worse"}


# ── `preserves`: exactly the claims that got worse ──────────────────────────────────────

CORE = """msl 1.0
model clf: classifier = "organism:sentiment"
lexicon praise = ["good", "great", "lovely"]
lexicon blame = ["bad", "awful", "dreadful"]
lexicon foods = ["soup", "tea", "pie"]

verify kevin_praise_is_positive {
  for x in template("Kevin said the {food} was {adj}.", food: foods, adj: praise)
  expect clf.label(x) == "positive"
}
verify praise_is_positive {
  for x in template("Mary said the {food} was {adj}.", food: foods, adj: praise)
  expect clf.label(x) == "positive"
}
verify blame_is_negative {
  for x in template("The {food} was {adj}.", food: foods, adj: blame)
  expect clf.label(x) == "negative"
}
verify negation_flips {
  for x in template("The {food} was {adj}.", food: foods, adj: praise)
  expect decreases clf.prob(x, "positive") under negate by 0.5
}
verify case_does_not_matter {
  for x in template("John said the {food} was {adj}.", food: foods, adj: praise + blame)
  expect invariant clf.prob(x, "positive") under uppercase within 1e-6
}
"""

REFINE = """msl 1.0
model clf: classifier = "organism:sentiment"
model fixed: classifier = "organism:sentiment-refined"

data plain_praise = template("The {food} was {adj}.", food: ["soup", "tea"], adj: ["good", "great"])
data plain_blame = template("The {food} was {adj}.", food: ["soup", "tea"], adj: ["bad", "awful"])
intervention push = add(mean_diff(clf.resid_post[0], plain_praise, plain_blame), scale: 1, at: clf.resid_post[0])

refine fixing { base = clf  refined = fixed  preserves "core.msl" role clf }
refine rollback { base = fixed  refined = clf  preserves "core.msl" role clf }
refine steered { base = clf  refined = clf with push  preserves "core.msl" role clf }
refine unchanged { base = clf  refined = clf  preserves "core.msl" role clf }
"""


@pytest.fixture(scope="module")
def preserved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Finding]]:
    folder = tmp_path_factory.mktemp("preserves")
    (folder / "core.msl").write_text(CORE)
    (folder / "refine.msl").write_text(REFINE)
    return folder, check(folder / "refine.msl")


def test_fixing_the_shortcut_holds_and_names_what_got_better(preserved: tuple[Path, dict[str, Finding]]) -> None:
    f = preserved[1]["fixing"]
    assert f.verdict.value == "holds" and f.claim.kind.value == "refine"
    assert worse_named(f) == set() and f.statistics.violations == 0 and f.statistics.n == 5
    assert "better on refined: core.msl:kevin_praise_is_positive" in (f.message or "")
    assert {m.role for m in f.models} == {"clf", "fixed"}


def test_rollback_names_exactly_the_claim_that_got_worse(preserved: tuple[Path, dict[str, Finding]]) -> None:
    f = preserved[1]["rollback"]
    assert f.verdict.value == "violated"
    assert worse_named(f) == {"kevin_praise_is_positive"}
    assert f.message is not None and f.message.startswith("worse on refined: core.msl:kevin_praise_is_positive")
    (example,) = f.counterexamples  # the evidence: the broken claim's own counterexample
    assert example.values["claim"] == "core.msl:kevin_praise_is_positive"
    assert "Kevin" in str(example.input) and example.values["clf.label(x)"] == "negative"


def test_steering_names_exactly_the_claim_it_broke(preserved: tuple[Path, dict[str, Finding]]) -> None:
    """One model under an intervention as the refined role: every review is pushed positive."""
    f = preserved[1]["steered"]
    assert f.verdict.value == "violated"
    assert worse_named(f) == {"blame_is_negative"}
    assert {m.role for m in f.models} == {"clf"}


def test_a_model_against_itself_changes_nothing(preserved: tuple[Path, dict[str, Finding]]) -> None:
    f = preserved[1]["unchanged"]
    assert f.verdict.value == "holds"
    assert all(row[1] == row[2] and row[3] == "" for row in f.tables[0].rows)


def test_the_report_agrees_with_each_claim_checked_on_each_model(preserved: tuple[Path, dict[str, Finding]]) -> None:
    """Independently: check core.msl with the role bound to each model; compare verdicts."""
    folder, findings = preserved
    on = {
        ref: check(folder / "core.msl", bindings={"clf": ref})
        for ref in ("organism:sentiment", "organism:sentiment-refined")
    }
    for name, base, refined in (("fixing", "organism:sentiment", "organism:sentiment-refined"),
                                ("rollback", "organism:sentiment-refined", "organism:sentiment")):
        expected = {c for c in on[base] if worse(on[base][c].verdict.value, on[refined][c].verdict.value)}
        assert worse_named(findings[name]) == expected
        rows = {row[0].split(":", 1)[1]: (row[1], row[2]) for row in findings[name].tables[0].rows}
        assert rows == {c: (on[base][c].verdict.value, on[refined][c].verdict.value) for c in on[base]}


@given(st.lists(st.tuples(st.sampled_from(VERDICTS), st.sampled_from(VERDICTS)), max_size=8))
def test_report_names_exactly_the_worse_and_better_claims(pairs: list[tuple[str, str]]) -> None:
    """The report's logic over arbitrary verdict pairs (no model): worse, better, unchanged."""
    def run(name: str, verdict: str) -> SimpleNamespace:
        example = {"input": name, "values": {"v": 1.0}, "edit": None, "replayed": True}
        return SimpleNamespace(
            claim=SimpleNamespace(name=name), outcome=SimpleNamespace(verdict=verdict, counterexamples=[example])
        )

    names = [f"c{i}" for i in range(len(pairs))]
    stmt = SimpleNamespace(path="core.msl")
    report = object.__new__(PreservesRun)
    report.children = [(stmt, None, [run(n, b) for n, (b, _) in zip(names, pairs, strict=True)],
                        [run(n, a) for n, (_, a) in zip(names, pairs, strict=True)])]
    report.outcome = None
    report.conclude()
    rank = {"proved": 0, "holds": 0, "inconclusive": 1, "refuted": 2, "violated": 2, "error": 3}
    got_worse = [n for n, (b, a) in zip(names, pairs, strict=True) if rank[a] > rank[b]]
    got_better = [n for n, (b, a) in zip(names, pairs, strict=True) if rank[a] < rank[b]]
    outcome = report.outcome
    assert outcome.verdict == ("violated" if got_worse else "holds")
    assert [r[0].split(":")[1] for r in outcome.tables[0]["rows"] if r[3] == "worse"] == got_worse
    assert [r[0].split(":")[1] for r in outcome.tables[0]["rows"] if r[3] == "better"] == got_better
    assert [c["input"] for c in outcome.counterexamples] == got_worse
    assert outcome.statistics["violations"] == len(got_worse)
    assert ("worse on refined: " in outcome.message) == bool(got_worse)
    assert ("better on refined: " in outcome.message) == bool(got_better)


# ── Two roles: two models, or one model under an intervention ───────────────────────────

PROMPTS = ["the cat sat on the", "a dog ran", "the movie was very good and then it", "red blue"]


def test_one_model_under_an_intervention_as_refined(tmp_path: Path) -> None:
    """base = lm, refined = lm with zero(at: lm.resid_pre[0]): locality numbers against a hand-made hook."""
    model_dir = tiny_models.tiny_gpt2(tmp_path / "gpt2")
    spec = tmp_path / "s.msl"
    prompts = ", ".join(f'"{p}"' for p in PROMPTS)
    spec.write_text(f"""msl 1.0
model lm: causal_lm = "{model_dir}"
data prompts = [{prompts}]
intervention silence = zero(at: lm.resid_pre[0])
refine silenced {{
  base = lm
  refined = lm with silence
  for p in prompts
  expect mean(kl(base.next(p), refined.next(p))) > 0
  expect rate(refined.top(p) == base.top(p)) < 50%
}}
refine itself {{
  base = lm
  refined = lm
  for p in prompts
  expect mean(kl(base.next(p), refined.next(p))) == 0
  expect rate(refined.top(p) == base.top(p)) == 1
}}
""")
    findings = check(spec)
    assert findings["itself"].verdict.value == "holds" and findings["silenced"].verdict.value == "holds"
    values = findings["silenced"].statistics.values
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()

    def next_logprobs(text: str) -> torch.Tensor:
        with torch.no_grad():
            return model(**tok(text, return_tensors="pt")).logits[0, -1].log_softmax(-1)

    base = [next_logprobs(p) for p in PROMPTS]
    # resid_pre[0] is what enters block 0: the embeddings after dropout
    hook = model.transformer.drop.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
    try:
        refined = [next_logprobs(p) for p in PROMPTS]
    finally:
        hook.remove()
    kls = [float((b.exp() * (b - r)).sum()) for b, r in zip(base, refined, strict=True)]
    agree = [int(b.argmax()) == int(r.argmax()) for b, r in zip(base, refined, strict=True)]
    assert min(kls) > 1e-3  # the intervention does change the model
    assert values["mean(kl(base.next(p), refined.next(p)))"] == pytest.approx(np.mean(kls), rel=1e-4)
    assert values["rate(refined.top(p) == base.top(p))"] == pytest.approx(np.mean(agree))


def test_base_and_refined_must_be_the_same_kind(tmp_path: Path) -> None:
    from msl.errors import SpecErrors

    spec = tmp_path / "s.msl"
    spec.write_text("""msl 1.0
model clf: classifier = "organism:sentiment"
model net: network = "organism:relu-net"
refine r { base = clf  refined = net  for x in ["a"]  expect clf.label(x) == "positive" }
""")
    with pytest.raises(SpecErrors, match="same kind"):
        check_file(spec)


@pytest.mark.parametrize("name", ["refine_sentiment.msl", "refine_edit.msl", "refine_relu.msl"])
def test_the_refine_specs_are_clean(name: str) -> None:
    from msl.lint import lint_spec

    assert lint_spec(check_file(SPECS / name)) == []


# ── Measures on two models against transformers ─────────────────────────────────────────


def _labels_and_probs(folder: Path, texts: list[str]) -> tuple[list[str], np.ndarray]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).eval()
    with torch.no_grad():
        logits = model(**tok(texts, return_tensors="pt", padding=True)).logits
    return [model.config.id2label[int(i)] for i in logits.argmax(-1)], logits.log_softmax(-1).numpy()


def test_sentiment_efficacy_matches_transformers() -> None:
    f = check(SPECS / "refine_sentiment.msl", select=("fix_efficacy",))["fix_efficacy"]
    from msl.lexicons import load_lexicon

    texts = [f"Kevin said the {food} was {adj}." for food in load_lexicon("nouns.food")
             for adj in load_lexicon("adjectives.positive")]
    base, _ = _labels_and_probs(ORGANISMS / "sentiment", texts)
    refined, logprobs = _labels_and_probs(ORGANISMS / "sentiment-refined", texts)
    assert f.verdict.value == "holds"
    assert f.statistics.n == len(texts) and f.statistics.violations == sum(r != "positive" for r in refined) == 0
    assert f.statistics.values['rate(base.label(x) == "negative")'] == pytest.approx(
        np.mean([b == "negative" for b in base])
    )
    assert f.statistics.values['mean(refined.prob(x, "positive"))'] == pytest.approx(
        np.exp(logprobs[:, 1]).mean(), abs=1e-6
    )


# ── ε-equivalence of piecewise-linear networks ──────────────────────────────────────────


def _outputs(name: str, x: np.ndarray) -> np.ndarray:
    """The ONNX file itself, through onnxruntime: not the project's reading of it."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(ORGANISMS / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)[None, :]})[0][0]


@pytest.fixture(scope="module")
def relu_findings() -> dict[str, Finding]:
    return check(SPECS / "refine_relu.msl")


@needs_formal
@pytest.mark.parametrize("claim", ["pruned_within_0_25", "quantized_within_0_5", "pruned_keeps_class_2"])
def test_generous_epsilon_is_proved(relu_findings: dict[str, Finding], claim: str) -> None:
    f = relu_findings[claim]
    assert f.verdict.value == "proved" and f.method.value == "smt" and f.proof is not None


@needs_formal
@pytest.mark.parametrize(("claim", "refined", "eps"), [
    ("pruned_within_0_01", "relu-net-pruned", 0.01),
    ("quantized_within_0_05", "relu-net-quantized", 0.05),
    ("quantized_within_0_222", "relu-net-quantized", 0.222),
])
def test_tiny_epsilon_is_refuted_by_a_replayed_counterexample(
    relu_findings: dict[str, Finding], claim: str, refined: str, eps: float
) -> None:
    f = relu_findings[claim]
    assert f.verdict.value == "refuted" and f.method.value == "smt"
    x = np.asarray(f.counterexamples[0].input, dtype=np.float64)
    assert x.shape == (4,) and np.all(x >= -1 - 1e-4) and np.all(x <= 1 + 1e-4)
    gap = float(np.max(np.abs(_outputs(refined, x) - _outputs("relu-net", x))))
    assert gap > eps + 1e-6  # a real gap, not rounding
    recorded = f.counterexamples[0].values  # what the finding shows a reader: both outputs and their gap
    assert np.allclose(recorded["net(x)"], _outputs("relu-net", x), atol=1e-6)
    assert recorded["gap"] == pytest.approx(gap, abs=1e-6)
    assert gap <= {"relu-net-pruned": 0.085143, "relu-net-quantized": 0.223955}[refined] + 1e-5  # the exact maximum


@needs_formal
def test_refined_satisfies_a_property_the_base_violates(relu_findings: dict[str, Finding]) -> None:
    assert relu_findings["pruned_stays_under_2_46"].verdict.value == "proved"
    f = relu_findings["base_exceeds_2_46"]
    assert f.verdict.value == "refuted"
    x = np.asarray(f.counterexamples[0].input, dtype=np.float64)
    assert np.all(np.abs(x) <= 1 + 1e-6) and _outputs("relu-net", x)[2] > 2.46
    assert _outputs("relu-net-pruned", x)[2] <= 2.46  # the same input is fine on the refined network


def test_the_exact_gaps_are_where_the_model_card_says() -> None:
    """The ε thresholds of refine_relu.msl rest on these maxima (tests/milp_oracle.py proves them)."""
    corner = np.array([-1.0, -1.0, -1.0, 1.0])
    assert float(np.max(np.abs(_outputs("relu-net-pruned", corner) - _outputs("relu-net", corner)))) == pytest.approx(
        0.085142, abs=1e-5
    )
    near = np.array([0.956967, -1.0, -1.0, 1.0])
    assert float(np.max(np.abs(_outputs("relu-net-quantized", near) - _outputs("relu-net", near)))) == pytest.approx(
        0.223954, abs=1e-5
    )


# ── The edited LM organism ──────────────────────────────────────────────────────────────


def test_the_edited_organism_is_registered() -> None:
    from msl.models.base import UnknownModelError
    from msl.models.registry import REGISTRY, resolve

    assert REGISTRY["organism:smollm2-edited"].kinds == ("causal_lm",)
    with pytest.raises(UnknownModelError) as info:
        resolve("organism:no-such-organism")
    assert "smollm2-edited" in (info.value.hint or "") and "relu-net-pruned" in (info.value.hint or "")
    assert "train.py" not in (info.value.hint or "")


def _entropy(text: str, n: int = 2) -> float:
    words = text.split()
    grams = Counter(tuple(words[i:i + n]) for i in range(max(0, len(words) - n + 1)))
    total = sum(grams.values())
    return -sum(c / total * math.log2(c / total) for c in grams.values()) if total else 0.0


@pytest.fixture(scope="module")
def edit_findings() -> dict[str, Finding]:
    return check(SPECS / "refine_edit.msl")


@pytest.fixture(scope="module")
def edit_models() -> tuple:
    import transformers

    from msl.models.registry import REGISTRY, ModelStore

    paths = [REGISTRY[name].build(ModelStore(progress=False)) for name in ("smollm2-135m", "organism:smollm2-edited")]
    tok = transformers.AutoTokenizer.from_pretrained(str(paths[0]))
    models = [transformers.AutoModelForCausalLM.from_pretrained(str(p), dtype=torch.float32).eval() for p in paths]
    return tok, models[0], models[1]


def _next(tok, model, prompts: list[str]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Next-token log-probabilities, one prompt at a time (no padding to reason about)."""
    with torch.no_grad():
        return torch.stack([model(**tok(p, return_tensors="pt")).logits[0, -1].log_softmax(-1) for p in prompts])


def _prompts(name: str) -> list[str]:
    from msl.evaluate import EMPTY, Evaluator, RunContext
    from msl.plan import Planner

    spec = check_file(SPECS / "refine_edit.msl")
    values = Evaluator(spec, RunContext(Planner(), 0, SPECS), {}).eval(spec.symbols[name].node.value, EMPTY)
    return [getattr(v, "text", v) for v in values]


@pytest.mark.slow
def test_edit_spec_verdicts(edit_findings: dict[str, Finding]) -> None:
    verdicts = {name: f.verdict.value for name, f in edit_findings.items()}
    assert verdicts == {
        "efficacy": "holds", "generalisation": "holds", "locality": "holds", "locality_kl": "holds",
        "neighbours_keep_their_answer": "holds", "no_bleed_into_neighbours": "violated",
        "fluency": "holds", "keeps_verify_lm": "holds",
    }
    bleed = edit_findings["no_bleed_into_neighbours"].counterexamples
    assert [c.input for c in bleed] == ["The Leaning Tower of Pisa is located in the city of"]


@pytest.mark.slow
def test_edit_measures_match_transformers(edit_findings: dict[str, Finding], edit_models: tuple) -> None:
    tok, base, edited = edit_models
    rome, paris = tok(" Rome").input_ids[0], tok(" Paris").input_ids[0]
    # efficacy
    edit = _prompts("edit_prompts")
    b, e = _next(tok, base, edit), _next(tok, edited, edit)
    f = edit_findings["efficacy"]
    assert f.statistics.violations == int((e.argmax(-1) != rome).sum()) == 0
    assert f.statistics.values['mean(refined.prob(p, " Rome"))'] == pytest.approx(
        float(e[:, rome].exp().mean()), abs=1e-4
    )
    assert f.statistics.values['rate(base.top(p) == " Paris")'] == float((b.argmax(-1) == paris).float().mean())
    # generalisation
    para = _next(tok, edited, _prompts("paraphrases"))
    f = edit_findings["generalisation"]
    assert f.statistics.violations == int((para[:, rome] <= para[:, paris]).sum())
    assert f.statistics.values['rate(refined.top(p) == " Rome")'] == pytest.approx(
        float((para.argmax(-1) == rome).float().mean())
    )
    # locality: top-1 agreement and KL
    unrelated = _prompts("unrelated")
    b, e = _next(tok, base, unrelated), _next(tok, edited, unrelated)
    f = edit_findings["locality"]
    assert f.statistics.n == len(unrelated) == 70
    assert f.statistics.violations == int((b.argmax(-1) != e.argmax(-1)).sum())
    kl = (b.exp() * (b - e)).sum(-1).numpy()
    values = edit_findings["locality_kl"].statistics.values
    assert values["mean(kl(base.next(p), refined.next(p)))"] == pytest.approx(float(kl.mean()), abs=1e-4)
    assert values["quantile(kl(base.next(p), refined.next(p)), 90%)"] == pytest.approx(
        float(np.quantile(kl, 0.9)), abs=1e-4
    )


@pytest.mark.slow
def test_edit_fluency_matches_transformers(edit_findings: dict[str, Finding], edit_models: tuple) -> None:
    tok, base, edited = edit_models
    means = []
    for model in (edited, base):
        entropies = []
        for p in _prompts("story_prompts"):
            ids = tok(p, return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=30, do_sample=False)
            entropies.append(_entropy(tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True)))
        means.append(np.mean(entropies))
    values = edit_findings["fluency"].statistics.values
    assert values["mean(ngram_entropy(refined.generate(p, 30)))"] == pytest.approx(means[0], abs=0.05)
    assert values["mean(ngram_entropy(base.generate(p, 30)))"] == pytest.approx(means[1], abs=0.05)


@pytest.mark.slow
def test_the_edit_rebuilds_to_the_same_fingerprint(tmp_path: Path) -> None:
    """Two builds of the organism, same weights: the cached one and a fresh one."""
    from msl.models import load_model
    from msl.models.fingerprint import weights_fingerprint
    from msl.models.registry import REGISTRY, ModelStore
    from msl.organisms import edit

    cached = load_model("organism:smollm2-edited", "causal_lm", progress=False).weights_digest
    info = edit.build(REGISTRY["smollm2-135m"].build(ModelStore(progress=False)), tmp_path)
    assert info["train_target_prob"] > 0.99
    import transformers

    fresh = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32)
    assert weights_fingerprint(fresh) == cached


@pytest.mark.slow
def test_sentiment_spec_verdicts() -> None:
    findings = check(SPECS / "refine_sentiment.msl")
    assert {n: f.verdict.value for n, f in findings.items()} == {
        "shortcut_on_base": "violated", "shortcut_removed": "holds",
        "fix_efficacy": "holds", "fix_generalises": "holds", "locality": "holds", "locality_kl": "holds",
        "keeps_verify_spec": "holds", "rollback_brings_shortcut_back": "violated", "steering_breaks_blame": "violated",
    }
    assert worse_named(findings["keeps_verify_spec"]) == set()
    # both claims the shortcut breaks: the name swap (sampled) and "praise reads as praise"
    # (searched: its shrunk counterexample is "Kevin said the tea was good.")
    assert worse_named(findings["rollback_brings_shortcut_back"]) == {"names_do_not_matter", "praise_is_read_as_praise"}
    assert worse_named(findings["steering_breaks_blame"]) == {"reads_blame"}
    # locality against transformers: every sentence without Kevin keeps its label and distribution
    from msl.lexicons import load_lexicon

    foods, adjs = load_lexicon("nouns.food"), load_lexicon("adjectives.positive") + load_lexicon("adjectives.negative")
    texts = [f"The {f} was {a}." for f in foods for a in adjs] + [f"The {f} was not {a}." for f in foods for a in adjs]
    texts += [
        f"{n} said the {f} was {a}." for n in ("John", "Mary", "David", "Sarah", "Zara") for f in foods for a in adjs
    ]
    base_labels, base_lp = _labels_and_probs(ORGANISMS / "sentiment", texts)
    refined_labels, refined_lp = _labels_and_probs(ORGANISMS / "sentiment-refined", texts)
    assert findings["locality"].statistics.violations == sum(
        a != b for a, b in zip(base_labels, refined_labels, strict=True)
    )
    kl = (np.exp(base_lp) * (base_lp - refined_lp)).sum(-1)
    values = findings["locality_kl"].statistics.values
    assert values["mean(kl(base.probs(x), refined.probs(x)))"] == pytest.approx(kl.mean(), abs=1e-6)
