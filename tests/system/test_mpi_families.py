"""Two MPI families side by side (issue 21): Open MPI (`make setup`, .venv) and MPICH
(`make setup MPI=mpich`, .venv-mpich), each with its own mpi4py and NEST.

- the same seed and the same number of virtual processes give the same spikes under
  both (NEST's connectivity and random streams do not depend on the MPI library);
- fail fast under MPICH's Hydra mpiexec as under Open MPI's mpirun;
- a process with two MPI libraries (mpi4py of one family, NEST of the other), or
  ranks started by the other family's launcher, stop with one line each.

Runs in `make test` of either environment; the other one must be set up (in CI both
are: .ci/run)."""
import json
import os
import subprocess
import time

import numpy as np
import pytest
from conftest import ROOT, SMALL, env_for, fault_env, hpc_brunel, launcher_of, needs_nest, rank_file_spikes, venv_python

pytestmark = [needs_nest, pytest.mark.mpi]


def test_same_seed_same_spikes_under_open_mpi_and_mpich(tmp_path):
    """The done-when command of the issue: `run --t-sim-ms 200` on 2 ranks, full size."""
    runs = {}
    for family in ("openmpi", "mpich"):
        py = venv_python(family)
        run_dir = tmp_path / family
        t0 = time.monotonic()
        hpc_brunel("run", "--t-sim-ms", "200", "--run-dir", run_dir, "--no-analyze", ranks=2, python=py, check=True)
        rec = json.loads((run_dir / "run.json").read_text())
        lib = rec["versions"]["mpi_library"]
        assert ("Open MPI" in lib) == (family == "openmpi"), lib
        print(f"\n[mpi] {family}: {lib}; {time.monotonic() - t0:.1f} s; launcher {launcher_of(py)}")
        runs[family] = rank_file_spikes(run_dir)
    print(f"[mpi] spikes: Open MPI {runs['openmpi'].shape[1]}, MPICH {runs['mpich'].shape[1]}")
    assert runs["openmpi"].shape[1] > 10000
    assert np.array_equal(runs["openmpi"], runs["mpich"])


def test_fail_fast_under_hydra(tmp_path, launch):
    """An exception on rank 1 mid-run ends the whole Hydra job, run.json says failed."""
    py = venv_python("mpich")
    mpiexec = launcher_of(py)
    run_dir = tmp_path / "fault"
    job = launch(["run", *SMALL, "--t-sim-ms", "60000", "--run-dir", run_dir], ranks=2, python=py,
                 env=fault_env("append_chunk:1:3"))
    code, out, err = job.wait(timeout=300)
    assert code != 0, err
    assert job.session_pids() == [], "processes left behind"
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "failed" and "MPICH" in rec["versions"]["mpi_library"]
    f = rec["failure"]
    assert (f["rank"], f["phase"], f["t_model_reached_ms"]) == (1, "write_spikes", 200.0)
    fault_to_exit_s = time.time() - (time.monotonic() - job.ended) - f["unix_time"]
    print(f"\n[failfast] Hydra ({mpiexec}): job ended {fault_to_exit_s:.2f} s after the fault, exit status {code}")
    assert 0 <= fault_to_exit_s < 60
    assert "rank 1 failed in phase 'write_spikes'" in err


def test_mpi4py_and_nest_of_different_mpis_are_refused(tmp_path):
    """mpi4py of the MPICH environment with the Open MPI environment's NEST (what a NEST
    module built with another MPI than the user's mpi4py gives): one line, nothing run."""
    py_mpich = venv_python("mpich")
    py_ompi = venv_python("openmpi")
    other = tmp_path / "other-nest"
    other.mkdir()
    where = subprocess.run([str(py_ompi), "-c", "import importlib.util, os; "
                            "print(os.path.dirname(importlib.util.find_spec('nest').origin))"],
                           capture_output=True, text=True, check=True).stdout.split()[-1]  # our build or a module
    (other / "nest").symlink_to(where)
    run_dir = tmp_path / "mixed"
    env = {"PYTHONPATH": os.pathsep.join([str(other), str(ROOT)])}
    p = hpc_brunel("run", *SMALL, "--t-sim-ms", "200", "--run-dir", run_dir, python=py_mpich, env=env)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if "different MPI libraries" in ln]
    assert len(lines) == 1 and "libmpich" in lines[0] and "libmpi.so" in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    assert not (run_dir / "rank_00000.h5").exists()


def test_ranks_of_the_other_launcher_are_refused(tmp_path):
    """Open MPI's mpirun starting MPICH-built ranks: each rank is a singleton of 1; they
    refuse instead of running two duplicate simulations; `launch` refuses up front."""
    py_mpich = venv_python("mpich")
    ompi_run = launcher_of(venv_python("openmpi"))
    from hpc_brunel.simulation.parallel import mpirun_argv

    run_dir = tmp_path / "wrong-launcher"
    argv, env = mpirun_argv(2, 1, [str(py_mpich), "-m", "hpc_brunel", "run", *SMALL, "--t-sim-ms", "200",
                                   "--run-dir", str(run_dir)], mpirun=ompi_run)
    p = subprocess.run(argv, cwd=ROOT, env=env_for(str(py_mpich), env), capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert "but MPI sees 1 process" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (run_dir / "rank_00001.h5").exists()
    q = hpc_brunel("launch", "-n", "2", "--mpirun", ompi_run, "--", "run", *SMALL, python=py_mpich)
    assert q.returncode == 2
    lines = [ln for ln in q.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and "Open MPI" in lines[0] and "mpi4py uses MPICH" in lines[0], q.stderr
