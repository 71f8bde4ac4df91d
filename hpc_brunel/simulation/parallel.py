"""The one place that knows about MPI ranks, launchers and threads.

Everything else receives a `Parallel` object and calls its collectives; no other
module imports mpi4py or reads launcher variables. All collectives here are
called by every rank, so a decision (e.g. "this input is bad") is the same on
every rank and nobody is left waiting in a collective.

It is also the one place that decides what an unexpected error on any rank does
(`Parallel.run_guarded`, after mpi4py's `python -m mpi4py` runner): the failing
rank calls the failure hooks that the code registered (they write the run's
failure record), prints its traceback and one summary line, and calls
MPI_Abort, which ends every rank of the job. Without it, Open MPI + mpi4py
leave the failing rank blocked in MPI_Finalize and the others waiting in their
next collective, forever.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from hpc_brunel.errors import EXIT_FAILURE, print_error

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


# After the grace period the run still has to reach its next chunk boundary,
# close its files and write the record: keep this much of the launcher's
# SIGTERM -> SIGKILL window free.
GRACE_MARGIN_S = 10.0


def slurm_kill_wait_s(env=os.environ) -> float | None:
    """SLURM's KillWait: seconds between SIGTERM and SIGKILL when a job reaches
    its time limit or is cancelled. None outside a SLURM job or when scontrol
    cannot say."""
    import re
    import subprocess

    if "SLURM_JOB_ID" not in env:
        return None
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"^KillWait\s*=\s*(\d+)", out, re.MULTILINE)
    return float(m.group(1)) if m else None


def launcher_kill_window_s(env=os.environ) -> tuple[float, str] | None:
    """(seconds, what sets them) a rank has between the SIGTERM it gets when its
    job is stopped and the SIGKILL that follows; None when no launcher says.

    Measured here (README, reliability): Open MPI 4.1's mpirun, on SIGTERM or
    SIGINT (Ctrl-C), sends the ranks SIGCONT, waits odls_base_sigkill_timeout
    (default 1 s), sends SIGTERM, waits as long again, then SIGKILL. SLURM
    (time limit, scancel) sends SIGTERM and SIGKILL KillWait seconds later."""
    if "OMPI_MCA_orte_hnp_uri" in env:  # a rank started by Open MPI's mpirun
        try:
            t = float(env.get("OMPI_MCA_odls_base_sigkill_timeout", "1"))
        except ValueError:
            t = 1.0
        return t, "Open MPI's mpirun (odls_base_sigkill_timeout; export OMPI_MCA_odls_base_sigkill_timeout=N)"
    kill_wait = slurm_kill_wait_s(env)
    if kill_wait is not None:
        return kill_wait, "SLURM (KillWait)"
    return None


# The core library of each MPI implementation (not its C++/Fortran bindings), as the
# dynamic loader names it: Open MPI libmpi.so.40, MPICH libmpich.so.12, Intel MPI
# libmpi.so.12, Cray MPICH libmpi_cray.so / libmpich_<compiler>.so.
MPI_CORE_LIB = r"^lib(mpi|mpich|mpi_cray|mpich_[a-z]+)\.so(\.[0-9]+)*$"


def loaded_mpi_libraries(maps: str = "/proc/self/maps") -> list[str]:
    """The MPI core libraries mapped into this process (real paths, sorted); [] off Linux."""
    import re

    found = set()
    try:
        with open(maps) as f:
            for line in f:
                parts = line.split(None, 5)
                path = parts[5].strip() if len(parts) == 6 else ""
                if path.startswith("/") and re.match(MPI_CORE_LIB, os.path.basename(path)):
                    found.add(os.path.realpath(path))
    except OSError:
        return []
    return sorted(found)


def mixed_mpi_libraries(maps: str = "/proc/self/maps") -> str | None:
    """One line when this process has loaded two MPI libraries (mpi4py built against one
    MPI, NEST against another: every collective would go wrong), else None."""
    libs = loaded_mpi_libraries(maps)
    if len(libs) <= 1:
        return None
    return (f"two MPI libraries in one process: {', '.join(libs)} (mpi4py and NEST were built against different "
            "MPIs); set up one environment per MPI: 'make setup' (Open MPI, .venv) or 'make setup MPI=mpich' "
            "(.venv-mpich), and run with that environment's python and mpiexec")


def mpi_library() -> str | None:
    """The first line of MPI_Get_library_version of this Python's mpi4py, read without
    starting MPI (so a launcher process can ask); None without mpi4py."""
    try:
        import mpi4py

        if "mpi4py.MPI" not in sys.modules:
            mpi4py.rc.initialize = False
            mpi4py.rc.finalize = False
        from mpi4py import MPI
    except ImportError:
        return None
    return " ".join(MPI.Get_library_version().replace("\0", "").strip().splitlines()[0].split())


def library_family(library: str | None) -> str | None:
    """"openmpi" or "mpich" (MPICH and its derivatives) for an MPI_Get_library_version line."""
    if not library:
        return None
    return "openmpi" if "Open MPI" in library else "mpich"


def default_launcher() -> str:
    """The launcher for this Python's MPI: the `mpiexec` that the set-up linked beside the
    interpreter (.venv/bin, .venv-mpich/bin: the family mpi4py and NEST were built with),
    else `mpirun` on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else "mpirun"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; os.cpu_count() off Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Longest time the failure hooks may take (a hung shared file system) before the
# failing rank aborts the job anyway.
FAILURE_HOOK_TIMEOUT_S = 20.0

FailureHook = Callable[[BaseException, str], None]

# Seconds a failing rank waits after printing and before MPI_Abort under launchers other than
# Open MPI's mpirun (Parallel.abort), so that the launcher forwards what it printed.
ABORT_OUTPUT_GRACE_S = 0.5


@dataclass
class Parallel:
    """Rank, size and the few collectives the package needs (over mpi4py).

    `phase` says what this rank is doing (set by the code as it goes); it is
    reported with any unexpected error. `failure_hooks` are called, on the
    failing rank only, with (exception, phase) before the job is aborted."""

    rank: int
    size: int
    comm: object | None  # mpi4py communicator, None when run without MPI
    phase: str = "start"
    failure_hooks: list[FailureHook] = field(default_factory=list)

    @classmethod
    def from_environment(cls) -> "Parallel":
        """This process's rank and size in MPI.COMM_WORLD; rank 0 of 1 without
        mpi4py (RuntimeError if the launcher started several ranks then)."""
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
        """Whether this is rank 0."""
        return self.rank == 0

    def barrier(self) -> None:
        """Collective: wait until every rank has arrived (nothing without MPI)."""
        if self.comm is not None:
            self.comm.Barrier()

    def bcast(self, obj, root: int = 0):
        """Collective: rank `root`'s obj on every rank."""
        return obj if self.comm is None else self.comm.bcast(obj, root=root)

    def gather_to_root(self, obj, root: int = 0):
        """Collective: the list of every rank's obj (in rank order) on rank `root`, None elsewhere."""
        return [obj] if self.comm is None else self.comm.gather(obj, root=root)

    def allgather(self, obj):
        """Collective: the list of every rank's obj (in rank order) on every rank."""
        return [obj] if self.comm is None else self.comm.allgather(obj)

    def sum(self, value):
        """Collective: the sum of every rank's value, on every rank."""
        if self.comm is None:
            return value
        from mpi4py import MPI

        return self.comm.allreduce(value, op=MPI.SUM)

    def max(self, value):
        """Collective: the largest of every rank's value, on every rank."""
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
        """End every rank of the job now (MPI_Abort); a single process just exits."""
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            if self.comm is not None and self.size > 1 and "OMPI_COMM_WORLD_SIZE" not in os.environ:
                # Hydra (MPICH and derivatives) forwards a rank's output through its proxy, which
                # MPI_Abort tears down at once: the failure's traceback and summary line were lost
                # (2 of 6 fail-fast runs on a loaded 2-core machine). Give it time to forward them.
                time.sleep(ABORT_OUTPUT_GRACE_S)
        finally:
            if self.comm is not None and self.size > 1:
                self.comm.Abort(code)
            os._exit(code)

    def run_guarded(self, body: Callable[[], int]) -> int:
        """Run `body` (the whole command, on every rank) and return its exit status.

        An exception that escapes `body` on any rank, in any phase, ends the
        whole job within seconds: this rank runs the failure hooks (bounded by
        FAILURE_HOOK_TIMEOUT_S), prints its traceback and a one-line summary,
        and calls MPI_Abort(EXIT_FAILURE). The other ranks are killed by the
        MPI runtime wherever they are (in a collective, in NEST, in
        MPI_Finalize). A single-process run returns EXIT_FAILURE instead.
        SystemExit passes through: it is only used for decisions that every
        rank takes together (argument errors)."""
        try:
            return body()
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too: the job must end
            self._fail(exc)
            return EXIT_FAILURE

    def _fail(self, exc: BaseException) -> None:
        phase = self.phase
        watchdog = None
        if self.comm is not None and self.size > 1:
            # The hooks write to a (maybe shared, maybe hung) file system: never let them keep the job alive.
            watchdog = threading.Timer(FAILURE_HOOK_TIMEOUT_S, self.abort, args=(EXIT_FAILURE,))
            watchdog.daemon = True
            watchdog.start()
        try:
            notes = []
            for hook in list(self.failure_hooks):
                try:
                    hook(exc, phase)
                except BaseException as e:  # noqa: BLE001 - even a 2nd Ctrl-C: the record is best effort, the abort is not
                    notes.append(f"(could not record the failure: {type(e).__name__}: {e})")
            traceback.print_exception(exc, file=sys.stderr)
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            ranks = f"aborting all {self.size} ranks (MPI_Abort)" if self.size > 1 else "exiting"
            print_error(f"rank {self.rank} failed in phase '{phase}': {what}; {ranks}", *notes)
        finally:  # whatever happened above (a broken pipe, another signal), the job ends
            if watchdog is not None:
                watchdog.cancel()
                self.abort(EXIT_FAILURE)


def choose_split(cores: int, have_mpi: bool = True) -> tuple[int, int]:
    """ranks x threads for `cores` cores. Rule (measured, scaling/README.md and
    BENCHMARKS.md): one rank per core. For the 12,500-neuron network at 2 VPs,
    2x1 and 1x2 simulate equally fast (3.66 s vs 3.51 s) but NEST's connect phase
    is not parallel over threads in this build (0.99 s vs 1.92 s; 2026-11-25) and 2x1
    nearly halves the peak memory per rank (330 vs 587 MiB with the patched NEST,
    `make bench-memory`, 2026-11-27). Without MPI: threads only."""
    cores = max(1, int(cores))
    return (cores, 1) if have_mpi else (1, cores)


#: The launchers `mpirun_argv` knows, by what `<launcher> --version` prints.
LAUNCHERS = {
    "openmpi": "Open MPI's mpirun/mpiexec (ORTE/PRRTE)",
    "hydra": "MPICH's Hydra mpiexec (also Intel MPI, MVAPICH, ParaStation's mpiexec)",
    "srun": "SLURM's srun",
}


def launcher_flavour(mpirun: str) -> str:
    """Which launcher `mpirun` is: "openmpi", "hydra", "srun", or "unknown" (from its
    name and what `--version` prints: Open MPI names itself, Hydra prints "HYDRA build
    details", Intel MPI "Intel(R) MPI Library", srun "slurm <version>")."""
    import subprocess

    try:
        p = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=30)
        out = p.stdout + p.stderr
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if "Open MPI" in out or "OpenRTE" in out or "PRRTE" in out:
        return "openmpi"
    if "HYDRA" in out or "Intel(R) MPI Library" in out or "Hydra" in out:
        return "hydra"
    if os.path.basename(mpirun) == "srun" or out.lower().startswith("slurm "):
        return "srun"
    return "unknown"


def _is_open_mpi(mpirun: str) -> bool:
    return launcher_flavour(mpirun) == "openmpi"


def mpirun_argv(n_ranks: int, threads: int, command: list[str], mpirun: str | None = None,
                cores: int | None = None) -> tuple[list[str], dict]:
    """The command line that starts `command` as ranks x threads with the launcher
    `mpirun`, in that launcher's own syntax, and the environment it needs
    (OMP_NUM_THREADS = threads, which every launcher here hands to the ranks):

    - Open MPI: each rank gets `threads` cores (--map-by slot:PE=T --bind-to core),
      --oversubscribe --bind-to none only when ranks x threads exceed the cores, -x to
      pass the variable, the run-as-root variables only as root;
    - Hydra (MPICH and derivatives): -bind-to core:T per rank (-bind-to none when
      oversubscribed); Hydra passes the whole environment;
    - srun (inside an allocation): --cpus-per-task=T --cpu-bind=cores
      (--overcommit when oversubscribed); srun passes the whole environment;
    - anything else: only -n, and the ranks' binding is the launcher's default."""
    cores = cores or available_cpus()
    mpirun = mpirun or default_launcher()
    flavour = launcher_flavour(mpirun)
    over = n_ranks * threads > cores
    env = {"OMP_NUM_THREADS": str(threads)}
    if flavour == "srun":
        argv = [mpirun, "-n", str(n_ranks), f"--cpus-per-task={threads}",
                *(["--overcommit", "--cpu-bind=none"] if over else ["--cpu-bind=cores"])]
        return argv + list(command), env
    argv = [mpirun, "-n", str(n_ranks)]
    if flavour == "openmpi":
        if over:
            argv += ["--oversubscribe", "--bind-to", "none"]
        elif threads > 1:
            argv += ["--map-by", f"slot:PE={threads}", "--bind-to", "core"]
        argv += ["-x", "OMP_NUM_THREADS"]
        if os.geteuid() == 0:
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    elif flavour == "hydra":
        argv += ["-bind-to", "none" if over else f"core:{threads}"]
    return argv + list(command), env
