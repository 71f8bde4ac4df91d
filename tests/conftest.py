"""Shared helpers: run hpc_brunel in a subprocess, on one rank or under mpirun."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PYNEST_QUIET", "1")

ROOT = Path(__file__).resolve().parents[1]

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


def hpc_brunel(*args, ranks: int = 1, threads: int | None = None, timeout: float = 600, env=None,
               check: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m hpc_brunel ARGS` (under mpirun when ranks > 1)."""
    from hpc_brunel.parallel import mpirun_argv

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
            if "test_slurm.py" in getattr(rep, "nodeid", ""):
                counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        terminalreporter.write_line("real-SLURM jobscript tests: " + ", ".join(f"{n} {o}" for o, n in counts.items()))
