"""Agreement between a shared finding and the same claim re-checked here (``msl replay``).

``msl replay`` re-runs each shared claim on the local model; this module decides, per
finding, whether the local result *reproduces* the shared one, does *not reproduce* it,
or is *not comparable*, and says why. It never trusts the shared verdict: it only
compares it with evidence produced here.

The rules, in order:

* no local result (the claim is not in the local specs, or was not selected): not comparable;
* the claim's kind or text differs (compared without whitespace changes): not comparable,
  since a different claim was checked;
* either side ended in ``error``: not comparable (an error is not evidence about the model);
* both verdicts in the same class (passes: proved/holds; failures: refuted/violated;
  inconclusive): reproduced; otherwise not reproduced.

Differences in circumstances that do not stop the comparison (another model fingerprint,
data hash or method) are reported as warnings: a verdict reproduced on other weights is
still worth knowing, but the reader must see that the weights differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from msl.errors import ExitCode
from msl.findings import Finding, Verdict


class Agreement(StrEnum):
    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not reproduced"
    NOT_COMPARABLE = "not comparable"


_CLASS = {
    Verdict.PROVED: "pass",
    Verdict.HOLDS: "pass",
    Verdict.REFUTED: "fail",
    Verdict.VIOLATED: "fail",
    Verdict.INCONCLUSIVE: "inconclusive",
}


@dataclass(frozen=True, slots=True)
class Comparison:
    """The outcome for one shared finding."""

    shared: Finding
    local: Finding | None
    agreement: Agreement
    reason: str
    warnings: tuple[str, ...] = ()


def compare(shared: Finding, local: Finding | None) -> Comparison:
    """Does ``local`` (the claim re-checked here) reproduce ``shared``? See the module doc."""
    if local is None:
        return Comparison(
            shared, None, Agreement.NOT_COMPARABLE, "the claim was not re-checked here (not in the local specs?)"
        )
    warnings = tuple(_circumstances(shared, local))
    if shared.claim.kind != local.claim.kind or _words(shared.claim.text) != _words(local.claim.text):
        reason = "the local claim differs from the shared one"
        return Comparison(shared, local, Agreement.NOT_COMPARABLE, reason, warnings)
    if Verdict.ERROR in (shared.verdict, local.verdict):
        failed = local if local.verdict is Verdict.ERROR else shared
        side = "here" if failed is local else "in the shared finding"
        detail = f": {failed.error.message}" if failed.error else ""
        return Comparison(
            shared, local, Agreement.NOT_COMPARABLE, f"the claim could not be evaluated {side}{detail}", warnings
        )
    verdicts = f"shared {shared.verdict.value}, local {local.verdict.value}"
    if _CLASS[shared.verdict] == _CLASS[local.verdict]:
        return Comparison(shared, local, Agreement.REPRODUCED, verdicts, warnings)
    return Comparison(shared, local, Agreement.NOT_REPRODUCED, verdicts, warnings)


def compare_all(shared: Sequence[Finding], local: Iterable[Finding]) -> list[Comparison]:
    """Pair each shared finding with the local finding of the same claim (file and name)."""
    by_claim = {(f.claim.file, f.claim.name): f for f in local}
    return [compare(f, by_claim.get((f.claim.file, f.claim.name))) for f in shared]


def replay_exit_code(comparisons: Iterable[Comparison]) -> ExitCode:
    """0 when every shared finding is reproduced, else 1 (the brief's ``msl replay`` contract)."""
    return ExitCode.OK if all(c.agreement is Agreement.REPRODUCED for c in comparisons) else ExitCode.FAILED


def _words(text: str) -> list[str]:
    return text.split()


def _circumstances(shared: Finding, local: Finding) -> list[str]:
    warnings = []
    local_models = {m.role: m for m in local.models}
    for m in shared.models:
        here = local_models.get(m.role)
        if here is None:
            warnings.append(f"model role {m.role!r} is not bound here")
        elif m.fingerprint != here.fingerprint:
            warnings.append(
                f"model {m.role!r} differs: shared {m.fingerprint or 'unknown'}, local {here.fingerprint or 'unknown'}"
            )
    if shared.provenance.data_hash != local.provenance.data_hash:
        warnings.append("the data differ (another data hash)")
    if shared.method != local.method:
        warnings.append(f"checked by {local.method.value} here, by {shared.method.value} in the shared finding")
    return warnings
