"""The simulation layer: MPI ranks and launchers (parallel), NEST's kernel, the
network, per-rank recording, the run directory and provenance, and one run on
every rank (run). Imports NEST only inside functions, after MPI is up."""
