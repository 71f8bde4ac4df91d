"""Plan a run before submitting it: peak memory per rank and simulate time per
model second for a network size and a decomposition, from measured points.

Models (pure functions; the constants are fitted to a table of measured runs,
`scaling/bench_network_size.py`'s network_size.csv, and can be refitted to a
cluster's own table with --table):

  peak memory per rank [MiB] = M0 + a * synapses on the rank + b * neurons in the network
      NEST stores a connection on the rank of its target neuron (a), and every
      rank keeps per-neuron structures for the whole network (b); M0 is Python,
      NEST and the libraries.
  simulate time per model second [s] = c * (E / VPs) ** p,   E = N * rate * (C_E + C_I)
      E is the number of spike deliveries per model second; p > 1 because the
      delivery of a bigger network per VP misses the caches more often.

Fitting uses the rows marked for calibration only; the others are the
validation set, and `plan` prints the error on them.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_TABLE = Path(__file__).resolve().parents[1] / "data" / "network_size.csv"  # package data
# Calibration rows of the shipped table: (neurons, ranks, threads); the rest validate.
CALIBRATION = ((12500, 2, 1), (50000, 2, 1), (12500, 1, 1))


@dataclass(frozen=True)
class Point:
    """One measured run of the table: size, decomposition, rate and what it cost.

    Attributes
    ----------
    neurons : int
        Neurons in the network.
    ranks, threads : int
        MPI ranks and threads per rank.
    synapses : int
        Synapses in the network.
    rate_hz : float
        Mean firing rate, Hz.
    peak_rss_per_rank_mib : float
        Peak resident memory of one rank, MiB.
    simulate_s_per_model_s : float
        NEST's simulate time per second of model time, s (the real-time factor).
    """

    neurons: int
    ranks: int
    threads: int
    synapses: int
    rate_hz: float
    peak_rss_per_rank_mib: float
    simulate_s_per_model_s: float

    @property
    def vps(self) -> int:
        """Virtual processes: ranks x threads."""
        return self.ranks * self.threads


@dataclass(frozen=True)
class Model:
    """The fitted memory and time models (module docstring).

    Attributes
    ----------
    m0_mib : float
        Memory of a rank without a network (Python, NEST, libraries), MiB.
    mib_per_synapse_on_rank : float
        MiB per synapse stored on the rank (a).
    mib_per_neuron_in_network : float
        MiB per neuron of the whole network, held on every rank (b).
    c_s, p : float
        Simulate time per model second = c_s * (spike deliveries per VP per model second) ** p.
    indegree : int
        C_E + C_I assumed when none is given (1250: Brunel's model A).
    """

    m0_mib: float
    mib_per_synapse_on_rank: float
    mib_per_neuron_in_network: float
    c_s: float
    p: float
    indegree: int = 1250  # C_E + C_I of the calibration runs

    def peak_rss_per_rank_mib(self, neurons: int, ranks: int, synapses: int | None = None) -> float:
        """Predicted peak memory of one rank, MiB, for `neurons` on `ranks` ranks
        (synapses: default neurons x (indegree + 2), the recording devices' included)."""
        syn = synapses if synapses is not None else neurons * (self.indegree + 2)
        return self.m0_mib + self.mib_per_synapse_on_rank * syn / ranks + self.mib_per_neuron_in_network * neurons

    def simulate_s_per_model_s(self, neurons: int, vps: int, rate_hz: float, indegree: int | None = None) -> float:
        """Predicted simulate time per model second, s, for `neurons` firing at rate_hz on `vps` VPs."""
        deliveries = neurons * rate_hz * (indegree or self.indegree)
        return self.c_s * (deliveries / vps) ** self.p


@dataclass(frozen=True)
class Prediction:
    """What :func:`predict` returns: the run asked about and its predicted cost.

    Attributes
    ----------
    neurons, ranks, threads : int
        The network size and decomposition asked about.
    synapses : int
        Synapses counted by the model (network, Poisson input and recorder connections).
    rate_hz : float
        The firing rate assumed, Hz.
    peak_rss_per_rank_mib, peak_rss_total_mib : float
        Predicted peak memory of one rank and of all ranks together, MiB.
    simulate_s_per_model_s : float
        Predicted simulate time per second of model time, s.
    """

    neurons: int
    ranks: int
    threads: int
    synapses: int
    rate_hz: float
    peak_rss_per_rank_mib: float
    peak_rss_total_mib: float
    simulate_s_per_model_s: float


def read_table(path: Path) -> list[Point]:
    """Rows of a network_size.csv (scaling/bench_network_size.py).

    Parameters
    ----------
    path : pathlib.Path
        A CSV with the columns neurons, ranks, threads_per_rank, synapses, rate_hz,
        peak_rss_per_rank_mib, time_simulate_s and t_sim_ms.

    Returns
    -------
    list of Point
        One per row, in file order.

    Raises
    ------
    OSError
        If the file cannot be read.
    KeyError, ValueError
        If a column is missing or a value is not a number.
    """
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out.append(Point(int(r["neurons"]), int(r["ranks"]), int(r["threads_per_rank"]), int(r["synapses"]),
                             float(r["rate_hz"]), float(r["peak_rss_per_rank_mib"]),
                             float(r["time_simulate_s"]) / (float(r["t_sim_ms"]) / 1000.0)))
    return out


def fit(points: list[Point], indegree: int = 1250) -> Model:
    """Least-squares fit of both models to `points` (at least three, with two
    different rank counts for the memory model).

    Parameters
    ----------
    points : list of Point
        Measured runs.
    indegree : int
        C_E + C_I of those runs (the spike deliveries per model second are
        neurons x rate x indegree).

    Returns
    -------
    Model
        Memory: linear least squares in (1, synapses per rank, neurons); time: a
        straight line in log(time) against log(deliveries per VP).
    """
    a = np.array([[1.0, p.synapses / p.ranks, p.neurons] for p in points])
    y = np.array([p.peak_rss_per_rank_mib for p in points])
    (m0, k_syn, k_neuron), *_ = np.linalg.lstsq(a, y, rcond=None)
    x = np.log([p.neurons * p.rate_hz * indegree / p.vps for p in points])
    t = np.log([p.simulate_s_per_model_s for p in points])
    p_exp, log_c = np.polyfit(x, t, 1)
    return Model(float(m0), float(k_syn), float(k_neuron), float(math.exp(log_c)), float(p_exp), indegree)


def split(points: list[Point], calibration=CALIBRATION) -> tuple[list[Point], list[Point]]:
    """(points whose (neurons, ranks, threads) is in `calibration`, the others) - fit and validation rows."""
    cal = [p for p in points if (p.neurons, p.ranks, p.threads) in calibration]
    return cal, [p for p in points if p not in cal]


def validation_errors(model: Model, points: list[Point]) -> list[tuple[Point, float, float]]:
    """(point, relative error of the memory prediction, of the time prediction)."""
    out = []
    for p in points:
        mem = model.peak_rss_per_rank_mib(p.neurons, p.ranks, p.synapses)
        sim = model.simulate_s_per_model_s(p.neurons, p.vps, p.rate_hz)
        out.append((p, mem / p.peak_rss_per_rank_mib - 1.0, sim / p.simulate_s_per_model_s - 1.0))
    return out


def predict(model: Model, *, neurons: int, ranks: int, threads: int, rate_hz: float,
            indegree: int = 1250, recorded: int | None = None) -> Prediction:
    """Peak memory per rank and simulate time per model second of a Brunel network
    of `neurons` (in-degree C_E + C_I = `indegree`) on ranks x threads.

    Parameters
    ----------
    model : Model
        From :func:`load_model` or :func:`fit`.
    neurons : int
        Neurons in the network.
    ranks, threads : int
        MPI ranks and threads per rank.
    rate_hz : float
        Mean firing rate, Hz (e.g. the mean field's stationary rate).
    indegree : int
        C_E + C_I.
    recorded : int, optional
        Neurons recorded (each a connection to the spike recorder); default: all.

    Returns
    -------
    Prediction
    """
    synapses = neurons * indegree + neurons + (neurons if recorded is None else recorded)
    mem = model.peak_rss_per_rank_mib(neurons, ranks, synapses)
    return Prediction(neurons, ranks, threads, synapses, rate_hz, mem, mem * ranks,
                      model.simulate_s_per_model_s(neurons, ranks * threads, rate_hz, indegree))


def slurm_mem_mib(extra_sbatch: list[str], cpus_per_node: int) -> float | None:
    """Memory per node asked for with --sbatch=--mem=... or --mem-per-cpu=...
    (SLURM units K/M/G/T, default M); None when not asked for or --mem=0 (all)."""
    import re

    units = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}
    for line in extra_sbatch:
        m = re.fullmatch(r"--mem(-per-cpu)?=(\d+(?:\.\d+)?)([KMGT]?)B?", line.strip(), re.IGNORECASE)
        if m:
            value = float(m.group(2)) * units[(m.group(3) or "M").upper()]
            if value == 0:
                return None
            return value * cpus_per_node if m.group(1) else value
    return None


def load_model(table: Path | None = None) -> tuple[Model, list[tuple[Point, float, float]]]:
    """The model fitted to the calibration rows of `table`, and its errors on the others.

    Parameters
    ----------
    table : pathlib.Path, optional
        A network_size.csv; default: the table shipped with the package
        (hpc_brunel/data/network_size.csv). A table with fewer than three of the
        CALIBRATION rows (another machine's) is fitted on all its rows, with no
        validation.

    Returns
    -------
    (Model, list of (Point, float, float))
        The model and, per validation row, the relative error of the memory and of
        the time prediction (prediction / measured - 1).

    Raises
    ------
    OSError, KeyError, ValueError
        If the table cannot be read (see :func:`read_table`).
    """
    points = read_table(table or DEFAULT_TABLE)
    cal, val = split(points)
    if len(cal) < 3:  # another machine's table: fit on all of it
        cal, val = points, []
    model = fit(cal)
    return model, validation_errors(model, val)


def allocation_warnings(cfg, *, nodes: int, ntasks_per_node: int, cpus_per_task: int,
                        extra_sbatch: list[str], table: Path | None = None) -> list[str]:
    """What `jobscript` says about a run config on an allocation: the predicted
    peak memory per node, and a warning when the asked --mem cannot hold it.

    Parameters
    ----------
    cfg : hpc_brunel.config.RunConfig
        The run; its rate is the mean field's stationary rate (50 Hz if that is NaN).
    nodes, ntasks_per_node, cpus_per_task : int
        The SLURM allocation: ranks = nodes x ntasks_per_node, threads = cpus_per_task.
    extra_sbatch : list of str
        Raw sbatch options; --mem=... or --mem-per-cpu=... is checked.
    table : pathlib.Path, optional
        The measured table to fit (default: the shipped one).

    Returns
    -------
    list of str
        The prediction line, and a warning line (with the number of nodes that
        would suffice, if any) when the requested memory per node is too small.
    """
    from hpc_brunel.theory.meanfield import stationary_rate_for_config

    model, _ = load_model(table)
    n = cfg.network
    rate = stationary_rate_for_config(cfg)
    n_rec = cfg.recording.n_record_per_population
    def on(k: int) -> Prediction:
        return predict(model, neurons=n.n_neurons, ranks=k * ntasks_per_node, threads=cpus_per_task,
                       rate_hz=rate if rate == rate else 50.0, indegree=n.indegree_excitatory + n.indegree_inhibitory,
                       recorded=2 * n_rec if n_rec else None)

    p = on(nodes)
    per_node = p.peak_rss_per_rank_mib * ntasks_per_node
    lines = [f"plan: {n.n_neurons:,} neurons on {nodes} node(s) x {ntasks_per_node} rank(s) x {cpus_per_task} "
             f"thread(s): predicted peak memory {p.peak_rss_per_rank_mib / 1024:.2f} GiB per rank, "
             f"{per_node / 1024:.2f} GiB per node; simulate ~{p.simulate_s_per_model_s:.1f} s per model second"]
    mem = slurm_mem_mib(extra_sbatch, ntasks_per_node * cpus_per_task)
    if mem is not None and per_node > mem:
        need = next((k for k in range(nodes + 1, 100 * nodes + 2)
                     if on(k).peak_rss_per_rank_mib * ntasks_per_node <= mem), None)
        fix = f"or for >= {need} nodes" if need else "(more nodes do not help: every rank holds the whole network's neurons)"
        lines.append(f"hpc_brunel: warning: --mem asks for {mem / 1024:.2f} GiB per node but the run needs about "
                     f"{per_node / 1024:.2f} GiB per node: ask for more memory {fix}")
    return lines


def report(p: Prediction, model: Model, errors: list[tuple[Point, float, float]], table: Path) -> list[str]:
    """The lines `python -m hpc_brunel plan` prints: the prediction `p`, the fitted
    `model` (from `table`) and its errors on the measured points it was not fitted to."""
    lines = [f"{p.neurons:,} neurons ({p.synapses:,} synapses) on {p.ranks} rank(s) x {p.threads} thread(s), "
             f"rate {p.rate_hz:g} Hz:",
             f"  peak memory   {p.peak_rss_per_rank_mib:,.0f} MiB per rank, {p.peak_rss_total_mib:,.0f} MiB in all",
             f"  simulate      {p.simulate_s_per_model_s:,.1f} s per model second (real-time factor)",
             f"model: {model.m0_mib:.0f} MiB + {model.mib_per_synapse_on_rank * 2**20:.1f} B per synapse on the rank "
             f"+ {model.mib_per_neuron_in_network * 2**20:.0f} B per neuron in the network; "
             f"time {model.c_s:.3g} * (deliveries per VP per s)^{model.p:.2f}  ({table})"]
    for pt, e_mem, e_sim in errors:
        lines.append(f"  validation {pt.neurons:>7,} neurons {pt.ranks}x{pt.threads}: memory {e_mem:+.1%}, "
                     f"time {e_sim:+.1%}")
    return lines
