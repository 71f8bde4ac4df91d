"""A continued run's seams leave no mark in the population rate: the full default
network under its Poisson drive, 500 ms and then 24 continuations of 100 ms on 2
ranks; the population rate in 0.5-ms bins over the 20 ms after the seams, averaged
over them, against the same average after 120 control times of the same run at
least 40 ms from any seam (analysis.seams.seam_locked_rate).

The threshold, 4.5 standard errors in any of the 40 bins, comes from the same
statistic on runs without seams (BENCHMARKS.md, scaling/bench_seams.py): 30 sets of
fake seams on an uninterrupted run of this length reached a median of 2.5; the
largest of 30 was 4.7 in one set of this machine's run (4.0 in the issue's). The
population rate oscillates (sd ~ 20 Hz in 1-ms bins), so one seam says nothing; a
transient of one delay's missing or doubled input (a few Hz over a few ms in every
seam) shows as 5 or more.
"""
import json

import numpy as np
import pytest
from conftest import hpc_brunel, needs_nest

from hpc_brunel.analysis.results import load_run
from hpc_brunel.analysis.seams import control_times_ms, seam_locked_rate

pytestmark = [needs_nest, pytest.mark.mpi, pytest.mark.slow]

FIRST_MS, SEGMENT_MS, SEAMS = 500.0, 100.0, 24
MAX_Z = 4.5


def test_24_seams_of_the_full_network_leave_no_mark_in_the_population_rate(tmp_path):
    run = tmp_path / "seams"
    hpc_brunel("run", "--t-sim-ms", FIRST_MS, "--run-dir", run, "--no-analyze", ranks=2, check=True)
    for _ in range(SEAMS):
        hpc_brunel("run", "--continue", run, "--t-sim-ms", SEGMENT_MS, "--no-analyze", ranks=2, check=True)
    rec = json.loads((run / "run.json").read_text())
    seams = rec["seams_ms"]
    t_end = FIRST_MS + SEAMS * SEGMENT_MS
    assert seams == [FIRST_MS + k * SEGMENT_MS for k in range(SEAMS)] and rec["t_model_reached_ms"] == t_end
    assert rec["config"]["network"]["eta"] > 0 and rec["config"]["network"]["n_excitatory"] == 10000
    spikes = load_run(run).spikes
    times = np.concatenate([s.times_ms for s in spikes.values()])
    n = sum(s.n_neurons for s in spikes.values())
    r = seam_locked_rate(times, n, seams, control_times_ms(seams, FIRST_MS, t_end))
    assert r.n_seams == SEAMS and r.n_control >= 100
    profile = " ".join(f"{z:+.1f}" for z in r.z)
    assert r.max_abs_z <= MAX_Z, (f"seam-locked population rate {r.max_abs_z:.1f} SE from the control times at "
                                  f"{r.at_ms} ms after the seams; z per 0.5-ms bin: {profile}")
