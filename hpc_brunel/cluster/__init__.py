"""The cluster layer: SLURM jobscripts rendered from templates/*.sbatch.in and
their submission (run, run -> analyze chain, scaling series, sweep arrays).
Launcher command lines themselves are built in hpc_brunel.simulation.parallel,
the one place that knows MPI launchers."""
