"""Gather the per-rank spike files of a run into one SONATA spike file.

SONATA spike-file layout (the HDF5 format that NEST's SONATA support, BMTK and
libsonata read):
  /                               attrs: magic (uint32 0x0A7A), version (uint32 [0, 1])
  /spikes                         attrs: magic, version (a copy)
  /spikes/<population>            attrs: sorting = by_time (enum none/by_id/by_time),
                                         nest_first_node_id, n_neurons
  /spikes/<population>/timestamps float64, attr units = "ms"
  /spikes/<population>/node_ids   uint64, ids within the population from 0

The merge streams: per-rank files are written chunk by chunk, chunks are
disjoint in time and sorted within, so merging a block of consecutive chunks of
all ranks and appending it keeps the output sorted by time while holding one
block in memory. Each rank file is read once per block of ~2 M spikes (not once
per 100 ms chunk), and at most `max_open_files` files are open at once: with
more ranks, batches are merged into temporary files first (a k-way merge tree).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from hpc_brunel.analysis.rankfiles import (
    SpikeSource,
    check_complete,
    first_node_ids,
    is_partial,
    recorded_neurons,
)
from hpc_brunel.constants import POPULATIONS, SPIKES_FILE
from hpc_brunel.simulation.recording import h5_open

SONATA_SORTING = h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype="u1")
SONATA_MAGIC = 0x0A7A


GATHER_MAX_OPEN_ENV = "HPC_BRUNEL_GATHER_MAX_OPEN"
DEFAULT_MAX_OPEN_FILES = 64
#: File descriptors left to the rest of the process when the default follows the
#: soft limit on open files (stdio, Python's and HDF5's own, the output and a temporary
#: file): with `ulimit -n 64`, 64 rank files could not all be open (measured: errno 24
#: at the 61st of 64 real rank files).
RESERVED_FILE_DESCRIPTORS = 16
MERGE_BLOCK_SPIKES = 1 << 20  # spikes merged and written at once (~80 MiB with sort keys, order and copies)


def _open_files_allowed() -> int:
    """The soft limit on open files minus RESERVED_FILE_DESCRIPTORS (at least 2; 64 without a limit)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return DEFAULT_MAX_OPEN_FILES
    if soft == resource.RLIM_INFINITY or soft < 0:
        return DEFAULT_MAX_OPEN_FILES
    return max(2, int(soft) - RESERVED_FILE_DESCRIPTORS)


def _max_open_files(max_open_files: int | None) -> int:
    """The rank files open at once: as asked, else HPC_BRUNEL_GATHER_MAX_OPEN, else 64 or
    what the soft limit on open files leaves after RESERVED_FILE_DESCRIPTORS."""
    if max_open_files is None:
        env = os.environ.get(GATHER_MAX_OPEN_ENV)
        max_open_files = int(env) if env else min(DEFAULT_MAX_OPEN_FILES, _open_files_allowed())
    if max_open_files < 2:
        raise ValueError(f"max_open_files = {max_open_files}: need at least 2")
    return int(max_open_files)


def _time_id_order(t: np.ndarray, ids: np.ndarray, resolution_ms: float, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """Order by time, then id. Spike times lie on the resolution grid, so one
    integer key (time step * n_ids + id) sorts both at once; the input is a
    concatenation of sorted runs (one per source), which the stable sort (timsort)
    merges in O(n log runs). The result is checked: along the key order the times
    must not decrease. That suffices: equal times have equal steps, so a group of
    equal times lies inside one step, where the key order is the id order. Where
    the check fails (times off the grid), np.lexsort decides. Returns (order,
    t[order])."""
    if len(t) == 0:
        return np.empty(0, dtype=np.int64), t
    s_lo, s_hi = np.rint(t.min() / resolution_ms), np.rint(t.max() / resolution_ms)
    if ids.min() >= 0 and ids.max() < n_ids and s_lo >= 0 and (s_hi + 1) * n_ids < 2.0**62:
        key = np.rint(t / resolution_ms).astype(np.int64)
        key *= n_ids
        key += ids
        order = np.argsort(key, kind="stable")
        del key
        t_o = t[order]
        if not np.any(t_o[1:] < t_o[:-1]):
            return order, t_o
    order = np.lexsort((ids, t))
    return order, t[order]


class _SonataSink:
    """Appends merged spikes to the SONATA file (ids within the population, from 0)."""

    def __init__(self, dsets: dict, first_id: dict):
        self.dsets, self.first_id = dsets, first_id
        self.counts = dict.fromkeys(dsets, 0)

    def append(self, pop: str, ids: np.ndarray, t: np.ndarray) -> None:
        ts, nid = self.dsets[pop]
        n0 = self.counts[pop]
        ts.resize((n0 + len(t),))
        nid.resize((n0 + len(t),))
        ts[n0:] = t
        ids -= self.first_id[pop]  # (a copy made by the merge) ids within the population, >= 0
        nid[n0:] = ids.view(np.uint64)
        self.counts[pop] += len(t)

    def end_chunks(self, t_end_ms: np.ndarray, offsets: np.ndarray) -> None:
        pass


class _RankLayoutSink:
    """A temporary file in the rank-file layout (global ids, chunk offsets), the
    merge of one batch of sources: the next level merges it like a rank file."""

    def __init__(self, path: Path, pops: tuple):
        self.path, self.pops = path, pops
        self.f = h5_open(path, "w")
        self.f.attrs["populations"] = json.dumps(list(pops))
        for p in pops:
            for name, dt in (("node_ids", "i8"), ("times_ms", "f8")):
                self.f.create_dataset(f"spikes/{p}/{name}", shape=(0,), maxshape=(None,), dtype=dt,
                                      chunks=(1 << 16,))
        self.f.create_dataset("chunks/t_end_ms", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
        self.f.create_dataset("chunks/offsets", shape=(0, len(pops)), maxshape=(None, len(pops)), dtype="i8",
                              chunks=(1024, len(pops)))

    def append(self, pop: str, ids: np.ndarray, t: np.ndarray) -> None:
        for name, data in (("node_ids", ids), ("times_ms", t)):
            ds = self.f[f"spikes/{pop}/{name}"]
            n0 = ds.shape[0]
            ds.resize((n0 + len(data),))
            ds[n0:] = data

    def end_chunks(self, t_end_ms: np.ndarray, offsets: np.ndarray) -> None:
        for name, data in (("chunks/t_end_ms", t_end_ms), ("chunks/offsets", offsets)):
            ds = self.f[name]
            n0 = ds.shape[0]
            ds.resize((n0 + len(data), *ds.shape[1:]))
            ds[n0:] = data

    def close(self) -> None:
        self.f.close()


def _merge(paths: list[Path], sink, t_until: float, pops: tuple, resolution_ms: float, n_ids: int,
           block_spikes: int) -> int:
    """Merge sources in the rank-file layout (each sorted by time then id within
    each chunk; chunks common to all sources) into `sink`, block by block of
    whole chunks (~block_spikes spikes): each source is read once per block, so
    the reads grow as sources x blocks, not sources x chunks. Returns the number
    of chunks merged (those all sources hold up to t_until)."""
    files = []
    try:
        for p in paths:
            files.append(SpikeSource(p))
        cols = [[src.column(p) for p in pops] for src in files]
        offsets = [src.offsets for src in files]
        n_chunks = min(src.chunks_until(t_until) for src in files) if files else 0
        t_end = files[0].t_end_ms[:n_chunks] if files else np.empty(0)
        n_chunks = n_chunks or 0
        # cumulative spikes per chunk and population over all sources
        total = np.zeros((n_chunks, len(pops)), dtype=np.int64)
        for off, c in zip(offsets, cols):
            total += off[:n_chunks][:, c]
        per_chunk = np.diff(np.vstack([np.zeros((1, len(pops)), dtype=np.int64), total]), axis=0).sum(axis=1)
        k0 = 0
        while k0 < n_chunks:
            k1, n = k0 + 1, int(per_chunk[k0])
            while k1 < n_chunks and n + per_chunk[k1] <= block_spikes:
                n += int(per_chunk[k1])
                k1 += 1
            for j, p in enumerate(pops):
                spans = []
                for f, off, c in zip(files, offsets, cols):
                    a = int(off[k0 - 1, c[j]]) if k0 else 0
                    b = int(off[k1 - 1, c[j]])
                    if b > a:
                        spans.append((f, a, b))
                n_p = sum(b - a for _, a, b in spans)
                if n_p == 0:
                    continue
                t = np.empty(n_p, dtype=np.float64)
                i = np.empty(n_p, dtype=np.int64)
                o = 0
                for f, a, b in spans:  # read straight into the merge buffers
                    f.times_ms(p).read_direct(t, np.s_[a:b], np.s_[o:o + b - a])
                    f.node_ids(p).read_direct(i, np.s_[a:b], np.s_[o:o + b - a])
                    o += b - a
                if len(spans) == 1:
                    sink.append(p, i, t)  # one source: already sorted by time, then id
                else:
                    order, t_o = _time_id_order(t, i, resolution_ms, n_ids)
                    del t
                    sink.append(p, i[order], t_o)
            sink.end_chunks(t_end[k0:k1], total[k0:k1])
            k0 = k1
        return n_chunks
    finally:
        for f in files:
            f.close()


def gather(run_dir: Path, *, partial: bool = False, max_open_files: int | None = None,
           block_spikes: int = MERGE_BLOCK_SPIKES) -> dict:
    """Merge the rank files into <run>/spikes.h5 (SONATA). Returns a summary.

    The file is written under a temporary name and renamed when complete, so a
    spikes.h5 that exists is whole.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run directory.
    partial : bool
        Merge up to the last model time all ranks flushed, for an unfinished run.
    max_open_files : int, optional
        At most this many spike files are open for reading at once (plus the one
        being written); default: env HPC_BRUNEL_GATHER_MAX_OPEN, else 64, or fewer
        where the soft limit on open files (`ulimit -n`) leaves less. With more
        ranks, batches of that many rank files are first merged into temporary
        files in the run directory (removed afterwards), which are merged in turn.
    block_spikes : int
        Spikes merged at once (whole chunks; at least one chunk): bounds memory.

    Returns
    -------
    dict
        spikes (population -> spikes written), n_neurons (population -> recorded
        neurons), t_start_ms and t_stop_ms (the recorded span, ms), n_chunks, ranks,
        partial (whether the run is incomplete), max_open_files.

    Raises
    ------
    IncompleteRunError
        If `run_dir` is not a run directory, or its rank files are missing, broken
        or unfinished (without `partial`; see
        :func:`hpc_brunel.analysis.rankfiles.check_complete`).
    ValueError
        If max_open_files (or HPC_BRUNEL_GATHER_MAX_OPEN) is below 2.
    """
    run_dir = Path(run_dir)
    record, states, t_until = check_complete(run_dir, partial)
    cfg = record["config"]
    pops = POPULATIONS
    first_id = first_node_ids(cfg["network"]["n_excitatory"])
    n_neurons = recorded_neurons(cfg)
    n_ids = 2 + cfg["network"]["n_excitatory"] + cfg["network"]["n_inhibitory"]
    resolution_ms = float(cfg["simulation"]["resolution_ms"])
    max_open = _max_open_files(max_open_files)

    partial_run = is_partial(record, t_until)
    sources = [s.path for s in states]
    temps: list[Path] = []
    tmp = run_dir / (SPIKES_FILE + ".tmp")
    n_chunks = None
    try:
        level = 0
        while len(sources) > max_open:  # merge batches of max_open sources into temporary files
            merged = []
            for b in range(0, len(sources), max_open):
                path = run_dir / f".gather-l{level}-{b // max_open:05d}.h5.tmp"
                temps.append(path)
                sink = _RankLayoutSink(path, pops)
                try:
                    k = _merge(sources[b:b + max_open], sink, t_until, pops, resolution_ms, n_ids, block_spikes)
                finally:
                    sink.close()
                n_chunks = k if n_chunks is None else min(n_chunks, k)
                merged.append(path)
            for p in sources:
                if p in temps:
                    p.unlink()
            sources, level = merged, level + 1
        with h5_open(tmp, "w") as out:
            # SONATA: magic and version on the file root (where the spec, libsonata
            # and bmtk look); a copy on /spikes for readers of the earlier files.
            for obj in (out, out.require_group("spikes")):
                obj.attrs["magic"] = np.uint32(SONATA_MAGIC)
                obj.attrs["version"] = np.array([0, 1], dtype=np.uint32)
            root = out["spikes"]
            dsets = {}
            for p in pops:
                g = root.create_group(p)
                g.attrs.create("sorting", 2, dtype=SONATA_SORTING)
                g.attrs["nest_first_node_id"] = first_id[p]
                g.attrs["n_neurons"] = n_neurons[p]
                ts = g.create_dataset("timestamps", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1 << 16,))
                ts.attrs["units"] = "ms"
                ids = g.create_dataset("node_ids", shape=(0,), maxshape=(None,), dtype="u8", chunks=(1 << 16,))
                dsets[p] = (ts, ids)
            sink = _SonataSink(dsets, first_id)
            k = _merge(sources, sink, t_until, pops, resolution_ms, n_ids, block_spikes)
            n_chunks = k if n_chunks is None else min(n_chunks, k)
            counts = sink.counts
            root.attrs["hpc_brunel_t_start_ms"] = float(cfg["simulation"]["presim_ms"])
            root.attrs["hpc_brunel_t_stop_ms"] = float(t_until)
            root.attrs["hpc_brunel_partial"] = partial_run
        os.replace(tmp, run_dir / SPIKES_FILE)
    finally:
        for p in temps:
            p.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return {"spikes": counts, "n_neurons": n_neurons, "t_start_ms": float(cfg["simulation"]["presim_ms"]),
            "t_stop_ms": float(t_until), "n_chunks": n_chunks, "ranks": len(states),
            "partial": partial_run, "max_open_files": max_open}


def read_sonata(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    """Read a whole SONATA spike file into memory.

    Parameters
    ----------
    path : pathlib.Path
        A SONATA spike file (spikes.h5).

    Returns
    -------
    dict
        population -> (node ids within the population as int64, timestamps in ms,
        the population group's attributes: n_neurons, nest_first_node_id, sorting, ...).
    """
    out = {}
    with h5_open(path, "r") as f:
        for p, g in f["spikes"].items():
            out[p] = (g["node_ids"][:].astype(np.int64), g["timestamps"][:], dict(g.attrs))
    return out


SONATA_BLOCK_SPIKES = 1 << 20  # spikes per block when streaming a SONATA file (16 MiB of ids + times)


def sonata_populations(path: Path) -> dict[str, dict]:
    """population -> its group attributes (n_neurons, nest_first_node_id, ...), reading no spikes."""
    with h5_open(path, "r") as f:
        return {p: dict(g.attrs) for p, g in f["spikes"].items()}


def iter_sonata_blocks(path: Path, population: str, block_spikes: int = SONATA_BLOCK_SPIKES):
    """Yield (node_ids within the population as int64, timestamps in ms) of one
    population in blocks of at most block_spikes spikes, in file order (by time):
    memory of one block whatever the file size.

    Parameters
    ----------
    path : pathlib.Path
        A SONATA spike file (spikes.h5).
    population : str
        "excitatory" or "inhibitory".
    block_spikes : int
        Largest block, spikes.

    Yields
    ------
    (numpy.ndarray of int64, numpy.ndarray of float64)
        Node ids within the population and spike times in ms of the next block.

    Raises
    ------
    KeyError
        If the file has no such population.
    """
    with h5_open(path, "r") as f:
        g = f["spikes"][population]
        ts, ids = g["timestamps"], g["node_ids"]
        n = ts.shape[0]
        for a in range(0, n, block_spikes):
            b = min(n, a + block_spikes)
            yield ids[a:b].view(np.int64), ts[a:b]  # ids < 2**63: the same bits, no copy


def bisect_sorted(ds, value: float, lo: int = 0, hi: int | None = None) -> int:
    """First index i with ds[i] >= value in a sorted 1-d dataset, reading
    O(log n) blocks (no full read)."""
    hi = ds.shape[0] if hi is None else hi
    block = 4096
    while hi - lo > block:
        mid = (lo + hi) // 2
        if ds[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo + int(np.searchsorted(ds[lo:hi], value, side="left"))


def read_sonata_window(path: Path, t_start_ms: float, t_stop_ms: float,
                       max_node_id: dict | None = None) -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    """Like read_sonata, but only the spikes in [t_start_ms, t_stop_ms) (found by
    bisection on the time-sorted timestamps), optionally only node ids below
    max_node_id[population]: memory bounded by the window, not the run.

    Parameters
    ----------
    path : pathlib.Path
        A SONATA spike file sorted by time (spikes.h5).
    t_start_ms, t_stop_ms : float
        The window [t_start_ms, t_stop_ms), ms.
    max_node_id : dict, optional
        population -> keep only node ids (within the population) below this.

    Returns
    -------
    dict
        population -> (node ids as int64, timestamps in ms, group attributes), as
        :func:`read_sonata`.
    """
    out = {}
    with h5_open(path, "r") as f:
        for p, g in f["spikes"].items():
            ts, ids = g["timestamps"], g["node_ids"]
            a = bisect_sorted(ts, t_start_ms)
            b = bisect_sorted(ts, t_stop_ms, lo=a)
            i, t = ids[a:b].astype(np.int64), ts[a:b]
            if max_node_id is not None and p in max_node_id:
                keep = i < max_node_id[p]
                i, t = i[keep], t[keep]
            out[p] = (i, t, dict(g.attrs))
    return out
