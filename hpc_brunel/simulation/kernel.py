"""NEST kernel set-up: import NEST quietly, check it matches the MPI launch, set
threads / resolution / seed before anything is created, and read the kernel's
timers and counters."""
from __future__ import annotations

import os

from hpc_brunel.constants import NEST_MIN_VERSION
from hpc_brunel.errors import NestSetupError  # noqa: F401 - raised here, caught by the run command
from hpc_brunel.simulation.parallel import Parallel, launcher_size, loaded_mpi_libraries, mixed_mpi_libraries

HOW_TO_GET_MPI_NEST = (
    "run 'make setup' (builds NEST with MPI from the sdist into .venv) and use .venv/bin/python, "
    "or load your cluster's MPI-enabled NEST module"
)


def nest_version(nest) -> tuple[int, int]:
    """(major, minor) of an imported NEST."""
    return tuple(int(x) for x in nest.__version__.split(".")[:2] if x.isdigit())


def nest_build_info(nest) -> dict:
    """NEST's build options (`nest.build_info`, NEST >= 3.10); for older releases the
    same keys from SLI's statusdict where it has them, so callers need not care."""
    info = getattr(nest, "build_info", None)
    if info is not None:
        return dict(info)
    out = {}
    sli = getattr(getattr(nest, "ll_api", None), "sli_func", None)
    if sli is not None:  # NEST <= 3.9: the statusdict of the SLI layer
        for key in ("have_mpi", "threading", "have_gsl", "have_music", "have_libneurosim", "have_sionlib",
                    "have_hdf5", "ndebug", "exitcodes", "built", "version", "prefix", "hostname", "hostos"):
            try:
                out[key] = sli(f"statusdict/{key} ::")
            except Exception:  # noqa: BLE001 - a key this release does not have
                continue
    return out


def nest_have_mpi(nest) -> bool:
    """Whether an imported NEST was built with MPI (any release)."""
    info = nest_build_info(nest)
    if "have_mpi" in info:
        return bool(info["have_mpi"])
    return bool(nest_links_mpi())


def get_verbosity(nest):
    """NEST's message level, as `set_verbosity` takes it back (any release)."""
    return nest.verbosity if hasattr(nest, "VerbosityLevel") else nest.get_verbosity()


def set_verbosity(nest, level) -> None:
    """Set NEST's message level: a name ("WARNING", "ERROR") or what `get_verbosity`
    returned. NEST 3.10 has `nest.verbosity = nest.VerbosityLevel.X`; older releases
    `nest.set_verbosity("M_X")` (their get_verbosity returns a number)."""
    if hasattr(nest, "VerbosityLevel"):
        nest.verbosity = getattr(nest.VerbosityLevel, level) if isinstance(level, str) else level
    elif isinstance(level, str):
        nest.set_verbosity(f"M_{level}")
    else:
        nest.set_verbosity(level)


def nest_mpi_libraries() -> list[str] | None:
    """The MPI core libraries (real paths) that the NEST `import nest` would load is
    linked against, found without importing it (a NEST without MPI exits the process
    with status 127 when imported under an MPI launcher; one built against another MPI
    than mpi4py's must not start MPI a second time). [] for a NEST without MPI; None:
    cannot tell (no ldd, no NEST)."""
    import importlib.util
    import re
    import shutil
    import subprocess
    from pathlib import Path

    from hpc_brunel.simulation.parallel import MPI_CORE_LIB

    spec = importlib.util.find_spec("nest")
    if spec is None or spec.origin is None or shutil.which("ldd") is None:
        return None
    libs = sorted(Path(spec.origin).parent.glob("*.so"))
    if not libs:
        return None
    found = set()
    for lib in libs:
        try:
            out = subprocess.run(["ldd", str(lib)], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        for line in out.splitlines():
            name, _, rest = line.strip().partition(" => ")
            if re.match(MPI_CORE_LIB, name) and rest.startswith("/"):
                found.add(os.path.realpath(rest.split(" (")[0]))
    return sorted(found)


def nest_links_mpi() -> bool | None:
    """Whether the NEST that `import nest` would load is linked against an MPI library
    (without importing it). None: cannot tell."""
    libs = nest_mpi_libraries()
    return None if libs is None else bool(libs)


# PyNEST 3.10 imports these at `import nest` when they are installed, for features a
# rank process of hpc_brunel never uses: pandas for NodeCollection.get(output="pandas")
# (nest/lib/hl_api_types.py, hl_api_sonata.py), matplotlib for spatial plotting
# (nest/lib/hl_api_spatial.py). Both imports sit in try/except ImportError. Measured
# 2026-11-27: VmRSS after `import nest` 123 MiB with them, 68 MiB without, per rank.
NEST_OPTIONAL_IMPORTS_HIDDEN = ("pandas", "matplotlib")


def import_nest():
    """Import NEST (after MPI is up) with pandas and matplotlib hidden during the
    import, so that NEST does not load them (55 MiB per rank). They stay importable
    afterwards (our plots import matplotlib themselves); a module already imported
    is left alone. Only NEST's pandas output and spatial plots are unavailable."""
    import sys

    os.environ.setdefault("PYNEST_QUIET", "1")
    hidden = [m for m in NEST_OPTIONAL_IMPORTS_HIDDEN if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # makes `import m` raise ImportError
    try:
        import nest  # noqa: PLC0415 - imported late on purpose: after MPI is up
    finally:
        for m in hidden:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    return nest


def precheck_mpi(par: Parallel) -> None:
    """Before `import nest`: refuse a multi-rank launch when NEST has no MPI."""
    n_launched, var = launcher_size()
    if n_launched > 1 and par.size == 1:
        from hpc_brunel.simulation.parallel import default_launcher, mpi_library

        raise NestSetupError(
            f"the launcher started {n_launched} ranks ({var}) but MPI sees 1 process: the launcher is of another MPI "
            f"than this Python's mpi4py ({mpi_library()}); start the job with {default_launcher()} "
            "('hpc_brunel launch' picks it), refusing to run duplicate simulations")
    n = max(par.size, n_launched)
    ours = loaded_mpi_libraries()
    nest_libs = nest_mpi_libraries() if ours or n > 1 else None  # ldd: only where there is an MPI to compare
    if nest_libs and ours and set(nest_libs) != set(ours):
        raise NestSetupError(
            f"NEST ({', '.join(nest_libs)}) and mpi4py ({', '.join(ours)}) are built against different MPI libraries; "
            "set up one environment per MPI: 'make setup' (Open MPI, .venv) or 'make setup MPI=mpich' (.venv-mpich), "
            "or build mpi4py with the MPI of your NEST module (MPICC=mpicc pip install --no-binary mpi4py mpi4py)")
    if n > 1 and nest_libs is not None and not nest_libs:
        raise NestSetupError(
            f"the launcher started {n} ranks ({var or 'MPI_COMM_WORLD'}) but the NEST on this Python path was built "
            f"without MPI (it is not linked to an MPI library); refusing to run {n} duplicate simulations; "
            f"{HOW_TO_GET_MPI_NEST}"
        )


def check_nest(nest, par: Parallel) -> None:
    """Refuse N duplicate simulations: the launcher, MPI and NEST must agree on
    the number of ranks."""
    if nest_version(nest) < NEST_MIN_VERSION:
        raise NestSetupError(f"NEST {nest.__version__} is too old: hpc_brunel needs NEST >= "
                             f"{'.'.join(map(str, NEST_MIN_VERSION))}; {HOW_TO_GET_MPI_NEST}")
    mixed = mixed_mpi_libraries()
    if mixed:
        raise NestSetupError(mixed)
    n_launched, var = launcher_size()
    n_nest = nest.NumProcesses()
    if n_nest != max(par.size, n_launched):
        have_mpi = nest_have_mpi(nest)
        why = "this NEST was built without MPI (have_mpi=False)" if not have_mpi else "NEST and mpi4py see different MPI worlds"
        launched = f"the launcher started {max(par.size, n_launched)} ranks ({var or 'MPI_COMM_WORLD'})"
        raise NestSetupError(
            f"{launched} but NEST sees {n_nest} process(es): {why}; "
            f"refusing to run {max(par.size, n_launched)} duplicate simulations; {HOW_TO_GET_MPI_NEST}"
        )
    if nest.Rank() != par.rank:
        raise NestSetupError(f"NEST rank {nest.Rank()} differs from MPI rank {par.rank}")


def setup_kernel(nest, *, threads_per_rank: int, resolution_ms: float, rng_seed: int,
                 settings: dict | None = None) -> dict:
    """Reset NEST and set it up; `settings` is the config's [kernel] section.
    Returns the effective values of every user-settable kernel attribute (for
    the provenance record)."""
    nest.ResetKernel()
    set_verbosity(nest, "WARNING")
    # local_num_threads must be set before any node exists.
    nest.SetKernelStatus(
        {
            "local_num_threads": threads_per_rank,
            "resolution": resolution_ms,
            "rng_seed": rng_seed,
            "print_time": False,
        }
    )
    if settings:
        nest.SetKernelStatus(dict(settings))
    return kernel_settings(nest)


def kernel_settings(nest) -> dict:
    """Current values of the kernel attributes a user may set in [kernel]."""
    from hpc_brunel.config import NEST_KERNEL_SETTABLE

    status = nest.GetKernelStatus()
    out = {}
    for key in NEST_KERNEL_SETTABLE:
        if key in status:
            v = status[key]
            out[key] = v.item() if hasattr(v, "item") else v
    return out


def nest_settable_kernel_keys(nest) -> set[str] | None:
    """NEST's own list of kernel attributes that can be set (None if this NEST
    does not expose it)."""
    mod = type(nest)
    names, readonly = getattr(mod, "_kernel_attr_names", None), getattr(mod, "_readonly_kernel_attrs", None)
    if names is None or readonly is None:
        return None
    return set(names) - set(readonly)


def check_kernel_settings(nest, settings: dict) -> str | None:
    """Try the [kernel] settings on a fresh kernel before anything is built or
    written: None if NEST takes them, else one line naming the key. The same
    input gives the same answer on every rank."""
    if not settings:
        return None
    known = set(nest.GetKernelStatus().keys())
    settable = nest_settable_kernel_keys(nest)
    for key in settings:
        if key not in known or (settable is not None and key not in settable):
            return f"kernel.{key}: not a settable kernel attribute of this NEST {nest.__version__}"
    def refused(d: dict) -> str | None:
        nest.ResetKernel()
        try:
            nest.SetKernelStatus(dict(d))
        except Exception as e:  # NEST's own message, on one line
            return " ".join(str(e).split())[:300]
        return None

    try:
        why = refused(settings)
        if why is None:
            return None
        for key, value in settings.items():  # name the culprit if one alone is refused
            one = refused({key: value})
            if one is not None:
                return f"kernel.{key} = {value!r}: NEST refuses it ({one})"
        return f"kernel settings {dict(settings)!r}: NEST refuses them together ({why})"
    finally:
        nest.ResetKernel()


def kernel_timers(nest) -> dict[str, float]:
    """All of NEST's time_* kernel counters (seconds), under NEST's own names, so
    they line up with beNNch. Per-thread lists are reduced to their max."""
    status = nest.GetKernelStatus()
    out: dict[str, float] = {}
    for key, value in status.items():
        if not key.startswith("time_"):
            continue
        try:
            if isinstance(value, (list, tuple)) or hasattr(value, "__len__"):
                out[key] = float(max(value)) if len(value) else 0.0
            else:
                out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


# NEST resets these at every Simulate() call; the others (construction, the
# first Prepare's target-data exchange) keep their values.
_PER_SIMULATE = ("simulate", "update", "spike_data", "secondary_data", "mpi_synchronization",
                 "omp_synchronization_simulation")


def is_per_simulate_timer(name: str) -> bool:
    """Whether NEST resets the kernel timer `name` at every Simulate() call (then calls are summed)."""
    return any(part in name for part in _PER_SIMULATE)


def accumulate_timers(total: dict[str, float], nest) -> dict[str, float]:
    """Add this Simulate() call's timers to `total` (simulation-phase timers are
    summed over calls, the others are taken as they are)."""
    for key, value in kernel_timers(nest).items():
        total[key] = total.get(key, 0.0) + value if is_per_simulate_timer(key) else value
    return total


def spike_exchange_status(nest) -> dict:
    """NEST's MPI spike exchange on this rank: the send buffer's size (SpikeData entries,
    8 bytes each in NEST 3, for all ranks together: MPI_Alltoall sends buffer / ranks to
    each), whether spikes are compressed (one entry per spike and target rank), and the
    largest number of spikes one rank sent to another in an exchange that made NEST
    resize its buffers (its resize log; None when it never resized)."""
    status = nest.GetKernelStatus()  # all of it: a NEST release may lack one of the keys (None then)
    log_ = status.get("spike_buffer_resize_log")
    sent = [float(x) for x in log_.get("global_max_spikes_sent", [])] if isinstance(log_, dict) else []
    size, compressed = status.get("buffer_size_spike_data"), status.get("use_compressed_spikes")
    return {"buffer_size_spike_data": None if size is None else int(size),
            "use_compressed_spikes": None if compressed is None else bool(compressed),
            "resize_max_spikes_sent": max(sent) if sent else None}


def release_freed_memory() -> bool:
    """Give memory the process has freed back to the system (glibc's malloc_trim(0);
    NEST's connections are many small blocks, which free() keeps in the heap). False
    where the C library has no malloc_trim."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


def memory_kib() -> dict[str, int]:
    """VmPeak / VmHWM / VmRSS of this process in KiB (Linux), else empty."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmPeak", "VmHWM", "VmRSS", "VmSize"):
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out
