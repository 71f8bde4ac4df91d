#!/usr/bin/env python3
"""The package at many MPI ranks on one machine: correctness, memory per process,
work and spike-exchange volume of the same network at 1 .. 64 virtual processes.
A benchmark that prints numbers and writes tables, not a test (the fast test of the
same properties is tests/simulation/test_many_ranks.py).

Every decomposition RANKSxTHREADS runs the network (default: the full 12,500-neuron
network, 1 s, seed 12345) with `hpc_brunel run`, oversubscribed where ranks x
threads exceed the cores (mpirun --oversubscribe; --allow-oversubscribe), then
`hpc_brunel analyze` in one process. Per run it reads the rank files:

- spikes: SHA-256 of every (node id, time) sorted: the same VP count in another
  split must give the same digest; per population rate and chi_inf (1-ms bins) in
  10 time blocks after the transient, CV(ISI) per neuron over the whole window in 10
  groups of neurons (batch means, standard errors), compared
  with the other VP counts in standard errors; the regime label (analysis.json);
- memory: each rank's peak resident memory (VmHWM) after the run: max, mean, sum;
- work: NEST's CPU-time timers of the update and deliver phases (per thread; the
  rank files keep the max over threads, so x threads: exact at 1 thread per rank, an
  upper bound at more; summed over ranks): CPU time is what a process got from the cores,
  so it stays meaningful under oversubscription where wall time does not;
- exchange volume: NEST's spike send buffer (buffer_size_spike_data x 8 bytes, what
  one rank's MPI_Alltoall sends per min-delay exchange at the end of the run) and
  the payload counted from the spikes: every spike goes once to every rank holding
  one of its ~1,250 targets (at <= 64 ranks of this network: every rank, the chance
  that a rank holds none is (1 - 1250/12500)^(12500/R) < 1e-8).

Wall times are printed but mean nothing when oversubscribed (marked *).

    scaling/ladder.py --out scaling/results/ladder-openmpi
    .venv-mpich/bin/python scaling/ladder.py --out scaling/results/ladder-mpich
    scaling/ladder.py --decompositions 1x1,2x1,4x1 --neurons 125000 --lean --out runs/ladder-125k

Writes <out>/ladder.csv (a row per run) and ladder.md; runs go to <out>/runs/.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.analysis.rankfiles import open_rank_file, read_meta  # noqa: E402
from hpc_brunel.analysis.results import load_run  # noqa: E402
from hpc_brunel.analysis.seams import block_statistics  # noqa: E402
from hpc_brunel.analysis.stats import isi_cv  # noqa: E402
from hpc_brunel.simulation.parallel import mpirun_argv  # noqa: E402
from hpc_brunel.simulation.recording import rank_file_name  # noqa: E402

DEFAULT_LADDER = "1x1,2x1,4x1,8x1,16x1,32x1,48x1,64x1,1x2,8x2,4x4,32x2,16x4"
SPIKE_DATA_BYTES = 8  # NEST 3's SpikeData
STATS = ("rate_hz", "cv_isi", "chi_inf")


def run_point(ranks: int, threads: int, run_dir: Path, args) -> None:
    """Run one decomposition (and its analysis). With --reuse, a complete analysed run of
    the same seed and length is kept."""
    if args.reuse and (run_dir / "analysis.json").exists():
        rec = json.loads((run_dir / "run.json").read_text())
        if (rec.get("status") == "complete" and rec["config"]["simulation"]["rng_seed"] == args.seed
                and rec["config"]["simulation"]["t_sim_ms"] == args.t_sim_ms):
            return
    run_args = ["run", "--no-analyze", "--overwrite", "--run-dir", str(run_dir), "--threads", str(threads),
                "--seed", str(args.seed), "--t-sim-ms", str(args.t_sim_ms), "--allow-oversubscribe",
                "--set", f"network.n_excitatory={int(round(0.8 * args.neurons))}",
                "--set", f"network.n_inhibitory={args.neurons - int(round(0.8 * args.neurons))}"]
    if args.lean:
        run_args += ["--lean"]
    cmd, env = mpirun_argv(ranks, threads, [sys.executable, "-m", "hpc_brunel", *run_args])
    log = run_dir.parent / f"{run_dir.name}.log"
    with open(log, "w") as f:
        p = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise SystemExit(f"{ranks}x{threads} failed (exit {p.returncode}): see {log}")
    with open(log, "a") as f:
        subprocess.run([sys.executable, "-m", "hpc_brunel", "analyze", str(run_dir), "--no-plots"], cwd=ROOT,
                       stdout=f, stderr=subprocess.STDOUT, check=True)


def measure(ranks: int, threads: int, run_dir: Path, args) -> dict:
    """One row: spikes digest and statistics, memory, work and exchange volume."""
    rec = json.loads((run_dir / "run.json").read_text())
    metas = []
    for r in range(ranks):
        with open_rank_file(run_dir / rank_file_name(r)) as f:
            metas.append(read_meta(f))
    run = load_run(run_dir)
    digest = hashlib.sha256()
    row = {"ranks": ranks, "threads": threads, "vps": ranks * threads, "neurons": args.neurons,
           "oversubscribed": ranks * threads > (os.cpu_count() or 1),
           "wall_s": round(float(rec.get("wall_time_s") or float("nan")), 1),  # the run's own (run.json)
           # the planner's columns (studies/plan.py read_table)
           "synapse_model": rec["config"]["network"]["synapse_model"], "threads_per_rank": threads,
           "t_sim_ms": args.t_sim_ms, "synapses": rec["synapses_total"],
           "rate_hz": round(sum(rec["spikes"].values()) / args.neurons / (args.t_sim_ms / 1000.0), 3)}
    t0 = float(rec["config"]["analysis"]["t_transient_ms"])
    for name, sp in run.spikes.items():
        ids, t = np.asarray(sp.node_ids), np.asarray(sp.times_ms)
        order = np.lexsort((np.rint(t * 1000), ids))
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(ids[order], dtype=np.int64).tobytes())
        digest.update(np.rint(t[order] * 1000).astype(np.int64).tobytes())
        blocks = block_statistics(ids, t, sp.n_neurons, t0, args.t_sim_ms, n_blocks=10)
        keep = t >= t0  # CV(ISI) over the whole window per neuron, batch means over 10 groups of neurons
        cv = isi_cv(ids[keep], t[keep])
        blocks["cv_isi"] = np.array([np.nanmean(g) for g in np.array_split(cv, 10)])
        for s in STATS:
            v = blocks[s]
            row[f"{name[0]}_{s}"] = float(np.mean(v))
            row[f"{name[0]}_{s}_se"] = float(np.std(v, ddof=1) / np.sqrt(len(v)))
    row["spikes"] = sum(rec["spikes"].values())
    row["date"] = str(rec.get("started", ""))[:16]
    row["spikes_sha256"] = digest.hexdigest()[:16]
    ana = json.loads((run_dir / "analysis.json").read_text())
    row["regime"] = ana.get("regime", {}).get("label", "") if isinstance(ana.get("regime"), dict) else ana.get(
        "regime", "")
    hwm = np.array([m["memory_kib"]["VmHWM"] for m in metas]) / 1024.0
    row.update(hwm_mib_max=round(float(hwm.max()), 1), hwm_mib_mean=round(float(hwm.mean()), 1),
               hwm_mib_sum=round(float(hwm.sum()), 1), peak_rss_per_rank_mib=round(float(hwm.max()), 1))
    row["time_simulate_s"] = max(m["nest_timers_s"].get("time_simulate", float("nan")) for m in metas)
    row["synapses_per_rank_max"] = max(m["synapses"] for m in metas)
    cpu = {k: sum(m["nest_timers_s"].get(k, float("nan")) for m in metas)
           for k in ("time_update_cpu", "time_deliver_spike_data_cpu", "time_simulate_cpu", "time_update",
                     "time_deliver_spike_data", "time_communicate_spike_data", "time_simulate")}
    row.update({f"{k}_sum": round(v, 3) for k, v in cpu.items()})
    model_s = args.t_sim_ms / 1000.0
    # NEST's per-thread timers are reduced to their max over threads per rank: x threads
    # (exact for 1 thread; an upper bound for more)
    row["update_deliver_cpu_s_per_model_s"] = round((cpu["time_update_cpu"] + cpu["time_deliver_spike_data_cpu"])
                                                    * threads / model_s, 3)
    exchanges = args.t_sim_ms / float(rec["config"]["network"]["delay_ms"])
    per_rank_spikes = np.array([sum(m["spikes"].values()) for m in metas], dtype=float)
    row["payload_bytes_per_rank_per_exchange"] = round(float(per_rank_spikes.mean()) / exchanges * ranks
                                                       * SPIKE_DATA_BYTES, 1)
    sx = [m.get("spike_exchange", {}) for m in metas]
    row["send_buffer_bytes_per_rank"] = max((x.get("buffer_size_spike_data") or 0) for x in sx) * SPIKE_DATA_BYTES
    return row


def compare(rows: list[dict], seeds: list[dict]) -> list[str]:
    """Lines: same VPs -> same digest; each statistic across the VP counts, against the
    within-run standard errors and against the spread over seeds at one VP count."""
    lines = []
    by_vps: dict[int, list[dict]] = {}
    for r in rows:
        by_vps.setdefault(r["vps"], []).append(r)
    for vps, rs in sorted(by_vps.items()):
        if len(rs) > 1:
            same = len({r["spikes_sha256"] for r in rs}) == 1
            splits = ", ".join(f"{r['ranks']}x{r['threads']}" for r in rs)
            lines.append(f"{vps} VPs ({splits}): spikes {'IDENTICAL' if same else 'DIFFER'} "
                         f"({rs[0]['spikes']:,} spikes)")
    firsts = [rs[0] for _, rs in sorted(by_vps.items())]
    for pop in ("e", "i"):
        for s in STATS:
            v = np.array([r[f"{pop}_{s}"] for r in firsts])
            se = np.array([r[f"{pop}_{s}_se"] for r in firsts])
            z_within = max(abs(a - b) / np.hypot(sa, sb) for i, (a, sa) in enumerate(zip(v, se))
                           for b, sb in zip(v[i + 1:], se[i + 1:]))
            text = (f"{pop.upper()} {s}: {v.min():.4g} .. {v.max():.4g} over {len(v)} VP counts; largest pairwise "
                    f"difference {z_within:.1f} within-run SE")
            if len(seeds) >= 3:
                ens = np.array([r[f"{pop}_{s}"] for r in seeds])
                z = np.abs(v - ens.mean()) / ens.std(ddof=1)
                text += (f"; each VP count as one more realisation of the {len(ens)} seeds at "
                         f"{seeds[0]['ranks']}x{seeds[0]['threads']} (mean {ens.mean():.4g}, "
                         f"sd {ens.std(ddof=1):.3g}): "
                         f"{int(np.sum(z <= 2))} of {len(z)} within 2 sd, largest {z.max():.1f} sd")
            lines.append(text)
    lines.append(f"regime: {', '.join(sorted({r['regime'] for r in rows}))}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decompositions", default=DEFAULT_LADDER)
    ap.add_argument("--neurons", type=int, default=12500)
    ap.add_argument("--t-sim-ms", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--lean", action="store_true", help="lean mode (static_synapse_hom_w_hpc)")
    ap.add_argument("--seeds", type=int, default=0, metavar="K",
                    help="also run the first decomposition with K more seeds (other connectivity realisations): "
                         "how far a statistic moves between realisations, against which the VP counts compare")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "ladder")
    ap.add_argument("--reuse", action="store_true", help="keep complete runs of the same seed and length in <out>")
    args = ap.parse_args()
    args.out = args.out.resolve()
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    rows = []
    csv_path = args.out / "ladder.csv"
    for item in args.decompositions.split(","):
        ranks, threads = (int(x) for x in item.split("x"))
        run_dir = args.out / "runs" / f"{ranks}x{threads}"
        run_point(ranks, threads, run_dir, args)
        row = measure(ranks, threads, run_dir, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    seeds = [r for r in rows if r["vps"] == rows[0]["vps"]][:1]
    r0, t0 = (int(x) for x in args.decompositions.split(",")[0].split("x"))
    for k in range(1, args.seeds + 1):
        seed_args = argparse.Namespace(**{**vars(args), "seed": args.seed + k})
        run_dir = args.out / "runs" / f"{r0}x{t0}-seed{args.seed + k}"
        run_point(r0, t0, run_dir, seed_args)
        seeds.append(measure(r0, t0, run_dir, seed_args))
        print(json.dumps(seeds[-1]), flush=True)
    if args.seeds:
        with open(args.out / "seeds.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(seeds[0]))
            w.writeheader()
            w.writerows(seeds)
    from hpc_brunel.simulation.parallel import mpi_library

    md = [f"{args.neurons:,} neurons, {args.t_sim_ms:g} ms, seed {args.seed}{', lean' if args.lean else ''}; "
          f"{mpi_library()}; {os.cpu_count()} cores; runs started {min(r['date'] for r in rows)} .. "
          f"{max(r['date'] for r in rows)}; "
          "* oversubscribed (wall time meaningless)", "",
          "| ranks x threads | VPs | spikes | sha256[:16] | E rate Hz | E CV | E chi_inf | regime | VmHWM/rank max MiB "
          "| sum MiB | update+deliver CPU s per model s (all VPs) | send buffer B/rank/exchange "
          "| payload B/rank/exchange "
          "| run's wall s |", "|" + "---|" * 14]
    for r in rows:
        md.append(f"| {r['ranks']}x{r['threads']}{'*' if r['oversubscribed'] else ''} | {r['vps']} | {r['spikes']:,} "
                  f"| {r['spikes_sha256']} | {r['e_rate_hz']:.2f} ± {r['e_rate_hz_se']:.2f} | {r['e_cv_isi']:.3f} | "
                  f"{r['e_chi_inf']:.3f} | {r['regime']} | {r['hwm_mib_max']:.0f} | {r['hwm_mib_sum']:,.0f} | "
                  f"{r['update_deliver_cpu_s_per_model_s']:.1f} | {r['send_buffer_bytes_per_rank']:,} | "
                  f"{r['payload_bytes_per_rank_per_exchange']:,.0f} | {r['wall_s']} |")
    md += [""] + [f"- {ln}" for ln in compare(rows, seeds if args.seeds else [])]
    (args.out / "ladder.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
