#!/usr/bin/env python3
"""Benchmark of `analyze` on long full-size runs: spikes/s of gather + statistics
and peak RSS, per run length; optionally the same runs analyzed by another
hpc_brunel tree (e.g. the in-memory code of commit 3eaa9e5) with its numbers
compared. A benchmark that prints numbers, not a test: nothing is asserted.

    make bench-analyze                       # 1 s, 20 s, 100 s full size (made once, then reused)
    scaling/bench_analyze.py --durations-s 1,20 --runs-root /work/runs-14 \\
        --old-tree /tmp/old-3eaa9e5          # git archive 3eaa9e5 | tar -x -C /tmp/old-3eaa9e5

Each analysis runs in its own process, without a spikes.h5 from before (`python -m hpc_brunel analyze RUN`, with
figures), which reports its own peak RSS (VmHWM); gather and statistics times
come from its analysis.json. Runs are made with `hpc_brunel launch -n NP
--threads T -- run --t-sim-ms ... --no-analyze` unless complete already.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("rate_mean_hz", "rate_sd_hz", "rate_median_hz", "silent_fraction", "cv_isi_mean", "cv_isi_median",
        "cv_isi_n_neurons", "fano_1ms", "fano_5ms", "synchrony_chi", "synchrony_chi_10ms", "psd_peak_hz",
        "psd_peak_ratio", "n_spikes")

CHILD = r"""
import json, sys, time
from pathlib import Path
from hpc_brunel.analysis.analyze import analyze_run
t0 = time.perf_counter()
a = analyze_run(Path(sys.argv[1]), plots=sys.argv[2] == "1")
wall = time.perf_counter() - t0
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print("BENCH " + json.dumps({"wall_s": wall, "vmhwm_kib": hwm, "timings_s": a["timings_s"], "regime": a["regime"],
                             "populations": {p: {k: v for k, v in s.items() if not k.startswith("_")}
                                             for p, s in a["populations"].items()}}, default=float))
"""


def ensure_run(run_dir: Path, t_sim_ms: float, np_: int, threads: int) -> None:
    rec = run_dir / "run.json"
    if rec.exists() and json.loads(rec.read_text()).get("status") == "complete":
        return
    cmd = [sys.executable, "-m", "hpc_brunel", "launch", "-n", str(np_), "--threads", str(threads), "--", "run",
           "--t-sim-ms", str(t_sim_ms), "--no-analyze", "--run-dir", str(run_dir), "--overwrite"]
    print("making", run_dir, ":", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)


def analyze(run_dir: Path, tree: Path, plots: bool) -> dict:
    (run_dir / "spikes.h5").unlink(missing_ok=True)  # as in the first analyze of a run (replacing costs ~0.1 s)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(run_dir), "1" if plots else "0"], cwd=tree, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"analyze failed ({tree}):\n{out.stderr[-3000:]}")
    line = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")][-1]
    return json.loads(line[6:])


def max_rel_diff(a: dict, b: dict) -> tuple[float, str]:
    worst, where = 0.0, ""
    for p in a["populations"]:
        for k in KEYS:
            x, y = a["populations"][p].get(k), b["populations"][p].get(k)
            if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
                if (x is None) != (y is None):
                    return float("inf"), f"{p}.{k}"
                continue
            d = abs(x - y) / max(abs(y), 1e-300) if x != y else 0.0
            if d > worst:
                worst, where = d, f"{p}.{k}"
    return worst, where


def row(label: str, r: dict) -> str:
    n = sum(r["populations"][p]["n_spikes"] for p in ("excitatory", "inhibitory"))
    tg, ts = r["timings_s"]["gather"], r["timings_s"]["statistics"]
    return (f"| {label} | {n:,} (window) | {tg:.2f} | {ts:.2f} | {r['wall_s']:.2f} | "
            f"{r['n_total'] / (tg + ts) / 1e6:.1f} | {r['vmhwm_kib'] / 1024:.0f} | {r['regime']} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--durations-s", default="1,20,100", help="run lengths in seconds of model time")
    ap.add_argument("--runs-root", type=Path, default=ROOT / "runs" / "bench-analyze")
    ap.add_argument("--np", type=int, default=2, help="ranks for making the runs")
    ap.add_argument("--threads", type=int, default=1, help="threads per rank for making the runs")
    ap.add_argument("--old-tree", type=Path, help="another hpc_brunel source tree to compare with")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    lines = ["| run | spikes analyzed | gather s | statistics s | analyze wall s | M spikes/s (gather+stats, "
             "all spikes) | peak RSS MiB | label |", "|---|---|---|---|---|---|---|---|"]
    for dur in [float(x) for x in args.durations_s.split(",")]:
        run_dir = args.runs_root / f"full-{dur:g}s"
        ensure_run(run_dir, dur * 1000.0, args.np, args.threads)
        trees = [("new", ROOT)] + ([("old", args.old_tree)] if args.old_tree else [])
        res = {}
        for name, tree in trees:
            r = analyze(run_dir, tree, not args.no_plots)
            with h5py.File(run_dir / "spikes.h5") as f:
                r["n_total"] = sum(f[f"spikes/{p}/timestamps"].shape[0] for p in ("excitatory", "inhibitory"))
            res[name] = r
            lines.append(row(f"{dur:g} s, {name}", r))
            print(lines[-1], flush=True)
        if "old" in res:
            d, where = max_rel_diff(res["new"], res["old"])
            same = res["new"]["regime"] == res["old"]["regime"]
            print(f"  {dur:g} s: labels {'identical' if same else 'DIFFER'}; largest relative difference of the "
                  f"numbers new vs old: {d:.1e} ({where})", flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
