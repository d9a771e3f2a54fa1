"""Start-up of the ``msl`` command: wall times of ``msl vnnlib`` on ACAS Xu instances and of
``msl --help``, each the median of several fresh processes.

For ``msl vnnlib`` it also reports how long after the process was spawned the engine was
entered (:func:`run_vnnlib`: start-up alone) and began its first bound computation
(:meth:`SpecBounder.bound`: start-up, reading the network and property, the reader's
cross-check and the first falsification round). Hooked from outside
(a meta-path finder wrapping the module's loader), so nothing in MSL changes to be measured.

    python bench/startup/run.py            # 3 instances, 5 runs each
    python bench/startup/run.py --runs 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO.parent / "shared" / "benchmarks" / "acasxu"
INSTANCES = [("1_1", "prop_3"), ("1_2", "prop_2"), ("3_3", "prop_4")]

#: Runs in the child: times the first call of SpecBounder.bound, then runs ``msl``.
CHILD = r"""
import os, sys, time
t0 = float(os.environ["MSL_BENCH_T0"])
import importlib.abc, importlib.util

MARKS = {"msl.engines.formal.vnnlib": ("run_vnnlib", None, "engine"),
         "msl.engines.formal.bounds": ("bound", "SpecBounder", "first-bound")}

def marked(fn, label):
    def first(*a, **k):
        if not hasattr(first, "seen"):
            first.seen = True
            sys.stderr.write(f"{label} {time.time() - t0:.4f}\n")
        return fn(*a, **k)
    return first

class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in MARKS:
            return None
        attr, owner, label = MARKS.pop(name)
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        sys.meta_path.insert(0, self)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            holder = getattr(module, owner) if owner else module
            setattr(holder, attr, marked(getattr(holder, attr), label))
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Hook())
sys.argv = ["msl", *sys.argv[1:]]
from msl.cli import main
main()
"""


def timed(args: list[str], hook: bool) -> tuple[float, dict[str, float], str]:
    """Wall time of one fresh process, the child's own marks, and its stdout's first line."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", CHILD, *args] if hook else [sys.executable, "-m", "msl", *args]
    env["MSL_BENCH_T0"] = repr(time.time())
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    marks = {}
    for line in proc.stderr.splitlines():
        key, _, value = line.partition(" ")
        if key in ("engine", "first-bound"):
            marks[key] = float(value)
    return wall, marks, (proc.stdout.splitlines() or [""])[0]


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    for net, prop in INSTANCES:
        onnx, vnnlib = args.dir / f"ACASXU_run2a_{net}_batch_2000.onnx", args.dir / f"{prop}.vnnlib"
        walls = [timed(["vnnlib", str(onnx), str(vnnlib)], hook=False) for _ in range(args.runs)]
        hooked = [timed(["vnnlib", str(onnx), str(vnnlib)], hook=True) for _ in range(args.runs)]
        marks = {key: _median([m[key] for _, m, _ in hooked if key in m]) for key in ("engine", "first-bound")}
        print(f"msl vnnlib {net} {prop}: {walls[0][2]:<6} wall {statistics.median(w for w, _, _ in walls):.3f} s, "
              f"engine entered at {marks['engine']}, first bound at {marks['first-bound']}")
    helps = [timed(["--help"], hook=False)[0] for _ in range(args.runs)]
    print(f"msl --help: wall {statistics.median(helps):.3f} s")


if __name__ == "__main__":
    main()
