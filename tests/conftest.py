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


def nnmt_rate_hz(cfg) -> float:
    """The stationary rate [Hz] of Brunel's model A for a RunConfig, computed by an independent
    implementation: the Neuronal Network Meanfield Toolbox (nnmt 1.3, nnmt.lif.delta, Siegert formula
    solved by its own fixed-point ODE). The reference that hpc_brunel.theory.meanfield is checked
    against; nothing of hpc_brunel is used. Two identical populations E and I, each neuron with C_E
    inputs of weight J from E, C_I of weight -g J from I and C_E external Poisson sources of weight J
    at eta * nu_thr, nu_thr = (V_th - E_L) / (J C_E tau_m); voltages relative to E_L. Cached per
    parameter set (importing nnmt takes ~2 s)."""
    n, nu = cfg.network, cfg.neuron
    key = (n.indegree_excitatory, n.indegree_inhibitory, n.weight_mv, n.relative_inhibition, n.eta,
           nu.tau_m_ms, nu.t_ref_ms, nu.v_threshold_mv, nu.v_reset_mv, nu.e_l_mv)
    cache = nnmt_rate_hz.__dict__.setdefault("cache", {})
    if key not in cache:
        np = pytest.importorskip("numpy")
        delta = pytest.importorskip("nnmt.lif.delta", reason="nnmt (test dependency) is not installed")
        c_e, c_i, j_mv, g, eta, tau_ms, t_ref_ms, v_th, v_reset, e_l = map(float, key)
        j, tau_s = j_mv * 1e-3, tau_ms * 1e-3  # SI units: V, s
        nu_thr_hz = (v_th - e_l) * 1e-3 / (j * c_e * tau_s)
        rates = delta._firing_rates(
            J=np.array([[j, -g * j], [j, -g * j]]), K=np.array([[c_e, c_i], [c_e, c_i]]),
            V_0_rel=(v_reset - e_l) * 1e-3, V_th_rel=(v_th - e_l) * 1e-3, tau_m=tau_s, tau_r=t_ref_ms * 1e-3,
            J_ext=np.array([[j], [j]]), K_ext=np.array([[c_e], [c_e]]), nu_ext=np.array([eta * nu_thr_hz]),
            eps_tol=1e-12)
        assert abs(rates[0] - rates[1]) <= 1e-9 * max(abs(rates)) + 1e-12, rates  # E and I alike in model A
        cache[key] = float(rates[0])
    return cache[key]


def fault_env(spec: str) -> dict:
    """Environment that makes one rank fail (see tests/fault_injection/sitecustomize.py)."""
    path = os.pathsep.join([str(FAULT_INJECTION), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"PYTHONPATH": path, "HPC_BRUNEL_TEST_FAULT": spec}


def env_for(python: str, env: dict | None) -> dict:
    """The environment for a run with `python`: this one's, plus `env`; for another
    environment's python, PYTHONPATH keeps only this repository's entries (a NEST module's
    path, loaded for this environment, must not leak into the other one)."""
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    inherited = {p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    if Path(python) != Path(sys.executable) and full.get("PYTHONPATH"):
        keep = [p for p in full["PYTHONPATH"].split(os.pathsep)
                if p and (p not in inherited or Path(p).resolve().is_relative_to(ROOT))]
        full["PYTHONPATH"] = os.pathsep.join(keep)
    return full


def hpc_brunel(*args, ranks: int = 1, threads: int | None = None, timeout: float = 600, env=None,
               check: bool = False, python: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m hpc_brunel ARGS` (under the launcher of that Python's MPI when
    ranks > 1); `python`: another environment's interpreter (default: this one)."""
    from hpc_brunel.simulation.parallel import mpirun_argv

    python = str(python or sys.executable)
    cmd = [python, "-m", "hpc_brunel", *map(str, args)]
    full_env = env_for(python, env)
    if ranks > 1 or threads:
        cmd, extra = mpirun_argv(ranks, threads or 1, cmd, mpirun=launcher_of(python))
        full_env.update(extra)
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def launcher_of(python: str | Path) -> str:
    """The launcher of an environment's MPI: the mpiexec that the set-up linked beside
    its python (tools/setup-env.sh), else mpirun on PATH."""
    here = Path(python).parent / "mpiexec"
    return str(here) if here.exists() else "mpirun"


def mpi_family() -> str | None:
    """"openmpi" or "mpich": the MPI of the environment running the tests."""
    from hpc_brunel.simulation.parallel import library_family, mpi_library

    return library_family(mpi_library())


#: The environment of each MPI family (tools/setup-env.sh: `make setup` and `make setup MPI=mpich`).
MPI_VENVS = {"openmpi": ROOT / ".venv", "mpich": ROOT / ".venv-mpich"}


def venv_python(family: str) -> Path:
    """The python of the `family` MPI environment: this one when it is of that family,
    else the repository's .venv / .venv-mpich. Skips (in CI: fails) when it is not set up."""
    if mpi_family() == family:
        return Path(sys.executable)
    py = MPI_VENVS[family] / "bin" / "python"
    if not py.exists():
        pytest.skip(f"no {family} environment ({py}): run 'make setup MPI={family}'")
    return py


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

    def __init__(self, args, ranks=2, threads=1, env=None, python=None, mpirun=None):
        from hpc_brunel.simulation.parallel import mpirun_argv

        python = str(python or sys.executable)
        cmd = [python, "-m", "hpc_brunel", *map(str, args)]
        # Every process of the job carries this mark in its environment (launchers pass it on):
        # found by it, not by session, since Hydra starts its proxy and the ranks in new sessions.
        self.mark = f"{os.getpid()}-{id(self)}-{time.monotonic_ns()}"
        full_env = {**env_for(python, env), "HPC_BRUNEL_TEST_JOB": self.mark}
        if ranks > 1:
            cmd, extra = mpirun_argv(ranks, threads, cmd, mpirun=mpirun or launcher_of(python))
            full_env.update(extra)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)

    def _marked(self) -> list[tuple[int, str]]:
        """(pid, command line) of every live process that carries this job's mark."""
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if f"HPC_BRUNEL_TEST_JOB={self.mark}".encode() not in (d / "environ").read_bytes().split(b"\0"):
                    continue
                stat = (d / "stat").read_text()
                if stat[stat.rindex(")") + 2] == "Z":  # a zombie waiting to be reaped: gone
                    continue
                out.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")))
            except OSError:
                continue
        return out

    def session_pids(self, settle_s: float = 5.0):
        """Every process of the job still running (launcher, proxies, ranks, helpers)."""
        t0 = time.monotonic()
        while True:
            alive = [pid for pid, _ in self._marked()]
            if not alive or time.monotonic() - t0 > settle_s:
                return alive
            time.sleep(0.2)

    def rank_pids(self):
        """PIDs of the python ranks (not the launcher, even when its command line names them)."""
        launchers = ("mpiexec", "mpirun", "orterun", "srun", "hydra")
        ranks = [pid for pid, cmd in sorted(self._marked())
                 if "hpc_brunel run" in cmd and not os.path.basename(cmd.split()[0]).startswith(launchers)]
        return ranks or [self.proc.pid]

    def wait(self, timeout=300):
        out, err = self.proc.communicate(timeout=timeout)
        self.ended = time.monotonic()
        return self.proc.returncode, out, err

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid, _ in self._marked():  # Hydra's proxies and ranks live in sessions of their own
            try:
                os.kill(pid, signal.SIGKILL)
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


def rank_file_spikes(run_dir):
    """Every (node id, time in us) of a run's rank files, sorted (a 2 x n array)."""
    import json

    import h5py
    import numpy as np

    parts = []
    for path in sorted(Path(run_dir).glob("rank_*.h5")):
        with h5py.File(path, "r") as f:
            n = f["chunks/offsets"][-1]
            for i, pop in enumerate(json.loads(f.attrs["populations"])):
                ids = f[f"spikes/{pop}/node_ids"][: n[i]]
                t = np.rint(f[f"spikes/{pop}/times_ms"][: n[i]] * 1000).astype(np.int64)
                parts.append(np.stack([ids, t]))
    a = np.concatenate(parts, axis=1)
    return a[:, np.lexsort(a[::-1])]


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


def straight_reseeded_spikes(run_dir, tmp_path, ranks: int, threads: int) -> np.ndarray:
    """Every (node id, time in us) of straight_reseeded.py's run for `run_dir`, sorted by id, then
    time (2 x n)."""
    import numpy as np

    from hpc_brunel.simulation.parallel import mpirun_argv

    cmd, extra = mpirun_argv(ranks, threads, [sys.executable, str(ROOT / "tests/simulation/straight_reseeded.py"),
                                              str(run_dir), str(tmp_path / "ref")], mpirun=launcher_of(sys.executable))
    p = subprocess.run(cmd, cwd=ROOT, env={**env_for(sys.executable, None), **extra}, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    ref = np.concatenate([np.load(tmp_path / f"ref_{r}.npy") for r in range(ranks)], axis=1)
    ids, t_us = ref[0].astype(np.int64), np.rint(ref[1] * 1000).astype(np.int64)
    order = np.lexsort((t_us, ids))  # as conftest.rank_file_spikes: by id, then time
    return np.stack([ids[order], t_us[order]])
