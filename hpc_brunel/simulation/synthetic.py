"""Synthetic run directories (rank files with random spikes, no NEST, no MPI) for
the tests and benchmarks of gather and analyze at any number of ranks."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hpc_brunel.config import RunConfig
from hpc_brunel.constants import POPULATIONS
from hpc_brunel.simulation import rundir
from hpc_brunel.simulation.recording import RankSpikeWriter, first_node_ids, rank_file_name


def write_run(run_dir: Path, *, n_ranks: int, n_excitatory: int, n_inhibitory: int, n_chunks: int,
              chunk_ms: float = 100.0, rate_hz: float = 5.0, resolution_ms: float = 0.1, seed: int = 0,
              run_id: str = "synthetic") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write run.json and one rank file per rank (neurons dealt round-robin to
    ranks, as NEST does; Poisson spike counts at rate_hz, times on the
    resolution grid) into run_dir. Returns population -> (ids within the
    population, times in ms) of every spike written."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    d = RunConfig().to_dict()
    d["network"].update(n_excitatory=n_excitatory, n_inhibitory=n_inhibitory)
    d["simulation"]["resolution_ms"] = resolution_ms
    t_stop = n_chunks * chunk_ms
    rundir.write_run_json(run_dir, {
        "layout_version": rundir.RUN_LAYOUT_VERSION, "run_id": run_id, "status": "complete",
        "decomposition": {"ranks": n_ranks, "threads_per_rank": 1, "virtual_processes": n_ranks},
        "config": d, "t_model_reached_ms": t_stop,
    })
    first = first_node_ids(n_excitatory)
    size = {"excitatory": n_excitatory, "inhibitory": n_inhibitory}
    truth = {p: ([], []) for p in POPULATIONS}
    steps_per_chunk = int(round(chunk_ms / resolution_ms))
    for r in range(n_ranks):
        w = RankSpikeWriter(run_dir / rank_file_name(r), populations=POPULATIONS, rank=r, num_ranks=n_ranks,
                            threads_per_rank=1, run_id=run_id, t_start_ms=0.0)
        own = {p: np.arange(r, size[p], n_ranks) + first[p] for p in POPULATIONS}
        for k in range(n_chunks):
            chunk = {}
            for p in POPULATIONS:
                n = rng.poisson(len(own[p]) * rate_hz * chunk_ms / 1000.0)
                ids = rng.choice(own[p], size=n) if len(own[p]) else np.empty(0, dtype=np.int64)
                t = (k * steps_per_chunk + rng.integers(1, steps_per_chunk + 1, size=n)) * resolution_ms
                chunk[p] = (ids, t)
                truth[p][0].append(ids - first[p])
                truth[p][1].append(t)
            w.append_chunk((k + 1) * chunk_ms, chunk)
        w.close(meta={"status": "complete"})
    return {p: (np.concatenate(truth[p][0]).astype(np.int64), np.concatenate(truth[p][1])) for p in POPULATIONS}
