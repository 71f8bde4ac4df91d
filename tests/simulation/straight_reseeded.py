"""The reference for a continued run under Poisson drive: the run's network simulated
without a stop, NEST called directly, and reseeded at model time T - D of each seam T
with that segment's seed, where `run --continue` reseeds it in its pre-roll. The
Poisson events drawn from T - D on are the ones in flight at T (the drive's delay is
D); a continuation that loses, adds or shifts any of them, or any recurrent spike in
flight, does not give these spikes.

usage (under mpirun, the run's ranks x threads):
  python straight_reseeded.py RUN_DIR OUT_PREFIX
RUN_DIR: a continued run (its config.toml and run.json: seams, segment seeds, length);
writes OUT_PREFIX_<rank>.npy: node ids and spike times [ms] of this rank's neurons.
"""
import json
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI  # noqa: F401, I001  (MPI initialised before NEST, as hpc_brunel does)

import nest
from hpc_brunel.config import load_toml
from hpc_brunel.simulation import kernel, network

run_dir, out = Path(sys.argv[1]), sys.argv[2]
cfg = load_toml(run_dir / "config.toml")
record = json.loads((run_dir / "run.json").read_text())
sim, delay_ms = cfg.simulation, cfg.network.delay_ms
kernel.setup_kernel(nest, threads_per_rank=record["decomposition"]["threads_per_rank"],
                    resolution_ms=sim.resolution_ms, rng_seed=sim.rng_seed, settings=cfg.kernel)
net = network.build(nest, cfg)
marks = [(s["t_start_ms"] - delay_ms, s["nest_rng_seed"]) for s in record["segments"][1:]]
marks.append((float(record["t_model_reached_ms"]), None))
ids, times, t_ms = [], [], 0.0
for t_mark_ms, seed in marks:
    nest.Simulate(round(t_mark_ms - t_ms, 6))
    t_ms = t_mark_ms
    if seed is not None:
        nest.SetKernelStatus({"rng_seed": int(seed)})
    for rec in net.recorders.values():
        events = rec.get("events")
        ids.append(np.asarray(events["senders"], dtype=np.int64))
        times.append(np.asarray(events["times"], dtype=np.float64))
        rec.set(n_events=0)
np.save(f"{out}_{nest.Rank()}.npy", np.stack([np.concatenate(ids).astype(np.float64), np.concatenate(times)]))
