"""The one place that knows about MPI ranks, launchers and threads.

Everything else receives a `Parallel` object and calls its collectives; no other
module imports mpi4py or reads launcher variables. All collectives here are
called by every rank, so a decision (e.g. "this input is bad") is the same on
every rank and nobody is left waiting in a collective.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

# Launcher variables that tell how many ranks were started, whatever MPI says.
# SLURM_STEP_NUM_TASKS is set by srun for the step (SLURM_NTASKS is also set in
# a plain batch script that did not srun, so it would give false alarms).
LAUNCHER_SIZE_VARS = (
    "OMPI_COMM_WORLD_SIZE",  # Open MPI mpirun / srun with PMIx
    "PMI_SIZE",  # MPICH hydra, Intel MPI, srun --mpi=pmi2
    "PMIX_SIZE",
    "MV2_COMM_WORLD_SIZE",  # MVAPICH2
    "MPI_LOCALNRANKS",
    "SLURM_STEP_NUM_TASKS",  # srun
)


def launcher_size(env=os.environ) -> tuple[int, str | None]:
    """(number of ranks the launcher started, the variable that says so)."""
    for var in LAUNCHER_SIZE_VARS:
        if var == "SLURM_STEP_NUM_TASKS" and "SLURM_PROCID" not in env:
            continue
        try:
            n = int(env.get(var, ""))
        except ValueError:
            continue
        if n > 1:
            return n, var
    return 1, None


def launcher_rank(env=os.environ) -> int:
    """This process's rank as the launcher tells it (before MPI is initialised)."""
    for var in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID"):
        try:
            return int(env[var])
        except (KeyError, ValueError):
            continue
    return 0


def threads_per_rank(cli_threads: int | None, config_threads: int = 0, env=os.environ) -> tuple[int, str]:
    """Threads per rank: --threads, else the config, else SLURM_CPUS_PER_TASK, else
    OMP_NUM_THREADS, else 1. Returns (threads, where it came from)."""
    if cli_threads is not None:
        return cli_threads, "--threads"
    if config_threads:
        return config_threads, "simulation.threads_per_rank"
    for var in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        v = env.get(var, "").split(",")[0].strip()
        if v:
            try:
                n = int(v)
            except ValueError:
                continue
            if n >= 1:
                return n, var
    return 1, "default"


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class Parallel:
    """Rank, size and the few collectives the package needs (over mpi4py)."""

    rank: int
    size: int
    comm: object | None  # mpi4py communicator, None when run without MPI

    @classmethod
    def from_environment(cls) -> "Parallel":
        n_launched, _ = launcher_size()
        try:
            from mpi4py import MPI
        except ImportError:
            if n_launched > 1:
                raise RuntimeError("mpi4py is not installed but the launcher started several ranks; run 'make setup'")
            return cls(0, 1, None)
        comm = MPI.COMM_WORLD
        return cls(comm.Get_rank(), comm.Get_size(), comm)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()

    def bcast(self, obj, root: int = 0):
        return obj if self.comm is None else self.comm.bcast(obj, root=root)

    def gather(self, obj, root: int = 0):
        return [obj] if self.comm is None else self.comm.gather(obj, root=root)

    def allgather(self, obj):
        return [obj] if self.comm is None else self.comm.allgather(obj)

    def sum(self, value):
        if self.comm is None:
            return value
        from mpi4py import MPI

        return self.comm.allreduce(value, op=MPI.SUM)

    def max(self, value):
        if self.comm is None:
            return value
        from mpi4py import MPI

        return self.comm.allreduce(value, op=MPI.MAX)

    def first_error(self, message: str | None) -> str | None:
        """Collective: every rank passes its error (or None) and all get the
        lowest rank's error, so all ranks take the same branch."""
        errors = self.allgather(message)
        return next((e for e in errors if e), None)

    def abort(self, code: int) -> None:
        """Last resort when ranks can no longer agree (one rank died)."""
        sys.stdout.flush()
        sys.stderr.flush()
        if self.comm is not None and self.size > 1:
            self.comm.Abort(code)
        os._exit(code)


def choose_split(cores: int, have_mpi: bool = True) -> tuple[int, int]:
    """ranks x threads for `cores` cores. Rule (measured, scaling/README.md and
    BENCHMARKS.md): one rank per core. For the 12,500-neuron network at 2 VPs,
    2x1 and 1x2 simulate equally fast (3.66 s vs 3.51 s) but NEST's connect phase
    is not parallel over threads in this build (0.99 s vs 1.92 s) and 2x1 halves
    the peak memory per rank (551 vs 1001 MiB). Without MPI: threads only."""
    cores = max(1, int(cores))
    return (cores, 1) if have_mpi else (1, cores)


def _is_open_mpi(mpirun: str) -> bool:
    import subprocess

    try:
        out = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Open MPI" in out or "OpenRTE" in out


def mpirun_argv(n_ranks: int, threads: int, command: list[str], mpirun: str = "mpirun",
                cores: int | None = None) -> tuple[list[str], dict]:
    """The local mpirun command line for ranks x threads, and the environment it
    needs. With Open MPI: each rank gets `threads` cores (--map-by slot:PE=T),
    --oversubscribe only when ranks x threads exceed the cores, and the
    run-as-root variables only when running as root."""
    cores = cores or available_cpus()
    argv = [mpirun, "-n", str(n_ranks)]
    env = {"OMP_NUM_THREADS": str(threads)}
    if _is_open_mpi(mpirun):
        if n_ranks * threads > cores:
            argv += ["--oversubscribe", "--bind-to", "none"]
        elif threads > 1:
            argv += ["--map-by", f"slot:PE={threads}", "--bind-to", "core"]
        argv += ["-x", "OMP_NUM_THREADS"]
        if os.geteuid() == 0:
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return argv + list(command), env
