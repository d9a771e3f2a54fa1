"""Run the ACAS Xu benchmark (VNN-COMP 2021: 45 networks, 186 instances) through ``msl vnnlib``.

Each instance runs in its own subprocess with the competition timeout (the CSV's column) and a
hard kill a few seconds after it, so one instance cannot hang the run. Results are appended to
a CSV as they come, and instances already in that CSV are skipped (the run is resumable). Every
``sat`` witness is checked again here, independently of the engine: its inputs are run through
onnxruntime and the property is evaluated on the outputs.

    python bench/acasxu/run.py                       # all 186 instances
    python bench/acasxu/run.py --subset every:10     # every 10th instance
    python bench/acasxu/run.py --subset 1_1:3,3_3:2  # network a_b : property k
    python bench/acasxu/run.py --summary-only        # print the summary of the results CSV
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DEFAULT_DIR = REPO.parent / "shared" / "benchmarks" / "acasxu"
DEFAULT_RESULTS = REPO / "bench" / "acasxu" / "results" / "acasxu_results.csv"
FIELDS = ["onnx", "vnnlib", "timeout_s", "result", "seconds", "cpu_s", "expected", "correct", "witness_ok", "nnenum_s"]
#: Seconds past the timeout before the subprocess is killed.
GRACE = 5.0


def read_instances(folder: Path) -> list[tuple[str, str, float]]:
    with open(folder / "acasxu_instances.csv", newline="") as fh:
        return [(row[0].strip(), row[1].strip(), float(row[2])) for row in csv.reader(fh) if row]


def read_expected(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(folder / "expected.csv", newline="") as fh:
        return {(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(fh)}


def select(instances: list[tuple[str, str, float]], subset: str | None) -> list[tuple[str, str, float]]:
    """``every:K`` (every K-th instance), ``first:N``, or ``A_B:K,...`` (network A_B, property K)."""
    if not subset:
        return instances
    if subset.startswith("every:"):
        return instances[:: int(subset.split(":", 1)[1])]
    if subset.startswith("first:"):
        return instances[: int(subset.split(":", 1)[1])]
    wanted = set()
    for item in subset.split(","):
        net, prop = item.strip().split(":")
        wanted.add((f"ACASXU_run2a_{net}_batch_2000.onnx", f"prop_{prop}.vnnlib"))
    return [i for i in instances if (i[0], i[1]) in wanted]


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
    xs = [values[k] for k in sorted((k for k in values if k.startswith("X_")), key=lambda k: int(k[2:]))]
    sess = ort.InferenceSession(str(folder / onnx), providers=["CPUExecutionProvider"])
    meta = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in meta.shape]
    y = np.asarray(sess.run(None, {meta.name: np.array(xs, dtype=np.float32).reshape(shape)})[0], dtype=np.float64).ravel()
    for prop in read_vnnlib(folder / vnnlib):
        if any(r.contains(np.array(xs), tol=1e-4) for r in prop.regions) and prop.unsafe.holds(y[None, :])[0]:
            return True
    return False


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(folder: Path, onnx: str, vnnlib: str, timeout: float) -> tuple[str, float, float, str]:
    """Result, wall seconds, CPU seconds (the subprocess's, whatever else the machine runs) and
    the printed output of one instance."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "msl", "vnnlib", str(folder / onnx), str(folder / vnnlib), "--timeout", str(timeout)]
    start = time.monotonic()
    cpu = _children_cpu()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + GRACE, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return "killed", time.monotonic() - start, _children_cpu() - cpu, ""
    seconds = time.monotonic() - start
    cpu = _children_cpu() - cpu
    lines = proc.stdout.strip().splitlines()
    result = lines[0].strip() if lines and proc.returncode == 0 else f"error(rc={proc.returncode})"
    if result not in ("sat", "unsat", "unknown", "timeout") and not result.startswith("error"):
        result = f"error({result[:40]})"
    if result.startswith("error"):
        sys.stderr.write(proc.stderr[-2000:])
    return result, seconds, cpu, proc.stdout


def summarize(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "no results"
    answered = [r for r in rows if r["result"] in ("sat", "unsat") and float(r["seconds"]) <= float(r["timeout_s"])]
    wrong = [r for r in answered if r["expected"] in ("sat", "unsat") and r["result"] != r["expected"]]
    bad_witness = [r for r in rows if r["result"] == "sat" and r["witness_ok"] != "yes"]
    # Unanswered instances count with the timeout as their time (as in the competition's medians).
    ours = [float(r["seconds"]) if r in answered else float(r["timeout_s"]) for r in rows]
    theirs = [float(r["nnenum_s"]) for r in rows if r["nnenum_s"]]
    ours_med = statistics.median(ours)
    lines = [
        f"instances: {len(rows)}",
        f"answered:  {len(answered)} (sat {sum(r['result'] == 'sat' for r in answered)}, unsat {sum(r['result'] == 'unsat' for r in answered)})",
        f"wrong:     {len(wrong)}" + (f"  {[(r['onnx'], r['vnnlib'], r['result']) for r in wrong]}" if wrong else ""),
        f"witnesses failing the independent check: {len(bad_witness)}",
        f"median time (s), unanswered counted at the timeout: msl {ours_med:.2f}",
    ]
    if answered:
        lines.append(f"median time (s) of answered instances: msl {statistics.median(float(r['seconds']) for r in answered):.2f}")
    cpu = [float(r["cpu_s"]) for r in rows if r.get("cpu_s")]
    if cpu:
        lines.append(f"median CPU time (s) of the msl processes (less sensitive to a shared machine): {statistics.median(cpu):.2f}")
    if theirs:
        their_med = statistics.median(theirs)
        lines.append(f"median time (s), nnenum (VNN-COMP 2021, its machine, incl. ~1 s start-up): {their_med:.2f}")
        lines.append(f"ratio of medians msl / nnenum: {ours_med / their_med:.2f}")
    unanswered = [(r["onnx"].replace("ACASXU_run2a_", "").replace("_batch_2000.onnx", ""), r["vnnlib"], r["result"]) for r in rows if r not in answered]
    if unanswered:
        lines.append(f"unanswered: {unanswered}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acasxu-dir", type=Path, default=Path(os.environ.get("MSL_ACASXU_DIR", DEFAULT_DIR)))
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results CSV (appended to; resumable)")
    parser.add_argument("--subset", help="every:K, first:N, or A_B:K,... (network A_B, property K)")
    parser.add_argument("--timeout", type=float, help="override the CSV's per-instance timeout")
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    folder: Path = args.acasxu_dir
    if not (folder / "acasxu_instances.csv").exists():
        print(f"no ACAS Xu benchmark at {folder} (use --acasxu-dir or MSL_ACASXU_DIR)", file=sys.stderr)
        return 2
    expected = read_expected(folder)
    instances = select(read_instances(folder), args.subset)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, str], dict[str, str]] = {}
    if args.results.exists():
        with open(args.results, newline="") as fh:
            done = {(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(fh)}
    if not args.summary_only:
        new_file = not args.results.exists()
        with open(args.results, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            if new_file:
                writer.writeheader()
            for n, (onnx, vnnlib, timeout) in enumerate(instances, 1):
                if (onnx, vnnlib) in done:
                    continue
                timeout = args.timeout or timeout
                result, seconds, cpu, output = run_one(folder, onnx, vnnlib, timeout)
                exp = expected.get((onnx, vnnlib), {})
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
                    "expected": exp.get("expected", ""),
                    "correct": "" if result not in ("sat", "unsat") else "yes" if result == exp.get("expected") else "NO",
                    "witness_ok": witness_ok,
                    "nnenum_s": exp.get("nnenum_s", ""),
                }
                writer.writerow(row)
                fh.flush()
                done[(onnx, vnnlib)] = row
                print(f"[{n}/{len(instances)}] {onnx} {vnnlib}: {result} in {seconds:.2f} s (expected {row['expected']})", flush=True)
    rows = [done[(o, v)] for o, v, _ in instances if (o, v) in done]
    print(summarize(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
