"""Run a VNN-COMP benchmark set through ``msl vnnlib``: ACAS Xu, mnistfc, oval21 or any folder
laid out like them.

A set is a folder with ``*instances.csv`` (``onnx,vnnlib,timeout_seconds``, paths relative to
the folder) and optionally ``expected.csv`` (columns ``onnx``, ``vnnlib``, ``expected``, and per
reference tool either ``<tool>_ans`` and ``<tool>_time`` or only ``<tool>_s``, a time on the
instances the tool answered as expected).

Each instance runs in its own subprocess with the competition timeout (or ``--timeout``) and a
hard kill :data:`GRACE` s after it, so one instance cannot hang the run. Results are appended
to a CSV as they come and instances already in it are skipped (the run is resumable). Every
``sat`` witness is checked again here, independently of the engine: its inputs are run through
onnxruntime and the property is evaluated on the outputs. An answer later than the timeout +
1 s is an *overrun*: the competition scores it as nothing.

    python bench/vnncomp/run.py ../shared/benchmarks/mnistfc --subset first:10 --timeout 60
    python bench/vnncomp/run.py ../shared/benchmarks/oval21 --subset 'cifar_base*'
    python bench/vnncomp/run.py ../shared/benchmarks/mnistfc --summary-only
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
FIELDS = ["onnx", "vnnlib", "timeout_s", "result", "seconds", "cpu_s", "peak_mib", "expected", "correct", "witness_ok"]
#: Seconds past the timeout before the subprocess is killed.
GRACE = 5.0
#: An answer this long after the timeout is an overrun (VNN-COMP's rule).
OVERRUN = 1.0

Instance = tuple[str, str, float]


def instances_csv(folder: Path) -> Path:
    found = sorted(folder.glob("*instances.csv"))
    if len(found) != 1:
        raise SystemExit(f"expected one *instances.csv in {folder}, found {[p.name for p in found]}")
    return found[0]


def read_instances(folder: Path) -> list[Instance]:
    with open(instances_csv(folder), newline="") as fh:
        return [(row[0].strip(), row[1].strip(), float(row[2])) for row in csv.reader(fh) if row]


def read_expected(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    path = folder / "expected.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as fh:
        return {(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(fh)}


def reference_times(row: dict[str, str]) -> dict[str, float]:
    """Each reference tool's time on an instance it answered right (sat/unsat as expected)."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if key.endswith("_ans") and value in ("sat", "unsat") and value == row.get("expected"):
            tool = key[: -len("_ans")]
            if row.get(f"{tool}_time"):
                out[tool] = float(row[f"{tool}_time"])
        elif key.endswith("_s") and key != "timeout_s" and value and row.get("expected") in ("sat", "unsat"):
            out[key[: -len("_s")]] = float(value)
    return out


def select(instances: list[Instance], subset: str | None) -> list[Instance]:
    """``every:K`` (every K-th instance), ``first:N``, or comma-separated globs matched against
    ``onnx vnnlib`` (e.g. ``*256x2* prop_1_*``, ``*cifar_base*``)."""
    if not subset:
        return instances
    if subset.startswith("every:"):
        return instances[:: int(subset.split(":", 1)[1])]
    if subset.startswith("first:"):
        return instances[: int(subset.split(":", 1)[1])]
    globs = [g.strip() for g in subset.split(",")]
    return [i for i in instances if any(fnmatch.fnmatch(f"{i[0]} {i[1]}", g) for g in globs)]


def check_witness(folder: Path, onnx: str, vnnlib: str, output: str) -> bool:
    """Re-check a printed ``sat`` witness with onnxruntime, independently of the engine's replay."""
    import numpy as np
    import onnxruntime as ort

    from msl.engines.formal.vnnlib import read_vnnlib

    values: dict[str, float] = {}
    for line in output.splitlines()[1:]:
        tokens = line.replace("(", " ").replace(")", " ").split()
        if len(tokens) == 2:
            values[tokens[0]] = float(tokens[1])
    xs = np.array([values[k] for k in sorted((k for k in values if k.startswith("X_")), key=lambda k: int(k[2:]))])
    sess = ort.InferenceSession(str(folder / onnx), providers=["CPUExecutionProvider"])
    meta = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in meta.shape]
    y = np.asarray(sess.run(None, {meta.name: xs.astype(np.float32).reshape(shape)})[0], dtype=np.float64).ravel()
    for prop in read_vnnlib(folder / vnnlib):
        # A property mixing inputs and outputs constrains [Y; X].
        yx = np.concatenate([y, xs]) if prop.unsafe.dims == {len(y) + len(xs)} else y
        if any(r.contains(xs, tol=1e-4) for r in prop.regions) and prop.unsafe.holds(yx[None, :])[0]:
            return True
    return False


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(folder: Path, onnx: str, vnnlib: str, timeout: float) -> tuple[str, float, float, str, str]:
    """Result, wall seconds (measured here, from outside), CPU seconds of the subprocess, its
    stdout and its peak memory in MiB (what ``msl vnnlib`` says on stderr)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "msl", "vnnlib", str(folder / onnx), str(folder / vnnlib), "--timeout", str(timeout)]
    start = time.monotonic()
    cpu = _children_cpu()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + GRACE, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return "killed", time.monotonic() - start, _children_cpu() - cpu, "", ""
    seconds = time.monotonic() - start
    cpu = _children_cpu() - cpu
    lines = proc.stdout.strip().splitlines()
    result = lines[0].strip() if lines and proc.returncode == 0 else f"error(rc={proc.returncode})"
    if result not in ("sat", "unsat", "unknown", "timeout") and not result.startswith("error"):
        result = f"error({result[:40]})"
    if result.startswith("error"):
        sys.stderr.write(proc.stderr[-2000:])
    peak = re.search(r"peak memory: (\d+) MiB", proc.stderr)
    return result, seconds, cpu, proc.stdout, peak.group(1) if peak else ""


def summarize(rows: list[dict[str, str]], expected: dict[tuple[str, str], dict[str, str]]) -> str:
    if not rows:
        return "no results"

    def late(r: dict[str, str]) -> bool:
        return float(r["seconds"]) > float(r["timeout_s"]) + OVERRUN

    answered = [r for r in rows if r["result"] in ("sat", "unsat") and not late(r)]
    wrong = [
        r
        for r in rows
        if r["result"] in ("sat", "unsat") and r["expected"] in ("sat", "unsat") and r["result"] != r["expected"]
    ]
    bad_witness = [r for r in rows if r["result"] == "sat" and r["witness_ok"] != "yes"]
    overruns = [r for r in rows if late(r)]
    count = {k: sum(r["result"] == k for r in rows) for k in ("unknown", "timeout", "killed")}
    errors = [r for r in rows if r["result"].startswith("error")]
    # Unanswered instances count with the timeout as their time (as in the competition's medians).
    ours = [float(r["seconds"]) if r in answered else float(r["timeout_s"]) for r in rows]
    lines = [
        f"instances: {len(rows)}",
        f"answered:  {len(answered)} (sat {sum(r['result'] == 'sat' for r in answered)}, "
        f"unsat {sum(r['result'] == 'unsat' for r in answered)})",
        f"wrong:     {len(wrong)}" + (f"  {[(r['onnx'], r['vnnlib'], r['result']) for r in wrong]}" if wrong else ""),
        f"witnesses failing the independent check: {len(bad_witness)}",
        f"unknown {count['unknown']}, timeout {count['timeout']}, killed {count['killed']}, errors {len(errors)}",
        f"overruns (any answer later than the timeout + {OVERRUN:g} s): {len(overruns)}"
        + (f"  {[(r['vnnlib'], r['seconds']) for r in overruns]}" if overruns else ""),
        f"median time (s), unanswered counted at the timeout: msl {statistics.median(ours):.2f}",
    ]
    if answered:
        lines.append(
            f"median time (s) of answered instances: msl {statistics.median(float(r['seconds']) for r in answered):.2f}"
        )
    cpu = [float(r["cpu_s"]) for r in rows if r.get("cpu_s")]
    if cpu:
        lines.append(
            "median CPU time (s) of the msl processes (less sensitive to a shared machine): "
            f"{statistics.median(cpu):.2f}"
        )
    peaks = [int(r["peak_mib"]) for r in rows if r.get("peak_mib")]
    if peaks:
        lines.append(f"peak memory of a search (MiB): median {statistics.median(peaks):.0f}, max {max(peaks)}")
    # Each reference tool (its machine, start-up included): how many of these it answered, and
    # the ratio of medians on the instances both answered.
    tools: dict[str, list[tuple[dict[str, str], float]]] = {}
    for r in rows:
        for tool, t in reference_times(expected.get((r["onnx"], r["vnnlib"]), {})).items():
            tools.setdefault(tool, []).append((r, t))
    for tool, pairs in sorted(tools.items(), key=lambda kv: -len(kv[1])):
        both = [(float(r["seconds"]), t) for r, t in pairs if r in answered]
        ratio = (
            f", both answered {len(both)}: median msl {statistics.median(a for a, _ in both):.2f} s"
            f" / {tool} {statistics.median(b for _, b in both):.2f} s"
            f" = {statistics.median(a for a, _ in both) / statistics.median(b for _, b in both):.2f}"
            if both
            else ""
        )
        lines.append(
            f"  {tool}: answered {len(pairs)} right (median {statistics.median(t for _, t in pairs):.2f} s){ratio}"
        )
    unanswered = [(r["onnx"], r["vnnlib"], r["result"]) for r in rows if r not in answered]
    if unanswered:
        lines.append(f"unanswered: {unanswered}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, default_dir: Path | None = None, default_results: Path | None = None,
         subset_hook: Callable[[str], str] | None = None, description: str | None = None) -> int:
    """The runner; ``bench/acasxu/run.py`` calls it with its folder, results file and subset syntax."""
    parser = argparse.ArgumentParser(
        description=description or __doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, nargs="?" if default_dir else None, default=default_dir,
                        help="the benchmark set's folder (with *instances.csv)")
    parser.add_argument(
        "--results", type=Path, help="results CSV (appended to; resumable); default bench/vnncomp/results/<set>.csv"
    )
    parser.add_argument("--subset", help="every:K, first:N, or comma-separated globs on 'onnx vnnlib'")
    parser.add_argument("--timeout", type=float, help="override the CSV's per-instance timeout")
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args(argv)
    folder: Path = args.folder
    if not folder.is_dir() or not list(folder.glob("*instances.csv")):
        print(f"no benchmark set at {folder}", file=sys.stderr)
        return 2
    results: Path = (
        args.results or default_results or REPO / "bench" / "vnncomp" / "results" / f"{folder.resolve().name}.csv"
    )
    expected = read_expected(folder)
    subset = subset_hook(args.subset) if subset_hook and args.subset else args.subset
    instances = select(read_instances(folder), subset)
    results.parent.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, str], dict[str, str]] = {}
    if results.exists():
        with open(results, newline="") as fh:
            done = {(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(fh)}
    if not args.summary_only:
        new_file = not results.exists()
        with open(results, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            for n, (onnx, vnnlib, timeout) in enumerate(instances, 1):
                if (onnx, vnnlib) in done:
                    continue
                timeout = args.timeout or timeout
                result, seconds, cpu, output, peak = run_one(folder, onnx, vnnlib, timeout)
                exp = expected.get((onnx, vnnlib), {}).get("expected", "")
                witness_ok = ""
                if result == "sat":
                    witness_ok = "yes" if check_witness(folder, onnx, vnnlib, output) else "NO"
                row = {
                    "onnx": onnx,
                    "vnnlib": vnnlib,
                    "timeout_s": f"{timeout:g}",
                    "result": result,
                    "seconds": f"{seconds:.3f}",
                    "cpu_s": f"{cpu:.3f}",
                    "peak_mib": peak,
                    "expected": exp,
                    "correct": "" if result not in ("sat", "unsat") else "yes" if result == exp else "NO",
                    "witness_ok": witness_ok,
                }
                writer.writerow(row)
                fh.flush()
                done[(onnx, vnnlib)] = row
                print(
                    f"[{n}/{len(instances)}] {onnx} {vnnlib}: {result} in {seconds:.2f} s (expected {exp or '?'})",
                    flush=True,
                )
    rows = [done[(o, v)] for o, v, _ in instances if (o, v) in done]
    print(summarize(rows, expected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
