"""Strong- and weak-scaling series, beNNch style.

A series is a directory holding `series.json` (what to run: one point per
decomposition x repetition) and one run directory per point. The same series
description is run locally over mpirun (`run_local`) or handed to SLURM (the
jobscript module renders one job per point). `collect` turns the finished run
directories into one results table (JSON lines + CSV) with the machine and the
date; `hpc_brunel.studies.scaling_plots` draws it.

Per point we take NEST's kernel timers under NEST's own names (max and mean over
ranks; per-thread timers were already reduced to their max over threads), the
Python-side wall time per phase, peak memory per rank, spikes and the real-time
factor. A presimulation (warm-up) is excluded from the measured phase.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hpc_brunel.constants import RUN_JSON
from hpc_brunel.errors import ConfigError, JobError
from hpc_brunel.simulation import provenance
from hpc_brunel.simulation.parallel import mpirun_argv

SERIES_JSON = "series.json"
RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
RESULTS_META = "results.meta.json"  # machine, versions, date, NEST build: the CSV's sidecar

# Timers that make up the simulation phase (NEST names, detailed timers).
SIM_PHASES = ("time_update", "time_gather_spike_data", "time_communicate_spike_data", "time_deliver_spike_data",
              "time_collocate_spike_data")
ALL_TIMERS = ("time_construction_create", "time_construction_connect", "time_communicate_prepare",
              "time_communicate_target_data", "time_gather_target_data",
              "time_simulate", *SIM_PHASES, "time_omp_synchronization_simulation", "time_mpi_synchronization")

# beNNch's column names (beNNch-plot groups by the first four and aggregates the
# rest over repetitions). NEST timers: max over ranks, seconds; model_time_sim:
# ms; py_time_*: Python wall time of the phase, max over ranks, seconds; memory:
# VmRSS in KiB summed over ranks after kernel set-up (base), network
# construction (network), warm-up (init) and at the end (total).
BENNCH_COLUMNS = ("rng_seed", "num_nodes", "tasks_per_node", "threads_per_task", "num_nvp", "model_time_sim",
                  "time_construction_create", "time_construction_connect", "time_simulate",
                  "time_collocate_spike_data", "time_communicate_spike_data", "time_deliver_spike_data",
                  "time_update", "time_communicate_target_data", "time_gather_spike_data",
                  "time_gather_target_data", "time_communicate_prepare",
                  "py_time_create", "py_time_connect", "py_time_network", "py_time_presimulate", "py_time_simulate",
                  "base_memory", "network_memory", "init_memory", "total_memory",
                  "num_connections", "local_spike_counter")


def bennch_columns(row: dict) -> dict:
    """beNNch's columns for one results row (ours stay alongside as aliases)."""
    nan = float("nan")
    n_nodes = max(1, len([h for h in str(row.get("hosts", "")).split(",") if h]))
    out = {
        "rng_seed": row["seed"], "num_nodes": n_nodes, "tasks_per_node": max(1, row["ranks"] // n_nodes),
        "threads_per_task": row["threads_per_rank"], "num_nvp": row["vps"], "model_time_sim": row["t_sim_ms"],
    }
    for t in BENNCH_COLUMNS:
        if t.startswith("time_"):
            out[t] = row.get(f"{t}_max", nan)
    out.update({
        "py_time_create": row.get("wall_create_s", nan), "py_time_connect": row.get("wall_connect_s", nan),
        "py_time_network": row.get("wall_build_network_s", nan), "py_time_presimulate": row.get("wall_presimulate_s", nan),
        "py_time_simulate": row.get("wall_simulate_s", nan),
        "base_memory": row.get("mem_base_kib_sum", nan), "network_memory": row.get("mem_network_kib_sum", nan),
        "init_memory": row.get("mem_init_kib_sum", nan), "total_memory": row.get("mem_total_kib_sum", nan),
        "num_connections": row.get("synapses", nan), "local_spike_counter": row.get("spikes", nan),
    })
    return out


@dataclass
class SeriesPoint:
    """One run of a scaling series: its name (e.g. 2x4-rep0), decomposition (ranks x
    threads), repetition, seed and population sizes."""

    name: str
    ranks: int
    threads: int
    repetition: int
    seed: int
    n_excitatory: int
    n_inhibitory: int

    @property
    def vps(self) -> int:
        """Virtual processes: ranks x threads."""
        return self.ranks * self.threads

    def run_args(self, series: "Series", run_dir: Path) -> list[str]:
        """The `hpc_brunel run` arguments of this point into run_dir (without analysis)."""
        return ["run", "--no-analyze", "--run-dir", str(run_dir), *self.options(series)]

    def options(self, series: "Series") -> list[str]:
        """`hpc_brunel run` options of this point, run directory aside."""
        return [
            "--overwrite", "--threads", str(self.threads), "--seed", str(self.seed), "--t-sim-ms", str(series.t_sim_ms),
            "--set", f"simulation.presim_ms={series.presim_ms}", "--set", "analysis.t_transient_ms=0",
            "--set", f"network.n_excitatory={self.n_excitatory}",
            "--set", f"network.n_inhibitory={self.n_inhibitory}",
            *series.extra_args,
        ]


@dataclass
class Series:
    """A scaling series: its kind ("strong" or "weak"), points, model times (ms), extra
    `run` options and creation time; stored as series.json in the series directory."""

    kind: str  # strong | weak
    points: list[SeriesPoint]
    t_sim_ms: float
    presim_ms: float
    extra_args: list[str] = field(default_factory=list)
    created: str = ""

    def save(self, directory: Path) -> None:
        """Write the series to <directory>/series.json (creating the directory)."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SERIES_JSON).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> "Series":
        """The series stored in <directory>/series.json."""
        d = json.loads((Path(directory) / SERIES_JSON).read_text())
        d["points"] = [SeriesPoint(**p) for p in d["points"]]
        return cls(**d)

    def check_sizes(self) -> None:
        """Raise ConfigError when the smallest point has fewer excitatory neurons than
        the in-degree C_E = 1000 (unless the series' run options set the in-degrees)."""
        if min(p.n_excitatory for p in self.points) < 1000 and not any("indegree" in a for a in self.extra_args):
            what = "--neurons-per-vp" if self.kind == "weak" else "--neurons"
            raise ConfigError(f"{what}: the smallest point has fewer than C_E = 1000 excitatory neurons; allowed "
                              "--neurons >= 1250 (weak: --neurons-per-vp x VPs >= 1250), or lower the in-degrees "
                              "with --run-args")


def parse_decompositions(text: str) -> list[tuple[int, int]]:
    """'1x1,1x2,2x1' -> [(1, 1), (1, 2), (2, 1)] (ranks x threads per rank)."""
    out = []
    for item in text.split(","):
        try:
            r, t = (int(x) for x in item.lower().strip().split("x"))
        except ValueError:
            raise ConfigError(f"--decompositions {text!r}: each item must be RANKSxTHREADS, e.g. 2x1") from None
        if r < 1 or t < 1:
            raise ConfigError(f"--decompositions {item!r}: ranks and threads must be >= 1")
        out.append((r, t))
    if not out:
        raise ConfigError("--decompositions: give at least one RANKSxTHREADS")
    return out


def plan(kind: str, decompositions: list[tuple[int, int]], *, repetitions: int = 2, t_sim_ms: float = 500.0,
         presim_ms: float = 100.0, neurons: int = 12500, neurons_per_vp: int = 3125, seed: int = 12345,
         extra_args: list[str] | None = None) -> Series:
    """Strong: the same network at every point. Weak: neurons_per_vp x VPs neurons
    (80 % excitatory), in-degrees and drive fixed (NEST's convention)."""
    if kind not in ("strong", "weak"):
        raise ConfigError(f"scaling kind {kind!r}: allowed strong or weak")
    if repetitions < 1:
        raise ConfigError(f"--repetitions {repetitions}: allowed >= 1")
    points = []
    for ranks, threads in decompositions:
        n = neurons if kind == "strong" else neurons_per_vp * ranks * threads
        n_e = int(round(0.8 * n))
        for rep in range(repetitions):
            points.append(SeriesPoint(name=f"{ranks}x{threads}-rep{rep}", ranks=ranks, threads=threads, repetition=rep,
                                seed=seed + rep, n_excitatory=n_e, n_inhibitory=n - n_e))
    return Series(kind, points, t_sim_ms, presim_ms, list(extra_args or []), created=_dt.datetime.now().isoformat())


def run_local(series: Series, directory: Path, *, python: str = sys.executable, log=print) -> None:
    """Run every point not yet done, one after the other, with mpirun."""
    series.save(directory)
    for p in series.points:
        run_dir = directory / p.name
        rj = run_dir / RUN_JSON
        if rj.exists() and json.loads(rj.read_text()).get("status") == "complete":
            log(f"[scale] {p.name}: done already, skipped")
            continue
        argv, env = mpirun_argv(p.ranks, p.threads, [python, "-m", "hpc_brunel", *p.run_args(series, run_dir)])
        oversub = " (OVERSUBSCRIBED)" if p.vps > os.cpu_count() else ""
        log(f"[scale] {p.name}: {p.ranks} rank(s) x {p.threads} thread(s), "
            f"{p.n_excitatory + p.n_inhibitory} neurons{oversub}")
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True)
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()][:3]
            raise JobError(f"point {p.name} failed (exit {proc.returncode}): "
                               + (" | ".join(errors) or proc.stderr[-2000:]))
        log(f"[scale] {p.name}: {time.perf_counter() - t0:.1f} s")


def point_result(series: Series, p: SeriesPoint, run_dir: Path, cores: int | None = None) -> dict:
    """One row of the results table from a finished run directory."""
    from hpc_brunel.analysis.rankfiles import open_rank_file, read_meta
    from hpc_brunel.simulation.recording import rank_file_name

    rec = json.loads((run_dir / RUN_JSON).read_text())
    n_neurons = rec["config"]["network"]["n_excitatory"] + rec["config"]["network"]["n_inhibitory"]
    metas = []
    for r in range(p.ranks):
        with open_rank_file(run_dir / rank_file_name(r)) as f:
            metas.append(read_meta(f))
    row = {
        "series": series.kind, "point": p.name, "ranks": p.ranks, "threads_per_rank": p.threads, "vps": p.vps,
        "repetition": p.repetition, "seed": p.seed, "neurons": n_neurons,
        "t_sim_ms": series.t_sim_ms, "presim_ms": series.presim_ms,
        "oversubscribed": p.vps > (cores or os.cpu_count()),
        "synapse_model": rec["config"]["network"].get("synapse_model", ""),
        "synapses": rec["synapses_total"], "spikes": sum(rec["spikes"].values()),
        "rate_hz": sum(rec["spikes"].values()) / n_neurons / (series.t_sim_ms / 1000.0),
        "hosts": ",".join(rec.get("hosts", [])), "slurm_job_id": rec.get("slurm", {}).get("SLURM_JOB_ID", ""),
        "date": rec.get("started", ""),
    }
    for t in ALL_TIMERS:
        vals = [m["nest_timers_s"].get(t, float("nan")) for m in metas]
        row[f"{t}_max"] = max(vals)
        row[f"{t}_mean"] = sum(vals) / len(vals)
    for ph in ("setup_kernel", "build_network", "create", "connect", "presimulate", "simulate"):
        vals = [m["python_phases_s"].get(ph, float("nan")) for m in metas]
        row[f"wall_{ph}_s"] = max(vals)
    for ph in ("base", "network", "init"):
        vals = [m.get("memory_phases_kib", {}).get(ph) for m in metas]
        row[f"mem_{ph}_kib_sum"] = sum(vals) if all(v is not None for v in vals) else float("nan")
    row["mem_total_kib_sum"] = sum(m["memory_kib"].get("VmRSS", 0) for m in metas)
    row["wall_total_s"] = rec.get("wall_time_s")
    row["real_time_factor"] = row["wall_simulate_s"] / (series.t_sim_ms / 1000.0)
    row["vm_hwm_mib_max"] = max(m["memory_kib"].get("VmHWM", 0) for m in metas) / 1024.0
    row["vm_hwm_mib_mean"] = sum(m["memory_kib"].get("VmHWM", 0) for m in metas) / len(metas) / 1024.0
    row["vm_peak_mib_max"] = max(m["memory_kib"].get("VmPeak", 0) for m in metas) / 1024.0
    # CPU time of NEST's update and deliver phases summed over ranks (per rank the max over its threads,
    # x threads): what the processes got from the cores, meaningful when oversubscribed; NaN without
    # detailed timers
    row["cpu_update_deliver_s_sum"] = sum(
        (m["nest_timers_s"].get("time_update_cpu", float("nan"))
         + m["nest_timers_s"].get("time_deliver_spike_data_cpu", float("nan"))) * p.threads for m in metas)
    # NEST's spike send buffer of one rank (8-byte entries): what MPI_Alltoall moves per exchange
    sizes = [m.get("spike_exchange", {}).get("buffer_size_spike_data") for m in metas]
    row["spike_send_buffer_bytes_max"] = (8.0 * max(sizes) if sizes and all(x is not None for x in sizes)
                                          else float("nan"))  # NaN: older runs, or a NEST without the key
    return row


def collect_if_series(path: Path) -> None:
    """When `path` is a series directory with runs in it, (re)collect its finished
    points into its table; a table file or a directory without runs is left alone."""
    path = Path(path)
    if (path / SERIES_JSON).exists() and any((path / p.name / RUN_JSON).exists() for p in Series.load(path).points):
        collect(path)


def collect(directory: Path) -> list[dict]:
    """Write results.jsonl and results.csv for every finished point; returns the rows."""
    directory = Path(directory)
    series = Series.load(directory)
    rows, missing = [], []
    for p in series.points:
        run_dir = directory / p.name
        rj = run_dir / RUN_JSON
        if not rj.exists() or json.loads(rj.read_text()).get("status") != "complete":
            missing.append(p.name)
            continue
        rows.append(point_result(series, p, run_dir))
    machine = provenance.machine()
    header = {"machine": machine, "versions": provenance.versions(), "date": _dt.date.today().isoformat(),
              "series": series.kind, "missing_points": missing}
    first = next((directory / p.name / RUN_JSON for p in series.points
                  if (directory / p.name / RUN_JSON).exists()), None)
    if first:  # what the points actually ran with (a cluster's NEST module, MPI library, build flags)
        rec = json.loads(first.read_text())
        header["run_versions"] = rec.get("versions", {})
        header["nest_build_info"] = rec.get("nest_build_info", {})
    write_results(directory, header, rows)
    return rows


def write_results(directory: Path, header: dict, rows: list[dict]) -> None:
    """results.jsonl (header line + rows), results.csv (a plain header row that
    pandas and beNNch-plot read: beNNch's columns first, then ours) and the
    CSV's sidecar results.meta.json (machine, versions, date)."""
    directory = Path(directory)
    with open(directory / RESULTS_JSONL, "w") as f:
        f.write(json.dumps({"header": header}) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    m = header.get("machine", {})
    meta = {**header, "csv": RESULTS_CSV, "units": {
        "time_*, py_time_*, wall_*_s": "s", "model_time_sim, t_sim_ms, presim_ms": "ms",
        "base_memory, network_memory, init_memory, total_memory, mem_*_kib_sum": "KiB (VmRSS summed over ranks)",
        "vm_*_mib_*": "MiB"}}
    (directory / RESULTS_META).write_text(json.dumps(meta, indent=2) + "\n")
    if rows:
        table = [{**bennch_columns(r), **r, "machine": m.get("cpu_model", "")} for r in rows]
        with open(directory / RESULTS_CSV, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)


def read_table(path: Path) -> tuple[dict, list[dict]]:
    """(header, rows) from a results.jsonl (or a directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_JSONL
    header, rows = {}, []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        if "header" in d:
            header = d["header"]
        else:
            rows.append(d)
    return header, rows


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


AGG_METRICS = ("time_construction_create_max", "time_construction_connect_max", "time_simulate_max",
               *(f"{t}_max" for t in SIM_PHASES), "wall_build_network_s", "wall_simulate_s", "wall_total_s",
               "real_time_factor", "vm_hwm_mib_max", "vm_hwm_mib_mean", "rate_hz", "time_simulate_mean",
               *(f"{t}_mean" for t in SIM_PHASES), "cpu_update_deliver_s_sum", "spike_send_buffer_bytes_max")


def aggregate(rows: list[dict], kind: str) -> list[dict]:
    """Median over repetitions per decomposition, then speedup and parallel
    efficiency of the simulation phase (NEST time_simulate, max over ranks)
    relative to the point with the fewest VPs (1x1 first).
      strong: speedup = T_ref / T,  efficiency = speedup * VPs_ref / VPs
      weak:   efficiency = T_ref / T (ideal: flat time), speedup = efficiency * VPs / VPs_ref
    """
    groups: dict[tuple[int, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["ranks"], r["threads_per_rank"]), []).append(r)
    out = []
    for (ranks, threads), rs in groups.items():
        a = {"ranks": ranks, "threads_per_rank": threads, "vps": ranks * threads, "repetitions": len(rs),
             "neurons": rs[0]["neurons"], "oversubscribed": any(r["oversubscribed"] for r in rs)}
        a["spread"] = {}
        for m in AGG_METRICS:
            vals = [r[m] for r in rs if r.get(m) is not None and r[m] == r[m]]
            a[m] = _median(vals) if vals else float("nan")
            a["spread"][m] = _spread(vals)
        a["time_to_solution_s"] = (a["time_construction_create_max"] + a["time_construction_connect_max"]
                                   + a["time_simulate_max"])
        a["spread"]["time_to_solution_s"] = _spread([r["time_construction_create_max"]
                                                     + r["time_construction_connect_max"] + r["time_simulate_max"]
                                                     for r in rs])
        a["_sim_times"] = [r["time_simulate_max"] for r in rs]
        out.append(a)
    out.sort(key=lambda a: (a["vps"], a["threads_per_rank"]))
    if not out:
        return out
    ref = min(out, key=lambda a: (a["vps"], a["threads_per_rank"]))
    for a in out:
        ratio = ref["time_simulate_max"] / a["time_simulate_max"]
        # the spread over this point's repetitions, each against the reference's median
        ratios = [ref["time_simulate_max"] / t for t in a.pop("_sim_times")]
        if kind == "strong":
            a["speedup"], speedups = ratio, ratios
            a["efficiency"], effs = ratio * ref["vps"] / a["vps"], [x * ref["vps"] / a["vps"] for x in ratios]
        else:
            a["efficiency"], effs = ratio, ratios
            a["speedup"], speedups = ratio * a["vps"] / ref["vps"], [x * a["vps"] / ref["vps"] for x in ratios]
        a["spread"]["speedup"], a["spread"]["efficiency"] = _spread(speedups), _spread(effs)
        a["reference"] = f"{ref['ranks']}x{ref['threads_per_rank']}"
    return out


def _spread(vals: list[float]) -> dict:
    """min, max and sample sd over the repetitions (sd 0 for one)."""
    nan = float("nan")
    if not vals:
        return {"min": nan, "max": nan, "sd": nan, "n": 0}
    mean = sum(vals) / len(vals)
    sd = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
    return {"min": min(vals), "max": max(vals), "sd": sd, "n": len(vals)}


def yerr(agg: list[dict], metric: str, scale=None) -> list[list[float]]:
    """matplotlib's yerr (below, above) from the median to min and max over repetitions."""
    lo, hi = [], []
    for a in agg:
        f = scale(a) if scale else 1.0
        sp = a["spread"][metric]
        lo.append(max(0.0, (a[metric] - sp["min"]) * f))
        hi.append(max(0.0, (sp["max"] - a[metric]) * f))
    return [lo, hi]
