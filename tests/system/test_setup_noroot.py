"""`make setup` as an unprivileged user (issue 21), run for real under a user account
that this test creates (`useradd`; the test itself needs root for that, as CI has):

- prerequisites missing: one line naming each and how to get it (the Debian package,
  or the kind of module to load); nothing is apt-installed, nothing is built;
- prerequisites from "modules" (compiler wrappers and gsl-config on PATH from another
  directory) while dpkg says the Debian packages are missing: the set-up goes on;
- a NEST "module" (PYTHONPATH to an MPI NEST, as `module load NEST` gives): the set-up
  ends ready without building NEST, and the user runs a 2-rank job with it.

The user's Python is Debian's /usr/bin/python3 (root's pyenv is not readable by others)."""
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SMALL, mpi_family, needs_nest

USER = "hpcbrunel-ci"
SYSTEM_PYTHON = "/usr/bin/python3"
# What the set-up's prerequisite check looks for (tools/setup-env.sh, step 2).
PREREQ_TOOLS = ("mpicc", "mpicxx", "mpiexec", "mpirun", "gsl-config", "mpicc.openmpi", "mpicxx.openmpi",
                "mpiexec.openmpi", "mpirun.openmpi", "mpicc.mpich", "mpicxx.mpich", "mpiexec.mpich",
                "mpirun.mpich", "mpiexec.hydra", "mpic++", "mpiCC", "mpic++.openmpi", "mpiCC.openmpi",
                "mpic++.mpich", "mpiCC.mpich")

pytestmark = [needs_nest, pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None,
                                             reason="creating a user account needs root (CI has it)")]


@pytest.fixture(scope="module")
def user():
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
    return pwd.getpwnam(USER)


@pytest.fixture
def home(user, tmp_path):
    """A copy of the repository that the user owns (the set-up writes into it), and a
    cache of its own."""
    work = Path(f"/tmp/{USER}-{os.getpid()}-{tmp_path.name}")
    work.mkdir(mode=0o755)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (work / "repo" / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / "repo" / f)
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(work)], check=True)
    yield work
    shutil.rmtree(work, ignore_errors=True)


def bin_without(tools, where: Path, fake_dpkg: bool = False) -> Path:
    """A PATH directory: everything of /usr/bin and /bin except `tools` (a machine where
    they are not installed); with fake_dpkg, a dpkg-query that knows no package."""
    where.mkdir(parents=True, exist_ok=True)
    for d in ("/usr/local/bin", "/usr/bin", "/bin"):
        for p in Path(d).iterdir():
            if p.name not in tools and not (where / p.name).exists():
                (where / p.name).symlink_to(p)
    if fake_dpkg:
        (where / "dpkg-query").unlink(missing_ok=True)
        (where / "dpkg-query").write_text("#!/bin/sh\necho \"dpkg-query: no packages found matching $*\" >&2\n"
                                          "exit 1\n")
        (where / "dpkg-query").chmod(0o755)
    return where


def as_user(user, argv, env, **kw):
    base = {"HOME": user.pw_dir, "USER": USER, "LOGNAME": USER, "LANG": "C.UTF-8", "PYNEST_QUIET": "1"}
    return ["runuser", "-u", USER, "--", "env", "-i", *(f"{k}={v}" for k, v in {**base, **env}.items()), *argv]


def test_missing_prerequisites_are_named_in_one_line_and_nothing_is_installed(user, home):
    path = bin_without(PREREQ_TOOLS, home / "bin")
    env = {"PATH": str(path), "MPI": "mpich", "PYTHON": SYSTEM_PYTHON, "VENV": str(home / "venv"),
           "HPC_BRUNEL_CACHE": str(home / "cache")}
    p = subprocess.run(as_user(user, ["bash", "tools/setup-env.sh"], env), cwd=home / "repo", capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 1, p.stdout + p.stderr
    errors = [ln for ln in p.stderr.splitlines() if "ERROR" in ln]
    assert len(errors) == 1, p.stderr
    line = errors[0]
    assert "MPI=mpich (mpicc, mpicxx, mpiexec;" in line and "GSL (gsl-config;" in line, line
    assert "Load modules" in line and "Debian: mpich libmpich-dev" in line  # how to get them, root or not
    assert "installing Debian packages" not in p.stdout + p.stderr
    assert not (home / "venv").exists() and not (home / "cache").exists()
    print(f"\n[noroot] {line}")


def test_prerequisites_from_modules_pass_although_dpkg_lacks_the_packages(user, home):
    """The Debian machine whose MPI and GSL come from modules: dpkg knows no package, the
    tools are on PATH from a module directory; the check passes and the set-up goes on
    (it is stopped once it says which MPI it uses: the NEST build is not the point here)."""
    path = bin_without(PREREQ_TOOLS, home / "bin", fake_dpkg=True)
    module = home / "modules" / "mpich" / "bin"
    module.mkdir(parents=True)
    for name, target in (("mpicc", "mpicc.mpich"), ("mpicxx", "mpicxx.mpich"), ("mpiexec", "mpiexec.hydra"),
                         ("gsl-config", "gsl-config")):
        (module / name).symlink_to(f"/usr/bin/{target}")
    env = {"PATH": f"{module}:{path}", "MPI": "mpich", "PYTHON": SYSTEM_PYTHON, "VENV": str(home / "venv"),
           "HPC_BRUNEL_CACHE": str(home / "cache")}
    proc = subprocess.Popen(as_user(user, ["bash", "tools/setup-env.sh"], env), cwd=home / "repo",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen, t0 = [], time.monotonic()
    try:
        for line in proc.stdout:
            seen.append(line.rstrip())
            if line.startswith("[setup] MPI=mpich:") or "ERROR" in line or time.monotonic() - t0 > 240:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    text = "\n".join(seen)
    assert any(ln.startswith("[setup] MPI=mpich:") and str(module) in ln for ln in seen), text
    assert "ERROR" not in text and "installing Debian packages" not in text, text


def test_setup_with_a_nest_module_and_a_run_as_that_user(user, home):
    """A NEST 'module' (PYTHONPATH to this environment's site-packages: an MPI NEST with numpy
    and mpi4py, as a site's NEST + Python modules give), of this environment's MPI family: no
    NEST build, ready in one pass, then a 2-rank run as the user."""
    family = mpi_family()
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "MPI": family, "PYTHON": SYSTEM_PYTHON,
           "VENV": str(home / "venv"), "HPC_BRUNEL_CACHE": str(home / "cache"), "PYTHONPATH": str(site)}
    t0 = time.monotonic()
    p = subprocess.run(as_user(user, ["bash", "tools/setup-env.sh"], env), cwd=home / "repo", capture_output=True,
                       text=True, timeout=900)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "building no NEST" in out and "building NEST" not in out and "installing Debian" not in out, out
    assert "[setup] ready:" in out and ("Open MPI" if family == "openmpi" else "MPICH") in out, out
    print(f"\n[noroot] module set-up as {USER}: {time.monotonic() - t0:.0f} s")
    py = str(home / "venv" / "bin" / "python")
    run = subprocess.run(as_user(user, [py, "-m", "hpc_brunel", "launch", "-n", "2", "--", "run", *SMALL,
                                        "--t-sim-ms", "200", "--run-dir", str(home / "run")], env),
                         cwd=home / "repo", capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (home / "run" / "analysis.json").exists()
    assert pwd.getpwuid((home / "run" / "run.json").stat().st_uid).pw_name == USER
