"""Same verdicts and finding ids on a quiet and on a loaded machine (issue 12).

Runs ``msl check SPECS --no-cache`` twice — once alone, once with CPU hogs (busy loops, one
process each) beside it — and compares every claim's verdict and finding id. Budgets that can
change a verdict are counted in work, never in seconds, so nothing may differ.

    python bench/determinism/run.py                       # the three specs the issue names, 3 hogs
    python bench/determinism/run.py specs/verify_relu.msl --hogs 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPECS = ["specs/verify_sentiment.msl", "specs/refine_sentiment.msl", "specs/verify_relu.msl"]


def _hog(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 1103515245 + 12345) % 2**31


def check(specs: list[str], out: Path) -> tuple[dict[str, tuple[str, str]], float]:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "msl", "check", *specs, "--no-cache", "-q", "-o", str(out)],
                   cwd=ROOT, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    findings = json.loads(out.read_text())["findings"]
    return {f"{f['claim']['file']}::{f['claim']['name']}": (f["verdict"], f["id"]) for f in findings}, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    parser.add_argument("--hogs", type=int, default=3, help="busy processes beside the loaded run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        quiet, quiet_s = check(args.specs, Path(tmp) / "quiet.json")
        stop = multiprocessing.Event()
        hogs = [multiprocessing.Process(target=_hog, args=(stop,), daemon=True) for _ in range(args.hogs)]
        for h in hogs:
            h.start()
        try:
            loaded, loaded_s = check(args.specs, Path(tmp) / "loaded.json")
        finally:
            stop.set()
            for h in hogs:
                h.join()
    differ = sorted(k for k in quiet.keys() | loaded.keys() if quiet.get(k) != loaded.get(k))
    print(f"claims: {len(quiet)}; quiet run {quiet_s:.1f} s, with {args.hogs} CPU hogs {loaded_s:.1f} s "
          f"(ratio {loaded_s / quiet_s:.2f})")
    for k in differ:
        print(f"  DIFFERS {k}: quiet {quiet.get(k)}, loaded {loaded.get(k)}")
    print(f"identical verdicts and finding ids: {len(quiet) - len(differ)} of {len(quiet)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
