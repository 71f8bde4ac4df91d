"""The finite-size study (hpc_brunel.studies.finite_size): does the 12,500-neuron
network's disagreement with the infinite-network theory shrink as N grows at fixed
in-degrees?

    python analysis/finite_size.py run --scale 1              # N = 12,500 (resumable)
    python analysis/finite_size.py run --scale 4 --threads 2  # N = 50,000
    python analysis/finite_size.py run --scale 10 --deadline-s 3000
    python analysis/finite_size.py collect                    # -> analysis/finite_size/

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
(SR ~3 min); 50,000 ~6 min a point at 37 Hz; 125,000 > 15 min a point. `make
finite-size` runs all three N here: about 10 h on 2 cores; on 16 cores about
1 h (BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.constants import default_transient_ms  # noqa: E402
from hpc_brunel.studies import finite_size as F  # noqa: E402
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
        t1 = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            failures += 1
            print(f"[finite-size] {p.name} FAILED (exit {proc.returncode}): {proc.stderr[-400:]}", flush=True)
            continue
        a = analyze_run(d / p.name, plots=False, t_transient_ms=default_transient_ms(sweep.t_sim_ms))
        net = a["populations"]["network"]
        print(f"[finite-size] {k}/{len(todo)} {p.name}: {a['regime']}, chi_inf {net.get('synchrony_chi_inf')}, "
              f"peak {net.get('psd_peak_hz')} Hz, rate {net.get('rate_mean_hz'):.1f} Hz, "
              f"{time.monotonic() - t1:.0f} s", flush=True)
    return 1 if failures else 0


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
    a = ap.parse_args(argv)
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
