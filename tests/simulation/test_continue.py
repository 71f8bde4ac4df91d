"""Continuing a run from its checkpoint (`run --continue`), on real multi-rank runs.

The decisive check is exactness: with a deterministic drive (a DC current, no
Poisson input, V_m(0) drawn per neuron) nothing random happens after the network
is built, so a run stopped and continued must give the uninterrupted run's spikes
exactly, across several seams; restoring V_m alone does not (measured while
building it: 2,823 vs 2,854 spikes, the first difference 0.2 ms after the seam).
With the Poisson drive the continuation draws a new stream from model time T - D
of each seam T (D: the drive's delay); a run without a stop, reseeded at the same
times with the same seeds (straight_reseeded.py, NEST called directly), must then
give its spikes exactly: the Poisson events in flight at T are drawn after T - D, so
one lost, added or shifted in the restore changes them (as does reseeding anywhere
else: measured while building it, a reseed at T - P instead of T - D changes 2,429
of 2,592 spikes in the 30 ms after the seam). Its statistics are compared with an
uninterrupted run under a real SLURM time limit in tests/cluster/test_slurm.py, and
the population rate around many seams in tests/simulation/test_seam_locked.py."""
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from conftest import ROOT, SMALL, fault_env, hpc_brunel, needs_nest, straight_reseeded_spikes, wait_for_chunks
from conftest import rank_file_spikes as spikes

pytestmark = [needs_nest, pytest.mark.mpi]

# 1,000 neurons driven by a DC current only (V_inf = 24 mV > V_th), chaotic but deterministic.
DC = [*SMALL, "--set", "network.eta=0", "--set", "neuron.i_e_pa=1.2", "--set", "neuron.v_init_distribution=uniform",
      "--set", "simulation.chunk_ms=50", "--no-analyze"]


def record(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_dc_driven_run_continued_twice_gives_the_uninterrupted_spikes(tmp_path):
    ref, cont = tmp_path / "ref", tmp_path / "cont"
    hpc_brunel("run", *DC, "--t-sim-ms", "300", "--run-dir", ref, "--hash-connections", ranks=2, check=True)
    hpc_brunel("run", *DC, "--t-sim-ms", "130", "--run-dir", cont, "--hash-connections", "--checkpoint-every-ms", "0",
               ranks=2, check=True)
    p = hpc_brunel("run", "--continue", cont, "--until-ms", "217.3", "--no-analyze", "--hash-connections", ranks=2,
                   check=True)
    assert "run complete" in p.stdout
    hpc_brunel("run", "--continue", cont, "--t-sim-ms", "82.7", "--no-analyze", ranks=2, check=True)
    a, b = spikes(ref), spikes(cont)
    assert a.shape[1] > 5000
    assert np.array_equal(a, b), f"{a.shape} vs {b.shape}"
    rec = record(cont)
    assert rec["status"] == "complete" and rec["t_model_reached_ms"] == 300.0
    assert rec["seams_ms"] == [130.0, 217.3]
    assert [s["index"] for s in rec["segments"]] == [0, 1, 2]
    assert rec["segments"][1]["nest_rng_seed"] != rec["segments"][0]["nest_rng_seed"]
    assert "new" in rec["segments"][1]["poisson_stream"]
    # NEST rebuilt the same connections on every rank (hash of GetConnections per rank)
    hashes = [record(ref)["segments"][0]["connections_sha256"], rec["segments"][0]["connections_sha256"],
              rec["segments"][1]["connections_sha256"]]
    assert hashes[0] == hashes[1] == hashes[2] and len(set(hashes[0])) == 2
    assert rec["config"]["simulation"]["t_sim_ms"] == 300.0
    total = sum(rec["spikes"].values())
    assert total == a.shape[1]
    # the analysis sees one run from 0 to 300 ms
    out = hpc_brunel("analyze", cont, "--no-plots", check=True)
    assert "300" in out.stdout


@pytest.mark.parametrize("ranks,threads", [(2, 1), (1, 2)])
def test_poisson_driven_run_continued_twice_gives_the_straight_run_reseeded_at_its_seams(tmp_path, ranks, threads):
    cont = tmp_path / "cont"
    args = [*SMALL, "--set", "simulation.chunk_ms=50", "--no-analyze"]
    hpc_brunel("run", *args, "--t-sim-ms", "130", "--run-dir", cont, ranks=ranks, threads=threads, check=True)
    hpc_brunel("run", "--continue", cont, "--until-ms", "217.3", "--no-analyze", ranks=ranks, threads=threads,
               check=True)
    hpc_brunel("run", "--continue", cont, "--t-sim-ms", "82.7", "--no-analyze", ranks=ranks, threads=threads,
               check=True)
    rec = record(cont)
    assert rec["seams_ms"] == [130.0, 217.3] and rec["t_model_reached_ms"] == 300.0
    assert rec["config"]["network"]["eta"] > 0  # the Poisson drive is on
    a, b = spikes(cont), straight_reseeded_spikes(cont, tmp_path, ranks, threads)
    assert a.shape[1] > 10000
    for seam_us in (130_000, 217_300):  # spikes on both sides of each seam, within a delay of it
        assert np.count_nonzero((a[1] > seam_us - 1500) & (a[1] <= seam_us)) > 50
        assert np.count_nonzero((a[1] > seam_us) & (a[1] <= seam_us + 1500)) > 50
    if a.shape != b.shape or not np.array_equal(a, b):
        n = min(a.shape[1], b.shape[1])
        diff = np.nonzero(np.any(a[:, :n] != b[:, :n], axis=0))[0]
        first = int(diff[0]) if len(diff) else n
        raise AssertionError(f"continued run {a.shape[1]} spikes, straight run reseeded at the seams {b.shape[1]}; "
                             f"first difference at {first}: {a[:, first:first + 3].T.tolist()} vs "
                             f"{b[:, first:first + 3].T.tolist()}")


def test_a_different_vp_count_or_conflicting_options_are_refused(tmp_path):
    run = tmp_path / "r"
    hpc_brunel("run", *DC, "--t-sim-ms", "100", "--run-dir", run, ranks=2, check=True)
    before = (run / "run.json").read_text()
    for args, ranks, words in (
            (["--continue", run, "--t-sim-ms", "50"], 1, "virtual processes"),
            (["--continue", run, "--t-sim-ms", "50", "--threads", "2", "--allow-oversubscribe"], 2,
             "virtual processes"),
            (["--continue", run, "--t-sim-ms", "50", "--set", "network.eta=1"], 2, "--set"),
            (["--continue", run], 2, "--until-ms"),
            (["--until-ms", "80"], 1, "--continue")):
        p = hpc_brunel("run", *args, ranks=ranks)
        errors = [ln for ln in p.stderr.splitlines() if "error:" in ln]
        assert p.returncode == 2 and len(errors) == 1 and words in errors[0], (args, p.stderr[-1500:])
    # a complete run already past --until-ms: nothing to do (a chain's later segments), exit 0
    p = hpc_brunel("run", "--continue", run, "--until-ms", "80", ranks=2, check=True)
    assert "nothing to simulate" in p.stdout
    assert (run / "run.json").read_text() == before  # nothing touched


def test_sigterm_stop_then_continue_is_one_run(tmp_path, launch):
    run = tmp_path / "term"
    job = launch(["run", *SMALL, "--t-sim-ms", "60000", "--run-dir", run, "--no-analyze"])
    wait_for_chunks(run, 3, 2)
    os.kill(job.proc.pid, signal.SIGTERM)
    code, out, err = job.wait(timeout=120)
    rec = record(run)
    assert rec["status"] == "terminated", err[-2000:]
    t_stop = rec["t_model_reached_ms"]
    ckpt = json.loads((run / "checkpoint.json").read_text())
    assert ckpt["t_model_ms"] == t_stop  # saved at the stop, inside the grace window
    hpc_brunel("run", "--continue", run, "--until-ms", t_stop + 400, ranks=2, check=True)
    rec = record(run)
    assert rec["status"] == "complete" and rec["t_model_reached_ms"] == t_stop + 400
    assert rec["segments"][1]["previous_status"] == "terminated" and rec["segments"][1]["lost_ms"] == 0
    s = spikes(run)
    assert len(np.unique(s, axis=1)[0]) == s.shape[1]  # no spike twice
    assert s[1].max() <= (t_stop + 400) * 1000
    rate_before = np.count_nonzero((s[1] > (t_stop - 100) * 1000) & (s[1] <= t_stop * 1000))
    rate_after = np.count_nonzero((s[1] > t_stop * 1000) & (s[1] <= (t_stop + 100) * 1000))
    assert 0.5 < rate_after / rate_before < 2.0
    ana = hpc_brunel("analyze", run, "--no-plots", check=True)
    assert "partial" not in ana.stdout.lower() or "not partial" in ana.stdout.lower()


def test_hard_kill_loses_at_most_one_interval(tmp_path):
    """kill -9 (no grace, no end record, HDF5 files left open): the next job continues
    from the last periodic checkpoint; the rank file is cut back to it."""
    run = tmp_path / "kill"
    cmd = [sys.executable, "-m", "hpc_brunel", "run", *SMALL, "--t-sim-ms", "60000", "--run-dir", str(run),
           "--no-analyze", "--checkpoint-every-ms", "200", "--set", "simulation.chunk_ms=50"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            if (run / "checkpoint.json").exists() and json.loads((run / "checkpoint.json").read_text())[
                    "t_model_ms"] >= 400:
                break
            time.sleep(0.05)
        wait_for_chunks(run, 10, 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert record(run)["status"] == "running"
    t_ckpt = json.loads((run / "checkpoint.json").read_text())["t_model_ms"]
    with h5py.File(run / "rank_00000.h5", "r", swmr=True) as f:
        flushed = float(f["chunks/t_end_ms"][-1])
    assert flushed - t_ckpt <= 200 + 50  # at most one interval (and a chunk) lost
    p = hpc_brunel("run", "--continue", run, "--until-ms", t_ckpt + 300, check=True)
    assert "run complete" in p.stdout
    rec = record(run)
    assert rec["segments"][1]["previous_status"] == "running" and rec["segments"][1]["lost_ms"] >= 0
    s = spikes(run)
    assert len(np.unique(s, axis=1)[0]) == s.shape[1] and s[1].max() <= (t_ckpt + 300) * 1000
    # the cut-back rank file holds exactly the chunks up to the checkpoint, then the new ones
    with h5py.File(run / "rank_00000.h5", "r") as f:
        t_end = f["chunks/t_end_ms"][:]
    assert np.all(np.diff(t_end) > 0) and t_ckpt in t_end and t_end[-1] == t_ckpt + 300


def test_a_checkpoint_being_written_when_the_job_dies_is_never_used(tmp_path, launch):
    run = tmp_path / "ckfault"
    # rank 1 dies in the middle of writing the 3rd checkpoint (model time 300 ms)
    job = launch(["run", *SMALL, "--t-sim-ms", "60000", "--run-dir", run, "--no-analyze", "--checkpoint-every-ms",
                  "100", "--set", "simulation.chunk_ms=50"], env=fault_env("write_checkpoint:1:3"))
    code, out, err = job.wait(timeout=300)
    assert code != 0 and job.session_pids() == []
    rec = record(run)
    assert rec["status"] == "failed" and rec["failure"]["phase"] == "write_checkpoint", rec.get("failure")
    manifest = json.loads((run / "checkpoint.json").read_text())
    assert manifest["t_model_ms"] == 200.0  # the last complete one
    assert list((run / "checkpoints").glob("tmp-*"))  # the half-written one is there, and unused
    p = hpc_brunel("run", "--continue", run, "--t-sim-ms", "100", ranks=2)
    errors = [ln for ln in p.stderr.splitlines() if "error:" in ln]
    assert p.returncode == 2 and len(errors) == 1 and "--after-failure" in errors[0], p.stderr[-1500:]
    hpc_brunel("run", "--continue", run, "--t-sim-ms", "100", "--after-failure", "--no-analyze", ranks=2, check=True)
    rec = record(run)
    assert rec["status"] == "complete" and rec["t_model_reached_ms"] == 300.0
    assert rec["segments"][1]["previous_failures"][0]["phase"] == "write_checkpoint"
    assert not list(run.glob("failure_rank_*.json")) and not list((run / "checkpoints").glob("tmp-*"))


def test_continuation_is_exact_with_two_threads_per_rank(tmp_path):
    """Several virtual processes on one rank: each rank's neurons are strided slices
    per VP (checkpoint.LocalNeurons), read and restored in id order."""
    ref, cont = tmp_path / "ref", tmp_path / "cont"
    hpc_brunel("run", *DC, "--t-sim-ms", "200", "--run-dir", ref, ranks=1, threads=2, check=True)
    hpc_brunel("run", *DC, "--t-sim-ms", "90", "--run-dir", cont, ranks=1, threads=2, check=True)
    hpc_brunel("run", "--continue", cont, "--until-ms", "200", "--no-analyze", ranks=1, threads=2, check=True)
    a, b = spikes(ref), spikes(cont)
    assert a.shape[1] > 3000 and np.array_equal(a, b)
