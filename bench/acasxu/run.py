"""Run the ACAS Xu benchmark (VNN-COMP 2021: 45 networks, 186 instances) through ``msl vnnlib``:
:mod:`bench.vnncomp.run` with ACAS Xu's folder, results file and network:property subsets.

Each instance runs in its own subprocess with the competition timeout (the CSV's column) and a
hard kill a few seconds after it; results are appended to a CSV and instances already in it
are skipped (resumable); every ``sat`` witness is checked again with onnxruntime.

    python bench/acasxu/run.py                       # all 186 instances
    python bench/acasxu/run.py --subset every:10     # every 10th instance
    python bench/acasxu/run.py --subset 1_1:3,3_3:2  # network a_b : property k
    python bench/acasxu/run.py --summary-only        # print the summary of the results CSV
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.vnncomp.run import main as run_set  # noqa: E402

DEFAULT_DIR = REPO.parent / "shared" / "benchmarks" / "acasxu"
DEFAULT_RESULTS = REPO / "bench" / "acasxu" / "results" / "acasxu_results.csv"


def acas_subset(subset: str) -> str:
    """``A_B:K,...`` (network A_B, property K) as the runner's globs; other forms unchanged."""
    return ",".join(
        f"ACASXU_run2a_{m.group(1)}_batch_2000.onnx prop_{m.group(2)}.vnnlib"
        if (m := re.fullmatch(r"(\d_\d):(\d+)", item.strip()))
        else item
        for item in subset.split(",")
    )


def main() -> int:
    argv = sys.argv[1:]
    if "--acasxu-dir" in argv:  # the former option: the folder
        i = argv.index("--acasxu-dir")
        argv = [argv[i + 1], *argv[:i], *argv[i + 2 :]]
    folder = Path(os.environ.get("MSL_ACASXU_DIR", DEFAULT_DIR))
    return run_set(argv, folder, DEFAULT_RESULTS, acas_subset, __doc__)


if __name__ == "__main__":
    sys.exit(main())
