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


def test_installed_jobscript_uses_the_current_directory_and_the_active_venv(installed, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    venv = tmp_path / "some-venv"
    proc = run_installed(installed, work, "jobscript", "run", "--run-args", "--t-sim-ms 500",
                         env={"VIRTUAL_ENV": str(venv)})
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert f"cd {work.resolve()}" in text
    assert f"source {venv}/bin/activate" in text
    assert f"--run-dir {work.resolve()}/runs/brunel-" in text
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
