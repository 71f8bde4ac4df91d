"""Reliability: bad input, killed ranks, SIGTERM, concurrent runs, a NEST without MPI.

Real processes and signals; every process started here is killed at teardown."""
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import h5py
import pytest
from conftest import ROOT, SMALL, hpc_brunel, launcher_of, needs_nest, venv_python, wait_for_chunks

from hpc_brunel.simulation.parallel import library_family, mpirun_argv


# --- bad input: >= 20 kinds, each exit 2, one line, same on every rank, nothing created -------------------
def _bad_toml(tmp):
    p = tmp / "bad.toml"
    p.write_text("[network\neta = 2\n")
    return ["--config", p]


def _file_parent(tmp):
    (tmp / "afile").write_text("x")
    return ["--run-dir", tmp / "afile" / "run"]


BAD_INPUTS = {
    "negative size": (["--set", "network.n_excitatory=-10"], "network.n_excitatory"),
    "zero size": (["--set", "network.n_inhibitory=0"], "network.n_inhibitory"),
    "in-degree > population": (["--set", "network.indegree_excitatory=20000"], "network.indegree_excitatory"),
    "delay < resolution": (["--set", "network.delay_ms=0.05"], "network.delay_ms"),
    "dt does not divide delay": (["--set", "network.delay_ms=1.55"], "network.delay_ms"),
    "dt does not divide chunk": (["--set", "simulation.chunk_ms=33.33"], "simulation.chunk_ms"),
    "zero threads": (["--threads", "0"], "--threads"),
    "negative threads": (["--set", "simulation.threads_per_rank=-2"], "simulation.threads_per_rank"),
    "threads beyond the allocation": (["--threads", "64"], "threads per rank"),
    "unknown regime": (["--regime", "chaos"], "--regime"),
    "misspelled key": (["--set", "network.indegre_excitatory=5"], "indegre_excitatory"),
    "unknown section": (["--set", "netwrk.eta=2"], "netwrk"),
    "malformed TOML": (_bad_toml, "malformed TOML"),
    "wrong type": (["--set", 'network.eta="two"'], "network.eta"),
    "non-finite number": (["--set", "network.weight_mv=nan"], "network.weight_mv"),
    "infinite model time": (["--t-sim-ms", "inf"], "simulation.t_sim_ms"),
    "unwritable output directory": (_file_parent, "not writable"),
    "seed out of range": (["--seed", "0"], "simulation.rng_seed"),
    # a threshold below rest would make the drive eta (V_th - E_L) / (J tau_m) negative (NEST: BadProperty)
    "threshold below rest": (["--set", "neuron.e_l_mv=-70", "--set", "neuron.v_threshold_mv=-75",
                              "--set", "neuron.v_reset_mv=-80", "--set", "neuron.v_init_mv=-90"], "neuron.v_threshold_mv"),
    "unknown initial-state distribution": (["--set", "neuron.v_init_distribution=gaussian"],
                                           "neuron.v_init_distribution"),
    # NEST loops forever in Connect when C = N with neither autapses nor multapses
    "in-degree NEST loops on": ([*SMALL, "--set", "network.indegree_inhibitory=200", "--set",
                                 "network.allow_autapses=false", "--set", "network.allow_multapses=false"],
                                "network.indegree_inhibitory"),
}


# Bad input is refused before NEST is imported, except where the run directory is checked (after it).
NEEDS_NEST_TO_REFUSE = ("unwritable output directory",)


@pytest.mark.mpi
@pytest.mark.parametrize("kind", [pytest.param(k, marks=needs_nest) if k in NEEDS_NEST_TO_REFUSE else k
                                  for k in BAD_INPUTS])
def test_bad_input(tmp_path, kind):
    args, name = BAD_INPUTS[kind]
    if callable(args):
        args = args(tmp_path)
    run_dir = tmp_path / "run"
    extra = [] if "--run-dir" in args else ["--run-dir", run_dir]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = hpc_brunel("run", *args, *extra, ranks=2)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1 and name in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created


def _digest(d: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("done") / "run"
    hpc_brunel("run", *SMALL, "--t-sim-ms", "200", "--run-dir", d, check=True)
    return d


@needs_nest
def test_existing_complete_run_is_not_overwritten(finished_run):
    before = _digest(finished_run)
    proc = hpc_brunel("run", *SMALL, "--t-sim-ms", "200", "--run-dir", finished_run)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "complete run" in proc.stderr
    assert _digest(finished_run) == before


@needs_nest
def test_other_layout_version_is_refused(tmp_path, finished_run):
    d = tmp_path / "old"
    d.mkdir()
    rec = json.loads((finished_run / "run.json").read_text())
    rec["layout_version"] = 0
    (d / "run.json").write_text(json.dumps(rec))
    proc = hpc_brunel("run", *SMALL, "--run-dir", d, "--overwrite")
    assert proc.returncode == 2 and "layout_version 0" in proc.stderr
    assert [p.name for p in d.iterdir()] == ["run.json"]


@needs_nest
def test_foreign_directory_is_never_written(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    proc = hpc_brunel("run", *SMALL, "--run-dir", d, "--overwrite")
    assert proc.returncode == 2 and "not an hpc_brunel run" in proc.stderr
    assert [p.name for p in d.iterdir()] == ["thesis.tex"]


def test_analyze_on_a_directory_that_is_not_a_run(tmp_path):
    proc = hpc_brunel("analyze", tmp_path)
    assert proc.returncode == 2 and "not an hpc_brunel run directory" in proc.stderr


@needs_nest
def test_full_output_directory(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a 1 MB tmpfs (needs root)")
    try:
        proc = hpc_brunel("run", "--run-dir", mnt / "run")
        assert proc.returncode == 2 and "MB free" in proc.stderr
        assert not list(mnt.iterdir())  # the check happens before anything is written
    finally:
        subprocess.run(["umount", str(mnt)])


# --- faults ---------------------------------------------------------------------------------------
LONG = [*SMALL, "--t-sim-ms", "60000"]  # ~15-20 s at 2 VPs: long enough to be interrupted


@needs_nest
@pytest.mark.mpi
def test_sigkill_of_one_rank_keeps_flushed_chunks(tmp_path, launch):
    run_dir = tmp_path / "killed"
    job = launch(["run", *LONG, "--run-dir", run_dir])
    wait_for_chunks(run_dir, 3, 2)
    pids = job.rank_pids()
    assert len(pids) == 2, pids
    os.kill(max(pids), signal.SIGKILL)  # one rank dies; mpirun takes the other down
    code, _, _ = job.wait()
    assert code != 0
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "running"  # never marked complete
    # every flushed chunk is readable, the files need no repair
    with h5py.File(run_dir / "rank_00000.h5", "r", libver="latest", swmr=True) as f0, \
            h5py.File(run_dir / "rank_00001.h5", "r", libver="latest", swmr=True) as f1:
        n_common = min(len(f0["chunks/t_end_ms"]), len(f1["chunks/t_end_ms"]))
        t_common = f0["chunks/t_end_ms"][n_common - 1]
        expected = sum(int(f["chunks/offsets"][n_common - 1].sum()) for f in (f0, f1))
        for f in (f0, f1):
            n = f["chunks/offsets"][len(f["chunks/t_end_ms"]) - 1]
            assert len(f["spikes/excitatory/times_ms"]) >= n[0]
            assert f["spikes/excitatory/times_ms"][: n[0]].max() <= f["chunks/t_end_ms"][-1]
    refused = hpc_brunel("analyze", run_dir)
    assert refused.returncode == 2
    assert "ranks were killed" in refused.stderr and "--partial" in refused.stderr
    partial = hpc_brunel("analyze", run_dir, "--partial", "--no-plots", check=True)
    assert "PARTIAL" in partial.stdout
    a = json.loads((run_dir / "analysis.json").read_text())
    assert a["partial"] and a["window_ms"][1] == pytest.approx(t_common)
    assert sum(a["populations"][p]["n_spikes"] for p in ("excitatory", "inhibitory")) <= expected
    with h5py.File(run_dir / "spikes.h5") as f:
        assert sum(len(f[f"spikes/{p}/timestamps"]) for p in ("excitatory", "inhibitory")) == expected
    assert "Partial analysis" in (run_dir / "report.md").read_text()
    # the dead run left no stale lock: a new run may replace it
    again = hpc_brunel("run", *SMALL, "--t-sim-ms", "100", "--run-dir", run_dir, "--no-analyze")
    assert again.returncode == 2 and "interrupted run" in again.stderr
    hpc_brunel("run", *SMALL, "--t-sim-ms", "100", "--run-dir", run_dir, "--overwrite", "--no-analyze", check=True)


@needs_nest
@pytest.mark.mpi
def test_sigterm_stops_every_rank_at_a_chunk_boundary(tmp_path, launch):
    run_dir = tmp_path / "term"
    job = launch(["run", *LONG, "--run-dir", run_dir])
    wait_for_chunks(run_dir, 2, 2)
    for pid in job.rank_pids():  # what SLURM does at the time limit: SIGTERM to every task
        os.kill(pid, signal.SIGTERM)
    code, out, err = job.wait()
    assert code != 0
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "terminated"
    assert 0 < rec["t_model_reached_ms"] < 60000
    assert rec["t_model_reached_ms"] % 100.0 == 0  # a chunk boundary
    assert err.count("stop requested") == 2  # both ranks say so
    for r in range(2):
        with h5py.File(run_dir / f"rank_0000{r}.h5", "r") as f:
            assert f["chunks/t_end_ms"][-1] == rec["t_model_reached_ms"] and "meta" in f
    # a clean stop at a chunk boundary is a consistent, shorter run: load_run (from the rank files,
    # before any gather) and analyze take it as it is
    from hpc_brunel import load_run

    run = load_run(run_dir)
    assert run.source != "spikes.h5" and run.partial is False and run.t_stop_ms == rec["t_model_reached_ms"]
    ana = hpc_brunel("analyze", run_dir, "--no-plots", check=True)
    assert "stopped early by a signal" in ana.stdout
    a = json.loads((run_dir / "analysis.json").read_text())
    assert not a["partial"] and a["run_status"] == "terminated"
    assert a["window_ms"][1] == rec["t_model_reached_ms"]
    assert "Stopped early" in (run_dir / "report.md").read_text()


@needs_nest
def test_sigterm_with_grace_period_finishes(tmp_path, launch):
    run_dir = tmp_path / "grace"
    job = launch(["run", *SMALL, "--t-sim-ms", "6000", "--run-dir", run_dir, "--grace-s", "600", "--no-analyze"],
                 ranks=1)
    wait_for_chunks(run_dir, 2, 1)
    os.kill(job.rank_pids()[0], signal.SIGTERM)
    code, _, err = job.wait()
    assert code == 0, err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


@needs_nest
def test_second_run_into_a_running_directory_is_refused(tmp_path, launch):
    run_dir = tmp_path / "busy"
    first = launch(["run", *LONG, "--run-dir", run_dir], ranks=1)
    wait_for_chunks(run_dir, 1, 1)
    second = hpc_brunel("run", *SMALL, "--run-dir", run_dir, "--overwrite")
    assert second.returncode == 2 and "in use by another run" in second.stderr and "pid=" in second.stderr
    assert first.proc.poll() is None  # the first run goes on, untouched
    first.kill()  # crash of the holder: the lock dies with it
    hpc_brunel("run", *SMALL, "--t-sim-ms", "100", "--run-dir", run_dir, "--overwrite", "--no-analyze", check=True)


@pytest.mark.mpi
def test_pypi_wheel_nest_is_refused_under_mpirun(tmp_path, wheel_venv):
    """The real PyPI wheel (no MPI) would exit 127 at import under mpirun; we refuse first, with the fix.
    (Launched by the launcher of the MPI the wheel venv's mpi4py was built with.)"""
    py = str(wheel_venv / "bin" / "python")
    probe = subprocess.run([py, "-c", "import mpi4py; mpi4py.rc.initialize = False; from mpi4py import MPI; "
                                      "print(MPI.Get_library_version())"], capture_output=True, text=True)
    family = library_family(probe.stdout.strip())
    cmd, env = mpirun_argv(2, 1, [py, "-m", "hpc_brunel", "run", "--run-dir", str(tmp_path / "run")],
                           mpirun=launcher_of(venv_python(family)))
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "built without MPI" in proc.stderr and "make setup" in proc.stderr
    assert not (tmp_path / "run").exists()
