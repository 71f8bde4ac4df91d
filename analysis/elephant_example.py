#!/usr/bin/env python3
"""Load a run into Python and compute Elephant statistics from it.

    python analysis/elephant_example.py RUN_DIR [--t-start-ms 100] [--t-stop-ms T] [--neurons N]

Reads the spikes of [t_start, t_stop) (default: after the first 100 ms) of the
first N neurons of each population (default: all) with hpc_brunel.load_run,
turns them into Neo SpikeTrains and computes, per population, the mean firing
rate (elephant.statistics.mean_firing_rate) and the coefficient of variation of
the inter-spike intervals (elephant.statistics.cv of elephant.statistics.isi,
neurons with >= 3 spikes), next to hpc_brunel's own numbers from analysis.json.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
from elephant.statistics import cv, isi, mean_firing_rate  # noqa: E402

import hpc_brunel  # noqa: E402


def elephant_stats(run_dir, t_start_ms=100.0, t_stop_ms=None, neurons=None) -> dict:
    run = hpc_brunel.load_run(run_dir, t_start_ms=t_start_ms, t_stop_ms=t_stop_ms, neurons=neurons)
    out = {"window_ms": [run.t_start_ms, run.t_stop_ms]}
    for pop in run.spikes:
        trains = run.to_neo(pop)
        rates = np.array([float(mean_firing_rate(st).rescale("Hz")) for st in trains])
        cvs = np.array([cv(isi(st)) for st in trains if len(st) >= 3])
        out[pop] = {"neurons": len(trains), "rate_mean_hz": float(rates.mean()),
                    "cv_isi_mean": float(cvs.mean()) if len(cvs) else float("nan"), "cv_isi_n_neurons": len(cvs)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="an hpc_brunel run directory")
    p.add_argument("--t-start-ms", type=float, default=100.0, help="start of the window [ms] (default 100)")
    p.add_argument("--t-stop-ms", type=float, default=None, help="end of the window [ms] (default: the end)")
    p.add_argument("--neurons", type=int, default=None, help="first N neurons of each population (default: all)")
    args = p.parse_args(argv)
    res = elephant_stats(args.run_dir, args.t_start_ms, args.t_stop_ms, args.neurons)
    own = None
    if (args.run_dir / "analysis.json").exists():
        own = json.loads((args.run_dir / "analysis.json").read_text())["populations"]
    print(f"window {res['window_ms'][0]:g}-{res['window_ms'][1]:g} ms")
    for pop in ("excitatory", "inhibitory"):
        r = res[pop]
        line = (f"{pop:11s} {r['neurons']:6d} neurons  rate {r['rate_mean_hz']:7.2f} Hz  "
                f"CV(ISI) {r['cv_isi_mean']:.3f} ({r['cv_isi_n_neurons']} neurons, Elephant)")
        if own:
            line += f"  | hpc_brunel analysis: rate {own[pop]['rate_mean_hz']:.2f} Hz, CV {own[pop]['cv_isi_mean']:.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
