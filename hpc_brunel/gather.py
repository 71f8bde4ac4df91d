"""Gather the per-rank spike files of a run into one SONATA spike file.

SONATA spike-file layout (the HDF5 format that NEST's SONATA support, BMTK and
libsonata read):
  /                               attrs: magic, version (on the file root, per the SONATA spec)
  /spikes/<population>            attrs: sorting = by_time (enum none/by_id/by_time),
                                         nest_first_node_id, n_neurons
  /spikes/<population>/timestamps float64, attr units = "ms"
  /spikes/<population>/node_ids   uint64, ids within the population from 0

The merge streams: per-rank files are written chunk by chunk, chunks are
disjoint in time and sorted within, so merging chunk k of all ranks and
appending it keeps the output sorted by time while holding one chunk in memory.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from . import rundir
from .recording import RANK_LAYOUT_VERSION, open_rank_file, rank_file_name, read_meta

SPIKES_FILE = "spikes.h5"
SONATA_SORTING = h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype="u1")
SONATA_MAGIC = 0x0A7A


class IncompleteRunError(RuntimeError):
    """The run's rank files are missing or unfinished."""


@dataclass
class RankState:
    rank: int
    path: Path
    exists: bool
    finished: bool = False  # rank wrote its metadata at the end
    t_flushed_ms: float = 0.0  # model time of its last flushed chunk
    n_chunks: int = 0
    error: str | None = None


def inspect_ranks(run_dir: Path, record: dict) -> list[RankState]:
    states = []
    for r in range(record["decomposition"]["ranks"]):
        path = Path(run_dir) / rank_file_name(r)
        st = RankState(r, path, path.exists())
        if st.exists:
            try:
                with open_rank_file(path) as f:
                    if f.attrs.get("layout_version") != RANK_LAYOUT_VERSION:
                        raise ValueError(f"layout_version {f.attrs.get('layout_version')}")
                    if f.attrs.get("run_id") != record["run_id"]:
                        raise ValueError("belongs to another run (run_id differs)")
                    t_end = f["chunks/t_end_ms"][:]
                    st.n_chunks = len(t_end)
                    st.t_flushed_ms = float(t_end[-1]) if len(t_end) else float(f.attrs["t_start_ms"])
                    st.finished = read_meta(f) is not None
            except (OSError, KeyError, ValueError) as e:
                st.error = str(e)
        states.append(st)
    return states


def check_complete(run_dir: Path, partial: bool = False) -> tuple[dict, list[RankState], float]:
    """Returns (run record, rank states, model time up to which all ranks are on
    disk). Raises IncompleteRunError unless the run is complete (or, with
    partial=True, unless at least one chunk of every rank is on disk)."""
    run_dir = Path(run_dir)
    if not (run_dir / rundir.RUN_JSON).exists():
        raise IncompleteRunError(f"{run_dir} is not an hpc_brunel run directory (no {rundir.RUN_JSON})")
    record = rundir.read_run_json(run_dir)
    if record.get("layout_version") != rundir.RUN_LAYOUT_VERSION:
        raise IncompleteRunError(f"{run_dir}: run directory layout_version {record.get('layout_version')!r}, "
                                 f"this hpc_brunel reads {rundir.RUN_LAYOUT_VERSION}")
    states = inspect_ranks(run_dir, record)
    missing = [s.rank for s in states if not s.exists]
    broken = [f"{s.rank} ({s.error})" for s in states if s.error]
    unfinished = [s.rank for s in states if s.exists and not s.error and not s.finished]
    usable = [s for s in states if s.exists and not s.error]
    t_common = min((s.t_flushed_ms for s in usable), default=0.0) if not missing and not broken else 0.0
    status = record.get("status")
    clean = not (missing or broken or unfinished)
    if status == "complete" and clean:
        return record, states, float(record["t_model_reached_ms"])
    if status == "terminated" and clean and all(s.t_flushed_ms == record.get("t_model_reached_ms") for s in states):
        # Stopped by SIGTERM/SIGINT at a chunk boundary that every rank reached and
        # closed: a consistent run up to that model time (the analysis says so).
        return record, states, float(record["t_model_reached_ms"])
    failures = rundir.read_failures(run_dir)
    problems = []
    if failures:
        problems += [f"the run failed: {rundir.describe_failure(f)}" for f in failures]
    elif status == "failed":
        problems.append("run status is 'failed'" + (f": {rundir.describe_failure(record['failure'])}"
                                                     if record.get("failure") else ""))
    elif status == "running":
        alive = rundir.RunLock.is_held(run_dir)
        problems.append("the run is still running" if alive else
                        "run status is 'running' but no process holds its lock: its ranks were killed"
                        if alive is False else
                        "run status is 'running' and file locks are unavailable here: it may still be running "
                        "on another host, or its ranks were killed")
    elif status != "complete":
        problems.append(f"run status is '{status}'" + (f" at {record.get('t_model_reached_ms')} ms of model time"
                                                        if status == "terminated" else ""))
    if missing:
        problems.append(f"rank file(s) missing for rank(s) {missing}")
    if broken:
        problems.append(f"unreadable rank file(s): {', '.join(broken)}")
    if unfinished:
        problems.append(f"rank(s) {unfinished} did not finish" + (" (the job was aborted)" if failures else ""))
    t0 = float(record["config"]["simulation"]["presim_ms"])
    if partial and not missing and not broken and t_common > t0:
        return record, states, t_common
    hint = (f"; all ranks flushed up to {t_common:.1f} ms: 'analyze --partial' analyzes that much"
            if not missing and not broken and t_common > t0 else "")
    raise IncompleteRunError(f"{run_dir}: incomplete run: " + "; ".join(problems) + hint)


def gather(run_dir: Path, *, partial: bool = False) -> dict:
    """Merge the rank files into <run>/spikes.h5 (SONATA). Returns a summary."""
    run_dir = Path(run_dir)
    record, states, t_until = check_complete(run_dir, partial)
    cfg = record["config"]
    pops = ("excitatory", "inhibitory")
    first_id = {"excitatory": 1, "inhibitory": 1 + cfg["network"]["n_excitatory"]}
    n_rec = cfg["recording"]["n_record_per_population"]
    n_neurons = {p: n_rec or cfg["network"][f"n_{p}"] for p in pops}

    reached = record.get("t_model_reached_ms")
    # A run stopped by SIGTERM at a chunk boundary is complete up to the model time it reached.
    is_partial = record.get("status") not in ("complete", "terminated") or reached is None or t_until < float(reached)
    files = [open_rank_file(s.path) for s in states]
    try:
        p_index = [json.loads(f.attrs["populations"]) for f in files]
        t_ends = [f["chunks/t_end_ms"][:] for f in files]
        offsets = [f["chunks/offsets"][:] for f in files]
        n_chunks = min(int(np.searchsorted(t, t_until + 1e-9, side="right")) for t in t_ends)
        tmp = run_dir / (SPIKES_FILE + ".tmp")
        counts = dict.fromkeys(pops, 0)
        with h5py.File(tmp, "w") as out:
            out.attrs["magic"] = np.uint32(SONATA_MAGIC)
            out.attrs["version"] = np.array([0, 1], dtype=np.uint32)
            root = out.create_group("spikes")
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
            for k in range(n_chunks):
                for p in pops:
                    parts_t, parts_i = [], []
                    for f, pidx, off in zip(files, p_index, offsets):
                        j = pidx.index(p)
                        a = int(off[k - 1, j]) if k else 0
                        b = int(off[k, j])
                        if b > a:
                            parts_t.append(f[f"spikes/{p}/times_ms"][a:b])
                            parts_i.append(f[f"spikes/{p}/node_ids"][a:b])
                    if not parts_t:
                        continue
                    t = np.concatenate(parts_t)
                    i = np.concatenate(parts_i) - first_id[p]
                    order = np.lexsort((i, t))
                    ts, ids = dsets[p]
                    n0 = counts[p]
                    ts.resize((n0 + len(t),))
                    ids.resize((n0 + len(t),))
                    ts[n0:] = t[order]
                    ids[n0:] = i[order].astype(np.uint64)
                    counts[p] += len(t)
            root.attrs["hpc_brunel_t_start_ms"] = float(cfg["simulation"]["presim_ms"])
            root.attrs["hpc_brunel_t_stop_ms"] = float(t_until)
            root.attrs["hpc_brunel_partial"] = is_partial
        os.replace(tmp, run_dir / SPIKES_FILE)
    finally:
        for f in files:
            f.close()
    return {"spikes": counts, "n_neurons": n_neurons, "t_start_ms": float(cfg["simulation"]["presim_ms"]),
            "t_stop_ms": float(t_until), "n_chunks": n_chunks, "ranks": len(states),
            "partial": is_partial}


def read_sonata(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    """population -> (node_ids within the population, timestamps in ms, group attrs)."""
    out = {}
    with h5py.File(path, "r") as f:
        for p, g in f["spikes"].items():
            out[p] = (g["node_ids"][:].astype(np.int64), g["timestamps"][:], dict(g.attrs))
    return out
