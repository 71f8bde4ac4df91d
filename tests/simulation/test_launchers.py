"""`hpc_brunel launch` and the local runners speak each launcher's own syntax: Open MPI's
mpirun, MPICH's Hydra mpiexec (and its derivatives), srun. Fake launchers on PATH print
what the real ones print for --version and record the command line they were given, so
this runs without MPICH or SLURM (no NEST either)."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT, venv_python

from hpc_brunel.simulation.parallel import launcher_flavour, mpirun_argv

VERSIONS = {  # the first lines of `--version`, as the real launchers print them
    "openmpi": "mpirun (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/",
    "hydra": "HYDRA build details:\n    Version:                                 4.0.2\n",
    "intel": "Intel(R) MPI Library for Linux* OS, Version 2021.10 Build 20230619\n",
    "srun": "slurm 22.05.8\n",
    "other": "some launcher 1.0\n",
}


def fake(tmp_path, name, flavour):
    log = tmp_path / f"{name}.args"
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"""#!/bin/bash
if [ "$1" = --version ]; then cat <<'X'
{VERSIONS[flavour]}
X
exit 0; fi
echo "OMP_NUM_THREADS=$OMP_NUM_THREADS $*" > {log}
""")
    path.chmod(0o755)
    return path, log


@pytest.mark.parametrize("flavour,expected", [("openmpi", "openmpi"), ("hydra", "hydra"), ("intel", "hydra"),
                                              ("srun", "srun"), ("other", "unknown")])
def test_launcher_flavour_from_version_output(tmp_path, flavour, expected):
    path, _ = fake(tmp_path, "srun" if flavour == "srun" else "mpiexec", flavour)
    assert launcher_flavour(str(path)) == expected


def test_each_launcher_gets_ranks_threads_and_binding_in_its_syntax(tmp_path):
    cmd = ["python", "-m", "hpc_brunel", "run"]
    hydra, _ = fake(tmp_path, "mpiexec", "hydra")
    argv, env = mpirun_argv(2, 4, cmd, str(hydra), cores=8)
    assert argv == [str(hydra), "-n", "2", "-bind-to", "core:4", *cmd] and env["OMP_NUM_THREADS"] == "4"
    argv, _ = mpirun_argv(4, 4, cmd, str(hydra), cores=8)
    assert argv[3:5] == ["-bind-to", "none"]  # oversubscribed
    srun, _ = fake(tmp_path, "srun", "srun")
    argv, env = mpirun_argv(2, 4, cmd, str(srun), cores=8)
    assert argv == [str(srun), "-n", "2", "--cpus-per-task=4", "--cpu-bind=cores", *cmd]
    ompi, _ = fake(tmp_path, "mpirun", "openmpi")
    argv, _ = mpirun_argv(2, 4, cmd, str(ompi), cores=8)
    assert argv[:7] == [str(ompi), "-n", "2", "--map-by", "slot:PE=4", "--bind-to", "core"]
    other, _ = fake(tmp_path, "mylauncher", "other")
    assert mpirun_argv(2, 4, cmd, str(other), cores=8)[0] == [str(other), "-n", "2", *cmd]


@pytest.mark.parametrize("flavour,name,words", [("hydra", "mpiexec", "-n 2 -bind-to core:1"),
                                                ("srun", "srun", "-n 2 --cpus-per-task=1 --cpu-bind=cores")])
def test_launch_runs_the_launcher_it_is_given_and_prints_a_copyable_line(tmp_path, flavour, name, words):
    """(Hydra from the MPICH environment's python: `launch` refuses another family's launcher.)"""
    path, log = fake(tmp_path, name, flavour)
    python = str(venv_python("mpich")) if flavour == "hydra" else sys.executable
    p = subprocess.run([python, "-m", "hpc_brunel", "launch", "-n", "2", "--threads", "1", "--mpirun",
                        str(path), "--", "run", "--t-sim-ms", "100"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "OMP_NUM_THREADS": ""})
    assert p.returncode == 0, p.stderr
    got = log.read_text()
    assert got.startswith(f"OMP_NUM_THREADS=1 {words} ") and "-m hpc_brunel run --t-sim-ms 100 --threads 1" in got
    printed = [ln for ln in p.stderr.splitlines() if ln.startswith("+ ")]
    assert printed == [f"+ OMP_NUM_THREADS=1 {path} {words} {python} -m hpc_brunel run --t-sim-ms 100 "
                       "--threads 1"], p.stderr
