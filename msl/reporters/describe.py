"""Words for findings, shared by every reporter so they all say the same thing.

These functions return *raw* text built from untrusted findings; each reporter escapes it
for its medium (:func:`clean` for terminals and XML, ``html.escape`` for HTML, JSON
encoding for SARIF).
"""

from __future__ import annotations

from msl.findings import Counterexample, Finding, InputValue, Proof, Statistics, Verdict


def clean(text: str, *, keep_newlines: bool = True) -> str:
    """Escape control, bidi-override and other non-printable characters as ``\\xNN``.

    Untrusted text must not move a terminal's cursor, reorder what a reviewer sees
    (Trojan Source) or make an XML file invalid: every character XML 1.0 forbids is
    non-printable (control, surrogate, noncharacter). Newlines and tabs survive when asked.
    """
    keep = "\n\t" if keep_newlines else ""
    out = []
    for ch in text:
        if ch.isprintable() or ch == " " or ch in keep:
            out.append(ch)
        else:
            out.append(ascii(ch)[1:-1])
    return "".join(out)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def num(x: float) -> str:
    """A number as people read it: 4 significant digits, integers without a point."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}"


def pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def describe_input(value: InputValue, limit: int = 80) -> str:
    """A counterexample input on one line: a quoted text, a vector, or ``field=value`` pairs."""
    if isinstance(value, str):
        return repr(shorten(value, limit))
    if isinstance(value, float):
        return num(value)
    if isinstance(value, list):
        shown = ", ".join(num(v) for v in value[:8])
        return f"[{shown}{', …' if len(value) > 8 else ''}]"
    pairs = ", ".join(f"{k}={repr(shorten(v, 40)) if isinstance(v, str) else num(v)}" for k, v in value.items())
    return shorten(pairs, limit)


def describe_value(value: bool | float | str | list[float]) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float | int):
        return num(value)
    return describe_input(value, 40)


def describe_counterexample(cx: Counterexample) -> str:
    """``'Mary is a nurse' from 'John is a nurse' (swap …); delta=1.5; replayed``."""
    text = describe_input(cx.input)
    if cx.original is not None:
        text += f" from {describe_input(cx.original, 60)}"
    if cx.edit:
        text += f" ({shorten(cx.edit, 80)})"
    if cx.values:
        text += "; " + ", ".join(f"{k}={describe_value(v)}" for k, v in cx.values.items())
    return text + ("; replayed through the model" if cx.replayed else "; not replayed")


def describe_statistics(s: Statistics) -> str:
    """``12/200 violations, rate 6.00% (95% CI 3.10%–10.30%), tolerance 2.00%, accuracy=0.91``."""
    bits = []
    if s.n is not None:
        bits.append(f"{s.violations}/{s.n} violations" if s.violations is not None else f"n={s.n}")
    confidence = f"{s.confidence * 100:g}% " if s.confidence is not None else ""
    if s.rate is not None:
        rate = f"rate {pct(s.rate)}"
        if s.interval is not None:
            rate += f" ({confidence}CI {pct(s.interval[0])}–{pct(s.interval[1])})"
        bits.append(rate)
    elif s.interval is not None:
        bits.append(f"{confidence}CI {num(s.interval[0])}–{num(s.interval[1])}")
    if s.tolerance is not None:
        bits.append(f"tolerance {pct(s.tolerance)}")
    bits.extend(f"{k}={num(v)}" for k, v in s.values.items())
    if s.seed is not None:
        bits.append(f"seed {s.seed}")
    return ", ".join(bits)


def describe_proof(p: Proof) -> str:
    """``z3: unsat (1,234 variables, 567 constraints, 8 branches, 2.10 s)``."""
    sizes = [
        f"{count:,} {what}"
        for count, what in ((p.variables, "variables"), (p.constraints, "constraints"), (p.branches, "branches"))
        if count is not None
    ]
    if p.time_s is not None:
        sizes.append(f"{p.time_s:.2f} s")
    return f"{p.solver}: {p.result}" + (f" ({', '.join(sizes)})" if sizes else "")


def verdict_line(f: Finding) -> str:
    """The finding in one line of evidence, e.g. for a JUnit message or a SARIF result."""
    parts = []
    if f.error is not None:
        parts.append(f.error.message + (f" (at {f.error.location})" if f.error.location else ""))
    if f.proof is not None:
        parts.append(describe_proof(f.proof))
    if f.statistics is not None:
        stats = describe_statistics(f.statistics)
        if stats:
            parts.append(stats)
    if f.counterexamples:
        n = len(f.counterexamples)
        parts.append(f"{n} counterexample{'s' if n > 1 else ''}, e.g. {describe_counterexample(f.counterexamples[0])}")
    if f.message:
        parts.append(f.message)
    accepted = " (accepted by the baseline)" if f.accepted else ""
    return f"{f.verdict.value} by {f.method.value}{accepted}: " + ("; ".join(parts) or "no details")


def key_statistic(f: Finding) -> str:
    """The one number a results table shows for a finding."""
    if f.verdict is Verdict.ERROR and f.error is not None:
        return shorten(f.error.message.splitlines()[0] if f.error.message else "", 48)
    s = f.statistics
    if s is not None and s.n is not None and s.violations is not None:
        text = f"{s.violations}/{s.n} violations"
        if s.interval is not None and s.rate is not None:
            text += f", rate ≤ {pct(s.interval[1])}"
        return text
    if f.proof is not None:  # the solver's name is in the details; the table keeps the answer
        branches = f.proof.branches
        text = f.proof.result + (
            f", {branches:,} branch{'es' if branches != 1 else ''}" if branches is not None else ""
        )
        gap = f.counterexamples[0].values.get("gap") if f.counterexamples else None
        return text + (f", gap {num(gap)}" if isinstance(gap, (int, float)) else "")
    if f.counterexamples:
        n = len(f.counterexamples)
        return f"{n} counterexample{'s' if n > 1 else ''}"
    if s is not None and s.values:  # the first value; a long expression is cut, its number never
        key, value = next(iter(s.values.items()))
        shown = num(value)
        return f"{shorten(key, max(8, 48 - len(shown) - 1))}={shown}"
    if f.series:  # a dose–response curve: its values in order of the dose
        curve = f.series[0]
        return shorten(f"{curve.x_label} → " + ", ".join(num(y) for _, y in curve.points), 48)
    if s is not None and s.n is not None:
        return f"n={s.n}"
    return "—"


def location(f: Finding) -> str:
    return f"{f.claim.file}:{f.claim.line}:{f.claim.column}"
