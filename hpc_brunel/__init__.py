"""hpc_brunel: the Brunel (2000) balanced network on NEST, across MPI ranks x threads.

Python API (imports neither NEST nor mpi4py):

    import hpc_brunel
    run = hpc_brunel.load_run("runs/brunel-...", t_start_ms=100, t_stop_ms=600)
"""
__version__ = "0.1.0"

__all__ = ["load_run", "Run", "Spikes", "__version__"]


def __getattr__(name):
    # Lazy: `python -m hpc_brunel run` must not import h5py before MPI is up.
    if name in ("load_run", "Run", "Spikes"):
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module 'hpc_brunel' has no attribute {name!r}")
