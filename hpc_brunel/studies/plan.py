"""Plan a run before submitting it: peak memory per rank and simulate time per
model second for a network size, a decomposition and a synapse model, from
measured points.

Models (pure functions; the constants are fitted, per synapse model, to a table
of measured runs - the shipped hpc_brunel/data/network_size.csv made by
`scaling/bench_network_size.py`, or a cluster's own via --table, e.g. the
results.csv of `hpc_brunel scale weak` run there):

  peak memory per rank [MiB] = M0 + a * synapses on the rank + b * neurons in the network
                                + c * log2(ranks)
      NEST stores a connection on the rank of its target neuron (a), and every
      rank keeps per-neuron structures for the whole network (b); M0 is Python,
      NEST and the libraries; c is what grows with the number of ranks (MPI's and
      NEST's per-peer buffers). For the synapse models of the shipped ranks table
      (hpc_brunel/data/ranks.csv, scaling/ladder.py: 1-64 ranks, 12,500-50,000
      neurons, 2026-12-07) the memory model is fitted there, with c; elsewhere c = 0.
  simulate time per model second [s] = c * (E / VPs) ** p  +  communication
      E is the number of spike deliveries per model second (N * rate * (C_E + C_I));
      p > 1 because the delivery of a bigger network per VP misses the caches
      more often. The fit contains the communication of the measured rank counts
      only; beyond them the communication term below is added.

  communication [s per model second] (an assumption, not a measurement): NEST 3
      exchanges spikes with one MPI_Alltoall per min-delay interval (Jordan et
      al. 2018, Front. Neuroinform. 12:2, "Extremely scalable spiking neuronal
      network simulation code"), each spike once per rank that holds one of its
      targets (an 8-byte SpikeData entry). Costed as the pairwise-exchange
      Alltoall of Thakur, Rabenseifner & Gropp (2005), Int. J. High Perform.
      Comput. Appl. 19(1):49-66: (R - 1) * alpha + n * beta per exchange, n the
      bytes one rank sends; alpha = 1.5 us and 1/beta = 10 GB/s (an InfiniBand
      HDR-class interconnect; --latency-us / --bandwidth-gbs change them). It
      assumes a balanced load and no contention, so it is a lower bound: waiting
      for the slowest rank, which dominates NEST's communication time at
      thousands of ranks in Jordan et al. (2018), is not in it.

Fitting uses the rows marked for calibration only; the others are the
validation set, and `plan` prints the error on them. Predictions outside the
measured range of a model (neurons, ranks, threads, virtual processes) say so.
"""
from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hpc_brunel.config import DEFAULT_SYNAPSE_MODEL, LEAN_SYNAPSE_MODEL

DEFAULT_TABLE = Path(__file__).resolve().parents[1] / "data" / "network_size.csv"  # package data
# Memory over 1-64 ranks (scaling/ladder.py, threads = 1, Open MPI): the memory model of its synapse models.
RANKS_TABLE = Path(__file__).resolve().parents[1] / "data" / "ranks.csv"
# Its calibration rows (neurons, ranks); the others (12,500 at 8, 32, 48; 25,000 at 16; 50,000 at 8) validate.
RANKS_CALIBRATION = ((12500, 1), (12500, 2), (12500, 4), (12500, 16), (12500, 64), (25000, 4), (25000, 64),
                     (50000, 2), (50000, 32))
# Calibration rows of the shipped table, per synapse model: (neurons, ranks, threads); the rest validate.
CALIBRATION = ((12500, 2, 1), (50000, 2, 1), (12500, 1, 1))
# The synapse model of a table without a synapse_model column (tables made before it existed).
UNNAMED_MODEL = "static_synapse_hom_w"

# The communication assumption (module docstring).
LATENCY_S = 1.5e-6  # alpha, per message
BANDWIDTH_B_PER_S = 10e9  # 1 / beta
SPIKE_ENTRY_BYTES = 8  # NEST 3: one SpikeData per spike and target rank
DELAY_MS = 1.5  # the min delay of the default network: one spike exchange per delay


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
    synapse_model : str
        The network's synapse model.
    """

    neurons: int
    ranks: int
    threads: int
    synapses: int
    rate_hz: float
    peak_rss_per_rank_mib: float
    simulate_s_per_model_s: float
    synapse_model: str = UNNAMED_MODEL

    @property
    def vps(self) -> int:
        """Virtual processes: ranks x threads."""
        return self.ranks * self.threads


@dataclass(frozen=True)
class Communication:
    """The assumed cost of NEST's spike exchange (module docstring).

    Attributes
    ----------
    latency_s : float
        alpha: time per message, s.
    bandwidth_b_per_s : float
        1 / beta: bytes per second one rank sends.
    delay_ms : float
        Min delay: one exchange per delay_ms of model time.
    """

    latency_s: float = LATENCY_S
    bandwidth_b_per_s: float = BANDWIDTH_B_PER_S
    delay_ms: float = DELAY_MS

    def s_per_model_s(self, neurons: int, ranks: int, rate_hz: float, indegree: int) -> float:
        """Seconds of spike exchange per model second on `ranks` ranks (0 on one rank).

        A neuron's ~indegree targets (out-degree = in-degree on average) lie on
        R (1 - (1 - 1/R)^indegree) ranks; its spike is sent once to each."""
        if ranks <= 1:
            return 0.0
        exchanges = 1000.0 / self.delay_ms
        spikes_per_exchange = neurons / ranks * rate_hz * self.delay_ms / 1000.0
        target_ranks = ranks * (1.0 - (1.0 - 1.0 / ranks) ** indegree)
        bytes_sent = spikes_per_exchange * target_ranks * SPIKE_ENTRY_BYTES
        return exchanges * ((ranks - 1) * self.latency_s + bytes_sent / self.bandwidth_b_per_s)


@dataclass(frozen=True)
class Model:
    """The fitted memory and time models of one synapse model (module docstring).

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
    synapse_model : str
        The network's synapse model of the measured runs.
    ranges : dict
        The measured range: {"neurons"|"ranks"|"threads"|"vps": (min, max)} over the table's rows.
    communication : Communication
        The communication term added beyond the measured rank counts.
    mib_per_log2_rank : float
        MiB per doubling of the ranks (c; 0 where memory was measured on 1-2 ranks only).
    memory_ranges : dict
        The measured range of the memory model, like `ranges` (default: `ranges`).
    """

    m0_mib: float
    mib_per_synapse_on_rank: float
    mib_per_neuron_in_network: float
    c_s: float
    p: float
    indegree: int = 1250  # C_E + C_I of the calibration runs
    synapse_model: str = UNNAMED_MODEL
    ranges: dict = field(default_factory=dict, compare=False)
    communication: Communication = field(default_factory=Communication, compare=False)
    mib_per_log2_rank: float = 0.0
    memory_ranges: dict = field(default_factory=dict, compare=False)

    def peak_rss_per_rank_mib(self, neurons: int, ranks: int, synapses: int | None = None) -> float:
        """Predicted peak memory of one rank, MiB, for `neurons` on `ranks` ranks
        (synapses: default neurons x (indegree + 2), the recording devices' included)."""
        syn = synapses if synapses is not None else neurons * (self.indegree + 2)
        return (self.m0_mib + self.mib_per_synapse_on_rank * syn / ranks + self.mib_per_neuron_in_network * neurons
                + self.mib_per_log2_rank * math.log2(ranks))

    def compute_s_per_model_s(self, neurons: int, vps: int, rate_hz: float, indegree: int | None = None) -> float:
        """The fitted part: update and delivery of `neurons` firing at rate_hz on `vps` VPs, s per model second."""
        deliveries = neurons * rate_hz * (indegree or self.indegree)
        return self.c_s * (deliveries / vps) ** self.p

    def extra_communication_s_per_model_s(self, neurons: int, ranks: int, rate_hz: float,
                                          indegree: int | None = None) -> float:
        """The communication of `ranks` ranks beyond that of the most ranks measured (in the fit already)."""
        k = indegree or self.indegree
        measured = self.ranges.get("ranks", (1, 1))[1]
        if ranks <= measured:
            return 0.0
        c = self.communication
        return c.s_per_model_s(neurons, ranks, rate_hz, k) - c.s_per_model_s(neurons, measured, rate_hz, k)

    def simulate_s_per_model_s(self, neurons: int, vps: int, rate_hz: float, indegree: int | None = None,
                               ranks: int | None = None) -> float:
        """Predicted simulate time per model second, s: the fitted part for `neurons` firing at
        rate_hz on `vps` VPs, plus the communication of `ranks` beyond the measured rank counts."""
        t = self.compute_s_per_model_s(neurons, vps, rate_hz, indegree)
        return t + (self.extra_communication_s_per_model_s(neurons, ranks, rate_hz, indegree) if ranks else 0.0)

    def outside_range(self, *, neurons: int, ranks: int, threads: int) -> list[str]:
        """What of (neurons, ranks, threads, VPs) lies outside the time model's measured range, one phrase each."""
        return _outside(self.ranges, (("neurons", neurons), ("ranks", ranks), ("threads", threads),
                                      ("vps", ranks * threads)))

    def memory_outside_range(self, *, neurons: int, ranks: int) -> list[str]:
        """What of (neurons, ranks) lies outside the memory model's measured range (threads share their
        rank's memory: measured 4 x 4 237 MiB vs 4 x 1 242, 16 x 4 122 vs 16 x 1 121)."""
        return _outside(self.memory_ranges or self.ranges, (("neurons", neurons), ("ranks", ranks)))


def _outside(ranges: dict, values) -> list[str]:
    """One phrase per (name, value) outside its (min, max) in `ranges`."""
    out = []
    for name, value in values:
        lo, hi = ranges.get(name, (value, value))
        if value > hi:
            out.append(f"{name} {value:,} > {hi:,}")
        elif value < lo:
            out.append(f"{name} {value:,} < {lo:,}")
    return out


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
        Predicted simulate time per second of model time, s (communication included).
    communication_s_per_model_s : float
        Of that, the assumed communication beyond the measured rank counts, s.
    synapse_model : str
        The network's synapse model the prediction is for.
    outside_range : tuple of str
        What lies outside the time model's measured range (empty: an interpolation).
    memory_outside_range : tuple of str
        What lies outside the memory model's measured range.
    """

    neurons: int
    ranks: int
    threads: int
    synapses: int
    rate_hz: float
    peak_rss_per_rank_mib: float
    peak_rss_total_mib: float
    simulate_s_per_model_s: float
    communication_s_per_model_s: float = 0.0
    synapse_model: str = UNNAMED_MODEL
    outside_range: tuple = ()
    memory_outside_range: tuple = ()

    def range_note(self) -> str:
        """'' inside the time model's measured range, else the phrase that flags an extrapolation."""
        return _note(self.outside_range)

    def memory_range_note(self) -> str:
        """'' inside the memory model's measured range, else the phrase that flags an extrapolation."""
        return _note(self.memory_outside_range)


def _note(outside: tuple) -> str:
    return f" [EXTRAPOLATED: outside the measured range: {', '.join(outside)}]" if outside else ""


def seconds(x: float) -> str:
    """A duration for people: 3 significant digits, never '0.0' for a positive value."""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _column(r: dict, *names: str) -> str:
    for n in names:
        if r.get(n) not in (None, ""):
            return r[n]
    raise KeyError(f"none of the columns {', '.join(names)}")


def table_path(path: Path) -> Path:
    """The CSV to read: `path` itself, or a scaling series directory's results.csv."""
    path = Path(path)
    return path / "results.csv" if path.is_dir() else path


def read_table(path: Path) -> list[Point]:
    """Rows of a measured table: a network_size.csv (scaling/bench_network_size.py) or
    the results.csv of a scaling series (`hpc_brunel scale strong|weak`, or its directory).

    Parameters
    ----------
    path : pathlib.Path
        A CSV with the columns neurons, ranks, threads_per_rank, synapses, rate_hz,
        t_sim_ms, peak_rss_per_rank_mib (or vm_hwm_mib_max), time_simulate_s (or
        time_simulate_max) and, optionally, synapse_model.

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
    with open(table_path(path), newline="") as f:
        for r in csv.DictReader(f):
            out.append(Point(int(r["neurons"]), int(r["ranks"]), int(r["threads_per_rank"]), int(r["synapses"]),
                             float(r["rate_hz"]), float(_column(r, "peak_rss_per_rank_mib", "vm_hwm_mib_max")),
                             float(_column(r, "time_simulate_s", "time_simulate_max"))
                             / (float(r["t_sim_ms"]) / 1000.0),
                             r.get("synapse_model") or UNNAMED_MODEL))
    return out


def measured_ranges(points: list[Point]) -> dict:
    """{"neurons"|"ranks"|"threads"|"vps": (min, max)} over `points`."""
    return {name: (min(getattr(p, attr) for p in points), max(getattr(p, attr) for p in points))
            for name, attr in (("neurons", "neurons"), ("ranks", "ranks"), ("threads", "threads"), ("vps", "vps"))}


def fit(points: list[Point], indegree: int = 1250, ranges: dict | None = None,
        communication: Communication | None = None) -> Model:
    """Least-squares fit of both models to `points` (at least three, with two
    different rank counts for the memory model; one synapse model).

    Parameters
    ----------
    points : list of Point
        Measured runs.
    indegree : int
        C_E + C_I of those runs (the spike deliveries per model second are
        neurons x rate x indegree).
    ranges : dict, optional
        The measured range to flag predictions against (default: that of `points`).
    communication : Communication, optional
        The communication assumption (default: the module's).

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
    return Model(float(m0), float(k_syn), float(k_neuron), float(math.exp(log_c)), float(p_exp), indegree,
                 points[0].synapse_model, ranges or measured_ranges(points), communication or Communication())


def fit_memory(model: Model, points: list[Point], ranges: dict | None = None) -> Model:
    """`model` with its memory model fitted to `points` (with several rank counts): linear least
    squares in (1, synapses per rank, neurons, log2 ranks); the time model is kept.

    Parameters
    ----------
    model : Model
        The model whose memory terms are replaced.
    points : list of Point
        Measured runs with at least three rank counts and two network sizes.
    ranges : dict, optional
        The memory model's measured range (default: that of `points`).

    Returns
    -------
    Model
    """
    a = np.array([[1.0, p.synapses / p.ranks, p.neurons, math.log2(p.ranks)] for p in points])
    y = np.array([p.peak_rss_per_rank_mib for p in points])
    (m0, k_syn, k_neuron, k_rank), *_ = np.linalg.lstsq(a, y, rcond=None)
    return dataclasses.replace(model, m0_mib=float(m0), mib_per_synapse_on_rank=float(k_syn),
                               mib_per_neuron_in_network=float(k_neuron), mib_per_log2_rank=float(k_rank),
                               memory_ranges=ranges or measured_ranges(points))


def split(points: list[Point], calibration=CALIBRATION) -> tuple[list[Point], list[Point]]:
    """(points whose (neurons, ranks, threads) is in `calibration`, the others) - fit and validation rows."""
    cal = [p for p in points if (p.neurons, p.ranks, p.threads) in calibration]
    return cal, [p for p in points if p not in cal]


def validation_errors(model: Model, points: list[Point]) -> list[tuple[Point, float, float]]:
    """(point, relative error of the memory prediction, of the time prediction)."""
    out = []
    for p in points:
        mem = model.peak_rss_per_rank_mib(p.neurons, p.ranks, p.synapses)
        sim = model.simulate_s_per_model_s(p.neurons, p.vps, p.rate_hz, ranks=p.ranks)
        out.append((p, mem / p.peak_rss_per_rank_mib - 1.0, sim / p.simulate_s_per_model_s - 1.0))
    return out


def predict(model: Model, *, neurons: int, ranks: int, threads: int, rate_hz: float,
            indegree: int = 1250, recorded: int | None = None) -> Prediction:
    """Peak memory per rank and simulate time per model second of a Brunel network
    of `neurons` (in-degree C_E + C_I = `indegree`) on ranks x threads.

    Parameters
    ----------
    model : Model
        From :func:`load_models` or :func:`fit`.
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
        With what lies outside the model's measured range.
    """
    synapses = neurons * indegree + neurons + (neurons if recorded is None else recorded)
    mem = model.peak_rss_per_rank_mib(neurons, ranks, synapses)
    comm = model.extra_communication_s_per_model_s(neurons, ranks, rate_hz, indegree)
    sim = model.compute_s_per_model_s(neurons, ranks * threads, rate_hz, indegree) + comm
    return Prediction(neurons, ranks, threads, synapses, rate_hz, mem, mem * ranks, sim, comm, model.synapse_model,
                      tuple(model.outside_range(neurons=neurons, ranks=ranks, threads=threads)),
                      tuple(model.memory_outside_range(neurons=neurons, ranks=ranks)))


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


def load_models(table: Path | list[Path] | None = None, communication: Communication | None = None
                ) -> dict[str, tuple[Model, list[tuple[Point, float, float]]]]:
    """Per synapse model of `table`: the model fitted to its calibration rows, and its errors on the others.

    Parameters
    ----------
    table : pathlib.Path or list of pathlib.Path, optional
        A network_size.csv or a scaling series' results.csv (or its directory), or
        several fitted together; default: the tables shipped with the package
        (hpc_brunel/data/network_size.csv; for the synapse models of
        hpc_brunel/data/ranks.csv, the memory model is fitted there, on its
        RANKS_CALIBRATION rows, with the term in log2(ranks)).
        A synapse model with fewer than three of the CALIBRATION rows (another
        machine's table) is fitted on all its rows, with no validation.
    communication : Communication, optional
        The communication assumption (default: the module's).

    Returns
    -------
    dict of str to (Model, list of (Point, float or None, float or None))
        Per synapse model, in the table's order: the model and, per validation row,
        the relative error of the memory and of the time prediction (prediction /
        measured - 1); None where the row does not validate that model (memory of
        the network_size rows when ranks.csv has the memory model; time of the
        oversubscribed ranks rows).

    Raises
    ------
    OSError, KeyError, ValueError
        If the table cannot be read (see :func:`read_table`).
    """
    tables = table if isinstance(table, (list, tuple)) else [table or DEFAULT_TABLE]
    points = [p for t in tables for p in read_table(t)]
    out = {}
    for name in dict.fromkeys(p.synapse_model for p in points):
        rows = [p for p in points if p.synapse_model == name]
        cal, val = split(rows)
        if len({(p.neurons, p.ranks, p.threads) for p in cal}) < 3:  # another machine's table: fit on all of it
            cal, val = rows, []
        model = fit(cal, ranges=measured_ranges(rows), communication=communication)
        out[name] = (model, validation_errors(model, val))
    if table is None and RANKS_TABLE.exists():
        ranks_points = read_table(RANKS_TABLE)
        for name, (model, errors) in out.items():
            rows = [p for p in ranks_points if p.synapse_model == name]
            if not rows:
                continue
            cal = [p for p in rows if (p.neurons, p.ranks) in RANKS_CALIBRATION]
            model = fit_memory(model, cal, measured_ranges(rows))
            # memory from the ranks table (the network_size rows' memory is not what it was fitted to;
            # their times still validate the time model), time errors where the run was not oversubscribed
            errors = [(p, None, e_sim) for p, _, e_sim in validation_errors(model, [p for p, _, _ in errors])]
            errors += [(p, e_mem, None) for p, e_mem, _ in validation_errors(model, [p for p in rows if p not in cal])]
            out[name] = (model, errors)
    return out


def load_model(table: Path | None = None, synapse_model: str | None = None) -> tuple[Model, list]:
    """The model of one synapse model of `table` (default: the default synapse model,
    else the table's first) and its validation errors (see :func:`load_models`)."""
    models = load_models(table)
    name = synapse_model or (DEFAULT_SYNAPSE_MODEL if DEFAULT_SYNAPSE_MODEL in models else next(iter(models)))
    if name not in models:
        raise KeyError(f"synapse model {name} is not in the table (it has {', '.join(models)})")
    return models[name]


def mode_name(synapse_model: str) -> str:
    """'default', 'lean' or '' for a synapse model."""
    return {DEFAULT_SYNAPSE_MODEL: "default", LEAN_SYNAPSE_MODEL: "lean (--lean)"}.get(synapse_model, "")


def labelled(synapse_model: str) -> str:
    """The synapse model's name with its mode, e.g. 'static_synapse = default'."""
    mode = mode_name(synapse_model)
    return f"{synapse_model} = {mode}" if mode else synapse_model


def allocation_warnings(cfg, *, nodes: int, ntasks_per_node: int, cpus_per_task: int,
                        extra_sbatch: list[str], table: Path | list[Path] | None = None) -> list[str]:
    """What `jobscript` says about a run config on an allocation: the predicted
    peak memory per node and simulate time for the run's synapse model, flagged when
    outside the measured range; the other synapse models' memory, and a warning when
    the asked --mem cannot hold the run (with what would: lean mode or more nodes).

    Parameters
    ----------
    cfg : hpc_brunel.config.RunConfig
        The run; its rate is the mean field's stationary rate (50 Hz if that is NaN).
    nodes, ntasks_per_node, cpus_per_task : int
        The SLURM allocation: ranks = nodes x ntasks_per_node, threads = cpus_per_task.
    extra_sbatch : list of str
        Raw sbatch options; --mem=... or --mem-per-cpu=... is checked.
    table : pathlib.Path or list of pathlib.Path, optional
        The measured table(s) to fit (default: the shipped one; see :func:`load_models`).

    Returns
    -------
    list of str
        The prediction line (and one per other synapse model of the table), and a
        warning line when the requested memory per node is too small.
    """
    from hpc_brunel.theory.meanfield import stationary_rate_for_config

    models = load_models(table)
    n = cfg.network
    rate = stationary_rate_for_config(cfg)
    n_rec = cfg.recording.n_record_per_population

    def on(model: Model, k: int) -> Prediction:
        return predict(model, neurons=n.n_neurons, ranks=k * ntasks_per_node, threads=cpus_per_task,
                       rate_hz=rate if rate == rate else 50.0, indegree=n.indegree_excitatory + n.indegree_inhibitory,
                       recorded=2 * n_rec if n_rec else None)

    def gib_per_node(p: Prediction) -> float:
        return p.peak_rss_per_rank_mib * ntasks_per_node / 1024

    own = n.synapse_model
    lines = [f"plan: {n.n_neurons:,} neurons on {nodes} node(s) x {ntasks_per_node} rank(s) x {cpus_per_task} "
             f"thread(s)"]
    if own not in models:
        lines[0] += f": no measurements of {own} in the table ({', '.join(models)}); no prediction"
        return lines
    p = on(models[own][0], nodes)
    lines[0] += (f", {own}: predicted peak memory {p.peak_rss_per_rank_mib / 1024:.2f} GiB per rank, "
                 f"{gib_per_node(p):.2f} GiB per node{p.memory_range_note()}; simulate "
                 f"~{seconds(p.simulate_s_per_model_s)} s per model second" + p.range_note())
    others = {name: on(m, nodes) for name, (m, _) in models.items() if name != own}
    if others:
        lines.append("plan: other synapse models: " + "; ".join(
            f"{labelled(name)}: {gib_per_node(q):.2f} GiB per node, "
            f"~{seconds(q.simulate_s_per_model_s)} s per model second" for name, q in others.items()))
    mem = slurm_mem_mib(extra_sbatch, ntasks_per_node * cpus_per_task)
    if mem is not None and gib_per_node(p) * 1024 > mem:
        need = next((k for k in range(nodes + 1, 100 * nodes + 2)
                     if gib_per_node(on(models[own][0], k)) * 1024 <= mem), None)
        fix = (f"or for >= {need} nodes" if need else
               "(more nodes do not help: every rank holds the whole network's neurons)")
        lean = others.get(LEAN_SYNAPSE_MODEL)
        if lean is not None and gib_per_node(lean) * 1024 <= mem:
            fix = f"or run in lean mode (--lean: {gib_per_node(lean):.2f} GiB per node) " + fix
        lines.append(f"hpc_brunel: warning: --mem asks for {mem / 1024:.2f} GiB per node but the run needs about "
                     f"{gib_per_node(p):.2f} GiB per node: ask for more memory {fix}")
    return lines


def report(p: Prediction, model: Model, errors: list[tuple[Point, float, float]], table: Path,
           others: dict[str, Prediction] | None = None, mem_per_node_mib: float | None = None,
           ranks_per_node: int | None = None) -> list[str]:
    """The lines `python -m hpc_brunel plan` prints: the prediction `p` (memory and time each
    flagged when outside their model's measured range), the fitted `model` (from `table`) and its errors on
    the measured points it was not fitted to; then the table's other synapse models
    (`others`), and with `mem_per_node_mib` which of them fit in that much memory per
    node with `ranks_per_node` ranks on a node."""
    comm = (f" (of which {seconds(p.communication_s_per_model_s)} s assumed communication beyond the measured "
            f"{model.ranges['ranks'][1]} rank(s))" if p.communication_s_per_model_s > 0 else "")
    lines = [f"{p.neurons:,} neurons ({p.synapses:,} synapses) on {p.ranks} rank(s) x {p.threads} thread(s), "
             f"rate {p.rate_hz:g} Hz, {labelled(p.synapse_model)}:",
             f"  peak memory   {p.peak_rss_per_rank_mib:,.0f} MiB per rank, {p.peak_rss_total_mib:,.0f} MiB in all"
             + p.memory_range_note(),
             f"  simulate      {seconds(p.simulate_s_per_model_s)} s per model second (real-time factor){comm}"
             + p.range_note(),
             f"model: {model.m0_mib:.0f} MiB + {model.mib_per_synapse_on_rank * 2**20:.1f} B per synapse on the rank "
             f"+ {model.mib_per_neuron_in_network * 2**20:.0f} B per neuron in the network"
             + (f" + {model.mib_per_log2_rank:.2f} MiB x log2(ranks)" if model.mib_per_log2_rank else "")
             + f"; time {model.c_s:.3g} * (deliveries per VP per s)^{model.p:.2f}  ({table}); measured range: "
             + ", ".join(f"{k} {lo:,}..{hi:,}" for k, (lo, hi) in model.ranges.items())
             + (("; memory: " + ", ".join(f"{k} {lo:,}..{hi:,}" for k, (lo, hi) in model.memory_ranges.items()
                                          if k in ("neurons", "ranks"))) if model.memory_ranges else "")]
    for pt, e_mem, e_sim in errors:
        lines.append(f"  validation {pt.neurons:>7,} neurons {pt.ranks}x{pt.threads}: memory "
                     + ("-" if e_mem is None else f"{e_mem:+.1%}") + ", time "
                     + ("- (oversubscribed)" if e_sim is None else f"{e_sim:+.1%}"))
    candidates = {p.synapse_model: p, **(others or {})}
    for name, q in (others or {}).items():
        lines.append(f"{labelled(name)}: "
                     f"{q.peak_rss_per_rank_mib:,.0f} MiB per rank{q.memory_range_note()}, "
                     f"{seconds(q.simulate_s_per_model_s)} s per model second" + q.range_note())
    if mem_per_node_mib is not None:
        k = ranks_per_node or p.ranks
        fits = [name for name, q in candidates.items() if q.peak_rss_per_rank_mib * k <= mem_per_node_mib]
        fastest = min(fits, key=lambda name: candidates[name].simulate_s_per_model_s) if fits else None
        lines.append(f"allocation: {mem_per_node_mib / 1024:.2f} GiB per node, {k} rank(s) per node: " + (
            f"fits with {', '.join(fits)}; fastest that fits: {fastest}" if fits else
            "none of the measured synapse models fits: more nodes (fewer ranks per node) or more memory per node"))
    return lines
