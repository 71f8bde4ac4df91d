#!/usr/bin/env python3
"""Bigger networks on the same machine: the Brunel network grown at fixed in-degrees
(C_E = 1000, C_I = 250, 80 % excitatory), every neuron recorded, at the given
decompositions, for the default synapse model and lean mode's. Prints and writes,
per size: synapses, rate, NEST connect time, simulate time and real-time factor,
peak memory per rank and summed over ranks, memory per synapse, and the run's
overhead outside NEST (run.json overhead_outside_nest). A benchmark that prints
numbers, not a test.

    make bench-size        # 12,500 / 25,000 / 50,000 / 125,000 neurons at 2x1, and 12,500 / 25,000 at 1x1; 1 s
    scaling/bench_network_size.py --points 12500@1x2,25000@1x2 --t-sim-ms 500 --synapse-models static_synapse

Runs are made with `hpc_brunel launch -n R --threads T -- run ... --no-analyze`
under --runs-root (reused when complete). The table goes to
<runs-root>/network_size.csv and .md; `hpc_brunel plan` reads the CSV (its
calibration and validation points).
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.config import DEFAULT_SYNAPSE_MODEL, LEAN_SYNAPSE_MODEL  # noqa: E402
from hpc_brunel.simulation import provenance  # noqa: E402

COLUMNS = ("synapse_model", "neurons", "ranks", "threads_per_rank", "t_sim_ms", "synapses", "rate_hz",
           "time_create_s", "time_connect_s", "time_simulate_s", "real_time_factor", "peak_rss_per_rank_mib",
           "peak_rss_total_mib", "rss_after_connect_total_mib", "bytes_per_synapse", "outside_nest_s",
           "outside_nest_share_of_simulate", "startup_s")


def run_point(n: int, ranks: int, threads: int, t_sim_ms: float, root: Path, seed: int, model: str) -> Path:
    run_dir = root / f"{model}-n{n}-{ranks}x{threads}-t{t_sim_ms:g}"
    rj = run_dir / "run.json"
    if rj.exists() and json.loads(rj.read_text()).get("status") == "complete":
        print(f"{run_dir.name}: complete already", flush=True)
        return run_dir
    ne = int(round(0.8 * n))
    cmd = [sys.executable, "-m", "hpc_brunel", "launch", "-n", str(ranks), "--threads", str(threads), "--", "run",
           "--set", f"network.n_excitatory={ne}", "--set", f"network.n_inhibitory={n - ne}",
           "--set", f"network.synapse_model={model}",
           "--t-sim-ms", str(t_sim_ms), "--seed", str(seed), "--no-analyze", "--run-dir", str(run_dir),
           "--overwrite"]
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return run_dir


def row(run_dir: Path) -> dict:
    rec = json.loads((run_dir / "run.json").read_text())
    d, timers = rec["decomposition"], rec["nest_timers_max_s"]
    n = rec["config"]["network"]["n_excitatory"] + rec["config"]["network"]["n_inhibitory"]
    t_sim_ms = rec["t_model_reached_ms"] - rec["config"]["simulation"]["presim_ms"]
    hwm = [r["memory_kib"]["VmHWM"] / 1024 for r in rec["ranks"]]
    after_connect = [r.get("memory_phases_kib", {}).get("network", 0) / 1024 for r in rec["ranks"]]
    base = [r.get("memory_phases_kib", {}).get("base", 0) / 1024 for r in rec["ranks"]]
    n_rates = rec["mean_rate_hz"]
    rate = (n_rates["excitatory"] * 0.8 + n_rates["inhibitory"] * 0.2)
    syn = rec["synapses_total"]
    over = rec.get("overhead_outside_nest", {})
    return {
        "synapse_model": rec["config"]["network"]["synapse_model"],
        "neurons": n, "ranks": d["ranks"], "threads_per_rank": d["threads_per_rank"], "t_sim_ms": t_sim_ms,
        "synapses": syn, "rate_hz": round(rate, 2),
        "time_create_s": round(timers.get("time_construction_create", float("nan")), 2),
        "time_connect_s": round(timers.get("time_construction_connect", float("nan")), 2),
        "time_simulate_s": round(timers.get("time_simulate", float("nan")), 2),
        "real_time_factor": round(timers.get("time_simulate", float("nan")) / (t_sim_ms / 1000.0), 2),
        "peak_rss_per_rank_mib": round(max(hwm)), "peak_rss_total_mib": round(sum(hwm)),
        "rss_after_connect_total_mib": round(sum(after_connect)),
        "bytes_per_synapse": round((sum(after_connect) - sum(base)) * 2**20 / syn, 1) if syn else None,
        "outside_nest_s": round(over.get("outside_nest_s", float("nan")), 3),
        "outside_nest_share_of_simulate": round(over.get("share_of_simulate") or float("nan"), 4),
        "startup_s": round(over.get("startup_s") or float("nan"), 2),
    }


OVERHEAD_PARTS = ("build_s", "prepare_cleanup_s", "read_nest_timers_s", "read_recorders_s", "write_spikes_s",
                  "progress_and_stop_check_s")


def overhead_table(run_dirs: list[Path], head: str) -> str:
    """Per run: NEST's time_simulate and the wall time outside NEST by part (run.json
    overhead_outside_nest, the rank with the most), its share of time_simulate, and the start-up."""
    cols = ["synapse model", "neurons", "ranks × threads", "NEST time_simulate s", *OVERHEAD_PARTS,
            "outside NEST s", "share of time_simulate", "start-up s (apart)"]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for d in run_dirs:
        rec = json.loads((d / "run.json").read_text())
        o, dec = rec["overhead_outside_nest"], rec["decomposition"]
        n = rec["config"]["network"]["n_excitatory"] + rec["config"]["network"]["n_inhibitory"]
        lines.append(f"| {rec['config']['network']['synapse_model']} | {n:,} | {dec['ranks']} × "
                     f"{dec['threads_per_rank']} | {rec['nest_timers_max_s']['time_simulate']:.2f} | "
                     + " | ".join(f"{o[k]:.3f}" for k in OVERHEAD_PARTS)
                     + f" | {o['outside_nest_s']:.3f} | {o['share_of_simulate']:.2%} | {o['startup_s'] or 0:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", default="12500@2x1,25000@2x1,50000@2x1,125000@2x1,12500@1x1,25000@1x1",
                    help="comma-separated NEURONS@RANKSxTHREADS")
    ap.add_argument("--t-sim-ms", type=float, default=1000.0, help="model time per point [ms]")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--synapse-models", default=f"{DEFAULT_SYNAPSE_MODEL},{LEAN_SYNAPSE_MODEL}",
                    help="the network's synapse models to measure (default: the default and lean mode's)")
    ap.add_argument("--runs-root", type=Path, default=ROOT / "runs" / "bench-size", help="where the runs go")
    args = ap.parse_args(argv)
    args.runs_root.mkdir(parents=True, exist_ok=True)
    rows, run_dirs = [], []
    for model in args.synapse_models.split(","):
        for point in args.points.split(","):
            n, decomposition = point.split("@")
            ranks, threads = (int(x) for x in decomposition.lower().split("x"))
            run_dirs.append(run_point(int(n), ranks, threads, args.t_sim_ms, args.runs_root, args.seed, model))
            rows.append(row(run_dirs[-1]))
            print(json.dumps(rows[-1]), flush=True)
    m = provenance.machine()
    head = (f"machine: {m['cpu_model']}, {m['cpus_online']} CPUs, {m['hostname']}; "
            f"date {__import__('datetime').date.today().isoformat()}; {args.t_sim_ms:g} ms of model time, "
            "all neurons recorded")
    out_csv = args.runs_root / "network_size.csv"
    with open(out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (args.runs_root / "network_size.meta.json").write_text(json.dumps({"header": head}, indent=2))
    lines = [head, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    (args.runs_root / "network_size.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    over = overhead_table(run_dirs, head)
    (args.runs_root / "overhead.md").write_text(over + "\n")
    print(over)
    print(f"table: {out_csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
