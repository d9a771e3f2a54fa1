"""Proof certificates on ACAS Xu: for each ``unsat`` instance, its certificate's size and the
time ``msl certify`` takes to check it, against the time ``msl vnnlib`` took to solve it.

Each instance runs ``msl vnnlib NET PROP --certificate FILE`` in a subprocess (with the
competition timeout), then ``msl certify FILE --network NET --vnnlib PROP`` in another; both
times are wall-clock seconds of the subprocess (start-up included) and CPU seconds.

    python bench/acasxu/certify.py --subset every:20
    python bench/acasxu/certify.py --subset 3_3:2,1_1:6
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DEFAULT_DIR, GRACE, REPO, _children_cpu, read_expected, read_instances, select  # noqa: E402

FIELDS = [
    "onnx",
    "vnnlib",
    "result",
    "solve_s",
    "solve_cpu_s",
    "certificate_bytes",
    "check_s",
    "check_cpu_s",
    "certified",
    "reason",
]


def _run(cmd: list[str], timeout: float) -> tuple[subprocess.CompletedProcess[str] | None, float, float]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    start, cpu = time.monotonic(), _children_cpu()
    try:
        proc: subprocess.CompletedProcess[str] | None = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout + GRACE, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        proc = None
    return proc, time.monotonic() - start, _children_cpu() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acasxu-dir", type=Path, default=Path(os.environ.get("MSL_ACASXU_DIR", DEFAULT_DIR)))
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "acasxu" / "results" / "certificates.csv")
    parser.add_argument("--subset", help="every:K, first:N, or A_B:K,... (network A_B, property K)")
    args = parser.parse_args()
    folder: Path = args.acasxu_dir
    if not (folder / "acasxu_instances.csv").exists():
        print(f"no ACAS Xu benchmark at {folder} (use --acasxu-dir or MSL_ACASXU_DIR)", file=sys.stderr)
        return 2
    expected = read_expected(folder)
    instances = [
        i for i in select(read_instances(folder), args.subset) if expected.get(i[:2], {}).get("expected") == "unsat"
    ]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.results, "w", newline="") as fh, tempfile.TemporaryDirectory() as tmp:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for n, (onnx, vnnlib, timeout) in enumerate(instances, 1):
            cert = Path(tmp) / "proof.json.gz"
            net, prop = str(folder / onnx), str(folder / vnnlib)
            proc, solve_s, solve_cpu = _run(
                [
                    sys.executable,
                    "-m",
                    "msl",
                    "vnnlib",
                    net,
                    prop,
                    "--timeout",
                    str(timeout),
                    "--certificate",
                    str(cert),
                ],
                timeout,
            )
            result = proc.stdout.strip().splitlines()[0] if proc is not None and proc.stdout.strip() else "killed"
            row = {
                "onnx": onnx,
                "vnnlib": vnnlib,
                "result": result,
                "solve_s": f"{solve_s:.3f}",
                "solve_cpu_s": f"{solve_cpu:.3f}",
            }
            if result == "unsat" and cert.exists():
                check, check_s, check_cpu = _run([sys.executable, "-m", "msl", "certify", str(cert), "--network", net,
                                                  "--vnnlib", prop], 10 * timeout)
                out = " ".join((check.stdout if check is not None else "killed").split())
                row.update(
                    certificate_bytes=str(cert.stat().st_size),
                    check_s=f"{check_s:.3f}",
                    check_cpu_s=f"{check_cpu:.3f}",
                    certified="yes" if check is not None and check.returncode == 0 else "no",
                    reason="" if check is not None and check.returncode == 0 else out[:300],
                )
                cert.unlink()
            writer.writerow(row)
            fh.flush()
            rows.append(row)
            print(
                f"[{n}/{len(instances)}] {onnx} {vnnlib}: {result} in {solve_s:.2f} s; certificate"
                f" {row.get('certificate_bytes', '-')} B, {row.get('certified', '-')} in {row.get('check_s', '-')} s",
                flush=True,
            )
    proved = [r for r in rows if r["result"] == "unsat"]
    certified = [r for r in proved if r.get("certified") == "yes"]
    print(f"unsat: {len(proved)} of {len(rows)}; certified: {len(certified)}")
    if certified:
        ratio = [float(r["check_cpu_s"]) / max(float(r["solve_cpu_s"]), 1e-9) for r in certified]
        print(f"median certificate: {statistics.median(int(r['certificate_bytes']) for r in certified)} bytes (gzip);"
              f" median CPU check/solve: {statistics.median(ratio):.2f}")
    for r in proved:
        if r.get("certified") != "yes":
            print(f"not certified: {r['onnx']} {r['vnnlib']}: {r.get('reason', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
