"""hpc_brunel: the Brunel (2000) balanced network on NEST, across MPI ranks x threads."""
__version__ = "0.1.0"
