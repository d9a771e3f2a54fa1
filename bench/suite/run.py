"""End-to-end performance of ``msl check``: the example suite cold and warm, and the
sentiment readout against a hand-written transformers script, with both ratios from one run.

1. **Suite**: ``msl check specs/`` in a fresh process on an empty result cache (the
   models already converted and fingerprinted: the model store and the fingerprint memo
   are shared, the result cache is new), then again on the cache that run filled.
   Target: warm ≤ 5 % of cold. The two runs must give the same verdicts and finding ids.
2. **Readout** (:mod:`bench.suite.workload`): ``msl check`` of the 400-prompt readout spec
   on an empty result cache, whole process (start-up, load, compute, report), against
   :mod:`bench.suite.handwritten` at each of ``--batch-sizes`` (each a fresh process; the
   fastest counts). Target: ≤ 1.0× the script. Both must compute the same mean, minimum
   and maximum (to 1e-4).

Every child runs with ``--threads`` threads (``OMP_NUM_THREADS``; default 1: on a shared
machine more threads than free cores makes torch many times slower). Each time is wall
clock and CPU (user + system of the child); on a machine shared with other jobs the CPU
ratio is the steadier one. ``--repeat`` runs each readout variant several times,
interleaved, and keeps the fastest.

    python -m bench.suite.run
    python -m bench.suite.run --skip-suite --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.suite import workload

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Timed:
    wall: float
    cpu: float
    stdout: str

    def __str__(self) -> str:
        return f"{self.wall:7.2f} s wall, {self.cpu:7.2f} s CPU"


def run(cmd: list[str], env: dict[str, str]) -> Timed:
    """Run a child process; its wall time and the CPU time it used (user + system)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # msl check exits 1 when a claim is violated
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return Timed(wall, _cpu_of_last_child(), out)


_SEEN_CPU = 0.0


def _cpu_of_last_child() -> float:
    """CPU seconds used by children since the previous call."""
    import resource

    global _SEEN_CPU
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    spent, _SEEN_CPU = total - _SEEN_CPU, total
    return spent


def fresh_cache(root: Path, models: Path) -> Path:
    """An ``MSL_CACHE_DIR`` with an empty result cache, sharing the converted models and
    their fingerprint memo (both are made once per model, not per run)."""
    root.mkdir(parents=True)
    (root / "models").symlink_to(models, target_is_directory=True)
    memo = models.parent / "fingerprints"
    memo.mkdir(exist_ok=True)
    (root / "fingerprints").symlink_to(memo, target_is_directory=True)
    return root


def findings(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    doc = json.loads(path.read_text())
    return {(f["claim"]["file"], f["claim"]["name"]): (f["verdict"], f["id"]) for f in doc["findings"]}


def msl_check(target: str, out: Path, env: dict[str, str]) -> Timed:
    return run([sys.executable, "-m", "msl", "check", target, "-q", "--format", "json", "-o", str(out)], env)


def suite(tmp: Path, env: dict[str, str], models: Path) -> float:
    env = {**env, "MSL_CACHE_DIR": str(fresh_cache(tmp / "suite-cache", models))}
    cold = msl_check("specs/", tmp / "cold.json", env)
    warm = msl_check("specs/", tmp / "warm.json", env)
    same = findings(tmp / "cold.json") == findings(tmp / "warm.json")
    print("suite: msl check specs/")
    print(f"  cold (empty result cache)  {cold}")
    print(f"  warm (same cache)          {warm}")
    print(f"  warm / cold: {warm.wall / cold.wall:.1%} wall, {warm.cpu / cold.cpu:.1%} CPU (target ≤ 5%)")
    print(f"  verdicts and finding ids equal: {same}")
    return warm.wall / cold.wall


def readout_values(path: Path) -> dict[str, float]:
    (finding,) = json.loads(path.read_text())["findings"]
    values = finding["statistics"]["values"]
    return {stat: next(v for k, v in values.items() if k.startswith(f"{stat}(sentiment(x))") and "ci_" not in k)
            for stat in ("mean", "min", "max")}


def readout(tmp: Path, env: dict[str, str], models: Path, batch_sizes: list[int], repeat: int) -> float:
    spec = tmp / "readout.msl"
    spec.write_text(workload.spec_text())
    best_msl: Timed | None = None
    best_script: dict[int, Timed] = {}
    script_values: dict[str, Any] = {}
    msl_values: dict[str, float] = {}
    for r in range(repeat):
        cache_env = {**env, "MSL_CACHE_DIR": str(fresh_cache(tmp / f"readout-cache-{r}", models))}
        out = tmp / f"readout-{r}.json"
        t = msl_check(str(spec), out, cache_env)
        msl_values = readout_values(out)
        if best_msl is None or t.wall < best_msl.wall:
            best_msl = t
        for bs in batch_sizes:
            s = run([sys.executable, "-m", "bench.suite.handwritten", "--batch-size", str(bs)], env)
            script_values = json.loads(s.stdout.strip().splitlines()[-1])
            if bs not in best_script or s.wall < best_script[bs].wall:
                best_script[bs] = s
    assert best_msl is not None
    bs, script = min(best_script.items(), key=lambda item: item[1].wall)
    gap = max(abs(msl_values[k] - script_values[k]) for k in ("mean", "min", "max"))
    print(f"readout: {len(workload.prompts())} prompts of {workload.MODEL}, whole process, fastest of {repeat}")
    for size, t in sorted(best_script.items()):
        print(f"  hand-written, batch {size:<3}      {t}")
    print(f"  msl check (empty cache)     {best_msl}")
    print(f"  msl / script (batch {bs}): {best_msl.wall / script.wall:.2f}× wall, "
          f"{best_msl.cpu / script.cpu:.2f}× CPU (target ≤ 1.0×)")
    print(f"  same values (mean, min, max; largest difference {gap:.2e}): {gap <= 1e-4}")
    return best_msl.wall / script.wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="16,32,64", help="batch sizes tried by the hand-written script")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each readout variant; the fastest counts")
    parser.add_argument("--threads", type=int, default=1, help="threads per child (0: torch's default)")
    parser.add_argument("--skip-suite", action="store_true", help="only the readout comparison")
    parser.add_argument("--skip-readout", action="store_true", help="only the suite's cold and warm runs")
    parser.add_argument("--keep", type=Path, help="copy the findings of every run into this folder")
    args = parser.parse_args()
    from msl.models.registry import cache_dir

    models = cache_dir() / "models"
    if not (models / workload.MODEL).is_dir():
        sys.exit(f"{models / workload.MODEL} is missing: run `msl check specs/` once to convert the models")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    tmp = Path(tempfile.mkdtemp(prefix="msl-bench-suite-"))
    try:
        if not args.skip_suite:
            suite(tmp, env, models)
        if not args.skip_readout:
            readout(tmp, env, models, [int(b) for b in args.batch_sizes.split(",")], args.repeat)
    finally:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for found in tmp.glob("*.json"):
                shutil.copy(found, args.keep / found.name)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
