"""A plain (non-editable) `pip install .` gives a working hpc_brunel whose jobscripts
point at the current directory and the active venv, never into site-packages."""
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    pytest.importorskip("setuptools")
    base = tmp_path_factory.mktemp("inst")
    src = base / "src"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info",
                                                            "__pycache__", ".pytest_cache", "scaling", "tests"))
    target = base / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def run_installed(target, cwd, *args, env=None, script=False):
    full_env = {**os.environ, "PYTHONPATH": str(target), **(env or {})}
    cmd = [str(target / "bin" / "hpc-brunel")] if script else [sys.executable, "-m", "hpc_brunel"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def test_the_installed_copy_is_the_one_imported(installed, tmp_path):
    out = subprocess.run([sys.executable, "-c", "import hpc_brunel; print(hpc_brunel.__file__)"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True)
    assert out.stdout.strip().startswith(str(installed))


def test_installed_jobscript_uses_the_submission_directory_and_the_active_venv(installed, tmp_path):
    """A printed run script runs where it is submitted from (not where it was rendered),
    with the venv active when it was rendered, and nothing of the installation in it."""
    work = tmp_path / "project"
    work.mkdir()
    venv = tmp_path / "some-venv"
    proc = run_installed(installed, work, "jobscript", "run", "--run-args", "--t-sim-ms 500",
                         env={"VIRTUAL_ENV": str(venv)})
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert 'cd "$SLURM_SUBMIT_DIR"' in text and str(work) not in text
    assert f"source {venv}/bin/activate" in text
    assert '--run-dir "${RUN_DIR:-runs/brunel-$SLURM_JOB_ID}"' in text
    pinned = run_installed(installed, work, "jobscript", "run", "--workdir", str(work), "--run-dir", "r1",
                           env={"VIRTUAL_ENV": str(venv)}).stdout
    assert f"cd {work}" in pinned and "--run-dir r1" in pinned
    for bad in (str(installed), "site-packages", str(ROOT)):
        assert bad not in text, f"{bad} in the jobscript:\n{text}"


def test_installed_console_script_and_module(installed, tmp_path):
    for script in (False, True):
        proc = run_installed(installed, tmp_path, "--version", script=script)
        assert proc.returncode == 0 and "hpc_brunel" in proc.stdout, proc.stderr
    proc = run_installed(installed, tmp_path, "config", "--regime", "ai")
    assert proc.returncode == 0 and "relative_inhibition = 5.0" in proc.stdout


def test_installed_package_ships_the_templates(installed, tmp_path):
    assert sorted(p.name for p in (installed / "hpc_brunel" / "cluster" / "templates").glob("*.sbatch.in"))
    proc = run_installed(installed, tmp_path, "jobscript", "examples", "--out", str(tmp_path / "ex"))
    assert proc.returncode == 0, proc.stderr
    for p in (ROOT / "jobscripts").glob("*.sbatch"):
        assert (tmp_path / "ex" / p.name).read_text() == p.read_text()


def test_installed_package_ships_the_planner_table(installed, tmp_path):
    assert (installed / "hpc_brunel" / "data" / "network_size.csv").exists()
    proc = run_installed(installed, tmp_path, "plan", "--neurons", "125000", "--ranks", "2")
    assert proc.returncode == 0, proc.stderr
    assert "MiB per rank" in proc.stdout and "validation 125,000 neurons 2x1" in proc.stdout


def test_a_native_nest_build_on_another_cpu_is_named():
    """NEST built with -march=native (the set-up's default) records the CPU it was built
    on; a run on another CPU model logs one warning line (it may die with SIGILL)."""
    from hpc_brunel.simulation.provenance import native_build_mismatch

    v = {"nest_build_options": "nest=3.10.0 opt=-O3;-march=native timers=ON arch=x86_64 cpu=AMD  EPYC 7B13"}
    assert native_build_mismatch(v, "AMD EPYC 7B13") is None
    msg = native_build_mismatch(v, "Intel(R) Xeon(R) Platinum 8480+")
    assert "Illegal instruction" in msg and "NEST_OPTIMIZE" in msg and "\n" not in msg
    assert native_build_mismatch({"nest_build_options": "opt=-O3;-march=x86-64-v3 cpu=x"}, "y") is None
    assert native_build_mismatch({}, "y") is None
