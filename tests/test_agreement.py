"""Agreement of shared findings with the same claims re-checked locally (msl replay)."""

from __future__ import annotations

import io

import findings_samples as samples
from rich.console import Console

from msl.agreement import Agreement, compare, compare_all, replay_exit_code
from msl.errors import ExitCode
from msl.findings import make_finding
from msl.reporters.text import comparisons_table


def test_same_verdict_class_reproduces() -> None:
    c = compare(samples.violated(), samples.violated(statistics={"n": 400, "violations": 30, "rate": 0.075}))
    assert c.agreement is Agreement.REPRODUCED and c.warnings == ()
    sampled = make_finding(
        **samples.proved().model_dump(exclude={"id", "proof"})
        | {"verdict": "holds", "method": "statistical", "statistics": {"n": 1000, "violations": 0}}
    )
    proved_vs_holds = compare(samples.proved(), sampled)
    assert proved_vs_holds.agreement is Agreement.REPRODUCED
    assert proved_vs_holds.warnings == ("checked by statistical here, by smt in the shared finding",)


def test_other_verdict_class_does_not_reproduce() -> None:
    local = make_finding(**samples.holds().model_dump(exclude={"id"}) | {"claim": samples.violated().claim})
    c = compare(samples.violated(), local)
    assert c.agreement is Agreement.NOT_REPRODUCED
    assert c.reason == "shared violated, local holds"


def test_missing_changed_or_errored_claims_are_not_comparable() -> None:
    assert compare(samples.violated(), None).agreement is Agreement.NOT_COMPARABLE
    changed = samples.violated(claim=samples.claim("name_swap_invariance", 12) | {"text": "verify other { }"})
    assert compare(samples.violated(), changed).agreement is Agreement.NOT_COMPARABLE
    reformatted = samples.violated(
        claim=samples.violated().claim.model_dump() | {"text": "verify   name_swap_invariance {\n\n  expect ...\n}\n"}
    )
    assert compare(samples.violated(), reformatted).agreement is Agreement.REPRODUCED
    errored = make_finding(**samples.error().model_dump(exclude={"id"}) | {"claim": samples.violated().claim})
    c = compare(samples.violated(), errored)
    assert c.agreement is Agreement.NOT_COMPARABLE and "NaN logits" in c.reason


def test_other_weights_data_or_method_are_warnings() -> None:
    other = samples.violated(
        models=[{"role": "lm", "ref": "mine", "fingerprint": "sha256:" + "c" * 64}],
        provenance=samples.provenance(data_hash="sha256:" + "e" * 64),
        method="exhaustive",
    )
    c = compare(samples.violated(), other)
    assert c.agreement is Agreement.REPRODUCED
    assert len(c.warnings) == 3 and "differs" in c.warnings[0]


def test_compare_all_pairs_by_claim_and_sets_the_exit_code() -> None:
    shared = [samples.violated(), samples.holds()]
    assert replay_exit_code(compare_all(shared, [samples.holds(), samples.violated()])) == ExitCode.OK
    partial = compare_all(shared, [samples.violated()])
    assert [c.agreement for c in partial] == [Agreement.REPRODUCED, Agreement.NOT_COMPARABLE]
    assert replay_exit_code(partial) == ExitCode.FAILED
    out = io.StringIO()
    Console(file=out, width=120).print(comparisons_table(partial))
    assert "not comparable" in out.getvalue() and "capitals_answered" in out.getvalue()
