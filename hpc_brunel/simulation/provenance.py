"""What ran where: software versions, NEST build, machine, launcher/SLURM context."""
from __future__ import annotations

import os
import platform
import socket
import sys

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES", "SLURM_NTASKS",
              "SLURM_NTASKS_PER_NODE", "SLURM_CPUS_PER_TASK", "SLURM_JOB_CPUS_PER_NODE", "SLURM_JOB_PARTITION",
              "SLURM_JOB_ACCOUNT", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_CLUSTER_NAME")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; platform's processor or machine elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """hostname, cpu_model, cpus_online and platform of this machine."""
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpus_online": os.cpu_count(),
        "platform": platform.platform(),
    }


def versions(nest=None) -> dict:
    """Versions of hpc_brunel, Python, numpy, h5py and HDF5, and where available mpi4py and the MPI
    library, NEST (when `nest` is given) and the options NEST was built with."""
    import h5py
    import numpy

    from hpc_brunel._version import __version__

    out = {
        "hpc_brunel": __version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "numpy": numpy.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
    }
    try:
        import mpi4py
        from mpi4py import MPI

        from hpc_brunel.simulation.parallel import mpi_library

        out["mpi4py"] = mpi4py.__version__
        out["mpi_library"] = mpi_library()
        out["mpi_standard"] = "%d.%d" % MPI.Get_version()
    except ImportError:
        pass
    if nest is not None:
        out["nest"] = nest.__version__
        out["nest_path"] = os.path.dirname(getattr(nest, "__file__", "") or "")
    opts = os.path.join(sys.prefix, "nest-build-options.txt")  # written by tools/setup-env.sh
    if os.path.exists(opts):
        with open(opts) as f:
            out["nest_build_options"] = f.read().strip()
    return out


def nest_build_info(nest) -> dict:
    """NEST's build_info (compiler, MPI, OpenMP, ...) with every value JSON-safe (for a
    NEST older than 3.10, what its SLI statusdict says)."""
    from hpc_brunel.simulation.kernel import nest_build_info as build_info

    info = build_info(nest)
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in info.items()}


def slurm_context(env=os.environ) -> dict:
    """The SLURM_VARS set in `env` (job id, nodes, tasks, ...), {} outside SLURM."""
    return {k: env[k] for k in SLURM_VARS if k in env}


def stack_line(v: dict) -> str:
    """One line naming the software stack a run uses, from `versions()`: Python (and
    which), NEST (and where), mpi4py and the MPI library."""
    parts = [f"Python {v.get('python')} ({v.get('python_executable')})"]
    if "nest" in v:
        parts.append(f"NEST {v['nest']} ({v.get('nest_path')})")
    if "mpi4py" in v:
        parts.append(f"mpi4py {v['mpi4py']}, MPI library: {v.get('mpi_library')}")
    else:
        parts.append("no mpi4py")
    return "; ".join(parts)


#: Extra memory per recorded neuron of an unpatched NEST's first BlockVector block
#: (tools/nest-patches/README.md, measured on NEST 3.10: 99 / 295 / 392 MiB for 12,500 neurons).
UNPATCHED_KIB_PER_RECORDED_NEURON = {"static_synapse_hom_w_hpc": 8, "static_synapse_hom_w": 24, "static_synapse": 32}


def nest_limitations(v: dict, timers: dict, synapse_model: str | None = None) -> list[str]:
    """What this NEST cannot give that our own build does, one line each: not patched
    (recording costs more memory) and no detailed timers (the per-phase timers are
    empty). `v` is `versions()`, `timers` one `kernel.kernel_timers()` reading."""
    out = []
    opts = v.get("nest_build_options")
    if opts is None or "patches=none" in opts:
        where = "a NEST not built by tools/setup-env.sh" if opts is None else "NEST_PATCHES=none"
        kib = UNPATCHED_KIB_PER_RECORDED_NEURON.get(synapse_model or "", 8)
        out.append(f"NEST not patched ({where}; tools/nest-patches): recording costs ~{kib} KiB more per "
                   f"recorded neuron ({synapse_model or 'static_synapse_hom_w_hpc'})")
    if "time_simulate" in timers and "time_update" not in timers:
        out.append("NEST built without detailed timers (-Dwith-detailed-timers=OFF): the per-phase timers "
                   "(update, deliver, communicate) are empty; time_simulate and the construction timers are kept")
    return out


def native_build_mismatch(v: dict, this_cpu: str | None = None) -> str | None:
    """A warning when NEST was built with -march=native on another CPU model than this
    one (tools/setup-env.sh records `cpu=<model>` in nest-build-options.txt for such
    builds): it may stop with 'Illegal instruction'. None otherwise."""
    opts = v.get("nest_build_options", "")
    if "march=native" not in opts or " cpu=" not in opts:
        return None
    built_on = " ".join(opts.split(" cpu=", 1)[1].split())  # as the set-up wrote it (xargs: single spaces)
    here = " ".join((this_cpu or cpu_model()).split())
    if built_on == here:
        return None
    return (f"NEST was built with -march=native on '{built_on}' and runs on '{here}': it may stop with "
            "'Illegal instruction'; rebuild on this node type or with NEST_OPTIMIZE='-O3;-march=<its CPU>' "
            "(make setup)")
