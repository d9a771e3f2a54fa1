"""Hand-built findings for testing the findings layer (model, reporters, baseline, catalogue).

One finding per verdict, with the evidence each verdict carries, spread over two spec
files; plus a Hypothesis strategy for arbitrary valid findings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from msl.findings import (
    ClaimKind,
    ClaimSeverity,
    Finding,
    FindingsDocument,
    Method,
    Verdict,
    make_finding,
)

FP_LM = "sha256:" + "a" * 64
FP_NET = "sha256:" + "b" * 64
DATA = "sha256:" + "d" * 64
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def provenance(**over: Any) -> dict[str, Any]:
    base = {
        "msl_version": "0.1.0",
        "spec_hash": "sha256:" + "5" * 64,
        "data_hash": DATA,
        "seeds": {"run": 0},
        "libraries": {"torch": "2.13.0"},
        "device": "cpu",
        "dtype": "float32",
        "started_at": START,
    }
    return {**base, **over}


def claim(name: str, line: int, kind: str = "verify", file: str = "specs/fairness.msl", **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "file": file,
        "line": line,
        "column": 1,
        "text": f"{kind} {name} {{\n  expect ...\n}}",
        **over,
    }


LM = [{"role": "lm", "ref": "smollm2-135m", "kind": "causal_lm", "fingerprint": FP_LM}]
NET = [{"role": "net", "ref": "acasxu_1_1.onnx", "kind": "network", "fingerprint": FP_NET}]


def holds() -> Finding:
    return make_finding(
        claim=claim("capitals_answered", 3, tags=["knowledge"]),
        verdict="holds",
        method="exhaustive",
        models=LM,
        statistics={"n": 48, "violations": 0, "rate": 0.0, "seed": 0},
        provenance=provenance(),
        duration_s=2.5,
    )


def violated(**over: Any) -> Finding:
    fields: dict[str, Any] = {
        "claim": claim(
            "name_swap_invariance", 12, severity="high", tags=["fairness"], description="names do not matter"
        ),
        "verdict": "violated",
        "method": "statistical",
        "models": LM,
        "statistics": {
            "n": 200,
            "violations": 12,
            "rate": 0.06,
            "interval": (0.031, 0.103),
            "confidence": 0.95,
            "tolerance": 0.02,
            "seed": 7,
            "values": {"mean_delta": 0.41},
        },
        "counterexamples": [
            {
                "input": "Mary is a nurse",
                "original": "John is a nurse",
                "edit": "swap 'John' → 'Mary'",
                "values": {"delta": 1.5, "top_token": " she", "flagged": True},
                "replayed": True,
            }
        ],
        "provenance": provenance(seeds={"run": 7}),
        "duration_s": 4.25,
    }
    return make_finding(**{**fields, **over})


def refuted() -> Finding:
    return make_finding(
        claim=claim("clear_of_conflict", 5, file="specs/acas.msl", severity="critical"),
        verdict="refuted",
        method="smt",
        models=NET,
        counterexamples=[{"input": [0.6, -0.5, 0.0, 0.45, -0.45], "values": {"y0": 3.9, "y1": 3.2}, "replayed": True}],
        provenance=provenance(data_hash=None, started_at=START + timedelta(days=1)),
        duration_s=1.0,
    )


def proved() -> Finding:
    return make_finding(
        claim=claim("bounded_advisory", 9, file="specs/acas.msl"),
        verdict="proved",
        method="smt",
        models=NET,
        proof={
            "solver": "z3",
            "result": "unsat",
            "variables": 1234,
            "constraints": 5678,
            "branches": 16,
            "time_s": 2.1,
        },
        provenance=provenance(data_hash=None, started_at=START + timedelta(days=1)),
        duration_s=2.2,
    )


def inconclusive() -> Finding:
    return make_finding(
        claim=claim("negation_lowers_sentiment", 20, severity="low"),
        verdict="inconclusive",
        method="statistical",
        models=LM,
        statistics={
            "n": 50,
            "violations": 2,
            "rate": 0.04,
            "interval": (0.005, 0.137),
            "confidence": 0.95,
            "tolerance": 0.05,
        },
        provenance=provenance(),
        duration_s=0.5,
    )


def error() -> Finding:
    return make_finding(
        claim=claim("probe_sentiment", 30, kind="explore"),
        verdict="error",
        method="statistical",
        models=LM,
        error={"message": "model returned NaN logits", "location": "specs/fairness.msl:31:5"},
        provenance=provenance(),
        duration_s=0.1,
    )


def explore_holds() -> Finding:
    return make_finding(
        claim=claim("sentiment_decodable", 40, kind="explore", tags=["probe"]),
        verdict="holds",
        method="statistical",
        models=LM,
        statistics={"n": 400, "values": {"best_accuracy": 0.91}},
        tables=[
            {"title": "probe accuracy", "columns": ["layer", "accuracy"], "rows": [[0, 0.52], [6, 0.88], [12, 0.91]]}
        ],
        series=[
            {
                "name": "probe",
                "x_label": "layer",
                "y_label": "accuracy",
                "points": [(0, 0.52), (6, 0.88), (12, 0.91)],
                "reference": 0.85,
            },
        ],
        provenance=provenance(),
        duration_s=8.0,
    )


def all_findings() -> list[Finding]:
    return [holds(), violated(), refuted(), proved(), inconclusive(), error(), explore_holds()]


def sample_document() -> FindingsDocument:
    return FindingsDocument.of(all_findings())


# ── Hypothesis ─────────────────────────────────────────────────────────────────────────

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
unit = st.floats(0, 1)
sha = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h)
inputs = st.one_of(texts, st.lists(finite, max_size=6), st.dictionaries(names, st.one_of(texts, finite), max_size=3))
measures = st.one_of(st.booleans(), finite, texts, st.lists(finite, max_size=4))


@st.composite
def statistics(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.none() | st.integers(0, 10**6))
    violations = None if n is None else draw(st.none() | st.integers(0, n))
    lo, hi = sorted(draw(st.tuples(unit, unit)))
    return {
        "n": n,
        "violations": violations,
        "rate": draw(st.none() | unit),
        "interval": draw(st.none() | st.just((lo, hi))),
        "confidence": draw(st.none() | st.floats(0.5, 0.999)),
        "tolerance": draw(st.none() | unit),
        "seed": draw(st.none() | st.integers(-(2**63), 2**63)),
        "values": draw(st.dictionaries(names, finite, max_size=3)),
    }


counterexamples = st.fixed_dictionaries(
    {
        "input": inputs,
        "values": st.dictionaries(names, measures, max_size=3),
        "original": st.none() | inputs,
        "edit": st.none() | texts,
        "replayed": st.booleans(),
    }
)


@st.composite
def findings(draw: st.DrawFn) -> Finding:
    """Arbitrary valid findings: the verdict decides which evidence must be present."""
    verdict = draw(st.sampled_from(Verdict))
    stats = draw(statistics()) if verdict in (Verdict.HOLDS, Verdict.VIOLATED) else draw(st.none() | statistics())
    cxs = draw(st.lists(counterexamples, min_size=1 if verdict is Verdict.REFUTED else 0, max_size=3))
    proof_strategy = st.fixed_dictionaries(
        {
            "solver": st.just("z3"),
            "result": st.sampled_from(["unsat", "timeout"]),
            "variables": st.none() | st.integers(0, 10**6),
            "time_s": st.none() | st.floats(0, 1e4),
        }
    )
    proof = draw(proof_strategy) if verdict is Verdict.PROVED else draw(st.none() | proof_strategy)
    return make_finding(
        claim={
            "name": draw(names),
            "kind": draw(st.sampled_from(ClaimKind)),
            "file": draw(names),
            "line": draw(st.integers(1, 10**6)),
            "column": draw(st.integers(1, 500)),
            "text": draw(texts),
            "description": draw(st.none() | texts),
            "tags": draw(st.lists(names, max_size=3)),
            "severity": draw(st.none() | st.sampled_from(ClaimSeverity)),
        },
        verdict=verdict,
        method=draw(st.sampled_from(Method)),
        models=draw(
            st.lists(st.fixed_dictionaries({"role": names, "ref": texts, "fingerprint": st.none() | sha}), max_size=2)
        ),
        statistics=stats,
        counterexamples=cxs,
        proof=proof,
        tables=draw(
            st.lists(st.just({"title": "t", "columns": ["a", "b"], "rows": [[1.5, "x"], [None, True]]}), max_size=1)
        ),
        series=draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "name": names,
                        "x_label": texts,
                        "y_label": texts,
                        "points": st.lists(st.tuples(finite, finite), max_size=4),
                        "reference": st.none() | finite,
                    }
                ),
                max_size=2,
            )
        ),
        error={"message": draw(texts)} if verdict is Verdict.ERROR else None,
        message=draw(st.none() | texts),
        provenance=provenance(
            data_hash=draw(st.none() | sha),
            seeds=draw(st.dictionaries(names, st.integers(-(2**63), 2**63), max_size=2)),
            started_at=draw(
                st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
            ),
        ),
        duration_s=draw(st.floats(0, 1e6)),
        accepted=verdict in (Verdict.VIOLATED, Verdict.REFUTED, Verdict.INCONCLUSIVE) and draw(st.booleans()),
    )
