"""In one process, on 1 Ray worker, on 2 Ray workers: time and findings (issue 16).

Runs ``msl check SPECS --no-cache -q -o FILE`` three times — in process, ``--workers 1``,
``--workers 2`` — each with one torch thread per process (``OMP_NUM_THREADS=1``; the Ray
workers get one CPU each), and prints the wall times, their ratios and whether every
claim's verdict and finding id agree with the in-process run. The goal the issue sets:
1 worker at most 10% slower than in process, 2 workers at least 1.5x faster (2 cores).
Wall times include starting Ray and the workers loading their models.

    python bench/scale/run.py                                 # the SmolLM2 example specs
    python bench/scale/run.py specs/verify_sentiment.msl      # the sentiment organism
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPECS = ["specs/verify_lm.msl", "specs/steer_lm.msl", "specs/explore_lm.msl"]


def check(specs: list[str], out: Path, workers: int | None) -> tuple[dict[str, tuple[str, str]], float]:
    """``{file::claim: (verdict, id)}`` and the wall seconds of one ``msl check``."""
    extra = ["--workers", str(workers)] if workers else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "msl", "check", *specs, "--no-cache", "-q", "-o", str(out), *extra],
                          cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"msl check {' '.join(extra)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    findings = json.loads(out.read_text())["findings"]
    return {f"{f['claim']['file']}::{f['claim']['name']}": (f["verdict"], f["id"]) for f in findings}, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    args = parser.parse_args()
    runs: dict[str, tuple[dict[str, tuple[str, str]], float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, workers in (("in process", None), ("1 worker", 1), ("2 workers", 2)):
            runs[label] = check(args.specs, Path(tmp) / f"{workers or 0}.json", workers)
            print(f"{label:>10}: {runs[label][1]:6.1f} s, {len(runs[label][0])} claims", flush=True)
    base, base_s = runs["in process"]
    one_s, two_s = runs["1 worker"][1], runs["2 workers"][1]
    print(f"1 worker / in process: {one_s / base_s:.2f}  (goal <= 1.10)")
    print(f"in process / 2 workers: {base_s / two_s:.2f}x  (goal >= 1.5x)")
    print(f"1 worker / 2 workers: {one_s / two_s:.2f}x")
    same = True
    for label in ("1 worker", "2 workers"):
        differ = sorted(k for k in base.keys() | runs[label][0].keys() if base.get(k) != runs[label][0].get(k))
        same &= not differ
        print(f"{label}: {'same verdicts and finding ids' if not differ else 'DIFFERENT: ' + ', '.join(differ)}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
