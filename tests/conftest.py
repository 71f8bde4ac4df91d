"""Shared helpers: run hpc_brunel in a subprocess, on one rank or under mpirun."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("PYNEST_QUIET", "1")

ROOT = Path(__file__).resolve().parents[1]
FAULT_INJECTION = ROOT / "tests" / "fault_injection"  # sitecustomize.py: HPC_BRUNEL_TEST_FAULT

pytest_plugins = ["ci_skips"]  # in CI a skip is a failure unless allow-listed

# A small Brunel network with the same structure (in-degrees 10 % of the sources).
SMALL = [
    "--set", "network.n_excitatory=800", "--set", "network.n_inhibitory=200",
    "--set", "network.indegree_excitatory=80", "--set", "network.indegree_inhibitory=20",
]


def have_nest() -> bool:
    try:
        import nest  # noqa: F401
    except Exception:
        return False
    return True


needs_nest = pytest.mark.skipif(not have_nest(), reason="NEST is not importable (run 'make setup')")


def fault_env(spec: str) -> dict:
    """Environment that makes one rank fail (see tests/fault_injection/sitecustomize.py)."""
    path = os.pathsep.join([str(FAULT_INJECTION), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"PYTHONPATH": path, "HPC_BRUNEL_TEST_FAULT": spec}


def hpc_brunel(*args, ranks: int = 1, threads: int | None = None, timeout: float = 600, env=None,
               check: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m hpc_brunel ARGS` (under mpirun when ranks > 1)."""
    from hpc_brunel.simulation.parallel import mpirun_argv

    cmd = [sys.executable, "-m", "hpc_brunel", *map(str, args)]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if ranks > 1 or threads:
        cmd, extra = mpirun_argv(ranks, threads or 1, cmd)
        full_env.update(extra)
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def wheel_venv():
    """A venv with the PyPI wheel of nest-simulator (no MPI), cached outside the repo."""
    out = subprocess.run(["bash", str(ROOT / "tools" / "setup-wheel-venv.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot create the PyPI-wheel venv: {out.stderr[-300:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def pytest_terminal_summary(terminalreporter):
    """Say plainly whether the real-SLURM tests ran (CI must show it)."""
    counts = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in terminalreporter.stats.get(outcome, []):
            if "test_slurm" in getattr(rep, "nodeid", ""):  # one- and two-node SLURM
                counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        terminalreporter.write_line("real-SLURM jobscript tests: " + ", ".join(f"{n} {o}" for o, n in counts.items()))


class Launched:
    """An mpirun (or single) process group that is always killed at the end."""

    def __init__(self, args, ranks=2, threads=1, env=None):
        from hpc_brunel.simulation.parallel import mpirun_argv

        cmd = [sys.executable, "-m", "hpc_brunel", *map(str, args)]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if ranks > 1:
            cmd, extra = mpirun_argv(ranks, threads, cmd)
            full_env.update(extra)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)

    def session_pids(self, settle_s: float = 5.0):
        """Every process still running in the job's session (mpirun, ranks, helpers);
        zombies (dead, waiting for init to reap them) do not count."""
        t0 = time.monotonic()
        while True:
            out = subprocess.run(["ps", "-o", "pid=,stat=", "-s", str(self.proc.pid)], capture_output=True,
                                 text=True).stdout.splitlines()
            alive = [int(ln.split()[0]) for ln in out if ln.split() and not ln.split()[1].startswith("Z")]
            if not alive or time.monotonic() - t0 > settle_s:
                return alive
            time.sleep(0.2)

    def rank_pids(self):
        """PIDs of the python ranks (children of mpirun, or the process itself)."""
        out = subprocess.run(["pgrep", "-s", str(self.proc.pid), "-f", "hpc_brunel run"], capture_output=True,
                             text=True).stdout.split()
        return [int(p) for p in out if int(p) != self.proc.pid or len(out) == 1]

    def wait(self, timeout=300):
        out, err = self.proc.communicate(timeout=timeout)
        self.ended = time.monotonic()
        return self.proc.returncode, out, err

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def launch():
    started = []

    def _launch(*args, **kw):
        job = Launched(*args, **kw)
        started.append(job)
        return job

    yield _launch
    for job in started:
        job.kill()


def wait_for_chunks(run_dir, n_chunks, ranks, timeout=120):
    from hpc_brunel.analysis.rankfiles import open_rank_file
    from hpc_brunel.simulation.recording import rank_file_name

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            done = []
            for r in range(ranks):
                with open_rank_file(run_dir / rank_file_name(r)) as f:
                    done.append(len(f["chunks/t_end_ms"]))
            if min(done) >= n_chunks:
                return done
        except (OSError, KeyError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"rank files of {run_dir} did not reach {n_chunks} chunks")
