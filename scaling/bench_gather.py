#!/usr/bin/env python3
"""Gather time for many rank files (synthetic, no NEST): 256 / 1,024 / 2,048 rank
files of a full-size network (12,500 neurons dealt round-robin), 1 s of model
time in 100 ms chunks, 40 Hz. Each gather runs in its own process; optionally
also the gather of another hpc_brunel tree (e.g. commit 3eaa9e5, which opens
every rank file at once) for comparison. Prints a markdown table; asserts nothing.

    make bench-gather
    scaling/bench_gather.py --ranks 256,1024,2048 --root /work/runs-14/gather --old-tree /tmp/old-3eaa9e5
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
lim = int(sys.argv[2])
if lim:
    resource.setrlimit(resource.RLIMIT_NOFILE, (lim, lim))
from hpc_brunel.analysis import gather
t0 = time.perf_counter()
s = gather.gather(sys.argv[1])
dt = time.perf_counter() - t0
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print("BENCH " + json.dumps({"gather_s": dt, "spikes": sum(s["spikes"].values()), "vmhwm_kib": hwm}))
"""


def run_gather(run_dir: Path, tree: Path, nofile: int) -> dict:
    (run_dir / "spikes.h5").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(run_dir), str(nofile)], cwd=tree, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
        return {"error": last[:120]}
    return json.loads([x for x in out.stdout.splitlines() if x.startswith("BENCH ")][-1][6:])


def main(argv=None) -> int:
    from hpc_brunel.simulation import synthetic

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", default="256,1024,2048")
    ap.add_argument("--root", type=Path, default=ROOT / "runs" / "bench-gather")
    ap.add_argument("--chunks", type=int, default=10, help="100 ms chunks")
    ap.add_argument("--rate-hz", type=float, default=40.0)
    ap.add_argument("--nofile", type=int, default=1024, help="RLIMIT_NOFILE of the gather process (0: as is)")
    ap.add_argument("--old-tree", type=Path, help="another hpc_brunel source tree to compare with")
    args = ap.parse_args(argv)
    lines = [f"| rank files | spikes | gather s (this tree, ulimit -n {args.nofile}) | M spikes/s | peak RSS MiB |"
             + (" old tree |" if args.old_tree else ""),
             "|---|---|---|---|---|" + ("---|" if args.old_tree else "")]
    for r in (int(x) for x in args.ranks.split(",")):
        run_dir = args.root / f"ranks-{r}"
        if not (run_dir / "run.json").exists():
            t0 = time.perf_counter()
            synthetic.write_run(run_dir, n_ranks=r, n_excitatory=10_000, n_inhibitory=2_500, n_chunks=args.chunks,
                                rate_hz=args.rate_hz, seed=r)
            print(f"wrote {r} rank files in {time.perf_counter() - t0:.0f} s", flush=True)
        new = run_gather(run_dir, ROOT, args.nofile)
        line = (f"| {r:,} | {new['spikes']:,} | {new['gather_s']:.2f} | {new['spikes'] / new['gather_s'] / 1e6:.2f} | "
                f"{new['vmhwm_kib'] / 1024:.0f} |")
        if args.old_tree:
            old = run_gather(run_dir, args.old_tree, args.nofile)
            line += f" {old['error']} |" if "error" in old else f" {old['gather_s']:.2f} s |"
        lines.append(line)
        print(line, flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
