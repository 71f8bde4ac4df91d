"""The one reader of the per-rank spike files (layout: hpc_brunel.simulation.recording).

`gather` (merging into SONATA) and `load_run` (reading a run that has no SONATA
file yet) both read rank files through this module: which files a run has,
whether they are complete (the partial-run rule), the model time up to which
every rank flushed, the NEST id of each population's first neuron, and a
`SpikeSource` per file that knows the chunk offsets. Needs h5py, never NEST or MPI.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from hpc_brunel.constants import POPULATIONS, RUN_JSON
from hpc_brunel.errors import IncompleteRunError
from hpc_brunel.simulation import rundir
from hpc_brunel.simulation.recording import (  # noqa: F401 - first_node_ids: part of the reader's interface
    RANK_LAYOUT_VERSION,
    first_node_ids,
    h5_open,
    rank_file_name,
)

#: Run statuses whose rank files are consistent up to run.json's t_model_reached_ms
#: (a run stopped by SIGTERM stops at a chunk boundary that every rank closed).
CONSISTENT_STATUSES = ("complete", "terminated")


def open_rank_file(path: Path) -> h5py.File:
    """Open a rank file for reading, also while it is being written or after its
    writer died (SWMR read)."""
    return h5_open(path, "r", libver="latest", swmr=True)


def read_meta(f: h5py.File) -> dict | None:
    """The metadata a rank writes when it finishes (None: it did not finish)."""
    if "meta" not in f:
        return None
    return {k: json.loads(v) for k, v in f["meta"].attrs.items()}


def recorded_neurons(config: dict) -> dict[str, int]:
    """Neurons recorded per population, from a run's config dict (run.json "config")."""
    n_rec = config["recording"]["n_record_per_population"]
    return {p: n_rec or config["network"][f"n_{p}"] for p in POPULATIONS}


def is_partial(record: dict, t_until_ms: float) -> bool:
    """The partial-run rule: spikes up to `t_until_ms` are the whole run only when
    the run ended complete or terminated (at a chunk boundary) and every rank
    reached the model time run.json records."""
    reached = record.get("t_model_reached_ms")
    return record.get("status") not in CONSISTENT_STATUSES or reached is None or t_until_ms < float(reached)


class SpikeSource:
    """One file in the rank-file layout (a rank file, or a merge batch of gather),
    open for reading: its populations, chunk ends and cumulative offsets."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.f = open_rank_file(self.path) if self.path.name.startswith("rank_") else h5_open(self.path, "r")
        try:
            self.populations = json.loads(self.f.attrs["populations"])
            self.t_end_ms = self.f["chunks/t_end_ms"][:]
            self.offsets = self.f["chunks/offsets"][:]
        except Exception:
            self.f.close()
            raise

    @property
    def t_start_ms(self) -> float:
        """Model time at which the file's recording starts (after the warm-up)."""
        return float(self.f.attrs["t_start_ms"])

    @property
    def t_flushed_ms(self) -> float:
        """Model time of the last chunk on disk (t_start_ms when none)."""
        return float(self.t_end_ms[-1]) if len(self.t_end_ms) else self.t_start_ms

    def column(self, population: str) -> int:
        """Column of `population` in chunks/offsets."""
        return self.populations.index(population)

    def chunks_until(self, t_ms: float) -> int:
        """Number of chunks that end at or before `t_ms`."""
        return int(np.searchsorted(self.t_end_ms, t_ms + 1e-9, side="right"))

    def end_offset(self, population: str, t_ms: float) -> int:
        """Spikes of `population` written in the chunks that end at or before `t_ms`."""
        k = self.chunks_until(t_ms)
        return int(self.offsets[k - 1, self.column(population)]) if k else 0

    def times_ms(self, population: str) -> h5py.Dataset:
        """The population's spike times (sorted within each chunk)."""
        return self.f[f"spikes/{population}/times_ms"]

    def node_ids(self, population: str) -> h5py.Dataset:
        """The population's NEST global node ids, in the order of times_ms."""
        return self.f[f"spikes/{population}/node_ids"]

    def close(self) -> None:
        """Close the file."""
        self.f.close()

    def __enter__(self) -> "SpikeSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class RankState:
    """What one rank left on disk: whether its file exists, is readable and finished."""

    rank: int
    path: Path
    exists: bool
    finished: bool = False  # rank wrote its metadata at the end
    t_flushed_ms: float = 0.0  # model time of its last flushed chunk
    n_chunks: int = 0
    error: str | None = None


def rank_paths(run_dir: Path, n_ranks: int) -> list[Path]:
    """The rank files a run of `n_ranks` ranks writes, by rank."""
    return [Path(run_dir) / rank_file_name(r) for r in range(n_ranks)]


def inspect_ranks(run_dir: Path, record: dict) -> list[RankState]:
    """The state of every rank file of the run whose run.json is `record`."""
    states = []
    for r, path in enumerate(rank_paths(run_dir, record["decomposition"]["ranks"])):
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
    """Whether a run's rank files can be gathered.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run directory.
    partial : bool
        Accept an unfinished run up to the model time that every rank flushed.

    Returns
    -------
    tuple
        (run record, rank states, model time up to which all ranks are on disk).

    Raises
    ------
    IncompleteRunError
        Unless the run is complete (or, with partial=True, at least one chunk of
        every rank is on disk); the message says what is missing and, where it
        helps, that `analyze --partial` would work.
    """
    run_dir = Path(run_dir)
    if not (run_dir / RUN_JSON).exists():
        raise IncompleteRunError(f"{run_dir} is not an hpc_brunel run directory (no {RUN_JSON})")
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
