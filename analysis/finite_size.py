"""The finite-size study (hpc_brunel.studies.finite_size): does the 12,500-neuron
network's disagreement with the infinite-network theory shrink as N grows at fixed
in-degrees?

    python analysis/finite_size.py run --scale 1              # N = 12,500 (resumable)
    python analysis/finite_size.py run --scale 4 --threads 2  # N = 50,000
    python analysis/finite_size.py run --scale 10 --deadline-s 3000
    python analysis/finite_size.py collect                    # -> analysis/finite_size/
    python analysis/finite_size.py plan --threads 2           # the planner's cost of each point and N

`run` sizes every point with the planner (`hpc_brunel plan`'s model, at the point's
mean-field rate) before it starts: it refuses a scale whose predicted peak memory does not
fit this machine's, and prints each point's predicted simulate time beside the measured one.
`collect` keeps the points of the committed finite_size.csv that runs/ does not have, so
the study can be completed on another machine (`run --points` the missing ones, then
`collect`). `run` simulates and analyzes the study's points that are not analyzed yet, one after
the other, each with `--ranks` x `--threads` (under the MPI launcher when ranks > 1;
a plain process with NEST's threads otherwise), into runs/finite-size/scale<S>/
(HPC_BRUNEL_FINITE_SIZE_RUNS moves it). `--deadline-s` starts no point after that
many seconds, so that a time-limited allocation ends with whole points. `collect`
writes the table (finite_size.csv, finite_size.md) and the figure
(finite_size.png) to analysis/finite_size/.

Cost on 2 cores (2026-11-30, 1 rank x 2 threads): 12,500 neurons ~15-60 s a point
(SR ~4 min); 50,000 ~6 min a point at 37 Hz; 125,000 a band point 18-34 min. `make
finite-size` runs all three N here: about 9 h on 2 cores (16 min + ~2 h + ~7 h); on
16 cores about 1.5 h (BENCHMARKS.md, `plan` for the prediction per point).
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

from hpc_brunel.constants import RUN_JSON, default_transient_ms  # noqa: E402
from hpc_brunel.studies import finite_size as F  # noqa: E402
from hpc_brunel.studies.plan import load_model  # noqa: E402
from hpc_brunel.studies.sweep import point_done  # noqa: E402

RUNS = Path(os.environ.get("HPC_BRUNEL_FINITE_SIZE_RUNS", ROOT / "runs" / "finite-size"))
OUT = ROOT / "analysis" / "finite_size"


def run(scale: float, ranks: int, threads: int, deadline_s: float | None, only_band: bool, only=None) -> int:
    from hpc_brunel.analysis.analyze import analyze_run
    from hpc_brunel.simulation.parallel import mpirun_argv

    only = only or (list(F.BAND_POINTS) if only_band else None)
    sweep = F.study_sweep(scale, ranks=ranks, threads=threads, only=only)
    d = F.scale_dir(RUNS, scale)
    sweep.check_resume(d)
    sweep.save(d)
    t0 = time.monotonic()
    todo = [p for p in sweep.points if not point_done(d / p.name)]
    print(f"[finite-size] N scale {scale:g}: {len(sweep.points) - len(todo)} of {len(sweep.points)} points done; "
          f"{len(todo)} to run with {ranks} rank(s) x {threads} thread(s)", flush=True)
    model, _ = load_model()
    plans = {p.name: F.planned(model, scale, p.g, p.eta, ranks=ranks, threads=threads) for p in todo}
    need_mib = max((pr.peak_rss_total_mib for pr in plans.values()), default=0.0)
    have_mib = machine_memory_mib()
    if need_mib > have_mib:
        print(f"hpc_brunel: error: --scale {scale:g}: the planner predicts {need_mib:,.0f} MiB peak memory on "
              f"{ranks} rank(s), this machine has {have_mib:,.0f} MiB; allowed: a scale whose prediction fits "
              f"(analysis/finite_size.py plan)", file=sys.stderr, flush=True)
        return 2
    failures = 0
    for k, p in enumerate(todo, 1):
        if deadline_s is not None and time.monotonic() - t0 > deadline_s:
            print(f"[finite-size] deadline {deadline_s:g} s reached: {len(todo) - k + 1} point(s) left", flush=True)
            break
        cmd = [sys.executable, "-m", "hpc_brunel", *sweep.run_args(p, d / p.name)]
        env = dict(os.environ)
        if ranks > 1:
            cmd, extra = mpirun_argv(ranks, threads, cmd)
            env.update(extra)
        pr = plans[p.name]
        print(f"[finite-size] {k}/{len(todo)} {p.name}: planned {pr.rate_hz:.0f} Hz, simulate "
              f"{pr.simulate_s_per_model_s * sweep.t_sim_ms / 1000:,.0f} s, {pr.peak_rss_total_mib:,.0f} MiB"
              f"{pr.range_note()}", flush=True)
        t1 = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            failures += 1
            print(f"[finite-size] {p.name} FAILED (exit {proc.returncode}): {proc.stderr[-400:]}", flush=True)
            continue
        a = analyze_run(d / p.name, plots=False, t_transient_ms=default_transient_ms(sweep.t_sim_ms))
        net = a["populations"]["network"]
        sim_s = json.loads((d / p.name / RUN_JSON).read_text()).get("nest_timers_max_s", {}).get("time_simulate")
        print(f"[finite-size] {k}/{len(todo)} {p.name}: {a['regime']}, chi_inf {net.get('synchrony_chi_inf')}, "
              f"peak {net.get('psd_peak_hz')} Hz, rate {net.get('rate_mean_hz'):.1f} Hz, "
              f"simulate {sim_s if sim_s is None else round(sim_s)} s, wall {time.monotonic() - t1:.0f} s", flush=True)
    return 1 if failures else 0


def machine_memory_mib() -> float:
    """This machine's physical memory, MiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def measured_simulate(scale: float, g: float, eta: float, ranks: int, threads: int) -> str:
    """NEST's time_simulate (s, the slowest rank's) and the run's mean rate of a finished point under
    runs/ with the same ranks x threads, or '' (none, or another decomposition)."""
    from hpc_brunel.studies.sweep import SweepPoint

    f = F.scale_dir(RUNS, scale) / SweepPoint(g, eta).name / RUN_JSON
    if not f.exists():
        return ""
    r = json.loads(f.read_text())
    dec, sim_s = r.get("decomposition", {}), r.get("nest_timers_max_s", {}).get("time_simulate")
    if (dec.get("ranks"), dec.get("threads_per_rank")) != (ranks, threads) or not sim_s:
        return ""
    rates = list((r.get("mean_rate_hz") or {}).values())
    return f"{sim_s:,.0f} at {sum(rates) / len(rates):.1f} Hz" if rates else f"{sim_s:,.0f}"


def plan_study(scales, ranks: int, threads: int) -> int:
    """Print the planner's cost of every study point per N and the totals (nothing runs)."""
    model, _ = load_model()
    grand = 0.0
    print(f"planner ({model.synapse_model}, hpc_brunel/data/network_size.csv), {ranks} rank(s) x {threads} "
          f"thread(s), {F.T_SIM_MS:g} ms per point; this machine: {machine_memory_mib():,.0f} MiB")
    print("| N | g | eta | mean-field rate [Hz] | peak memory [MiB] | simulate [s] | measured here [s] |")
    print("|---|---|---|---|---|---|---|")
    for scale in scales:
        total, notes = 0.0, set()
        for g, eta in F.points():
            pr = F.planned(model, scale, g, eta, ranks=ranks, threads=threads)
            sim_s = pr.simulate_s_per_model_s * F.T_SIM_MS / 1000
            total += sim_s
            notes.add(pr.range_note())
            print(f"| {pr.neurons:,} | {g:g} | {eta:g} | {pr.rate_hz:.1f} | {pr.peak_rss_total_mib:,.0f} "
                  f"| {sim_s:,.0f} | {measured_simulate(scale, g, eta, ranks, threads)} |")
        grand += total
        note = "".join(notes)
        print(f"| {pr.neurons:,} | all {len(F.points())} | | | | {total:,.0f} ({total / 3600:.1f} h){note} | |")
    print(f"simulate in all: {grand:,.0f} s ({grand / 3600:.1f} h), network construction not included")
    return 0


def collect() -> int:
    rows = F.collect(RUNS)
    committed = OUT / F.STUDY_CSV
    if committed.exists():  # keep the committed points that these run directories do not have
        have = {(r.n_neurons, r.g, r.eta) for r in rows}
        rows += [r for r in F.read_csv(committed) if (r.n_neurons, r.g, r.eta) not in have]
        order = {pt: k for k, pt in enumerate(F.points())}
        rows.sort(key=lambda r: (r.n_neurons, order[(r.g, r.eta)]))
    if not rows:
        print(f"[finite-size] nothing analyzed under {RUNS}", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    F.write_csv(rows, OUT / F.STUDY_CSV)
    rows = F.read_csv(OUT / F.STUDY_CSV)  # the table and figure from the committed numbers
    md = F.table_md(rows)
    (OUT / F.STUDY_MD).write_text(md + "\n")
    F.figure(rows, OUT / F.STUDY_PNG)
    print(md)
    print(f"[finite-size] {len(rows)} points -> {OUT}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--scale", type=float, required=True, choices=F.SCALES)
    r.add_argument("--ranks", type=int, default=1)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--deadline-s", type=float, default=None, help="start no point after this many seconds")
    r.add_argument("--only-band", action="store_true", help="the band's 12 points, no controls")
    r.add_argument("--points", default=None, metavar="G:ETA,...",
                   help="only these of the study's points, in this order")
    sub.add_parser("collect")
    pl = sub.add_parser("plan")
    pl.add_argument("--scale", type=float, choices=F.SCALES, action="append", help="default: all three")
    pl.add_argument("--ranks", type=int, default=1)
    pl.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if a.cmd == "plan":
        return plan_study(a.scale or F.SCALES, a.ranks, a.threads)
    if a.cmd == "run":
        only = None
        if a.points:
            only = [tuple(float(x) for x in pt.split(":")) for pt in a.points.split(",")]
            unknown = [pt for pt in only if pt not in F.points()]
            if unknown:
                ap.error(f"--points {unknown}: not among the study's points {F.points()}")
        return run(a.scale, a.ranks, a.threads, a.deadline_s, a.only_band, only)
    return collect()


if __name__ == "__main__":
    sys.exit(main())
