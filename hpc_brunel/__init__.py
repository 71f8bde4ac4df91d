"""hpc_brunel: the Brunel (2000) balanced network on NEST, across MPI ranks x threads.

Python API (imports neither NEST nor mpi4py):

    import hpc_brunel
    run = hpc_brunel.load_run("runs/brunel-...", t_start_ms=100, t_stop_ms=600)

The package is layered (ARCHITECTURE.md): ``simulation`` (ranks, NEST, the run
directory), ``analysis`` (gather, statistics, labels, load_run), ``theory`` (mean
field, stability), ``studies`` (scaling, sweep, plan) and ``cluster`` (SLURM
jobscripts); ``cli`` and ``commands`` on top.
"""
from hpc_brunel._compat import install_aliases as _install_aliases
from hpc_brunel._version import __version__

__all__ = ["load_run", "Run", "Spikes", "__version__"]

_install_aliases()


def __getattr__(name):
    # Lazy: `python -m hpc_brunel run` must not import h5py before MPI is up.
    if name in ("load_run", "Run", "Spikes"):
        from hpc_brunel.analysis import results

        return getattr(results, name)
    raise AttributeError(f"module 'hpc_brunel' has no attribute {name!r}")
