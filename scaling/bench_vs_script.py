#!/usr/bin/env python3
"""Side-by-side benchmark, alternating A/B on the same machine in one invocation:

  A  the seed notebook's network written by hand with the NEST 3 API, on the PyPI
     wheel of nest-simulator 3.10.0 in its own venv, 50 + 50 neurons recorded to
     memory (scaling/seed_script.py), 1 rank x 2 threads (the wheel has no MPI)
  B  `hpc_brunel run` with its defaults: all 12,500 neurons recorded to per-rank
     HDF5 files, analysis excluded (--no-analyze), at 2 virtual processes, on our
     NEST build (make setup: sdist with MPI)
  W  the same `hpc_brunel run` on the PyPI wheel (A's venv; h5py is added to it),
     1 rank x 2 threads: what a user without our build sees, like for like with A

Both: full network, 1 s, seed 12345. Reports medians and B/A ratios of the
simulate phase, the connect phase, wall time from process start until the spikes
are on disk, peak RSS per rank, and the rates of the first 50 + 50 neurons (the
same seed and VP count give the same spikes, so these must agree exactly).

    make bench                    # or: .venv/bin/python scaling/bench_vs_script.py --reps 5
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.simulation import provenance  # noqa: E402
from hpc_brunel.simulation.parallel import mpirun_argv  # noqa: E402
from seed_runner import run_seed_script  # noqa: E402

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def run_a(wheel_python: Path, threads: int, t_sim_ms: float) -> dict:
    t0 = time.perf_counter()
    d, = run_seed_script(1, threads, t_sim_ms, python=str(wheel_python))  # the wheel has no MPI: one rank
    wall = time.perf_counter() - t0
    return {"nest_time_simulate_s": d.get("nest_time_simulate_s", float("nan")),
            "simulate_s": d["simulate_s"], "connect_s": d["connect_s"], "wall_s": wall,
            "peak_rss_mib_per_rank": d["peak_rss_mib"], "peak_rss_mib_total": d["peak_rss_mib"],
            "rate50_e_hz": d["rate_e_hz"], "rate50_i_hz": d["rate_i_hz"]}


def run_b(ranks: int, threads: int, t_sim_ms: float, run_dir: Path, jemalloc: bool = False,
          python: str = sys.executable) -> dict:
    cmd = [python, "-m", "hpc_brunel", "run", "--no-analyze", "--overwrite", "--run-dir", str(run_dir),
           "--threads", str(threads), "--t-sim-ms", str(t_sim_ms)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if ranks > 1 or threads > 1:
        cmd, extra = mpirun_argv(ranks, threads, cmd)
        env.update(extra)
        if jemalloc:
            cmd[1:1] = ["-x", f"LD_PRELOAD={JEMALLOC}"]
    elif jemalloc:
        env["LD_PRELOAD"] = JEMALLOC
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    rec = json.loads((run_dir / "run.json").read_text())
    ranks_info = rec["ranks"]
    n50 = {"excitatory": 0, "inhibitory": 0}
    first_i = rec["config"]["network"]["n_excitatory"] + 1
    for r in range(ranks):
        with h5py.File(run_dir / f"rank_{r:05d}.h5", "r") as f:
            n50["excitatory"] += int(np.count_nonzero(f["spikes/excitatory/node_ids"][:] <= 50))
            n50["inhibitory"] += int(np.count_nonzero(f["spikes/inhibitory/node_ids"][:] < first_i + 50))
    return {
        "nest_time_simulate_s": rec["nest_timers_max_s"]["time_simulate"],
        "simulate_s": max(r["python_phases_s"]["simulate"] for r in ranks_info),
        "connect_s": max(r["python_phases_s"]["build_network"] for r in ranks_info),
        "wall_s": wall,
        "peak_rss_mib_per_rank": max(r["memory_kib"]["VmHWM"] for r in ranks_info) / 1024.0,
        "peak_rss_mib_total": sum(r["memory_kib"]["VmHWM"] for r in ranks_info) / 1024.0,
        "rate50_e_hz": n50["excitatory"] / 50 / (t_sim_ms / 1000.0),
        "rate50_i_hz": n50["inhibitory"] / 50 / (t_sim_ms / 1000.0),
        "rate_all_hz": sum(rec["spikes"].values()) / 12500 / (t_sim_ms / 1000.0),
    }


METRICS = ("nest_time_simulate_s", "simulate_s", "connect_s", "wall_s", "peak_rss_mib_per_rank", "peak_rss_mib_total",
           "rate50_e_hz",
           "rate50_i_hz")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--t-sim-ms", type=float, default=1000.0)
    ap.add_argument("--variants", default="W:1x2,B:1x2,B:2x1",
                    help="variants besides A, comma-separated B:RANKSxTHREADS[:jemalloc] (our build) or W:1x2 "
                         "(hpc_brunel on the PyPI wheel)")
    ap.add_argument("--out", type=Path, default=ROOT / "scaling" / "results" / "bench")
    args = ap.parse_args()

    wheel_venv = Path(subprocess.run(["bash", str(ROOT / "tools" / "setup-wheel-venv.sh")], capture_output=True,
                                     text=True, check=True).stdout.strip().splitlines()[-1])
    variants = {}
    for v in args.variants.split(","):
        parts = v.split(":")
        r, t = (int(x) for x in parts[1].split("x"))
        if parts[0] == "W" and r != 1:
            raise SystemExit(f"{v}: the PyPI wheel has no MPI: W runs 1 rank")
        variants[v] = (r, t, "jemalloc" in parts[2:], parts[0] == "W")
    wheel_python = wheel_venv / "bin" / "python"
    if any(w for *_, w in variants.values()):  # hpc_brunel on the wheel needs h5py there too
        subprocess.run([str(wheel_python), "-m", "pip", "install", "-q", "h5py"], check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {"A": [], **{v: [] for v in variants}}
    for rep in range(args.reps):  # alternate A, B, B', ... so drifts hit all alike
        results["A"].append(run_a(wheel_python, 2, args.t_sim_ms))
        print(f"rep {rep} A: {json.dumps(results['A'][-1])}", flush=True)
        for v, (r, t, jem, wheel) in variants.items():
            results[v].append(run_b(r, t, args.t_sim_ms, args.out / "run", jemalloc=jem,
                                    python=str(wheel_python) if wheel else sys.executable))
            print(f"rep {rep} {v}: {json.dumps(results[v][-1])}", flush=True)
    med = {k: {m: statistics.median(x[m] for x in rows) for m in METRICS} for k, rows in results.items()}
    rng = {k: {m: (min(x[m] for x in rows), max(x[m] for x in rows)) for m in METRICS} for k, rows in results.items()}
    lines = ["| metric | A (script, wheel, 1x2) | " + " | ".join(variants) + " | " +
             " | ".join(f"{v} / A" for v in variants) + " |", "|---" * (2 + 2 * len(variants)) + "|"]
    def cell(k, m):
        lo, hi = rng[k][m]
        return f"{med[k][m]:.2f} [{lo:.2f}–{hi:.2f}]"

    for m in METRICS:
        lines.append(f"| {m} | {cell('A', m)} | " + " | ".join(cell(v, m) for v in variants) + " | "
                     + " | ".join(f"{med[v][m] / med['A'][m]:.3f}" if med["A"][m] else "n/a" for v in variants)
                     + " |")
    m = provenance.machine()
    header = (f"{m['cpu_model']} ({m['cpus_online']} CPUs), {dt.date.today().isoformat()}, full network, "
              f"{args.t_sim_ms:g} ms, medians [min–max] of {args.reps} alternating repetitions")
    table = header + "\n\n" + "\n".join(lines)
    print(table)
    (args.out / "bench.json").write_text(json.dumps({"machine": m, "date": dt.date.today().isoformat(),
                                                    "results": results, "medians": med}, indent=2))
    (args.out / "bench.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
