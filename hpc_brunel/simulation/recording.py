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
import os
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

    @classmethod
    def resume(cls, path: Path, *, t_model_ms: float, run_id: str) -> "RankSpikeWriter":
        """Reopen a rank file to append after model time `t_model_ms` (a chunk end
        it holds: a checkpoint's time). Whatever it holds beyond that chunk (written
        after the checkpoint by a job that was then killed) is cut off, and the
        rank's end-of-run metadata is removed until the rank finishes again.

        A file whose writer was killed keeps HDF5's "open for writing" flags and
        cannot be reopened for writing; it is then copied, up to t_model_ms, into
        a new file that replaces it (readers of the old file are unaffected)."""
        path = Path(path)
        try:
            f = h5_open(path, "r+", libver="latest")
        except OSError:
            _copy_rank_file_until(path, t_model_ms)
            f = h5_open(path, "r+", libver="latest")
        try:
            if f.attrs.get("run_id") != run_id:
                raise ValueError(f"{path}: belongs to another run (run_id differs)")
            populations = tuple(json.loads(f.attrs["populations"]))
            t_end = f["chunks/t_end_ms"][:]
            rows = np.nonzero(np.abs(t_end - t_model_ms) < 1e-6)[0]
            if not len(rows):
                raise ValueError(f"{path}: has no chunk ending at {t_model_ms} ms (flushed up to "
                                 f"{t_end[-1] if len(t_end) else f.attrs['t_start_ms']} ms)")
            k = int(rows[0]) + 1
            counts = f["chunks/offsets"][k - 1].astype(np.int64)
            for i, pop in enumerate(populations):
                for name in ("node_ids", "times_ms"):
                    f[f"spikes/{pop}/{name}"].resize((int(counts[i]),))
            f["chunks/t_end_ms"].resize((k,))
            f["chunks/offsets"].resize((k, len(populations)))
            if "meta" in f:
                del f["meta"]
            f.flush()
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        self = cls.__new__(cls)
        self.path, self.populations, self._f, self._counts = path, populations, f, counts
        return self

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


def _copy_rank_file_until(path: Path, t_model_ms: float) -> None:
    """Replace the rank file `path` by a copy of itself up to the chunk that ends at
    t_model_ms (read in SWMR mode, as readers of a killed run's file do)."""
    tmp = path.with_name(path.name + ".resume-tmp")
    with h5_open(path, "r", swmr=True) as src, h5_open(tmp, "w", libver="latest") as dst:
        dst.attrs.update(dict(src.attrs))
        t_end = src["chunks/t_end_ms"][:]
        rows = np.nonzero(np.abs(t_end - t_model_ms) < 1e-6)[0]
        if not len(rows):
            raise ValueError(f"{path}: has no chunk ending at {t_model_ms} ms")
        k = int(rows[0]) + 1
        offsets = src["chunks/offsets"][:k]
        populations = json.loads(src.attrs["populations"])
        for i, pop in enumerate(populations):
            g = dst.create_group(f"spikes/{pop}")
            n = int(offsets[-1, i])
            for name, dtype in (("node_ids", "i8"), ("times_ms", "f8")):
                ds = g.create_dataset(name, shape=(n,), maxshape=(None,), dtype=dtype, chunks=(_CHUNK_ROWS,))
                for a in range(0, n, 1 << 22):  # bounded memory
                    ds[a:min(n, a + (1 << 22))] = src[f"spikes/{pop}/{name}"][a:min(n, a + (1 << 22))]
        dst.create_dataset("chunks/t_end_ms", data=t_end[:k], maxshape=(None,), chunks=(1024,))
        dst.create_dataset("chunks/offsets", data=offsets, maxshape=(None, len(populations)),
                           chunks=(1024, len(populations)))
    os.replace(tmp, path)


def read_recorder(recorder, offset_ms: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """This rank's events of one spike_recorder (times + offset_ms: the run's model
    time when NEST's clock lags it, in a continued run) and NEST's own count of
    them (n_events), then empty the recorder."""
    status = recorder.get(["events", "n_events"])
    ev = status["events"]
    ids = np.asarray(ev["senders"], dtype=np.int64)
    times = np.asarray(ev["times"], dtype=np.float64)
    if offset_ms:
        times = times + offset_ms
    recorder.set(n_events=0)
    return ids, times, int(status["n_events"])
