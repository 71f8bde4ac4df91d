"""Per-rank spike files.

Each rank appends its local spikes to its own HDF5 file after every simulated
chunk, then empties NEST's in-memory recorder, so memory stays bounded however
long the run. Files are written in HDF5's SWMR mode and flushed after every
chunk: another process can read them while the run goes on, and a rank killed
mid-run leaves a file that is readable up to its last flushed chunk.

Layout (RANK_LAYOUT_VERSION):
  /                     attrs: layout_version, rank, num_ranks, threads_per_rank,
                               run_id, t_start_ms
  /spikes/<population>/node_ids   int64, NEST global ids
  /spikes/<population>/times_ms   float64, sorted by time within each chunk
  /chunks/t_end_ms       float64 (n_chunks,)      model time reached by chunk k
  /chunks/offsets        int64  (n_chunks, n_pop) spikes per population written
                                                  up to and including chunk k
  /meta                  written once the rank finished (attrs, JSON values):
                         status, local neurons/synapses, NEST timers, memory,
                         Python phase wall times
Only the first chunks/offsets rows are authoritative: a reader trusts spikes up
to the offsets of the last row of chunks/t_end_ms.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

RANK_LAYOUT_VERSION = 1
_CHUNK_ROWS = 1 << 16


def h5_open(path: Path, mode: str, **kw) -> h5py.File:
    """h5py.File with HDF5 file locking set for cluster file systems: locks are
    used where the file system has them and ignored where it has not (Lustre
    without flock, some NFS), instead of failing with 'unable to lock file'.
    HDF5_USE_FILE_LOCKING in the environment (TRUE, FALSE, BEST_EFFORT) wins."""
    import os

    if "HDF5_USE_FILE_LOCKING" not in os.environ:
        kw.setdefault("locking", "best-effort")
    return h5py.File(path, mode, **kw)


def rank_file_name(rank: int) -> str:
    """The file name of a rank's spike file, e.g. rank_00003.h5."""
    return f"rank_{rank:05d}.h5"


def first_node_ids(n_excitatory: int) -> dict[str, int]:
    """NEST's global id of each population's first neuron, as the rank files hold
    them (NEST counts from 1; the network creates the excitatory population first)."""
    return {"excitatory": 1, "inhibitory": 1 + int(n_excitatory)}


class RankSpikeWriter:
    """Writes one rank's spikes to its own HDF5 file, chunk by chunk (SWMR: readable
    while the run goes on).

    Per population, node ids and times (ms) are appended sorted by time, then id;
    after each chunk, its end time and the cumulative spike counts per population
    are appended to chunks/t_end_ms and chunks/offsets, so a reader trusts exactly
    the spikes up to the last complete chunk.
    """

    def __init__(self, path: Path, *, populations, rank: int, num_ranks: int, threads_per_rank: int,
                 run_id: str, t_start_ms: float):
        self.path = Path(path)
        self.populations = tuple(populations)
        f = h5_open(self.path, "w", libver="latest")
        f.attrs.update(layout_version=RANK_LAYOUT_VERSION, rank=rank, num_ranks=num_ranks,
                       threads_per_rank=threads_per_rank, run_id=run_id, t_start_ms=t_start_ms,
                       populations=json.dumps(self.populations))
        for pop in self.populations:
            g = f.create_group(f"spikes/{pop}")
            g.create_dataset("node_ids", shape=(0,), maxshape=(None,), dtype="i8", chunks=(_CHUNK_ROWS,))
            g.create_dataset("times_ms", shape=(0,), maxshape=(None,), dtype="f8", chunks=(_CHUNK_ROWS,))
        f.create_dataset("chunks/t_end_ms", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
        f.create_dataset("chunks/offsets", shape=(0, len(self.populations)), maxshape=(None, len(self.populations)),
                         dtype="i8", chunks=(1024, len(self.populations)))
        f.swmr_mode = True  # from here on: only appends, readable by others
        self._f = f
        self._counts = np.zeros(len(self.populations), dtype=np.int64)

    @property
    def spike_counts(self) -> dict[str, int]:
        """population -> spikes written so far by this rank."""
        return dict(zip(self.populations, (int(c) for c in self._counts)))

    def append_chunk(self, t_end_ms: float, spikes: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """spikes: population -> (node_ids, times_ms) of this rank in this chunk."""
        f = self._f
        for i, pop in enumerate(self.populations):
            ids, times = spikes[pop]
            order = np.lexsort((ids, times))
            n_new = len(order)
            if n_new:
                for name, data in (("node_ids", ids[order]), ("times_ms", times[order])):
                    ds = f[f"spikes/{pop}/{name}"]
                    ds.resize((self._counts[i] + n_new,))
                    ds[self._counts[i]:] = data
                    ds.flush()
            self._counts[i] += n_new
        # The chunk marker goes last: readers trust spikes up to the marked offsets.
        off, t_end = f["chunks/offsets"], f["chunks/t_end_ms"]
        k = t_end.shape[0]
        off.resize((k + 1, len(self.populations)))
        off[k] = self._counts
        off.flush()
        t_end.resize((k + 1,))
        t_end[k] = t_end_ms
        t_end.flush()
        f.flush()

    def close(self, meta: dict | None = None) -> None:
        """Close the SWMR file; with `meta`, reopen it and record the rank's
        metadata (the rank finished)."""
        self._f.close()
        if meta is not None:
            with h5_open(self.path, "r+", libver="latest") as f:
                g = f.require_group("meta")
                for key, value in meta.items():
                    g.attrs[key] = json.dumps(value)


def read_recorder(recorder) -> tuple[np.ndarray, np.ndarray, int]:
    """This rank's events of one spike_recorder and NEST's own count of them
    (n_events), then empty the recorder."""
    status = recorder.get(["events", "n_events"])
    ev = status["events"]
    ids = np.asarray(ev["senders"], dtype=np.int64)
    times = np.asarray(ev["times"], dtype=np.float64)
    recorder.set(n_events=0)
    return ids, times, int(status["n_events"])
