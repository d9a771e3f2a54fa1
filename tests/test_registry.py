"""The registry every pluggable thing uses, and the recipe of CONTRIBUTING.md: a toy engine
added in a test checks the claims that name it, through the real runner."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from msl.check import check_file
from msl.engines import ENGINES, ClaimRun, Outcome
from msl.ir import CheckedClaim
from msl.registry import Registry, UnknownName
from msl.run import Runner, RunOptions


def test_a_factory_named_by_its_module_is_imported_on_first_use() -> None:
    registry: Registry[Any] = Registry("thing")
    registry.add("fraction", "fractions:Fraction")
    assert "fraction" in registry and registry.entry("fraction").factory is None
    assert registry.get("fraction")(1, 2) == 0.5
    with pytest.raises(ValueError, match="already registered"):
        registry.add("fraction", "fractions:Fraction")


def test_a_call_passes_what_the_signature_asks_for_and_nothing_else() -> None:
    registry: Registry[Any] = Registry("thing")

    @registry.register("pair", note="kept")
    def pair(a: int, b: int = 2) -> tuple[int, int]:
        return a, b

    assert registry.call("pair", a=1, unrelated="ignored") == (1, 2)
    assert registry.call("pair", a=1, b=5, c=0) == (1, 5)
    assert registry.entry("pair").meta == {"note": "kept"}
    with pytest.raises(TypeError):
        registry.call("pair", b=5)  # `a` is required and not on offer


def test_an_unknown_name_says_which_names_are_close() -> None:
    with pytest.raises(UnknownName) as info:
        ENGINES.get("statistcal")
    assert info.value.hint == "did you mean 'statistical'?"


class ToyRun(ClaimRun):
    """An engine that concludes at once, asking only for the claim (no evaluator)."""

    method = "exhaustive"

    def __init__(self, claim: CheckedClaim) -> None:
        super().__init__(claim)

    def step(self) -> None:
        self.outcome = Outcome("inconclusive", self.method, f"the toy engine looked at {self.claim.name}")


def test_a_toy_engine_checks_the_claims_that_name_it(tmp_path: Path) -> None:
    spec_path = tmp_path / "toy.msl"
    spec_path.write_text("msl 1.0\nverify two { expect 1 + 1 == 2 }\nverify three { expect 1 + 2 == 3 }\n")
    spec = check_file(spec_path)
    assert [c.engine for c in spec.claims] == ["exhaustive", "exhaustive"]
    # the checker would name "toy" for the claims it is meant for (see CONTRIBUTING.md)
    spec.claims[0] = dataclasses.replace(spec.claims[0], engine="toy")
    ENGINES.add("toy", ToyRun)
    try:
        doc = Runner(RunOptions(cache=False, progress=False)).check([spec])
    finally:
        ENGINES.remove("toy")
    by_name = {f.claim.name: f for f in doc.findings}
    assert by_name["two"].verdict == "inconclusive" and by_name["two"].message == "the toy engine looked at two"
    assert by_name["three"].verdict == "holds"  # the other claim still runs on its own engine
