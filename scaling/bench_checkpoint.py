#!/usr/bin/env python3
"""What checkpoints and continuing cost, and what a seam looks like. A benchmark
that prints numbers and writes a table and a figure, not a test.

For each network size (Brunel network at fixed in-degrees, all neurons recorded,
2 ranks x 1 thread by default): a run with periodic checkpoints (NEST's
time_simulate and every checkpoint's wall time and bytes from run.json), then
`run --continue` of it (the restore: pre-roll and reading the checkpoint; the
network is rebuilt as in any run). At the first size also an uninterrupted run of
the same total length and seed, and the population rate around the seam of both
(figure), the per-neuron rate correlation across the seam and the statistics
after it.

    make bench-checkpoint            # 12,500 (1 s + 3 s) and 125,000 neurons (100 + 100 ms)
    scaling/bench_checkpoint.py --sizes 12500 --out runs/bench-checkpoint

Writes <out>/checkpoint.csv, checkpoint.md and seam.png.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.constants import DEFAULT_CHECKPOINT_EVERY_MS  # noqa: E402

# size -> (first segment ms, checkpoint interval ms, continuation ms)
PLAN = {12500: (1000.0, 100.0, 3000.0), 125000: (100.0, 25.0, 100.0)}


def hpc(*args, ranks: int, threads: int) -> None:
    cmd = [sys.executable, "-m", "hpc_brunel", "launch", "-n", str(ranks), "--threads", str(threads), "--", *args]
    print("+ " + " ".join(map(str, cmd)), flush=True)
    subprocess.run(list(map(str, cmd)), cwd=ROOT, check=True)


def size_args(n: int) -> list[str]:
    ne = int(round(0.8 * n))
    return ["--set", f"network.n_excitatory={ne}", "--set", f"network.n_inhibitory={n - ne}"]


def measure(n: int, out: Path, ranks: int, threads: int, seed: int) -> dict:
    t_a, every, t_b = PLAN.get(n, (100.0, 25.0, 100.0))
    a = out / f"n{n}-continued"
    hpc("run", *size_args(n), "--t-sim-ms", t_a, "--checkpoint-every-ms", every, "--seed", seed, "--no-analyze",
        "--set", f"simulation.chunk_ms={every:g}", "--run-dir", a, "--overwrite", ranks=ranks, threads=threads)
    hpc("run", "--continue", a, "--t-sim-ms", t_b, "--no-analyze", ranks=ranks, threads=threads)
    rec = json.loads((a / "run.json").read_text())
    s0, s1 = rec["segments"]
    saves = [c["seconds"] for c in s0["checkpoints"]]
    sizes = [c["bytes"] for c in s0["checkpoints"]]
    sim_s_per_model_s = s0["time_simulate_s"] / (t_a / 1000.0)
    row = {
        "neurons": n, "ranks": ranks, "threads_per_rank": threads, "checkpoints": len(saves),
        "save_s_median": float(np.median(saves)), "save_s_min": min(saves), "save_s_max": max(saves),
        "bytes_total": int(np.median(sizes)), "bytes_per_neuron": float(np.median(sizes)) / n,
        "time_simulate_s_per_model_s": sim_s_per_model_s,
        "share_at_default_interval": float(np.median(saves)) / (sim_s_per_model_s * DEFAULT_CHECKPOINT_EVERY_MS / 1000),
        "restore_s": s1["restore_s"],
        "build_s_continuation": max(r["python_phases_s"].get("build_network", 0.0) for r in rec["ranks"]),
        "date": rec["ended"][:10],
    }
    print(json.dumps(row), flush=True)
    return row


def seam_study(n: int, out: Path, ranks: int, threads: int, seed: int) -> list[str]:
    """The seam of the first size against an uninterrupted run: figure + lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import hpc_brunel
    from hpc_brunel.analysis import seams

    t_a, _, t_b = PLAN.get(n, (100.0, 25.0, 100.0))
    ref = out / f"n{n}-uninterrupted"
    hpc("run", *size_args(n), "--t-sim-ms", t_a + t_b, "--seed", seed, "--no-analyze", "--run-dir", ref,
        "--overwrite", ranks=ranks, threads=threads)
    runs = {"continued": hpc_brunel.load_run(out / f"n{n}-continued"), "uninterrupted": hpc_brunel.load_run(ref)}
    lines, rates = [], {}
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for name, run in runs.items():
        times = np.concatenate([s.times_ms for s in run.spikes.values()])
        ids = np.concatenate([s.node_ids + (0 if p == "excitatory" else run.spikes["excitatory"].n_neurons)
                              for p, s in run.spikes.items()])
        rates[name] = (ids, times)
        t0 = t_a - 50.0
        r = seams.population_rate_hz(times, n, t0, t_a + 50.0)
        ax.plot(t0 + np.arange(len(r)) + 0.5, r, lw=1, label=name)
    ids, times = rates["uninterrupted"]
    reference = (min(200.0, 0.3 * t_a), t_a - min(50.0, 0.1 * t_a))  # stationary, away from the seam
    tr = seams.seam_transient(rates["continued"][1], n, t_a, reference=reference, k_sd=3.0)
    band = (tr.band_mean_hz - tr.k_sd * tr.band_sd_hz, tr.band_mean_hz + tr.k_sd * tr.band_sd_hz)
    ax.axhspan(*band, color="0.9", zorder=0, label=f"mean +- {tr.k_sd:g} sd ({reference[0]:g}..{reference[1]:g} ms)")
    ax.axvline(t_a, color="k", lw=0.8, ls="--")
    ax.set_xlabel("model time (ms); dashed: the seam")
    ax.set_ylabel("population rate (Hz), 1 ms bins")
    ax.set_title(f"{n:,} neurons: stopped at {t_a:g} ms and continued vs uninterrupted (same seed)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "seam.png", dpi=120)
    lines.append(f"seam at {t_a:g} ms: {tr.bins_outside} of {len(tr.rate_after_hz)} 1-ms bins after it outside "
                 f"mean +- {tr.k_sd:g} sd ({tr.band_mean_hz:.1f} +- {tr.band_sd_hz:.1f} Hz)")
    corr = {k: seams.rate_correlation(*v, n, t_a - min(t_a - reference[0], t_b), t_a, t_a + t_b)
            for k, v in rates.items()}
    lines.append("per-neuron rate correlation across t = %g ms: continued %.3f, uninterrupted %.3f"
                 % (t_a, corr["continued"], corr["uninterrupted"]))
    blocks = {k: seams.block_statistics(*v, n, t_a, t_a + t_b, n_blocks=10) for k, v in rates.items()}
    for stat in ("rate_hz", "cv_isi", "chi_inf"):
        diff, se, ok = seams.within_standard_errors(blocks["continued"][stat], blocks["uninterrupted"][stat])
        lines.append(f"after the seam, {stat}: continued {blocks['continued'][stat].mean():.4f}, uninterrupted "
                     f"{blocks['uninterrupted'][stat].mean():.4f}, difference {diff:+.4f} (SE {se:.4f}, "
                     f"{'within' if ok else 'NOT within'} 2 SE)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="12500,125000")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-checkpoint")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [measure(n, args.out, args.ranks, args.threads, args.seed) for n in sizes]
    seam_lines = seam_study(sizes[0], args.out, args.ranks, args.threads, args.seed)
    with open(args.out / "checkpoint.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = ["| neurons | ranks x threads | checkpoint s, median [range] | bytes (all ranks) | bytes/neuron | "
          "NEST simulate s per model s | share at the default interval (1 s) | restore s (pre-roll) | "
          "rebuild s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['neurons']:,} | {r['ranks']}x{r['threads_per_rank']} | {r['save_s_median']:.3f} "
                  f"[{r['save_s_min']:.3f}-{r['save_s_max']:.3f}] ({r['checkpoints']}) | {r['bytes_total']:,} | "
                  f"{r['bytes_per_neuron']:.1f} | {r['time_simulate_s_per_model_s']:.1f} | "
                  f"{r['share_at_default_interval']:.2%} | {r['restore_s']:.2f} | {r['build_s_continuation']:.1f} |")
    text = "\n".join(md + [""] + [f"- {ln}" for ln in seam_lines])
    (args.out / "checkpoint.md").write_text(text + "\n")
    print(text)
    print(f"figure: {args.out / 'seam.png'}")


if __name__ == "__main__":
    main()
