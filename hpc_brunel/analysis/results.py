"""Load a finished (or running) run into Python: `hpc_brunel.load_run(path)`.

    run = hpc_brunel.load_run("runs/brunel-20261125-120000", t_start_ms=100, t_stop_ms=600)
    run.config                  # the resolved RunConfig
    run.provenance              # run.json: versions, decomposition, timers, ...
    run.statistics              # analysis.json (None before `analyze`)
    run.spikes["excitatory"]    # Spikes: .node_ids (0-based in the population), .times_ms, .nest_ids
    run.to_pandas()             # one row per spike: population, node_id, nest_node_id, time_ms
    run.to_neo("excitatory")    # list of neo.SpikeTrain, one per neuron (Elephant takes them as they are)

Spikes come from the run's SONATA file `spikes.h5` when `analyze` wrote it, else
straight from the per-rank files (up to the last chunk every rank flushed, so a
run that is still going can be read too). Both are sorted by time, so a time
window is found by bisection on disk and only the spikes inside it are read: a
100 s run can be read in parts. A neuron subset is applied after the window.

This module needs numpy and h5py only (pandas and neo when asked for); it never
imports NEST or mpi4py.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from hpc_brunel.config import RunConfig, from_dict
from hpc_brunel.constants import ANALYSIS_JSON, POPULATIONS, RUN_JSON, SPIKES_FILE
from hpc_brunel.simulation import rundir

NeuronSelection = int | Sequence[int] | np.ndarray | Mapping[str, Sequence[int] | np.ndarray] | None


@dataclass
class Spikes:
    """The spikes of one population inside the loaded window, sorted by time.

    Attributes
    ----------
    population : str
        "excitatory" or "inhibitory".
    node_ids : numpy.ndarray of int64
        Neuron of each spike, id within the population from 0 (as in SONATA).
    times_ms : numpy.ndarray of float64
        Spike times, ms.
    nest_first_node_id : int
        NEST's global node id of the population's neuron 0.
    n_neurons : int
        Neurons recorded in the population.
    neurons : numpy.ndarray of int64
        The neurons asked for (ids within the population), sorted; `rates_hz` and
        `trains` follow this order, silent neurons included.
    t_start_ms, t_stop_ms : float
        The loaded window [t_start_ms, t_stop_ms).
    """

    population: str
    node_ids: np.ndarray  # int64, ids within the population, from 0 (SONATA)
    times_ms: np.ndarray  # float64
    nest_first_node_id: int  # NEST's global id of node 0
    n_neurons: int  # neurons recorded in the population
    neurons: np.ndarray  # the neurons asked for (ids within the population), sorted
    t_start_ms: float
    t_stop_ms: float

    @property
    def nest_ids(self) -> np.ndarray:
        """NEST global node ids of the spikes (node_ids + nest_first_node_id), int64, one per spike."""
        return self.node_ids + self.nest_first_node_id

    def __len__(self) -> int:
        return len(self.times_ms)

    def rates_hz(self) -> np.ndarray:
        """Firing rate of each selected neuron in the window (same order as .neurons).

        Returns
        -------
        numpy.ndarray of float
            Spikes in [t_start_ms, t_stop_ms) / window length, Hz; 0 for silent neurons.
        """
        counts = np.bincount(np.searchsorted(self.neurons, self.node_ids), minlength=len(self.neurons))
        return counts[: len(self.neurons)] / ((self.t_stop_ms - self.t_start_ms) / 1000.0)

    def trains(self) -> list[np.ndarray]:
        """Spike times [ms] per selected neuron (same order as .neurons), without per-spike loops.

        Returns
        -------
        list of numpy.ndarray
            One sorted array of spike times in ms per neuron of `neurons` (empty for a
            silent neuron).
        """
        order = np.lexsort((self.times_ms, self.node_ids))
        ids, t = self.node_ids[order], self.times_ms[order]
        bounds = np.searchsorted(ids, self.neurons, side="left"), np.searchsorted(ids, self.neurons, side="right")
        return [t[a:b] for a, b in zip(*bounds)]


@dataclass
class Run:
    """A run directory loaded by :func:`load_run`.

    Attributes
    ----------
    path : pathlib.Path
        The run directory.
    config : hpc_brunel.config.RunConfig
        The resolved configuration of the run.
    provenance : dict
        run.json: status, versions, decomposition, timers, ...
    statistics : dict or None
        analysis.json, None before `analyze`.
    spikes : dict of str to Spikes
        The loaded populations' spikes in the window.
    t_start_ms, t_stop_ms : float
        The loaded window [t_start_ms, t_stop_ms).
    source : str
        Where the spikes came from: "spikes.h5" or "rank files".
    partial : bool
        The run did not complete, or only part of it is on disk.
    """

    path: Path
    config: RunConfig
    provenance: dict
    statistics: dict | None
    spikes: dict[str, Spikes]
    t_start_ms: float
    t_stop_ms: float
    source: str  # "spikes.h5" or "rank files"
    partial: bool = False  # the run did not complete, or only part of it is on disk
    meta: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        """The run's status from run.json ("complete", "terminated", "failed", "running", ...; "unknown" if absent)."""
        return self.provenance.get("status", "unknown")

    def to_pandas(self):
        """The loaded spikes as a pandas DataFrame.

        Returns
        -------
        pandas.DataFrame
            One row per spike, sorted by time: population (categorical), node_id
            (within the population, from 0), nest_node_id, time_ms.

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        import pandas as pd

        pops = list(self.spikes)
        parts = [self.spikes[p] for p in pops]
        t = np.concatenate([s.times_ms for s in parts]) if parts else np.empty(0)
        order = np.argsort(t, kind="stable")
        codes = np.concatenate([np.full(len(s), k, dtype=np.int8) for k, s in enumerate(parts)]) if parts else []
        return pd.DataFrame({
            "population": pd.Categorical.from_codes(np.asarray(codes, dtype=np.int8)[order], categories=pops),
            "node_id": np.concatenate([s.node_ids for s in parts])[order] if parts else np.empty(0, np.int64),
            "nest_node_id": np.concatenate([s.nest_ids for s in parts])[order] if parts else np.empty(0, np.int64),
            "time_ms": t[order],
        })

    def to_neo(self, population: str | Iterable[str] | None = None):
        """The loaded spikes as neo spike trains, one per selected neuron.

        Parameters
        ----------
        population : str or iterable of str, optional
            The population(s) to convert; default: every loaded population.

        Returns
        -------
        list of neo.SpikeTrain
            Times in ms, silent neurons included, with t_start/t_stop = the loaded
            window and annotations population, node_id, nest_node_id. Elephant's
            functions take the list as it is.

        Raises
        ------
        ImportError
            If neo (and quantities) is not installed.
        KeyError
            If a population asked for was not loaded.
        """
        import neo
        import quantities as pq

        pops = list(self.spikes) if population is None else [population] if isinstance(population, str) \
            else list(population)
        out = []
        for p in pops:
            s = self.spikes[p]
            for nid, t in zip(s.neurons, s.trains()):
                out.append(neo.SpikeTrain(t * pq.ms, t_start=s.t_start_ms * pq.ms, t_stop=s.t_stop_ms * pq.ms,
                                          population=p, node_id=int(nid),
                                          nest_node_id=int(nid) + s.nest_first_node_id))
        return out

    def __repr__(self) -> str:
        counts = ", ".join(f"{p} {len(s):,}" for p, s in self.spikes.items())
        return (f"Run({str(self.path)!r}, status={self.status!r}, window=[{self.t_start_ms:g}, {self.t_stop_ms:g}) ms, "
                f"spikes: {counts}, from {self.source})")


def _bisect(ds, value: float, lo: int, hi: int) -> int:
    from hpc_brunel.analysis.gather import (
        bisect_sorted,  # h5py: only when files are read
    )

    return bisect_sorted(ds, value, lo, hi)


def _select_neurons(neurons: NeuronSelection, pop: str, n: int) -> np.ndarray:
    if isinstance(neurons, Mapping):
        sel = neurons.get(pop)
        if sel is None:
            return np.empty(0, np.int64)
        neurons = sel
    if neurons is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(neurons, (int, np.integer)):
        return np.arange(min(int(neurons), n), dtype=np.int64)
    arr = np.unique(np.asarray(neurons, dtype=np.int64))
    if len(arr) and (arr[0] < 0 or arr[-1] >= n):
        raise ValueError(f"neurons of population '{pop}': ids within the population are 0..{n - 1}, "
                         f"got {arr[0]}..{arr[-1]}")
    return arr


def _window(ids: np.ndarray, t: np.ndarray, sel: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(sel) == n:
        return ids, t
    keep = np.isin(ids, sel)
    return ids[keep], t[keep]


def load_run(path: str | Path, *, t_start_ms: float | None = None, t_stop_ms: float | None = None,
             populations: Iterable[str] | None = None, neurons: NeuronSelection = None) -> Run:
    """Load a run directory: config, provenance, statistics and the spikes in a window.

    Spikes come from spikes.h5 when `analyze` wrote it, else from the rank files
    (up to the last chunk every rank flushed, so a running run can be read too);
    only the spikes inside the window are read from disk.

    Parameters
    ----------
    path : str or pathlib.Path
        The run directory.
    t_start_ms, t_stop_ms : float, optional
        The window [t_start_ms, t_stop_ms), as the analysis counts it; default: the
        whole recording. Without t_stop_ms, everything to the end of the recording,
        including spikes at its very last time step (NEST stamps spikes at the end
        of their step).
    populations : iterable of str, optional
        "excitatory" and/or "inhibitory" (default both).
    neurons : int, sequence of int, numpy.ndarray or dict, optional
        None: all recorded neurons; N: the first N of each population; a list of
        ids within the population (from 0); or {population: ids}.

    Returns
    -------
    Run

    Raises
    ------
    FileNotFoundError
        If `path` has no run.json, or it has no spikes.h5 and a rank file is missing.
    ValueError
        If a population is unknown, a neuron id is outside the population, or the
        window holds nothing of the recording.
    """
    path = Path(path)
    if not (path / RUN_JSON).exists():
        raise FileNotFoundError(f"{path} is not an hpc_brunel run directory (no {RUN_JSON})")
    record = rundir.read_run_json(path)
    cfg = from_dict(record["config"])
    statistics = None
    if (path / ANALYSIS_JSON).exists():
        statistics = json.loads((path / ANALYSIS_JSON).read_text())
    pops = list(populations) if populations is not None else list(POPULATIONS)
    for p in pops:
        if p not in POPULATIONS:
            raise ValueError(f"population {p!r}: allowed {', '.join(POPULATIONS)}")
    if (path / SPIKES_FILE).exists():
        return _from_sonata(path, record, cfg, statistics, pops, t_start_ms, t_stop_ms, neurons)
    return _from_rank_files(path, record, cfg, statistics, pops, t_start_ms, t_stop_ms, neurons)


def _clip(t_start_ms, t_stop_ms, lo: float, hi: float) -> tuple[float, float]:
    a = lo if t_start_ms is None else max(lo, float(t_start_ms))
    b = hi if t_stop_ms is None else min(hi, float(t_stop_ms))
    if not (math.isfinite(a) and math.isfinite(b)) or b <= a:
        raise ValueError(f"time window [{t_start_ms}, {t_stop_ms}) ms holds nothing of the recorded "
                         f"[{lo:g}, {hi:g}) ms")
    return a, b


def _from_sonata(path, record, cfg, statistics, pops, t_start_ms, t_stop_ms, neurons) -> Run:
    from hpc_brunel.analysis.rankfiles import (
        CONSISTENT_STATUSES,  # h5py: only when files are read
    )
    from hpc_brunel.simulation.recording import h5_open

    spikes = {}

    with h5_open(path / SPIKES_FILE, "r") as f:
        root = f["spikes"]
        lo = float(root.attrs.get("hpc_brunel_t_start_ms", cfg.simulation.presim_ms))
        hi = float(root.attrs.get("hpc_brunel_t_stop_ms", record.get("t_model_reached_ms") or lo))
        partial = bool(root.attrs.get("hpc_brunel_partial", record.get("status") not in CONSISTENT_STATUSES))
        t0, t1 = _clip(t_start_ms, t_stop_ms, lo, hi)
        for p in pops:
            g = root[p]
            n = int(g.attrs["n_neurons"])
            ts, ids = g["timestamps"], g["node_ids"]
            a = _bisect(ts, t0, 0, ts.shape[0])
            b = ts.shape[0] if t_stop_ms is None else _bisect(ts, t1, a, ts.shape[0])
            sel = _select_neurons(neurons, p, n)
            i, t = _window(ids[a:b].astype(np.int64), ts[a:b], sel, n)
            spikes[p] = Spikes(p, i, t, int(g.attrs["nest_first_node_id"]), n, sel, t0, t1)
    return Run(path, cfg, record, statistics, spikes, t0, t1, SPIKES_FILE, partial)


def _from_rank_files(path, record, cfg, statistics, pops, t_start_ms, t_stop_ms, neurons) -> Run:
    from hpc_brunel.analysis.rankfiles import (  # h5py
        SpikeSource,
        first_node_ids,
        is_partial,
        rank_paths,
    )

    first_id = first_node_ids(cfg.network.n_excitatory)
    n_rec = cfg.recording.n_record_per_population
    sources = []
    try:
        for fp in rank_paths(path, record["decomposition"]["ranks"]):
            if not fp.exists():
                raise FileNotFoundError(f"{path}: no {SPIKES_FILE} and rank file {fp.name} is missing")
            sources.append(SpikeSource(fp))
        lo = min(src.t_start_ms for src in sources)
        hi = min(src.t_flushed_ms for src in sources)  # trust only what every rank has flushed
        t0, t1 = _clip(t_start_ms, t_stop_ms, lo, hi)
        partial = is_partial(record, hi)
        spikes = {}
        for p in pops:
            n = n_rec or getattr(cfg.network, f"n_{p}")
            sel = _select_neurons(neurons, p, n)
            parts_i, parts_t = [], []
            for src in sources:
                end = src.end_offset(p, hi)
                ts, ids = src.times_ms(p), src.node_ids(p)
                a = _bisect(ts, t0, 0, end)
                b = end if t_stop_ms is None else _bisect(ts, t1, a, end)
                i, t = _window(ids[a:b] - first_id[p], ts[a:b], sel, n)
                parts_i.append(i)
                parts_t.append(t)
            i, t = np.concatenate(parts_i), np.concatenate(parts_t)
            order = np.lexsort((i, t))
            spikes[p] = Spikes(p, i[order], t[order], first_id[p], n, sel, t0, t1)
    finally:
        for src in sources:
            src.close()
    return Run(path, cfg, record, statistics, spikes, t0, t1, "rank files", partial)
