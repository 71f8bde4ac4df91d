"""The label rule at other delays: held-out points at D = 1.0 and 3.0 ms.

    python analysis/delay_validation.py run        # simulate (resumable), 12,500 neurons, 1.1 s each
    python analysis/delay_validation.py table      # -> analysis/delay_validation/table.md

The rule's thresholds were calibrated at D = 1.5 ms only (analysis/regime_validation.py);
its two frequency cuts follow 1/D (`regimes.thresholds_for`). These points, two per
regime per D (one SR), chosen inside the regions that linear stability gives at that D
(`stability.theory_label` with `MeanFieldParams(delay_ms=D)`), were never used to choose
anything. Each is labelled from its stored statistics twice: with the thresholds for its D
and with the D = 1.5 ms thresholds unscaled, to show what the scaling changes.
Cost on 2 cores: about 15 min (the two SR points ~3 min each).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.constants import ANALYSIS_JSON, default_transient_ms  # noqa: E402
from hpc_brunel.studies.sweep import Sweep, SweepPoint, point_done  # noqa: E402

RUNS = Path(os.environ.get("HPC_BRUNEL_DELAY_RUNS", ROOT / "runs" / "delay-validation"))
OUT = ROOT / "analysis" / "delay_validation"
T_SIM_MS = 1100.0
#: D [ms] -> (g, eta) per regime, inside that D's theory regions.
POINTS = {
    1.0: ((8.0, 4.5), (7.0, 6.0), (5.0, 2.0), (7.0, 2.5), (4.5, 0.9), (5.0, 0.87), (2.5, 1.5)),
    3.0: ((6.0, 3.0), (8.0, 2.5), (5.0, 1.5), (4.5, 1.2), (4.5, 0.9), (5.0, 0.87), (3.0, 2.0)),
}


def sweep_for(delay_ms: float, threads: int) -> Sweep:
    pts = [SweepPoint(g, eta) for g, eta in POINTS[delay_ms]]
    return Sweep(pts, t_sim_ms=T_SIM_MS, seed=12345, threads=threads, v_init="uniform",
                 extra_args=["--set", f"network.delay_ms={delay_ms:g}"])


def run(threads: int) -> int:
    from hpc_brunel.analysis.analyze import analyze_run

    failures = 0
    for d_ms in POINTS:
        sw = sweep_for(d_ms, threads)
        d = RUNS / f"D{d_ms:g}"
        sw.save(d)
        for p in sw.points:
            if point_done(d / p.name):
                continue
            proc = subprocess.run([sys.executable, "-m", "hpc_brunel", *sw.run_args(p, d / p.name)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                failures += 1
                print(f"D={d_ms:g} {p.name} FAILED: {proc.stderr[-300:]}", flush=True)
                continue
            a = analyze_run(d / p.name, plots=False, t_transient_ms=default_transient_ms(T_SIM_MS))
            print(f"D={d_ms:g} {p.name}: {a['regime']} (peak {a['populations']['network']['psd_peak_hz']} Hz)",
                  flush=True)
    return 1 if failures else 0


def table() -> int:
    from hpc_brunel.analysis import regimes
    from hpc_brunel.labels import SIM_FOR_THEORY
    from hpc_brunel.theory.meanfield import MeanFieldParams
    from hpc_brunel.theory.stability import theory_label

    lines = ["| D [ms] | g | eta | theory | label (cuts for D) | label (D = 1.5 ms cuts) | spectral peak [Hz] | "
             "chi_inf(1 ms) | chi_inf(10 ms) |", "|---|---|---|---|---|---|---|---|---|"]
    right = {True: 0, False: 0}
    fixed_right = 0
    for d_ms, pts in POINTS.items():
        th = regimes.thresholds_for(d_ms)
        for g, eta in pts:
            f = RUNS / f"D{d_ms:g}" / SweepPoint(g, eta).name / ANALYSIS_JSON
            if not f.exists():
                continue
            a = json.loads(f.read_text())
            net, w = a["populations"]["network"], a["window_ms"][1] - a["window_ms"][0]
            lab = regimes.classify(net, w, th).label
            lab_fixed = regimes.classify(net, w).label
            expect = SIM_FOR_THEORY[theory_label(MeanFieldParams(g=g, eta=eta, delay_ms=d_ms))]
            right[lab == expect] += 1
            fixed_right += lab_fixed == expect
            lines.append(f"| {d_ms:g} | {g:g} | {eta:g} | {expect} | {lab} | {lab_fixed} | {net['psd_peak_hz']:.0f} | "
                         f"{net['synchrony_chi_inf']:.3f} | {net['synchrony_chi_10ms_inf']:.3f} |")
    n = right[True] + right[False]
    lines += ["", f"Right with the cuts for D: {right[True]} of {n}; with the D = 1.5 ms cuts: {fixed_right} of {n}."]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--threads", type=int, default=2)
    sub.add_parser("table")
    a = ap.parse_args(argv)
    return run(a.threads) if a.cmd == "run" else table()


if __name__ == "__main__":
    sys.exit(main())
