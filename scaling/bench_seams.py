#!/usr/bin/env python3
"""Whether a continuation's seams leave a mark in the population rate. A benchmark
that prints numbers and writes a table and a figure, not a test (the test with the
same statistic is tests/simulation/test_seam_locked.py).

The full default network on 2 ranks x 1 thread by default: a run of --first-ms,
continued --seams times by --segment-ms (`run --continue`), with this tree and,
with --old-tree, with another checkout (e.g. `git worktree add /tmp/before <commit>`)
run by the same Python and NEST; and an uninterrupted run of the same length and
seed. For each: the population rate in 0.5-ms bins over the 20 ms after every seam,
averaged over the seams, against the same average after control times of the same
run at least 40 ms from any seam, in standard errors (analysis.seams.seam_locked_rate).
The same statistic at --null-sets sets of fake seams placed on the uninterrupted
run (no seam there) says how large |z| gets by chance.

    make bench-seams                       # this tree (about 3 min on 2 cores)
    scaling/bench_seams.py --old-tree /tmp/before --out scaling/results/seams

Writes <out>/seams.csv (per variant and bin), seams.md and seam_locked.png; the runs
and their logs go to <out>/continued-*/, <out>/uninterrupted/ and <out>/logs/.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.analysis.seams import control_times_ms, seam_locked_rate  # noqa: E402


def hpc(tree: Path, *args, ranks: int, threads: int, log: Path) -> None:
    """`hpc_brunel launch ... -- ARGS` with the package of `tree`; its output appended to `log`."""
    cmd = [sys.executable, "-m", "hpc_brunel", "launch", "-n", str(ranks), "--threads", str(threads), "--", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)}
    with open(log, "a") as f:
        subprocess.run(list(map(str, cmd)), cwd=tree, env=env, check=True, stdout=f, stderr=subprocess.STDOUT)


def all_spike_times_ms(run_dir: Path) -> tuple[np.ndarray, int, list[float]]:
    """Every spike time of the run, its neuron count and its seams."""
    from hpc_brunel.analysis.results import load_run

    run = load_run(run_dir)
    times = np.concatenate([s.times_ms for s in run.spikes.values()])
    rec = json.loads((run_dir / "run.json").read_text())
    n = sum(s.n_neurons for s in run.spikes.values())
    return times, n, [float(x) for x in rec.get("seams_ms", [])]


def chain(tree: Path, run_dir: Path, args) -> None:
    print(f"+ {tree}: {args.first_ms:g} ms, then {args.seams} x {args.segment_ms:g} ms -> {run_dir}", flush=True)
    log = run_dir.parent / "logs" / f"{run_dir.name}.log"
    hpc(tree, "run", "--t-sim-ms", args.first_ms, "--seed", args.seed, "--run-dir", run_dir, "--overwrite",
        "--no-analyze", ranks=args.ranks, threads=args.threads, log=log)
    for _ in range(args.seams):
        hpc(tree, "run", "--continue", run_dir, "--t-sim-ms", args.segment_ms, "--no-analyze", ranks=args.ranks,
            threads=args.threads, log=log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seams", type=int, default=24)
    ap.add_argument("--first-ms", type=float, default=500.0)
    ap.add_argument("--segment-ms", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--null-sets", type=int, default=30)
    ap.add_argument("--old-tree", type=Path, help="another checkout to compare (its name in the table: 'before')")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-seams")
    args = ap.parse_args()
    args.out = args.out.resolve()
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    t_end = args.first_ms + args.seams * args.segment_ms
    variants = ([("before", args.old_tree.resolve())] if args.old_tree else []) + [("after", ROOT)]
    results = {}
    for name, tree in variants:
        chain(tree, args.out / f"continued-{name}", args)
        times, n, seams = all_spike_times_ms(args.out / f"continued-{name}")
        results[name] = seam_locked_rate(times, n, seams, control_times_ms(seams, args.first_ms, t_end))
    straight = args.out / "uninterrupted"
    hpc(ROOT, "run", "--t-sim-ms", t_end, "--seed", args.seed, "--run-dir", straight, "--overwrite", "--no-analyze",
        ranks=args.ranks, threads=args.threads, log=args.out / "logs" / "uninterrupted.log")
    times, n, _ = all_spike_times_ms(straight)
    real_seams = args.first_ms + args.segment_ms * np.arange(args.seams)
    null = []
    for k in range(args.null_sets):  # fake seam grids, shifted by 3.3 ms steps (not a multiple of the 0.5-ms bin)
        fake = real_seams[:-1] + 1.0 + 3.3 * k
        null.append(seam_locked_rate(times, n, fake, control_times_ms(fake, args.first_ms, t_end, seed=k)))
    null_max = np.array([r.max_abs_z for r in null])
    results["uninterrupted, fake seams (first set)"] = null[0]

    with open(args.out / "seams.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "bin_end_ms", "seam_mean_hz", "seam_se_hz", "control_mean_hz", "control_se_hz", "z"])
        for name, r in results.items():
            for k in range(len(r.z)):
                w.writerow([name, f"{(k + 1) * r.bin_ms:g}", f"{r.seam_mean_hz[k]:.3f}", f"{r.seam_se_hz[k]:.3f}",
                            f"{r.control_mean_hz[k]:.3f}", f"{r.control_se_hz[k]:.3f}", f"{r.z[k]:.3f}"])
    md = [f"{args.ranks} rank(s) x {args.threads} thread(s), seed {args.seed}, {args.first_ms:g} ms + {args.seams} x "
          f"{args.segment_ms:g} ms; 0.5-ms bins over 0-20 ms after each seam vs control times >= 40 ms from a seam",
          "", "| variant | seams | control times | max abs(z) | at (ms after the seam) | z at 4.5 ms |",
          "|---|---|---|---|---|---|"]
    for name, r in results.items():
        md.append(f"| {name} | {r.n_seams} | {r.n_control} | {r.max_abs_z:.2f} | {r.at_ms:g} | {r.z[8]:+.2f} |")
    md += ["", f"Fake seams on the uninterrupted run, {args.null_sets} sets: max abs(z) median "
           f"{np.median(null_max):.2f}, 90th percentile {np.quantile(null_max, 0.9):.2f}, "
           f"largest {null_max.max():.2f}."]
    (args.out / "seams.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    plot(results, null_max, args.out / "seam_locked.png")


def plot(results: dict, null_max: np.ndarray, path: Path) -> None:
    """Per variant the seam-locked rate against the control band; the fake seams' max |z| beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results) + 1, figsize=(4.2 * (len(results) + 1), 3.6))
    for ax, (name, r) in zip(axes, results.items()):
        x = (np.arange(len(r.z)) + 0.5) * r.bin_ms
        ax.fill_between(x, r.control_mean_hz - 2 * r.control_se_hz, r.control_mean_hz + 2 * r.control_se_hz,
                        color="0.8", label="control times, mean +- 2 SE")
        ax.errorbar(x, r.seam_mean_hz, yerr=r.seam_se_hz, fmt="o-", ms=3, lw=1, label=f"{r.n_seams} seams, mean +- SE")
        ax.set_title(f"{name}\nmax |z| {r.max_abs_z:.1f} at {r.at_ms:g} ms", fontsize=9)
        ax.set_xlabel("ms after the seam")
        ax.set_ylim(0, None)
    axes[0].set_ylabel("population rate (Hz)")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[-1].hist(null_max, bins=12, color="0.5")
    for i, (name, r) in enumerate(results.items()):
        if not name.startswith("uninterrupted"):
            axes[-1].axvline(r.max_abs_z, ls="--", lw=1.5, color=f"C{i + 1}", label=f"{name}: {r.max_abs_z:.2f}")
    axes[-1].set_xlabel("max |z| over the 40 bins")
    axes[-1].set_title(f"{len(null_max)} sets of fake seams (no seam)", fontsize=9)
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
