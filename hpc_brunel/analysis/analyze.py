"""`python -m hpc_brunel analyze RUN_DIR`: gather -> statistics -> mean field ->
regime label -> analysis.json, report.md and figures."""
from __future__ import annotations

import ctypes
import json
import math
import time
from pathlib import Path

import numpy as np

from hpc_brunel.analysis import gather as gather_mod
from hpc_brunel.analysis import regimes, stats, stream_stats
from hpc_brunel.config import RunConfig, from_dict
from hpc_brunel.constants import (
    ANALYSIS_JSON,
    DISTRIBUTIONS_PNG,
    POPULATIONS,
    RASTER_PNG,
    REPORT_MD,
    SPECTRUM_PNG,
    SPIKES_FILE,
)
from hpc_brunel.errors import IncompleteRunError
from hpc_brunel.simulation import rundir
from hpc_brunel.theory import stability
from hpc_brunel.theory.meanfield import MeanFieldParams

ANALYSIS_SCHEMA_VERSION = 2  # 2: regime_reason/best_guess, chi_inf and rho, the mean field's stability


def _clean(x):
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items() if not k.startswith("_")}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def compute(spikes: dict, t_start_ms: float, t_stop_ms: float, thresholds: dict = regimes.REGIME_THRESHOLDS) -> dict:
    """Statistics per population and for the whole network, from spikes only
    (in memory: the reference implementation; `analyze` uses compute_streaming).

    Parameters
    ----------
    spikes : dict
        population name -> (node ids within the population, spike times in ms, group
        attributes with "n_neurons"), as :func:`hpc_brunel.analysis.gather.read_sonata`
        returns; both populations of POPULATIONS.
    t_start_ms, t_stop_ms : float
        The analysis window [t_start_ms, t_stop_ms).
    thresholds : dict
        The label rule's thresholds (`regimes.thresholds_for` the run's delay).

    Returns
    -------
    dict
        population name and "network" (E then I) -> statistics dict
        (:func:`hpc_brunel.analysis.stats.population_stats`), "regime" ->
        :class:`hpc_brunel.analysis.regimes.RegimeLabel`.
    """
    out = {p: stats.population_stats(spikes[p][0], spikes[p][1], int(spikes[p][2]["n_neurons"]), t_start_ms,
                                     t_stop_ms) for p in POPULATIONS}
    n_e = int(spikes["excitatory"][2]["n_neurons"])
    ids_all = np.concatenate([spikes["excitatory"][0], spikes["inhibitory"][0] + n_e])
    t_all = np.concatenate([spikes["excitatory"][1], spikes["inhibitory"][1]])
    out["network"] = stats.population_stats(ids_all, t_all, n_e + int(spikes["inhibitory"][2]["n_neurons"]),
                                            t_start_ms, t_stop_ms)
    out["regime"] = regimes.classify(out["network"], t_stop_ms - t_start_ms, thresholds)
    return out


def compute_streaming(spike_file: Path, t_start_ms: float, t_stop_ms: float,
                      block_spikes: int = gather_mod.SONATA_BLOCK_SPIKES,
                      thresholds: dict = regimes.REGIME_THRESHOLDS) -> dict:
    """The statistics of `compute`, streaming the SONATA file block by block.

    Parameters
    ----------
    spike_file : pathlib.Path
        spikes.h5 (SONATA, sorted by time).
    t_start_ms, t_stop_ms : float
        The analysis window [t_start_ms, t_stop_ms).
    block_spikes : int
        Spikes read per block: memory is N neurons + one block, whatever the run length.
    thresholds : dict
        The label rule's thresholds (`regimes.thresholds_for` the run's delay).

    Returns
    -------
    dict
        population name and "network" -> statistics dict (as `stats.population_stats`),
        "regime" -> regimes.RegimeLabel.
    """
    attrs = gather_mod.sonata_populations(spike_file)
    accs = {}
    for p in POPULATIONS:
        acc = stream_stats.StreamingPopulationStats(int(attrs[p]["n_neurons"]), t_start_ms, t_stop_ms)
        for ids, t in gather_mod.iter_sonata_blocks(spike_file, p, block_spikes):
            acc.add_chunk(ids, t)
        accs[p] = acc
    out = {p: accs[p].result().to_dict() for p in POPULATIONS}
    out["network"] = stream_stats.combine_populations([accs[p] for p in POPULATIONS]).to_dict()
    out["regime"] = regimes.classify(out["network"], t_stop_ms - t_start_ms, thresholds)
    return out


def meanfield_summary(cfg: RunConfig) -> dict:
    """The mean field's stationary rate (of the least unstable state when none is
    stable), its linear stability and the label linear stability predicts
    (`stability.theory_label`). The analysis of a finished run never fails here:
    if the eigenvalue search raises, the Siegert rate is reported without stability.

    Parameters
    ----------
    cfg : hpc_brunel.config.RunConfig

    Returns
    -------
    dict
        meanfield_rate_hz (float, Hz), meanfield_stable (bool, None when stability
        could not be computed), meanfield_state (one line, e.g. '37.95 Hz (stable; ...)')
        and theory_label ("SR", "SI-fast", "SI-slow", "AI", "Q" or None).
    """
    try:
        state = stability.stationary_state_for_config(cfg)
        return {"meanfield_rate_hz": state.rate_hz if state.stable else state.state_rate_hz,
                "meanfield_stable": state.stable, "meanfield_state": state.describe(),
                "theory_label": stability.label_of(MeanFieldParams.from_config(cfg), state)}
    except Exception as e:  # noqa: BLE001 - a theory failure must not cost the user the analysis
        from hpc_brunel.theory.meanfield import stationary_rate_for_config

        rate = stationary_rate_for_config(cfg)
        return {"meanfield_rate_hz": rate, "meanfield_stable": None,
                "meanfield_state": f"{rate:.2f} Hz (stability not computed: {type(e).__name__}: {e})",
                "theory_label": None}


def keep_freed_memory(max_block_bytes: int = 32 << 20) -> bool:
    """Let glibc keep freed blocks of up to max_block_bytes for reuse instead of
    returning them to the OS: gather and statistics allocate the same ~8-16 MiB
    arrays for every block of spikes, and fresh pages cost page faults each time
    (measured: statistics of a 20 s run 0.63 s -> 0.48 s). The peak RSS is the
    working set of one block either way. Returns whether glibc accepted it."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, max_block_bytes)) and bool(
            libc.mallopt(m_trim_threshold, 16 * max_block_bytes))
    except (OSError, AttributeError):  # not glibc
        return False


def analyze_run(run_dir: Path, *, partial: bool = False, t_transient_ms: float | None = None,
                plots: bool = True, print_table: bool = False) -> dict:
    """Analyze a run directory: gather, statistics, mean field, regime label, outputs.

    Merges the rank files into spikes.h5 (SONATA), computes the statistics of the
    window [start + transient, end) in one bounded-memory pass
    (:func:`compute_streaming`), the mean field (:func:`meanfield_summary`) and the
    regime label, and writes analysis.json, report.md and (with `plots`) the figures
    raster.png, distributions.png and spectrum.png into the run directory.

    Parameters
    ----------
    run_dir : pathlib.Path
        The run directory.
    partial : bool
        Analyze an unfinished run up to the last model time all ranks flushed.
    t_transient_ms : float, optional
        Model time after the start of the recording left out of the statistics;
        default: the run's analysis.t_transient_ms.
    plots : bool
        Draw the figures.
    print_table : bool
        Print the summary table and the report's path.

    Returns
    -------
    dict
        What analysis.json holds (before NaN -> null): window_ms, populations
        (excitatory, inhibitory, network statistics), regime, regime_reason,
        regime_best_guess, the thresholds, the mean-field fields, timings_s, ...

    Raises
    ------
    IncompleteRunError
        If the run cannot be gathered (missing or unfinished rank files without
        `partial`, not a run directory), or the analysis window is shorter than 10 ms.
    """
    run_dir = Path(run_dir)
    keep_freed_memory()
    t0 = time.perf_counter()
    g = gather_mod.gather(run_dir, partial=partial)
    t_gather = time.perf_counter() - t0
    record = rundir.read_run_json(run_dir)
    cfg = from_dict(record["config"])
    transient = cfg.analysis.t_transient_ms if t_transient_ms is None else t_transient_ms
    t_lo = g["t_start_ms"] + transient
    t_hi = g["t_stop_ms"]
    if t_hi - t_lo < 10.0:
        raise IncompleteRunError(
            f"analysis window [{t_lo:.1f}, {t_hi:.1f}) ms is shorter than 10 ms: "
            f"lower --transient-ms (now {transient} ms) or simulate longer")
    spike_file = run_dir / SPIKES_FILE
    t1 = time.perf_counter()
    thresholds = regimes.thresholds_for(cfg.network.delay_ms)  # the frequency cuts follow D
    result = compute_streaming(spike_file, t_lo, t_hi, thresholds=thresholds)
    mf_fields = meanfield_summary(cfg)
    t_stats = time.perf_counter() - t1
    analysis = {
        "schema_version": ANALYSIS_SCHEMA_VERSION,
        "run_dir": str(run_dir),
        "run_id": record["run_id"],
        "partial": g["partial"],
        "run_status": record.get("status"),
        "seams_ms": record.get("seams_ms", []),  # where a continuation (run --continue) started
        "t_sim_requested_ms": cfg.simulation.presim_ms + cfg.simulation.t_sim_ms,
        "failures": [{k: v for k, v in f.items() if k != "traceback"} for f in rundir.read_failures(run_dir)],
        "window_ms": [t_lo, t_hi],
        "t_transient_ms": transient,
        "parameters": {"g": cfg.network.relative_inhibition, "eta": cfg.network.eta,
                       "J_mv": cfg.network.weight_mv, "D_ms": cfg.network.delay_ms,
                       "N_E": cfg.network.n_excitatory, "N_I": cfg.network.n_inhibitory,
                       "C_E": cfg.network.indegree_excitatory, "C_I": cfg.network.indegree_inhibitory,
                       "V_reset_mv": cfg.neuron.v_reset_mv, "rng_seed": cfg.simulation.rng_seed},
        "decomposition": record["decomposition"],
        "populations": {p: result[p] for p in (*POPULATIONS, "network")},
        "regime": result["regime"].label,
        "regime_reason": result["regime"].reason,
        "regime_best_guess": result["regime"].best_guess,
        "regime_thresholds": thresholds,
        "regime_min_data": regimes.MIN_DATA,
        **mf_fields,
        "rate_vs_meanfield": (result["network"]["rate_mean_hz"] / mf_fields["meanfield_rate_hz"]
                              if mf_fields["meanfield_stable"] and mf_fields["meanfield_rate_hz"] > 0 else None),
        "timings_s": {"gather": t_gather, "statistics": t_stats},
        "spike_file": SPIKES_FILE,
    }
    if plots:
        t2 = time.perf_counter()
        title = (f"Brunel network, g={cfg.network.relative_inhibition:g}, eta={cfg.network.eta:g}: "
                 f"{result['regime'].label}")
        from hpc_brunel.analysis import plots as P

        # the raster shows the last P.RASTER_WINDOW_MS: read only those spikes
        window = gather_mod.read_sonata_window(spike_file, max(g["t_start_ms"], t_hi - P.RASTER_WINDOW_MS), t_hi)
        P.raster(window, g["t_start_ms"], t_hi, run_dir / RASTER_PNG, window_ms=P.RASTER_WINDOW_MS, title=title)
        P.distributions(result, run_dir / DISTRIBUTIONS_PNG)
        P.spectrum(result, run_dir / SPECTRUM_PNG)
        analysis["timings_s"]["plots"] = time.perf_counter() - t2
    (run_dir / ANALYSIS_JSON).write_text(json.dumps(_clean(analysis), indent=2))
    (run_dir / REPORT_MD).write_text(report_markdown(analysis, record, cfg, plots))
    if print_table:
        print(summary_table(analysis))
        print(f"report: {run_dir / REPORT_MD}", flush=True)
    return analysis


def relabel_run(run_dir: Path) -> dict:
    """Apply the current label rule (hpc_brunel.analysis.regimes) to an analyzed run's
    stored statistics and rewrite analysis.json and report.md: no gather, no statistics,
    no mean field. For the statistics themselves to follow a code change, run
    analyze_run again.

    Parameters
    ----------
    run_dir : pathlib.Path
        An analyzed run directory (with analysis.json).

    Returns
    -------
    dict
        The updated content of analysis.json.

    Raises
    ------
    FileNotFoundError
        If the run has no analysis.json or run.json.
    """
    run_dir = Path(run_dir)
    a = json.loads((run_dir / ANALYSIS_JSON).read_text())
    lo, hi = a["window_ms"]
    record = rundir.read_run_json(run_dir)
    cfg = from_dict(record["config"])
    thresholds = regimes.thresholds_for(cfg.network.delay_ms)
    lab = regimes.classify(a["populations"]["network"], hi - lo, thresholds)
    a.update(regime=lab.label, regime_reason=lab.reason, regime_best_guess=lab.best_guess,
             regime_thresholds=thresholds, regime_min_data=regimes.MIN_DATA)
    (run_dir / ANALYSIS_JSON).write_text(json.dumps(_clean(a), indent=2))
    (run_dir / REPORT_MD).write_text(report_markdown(a, record, cfg, (run_dir / RASTER_PNG).exists()))
    return a


ROWS = [
    ("rate mean [Hz]", "rate_mean_hz", "{:.2f}"),
    ("rate sd [Hz]", "rate_sd_hz", "{:.2f}"),
    ("silent fraction", "silent_fraction", "{:.3f}"),
    ("CV(ISI) mean", "cv_isi_mean", "{:.3f}"),
    ("Fano 1 ms", "fano_1ms", "{:.2f}"),
    ("Fano 5 ms", "fano_5ms", "{:.2f}"),
    ("synchrony chi 1 ms", "synchrony_chi", "{:.3f}"),
    ("synchrony chi 10 ms", "synchrony_chi_10ms", "{:.3f}"),
    ("chi_inf 1 ms", "synchrony_chi_inf", "{:.3f}"),
    ("chi_inf 10 ms", "synchrony_chi_10ms_inf", "{:.3f}"),
    ("PSD peak [Hz]", "psd_peak_hz", "{:.1f}"),
    ("PSD peak / mean", "psd_peak_ratio", "{:.1f}"),
]


def _fmt(fmt, v):
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def summary_table(a: dict) -> str:
    """The plain-text table `analyze` prints: the statistics per population and the
    network, the mean field and the regime with its reason (`a`: analysis.json's content)."""
    pops = a["populations"]
    w = [20, 12, 12, 12]
    head = f"{'':{w[0]}}{'excitatory':>{w[1]}}{'inhibitory':>{w[2]}}{'network':>{w[3]}}"
    lines = [f"statistics over the analysis window [{a['window_ms'][0]:.1f}, {a['window_ms'][1]:.1f}) ms, after the "
             f"{a['t_transient_ms']:g} ms transient", head, "-" * sum(w)]
    for label, key, fmt in ROWS:
        lines.append(f"{label:{w[0]}}" + "".join(f"{_fmt(fmt, pops[p][key]):>{w[i + 1]}}"
                                                  for i, p in enumerate((*POPULATIONS, "network"))))
    lines.append("-" * sum(w))
    lines.append(f"mean field: {a['meanfield_state']}; measured/theory "
                 f"{_fmt('{:.3f}', a['rate_vs_meanfield'])}\nregime: {a['regime']}"
                 + (f" (best guess {a['regime_best_guess']})" if a["regime"] == regimes.UNDETERMINED else "")
                 + f"\n  because {a['regime_reason']}"
                 + ("  [PARTIAL run]" if a["partial"] else "")
                 + (f"  [run stopped early by a signal at {a['window_ms'][1]:.1f} of {a['t_sim_requested_ms']:.1f} ms]"
                    if a["run_status"] == "terminated" and not a["partial"] else ""))
    return "\n".join(lines)


def report_markdown(a: dict, record: dict, cfg: RunConfig, plots: bool) -> str:
    """The text of report.md from analysis.json's content `a`, run.json's `record` and
    the run's config; `plots`: link the figures."""
    d = record["decomposition"]
    timers = record.get("nest_timers_max_s", {})
    pops = a["populations"]
    lines = [
        f"# Brunel network run `{Path(a['run_dir']).name}`",
        "",
        f"**Regime (from the spikes): {a['regime']}** · theory (linear stability): {a['theory_label']} · "
        f"mean field: {a['meanfield_state']} · measured {pops['network']['rate_mean_hz']:.2f} Hz",
        "",
        f"Why: {a['regime_reason']}"
        + (f" (the point estimates alone would say {a['regime_best_guess']})" if a["regime"] == regimes.UNDETERMINED
           else "") + ".",
        "",
    ]
    if a["partial"]:
        lines += [f"> **Partial analysis**: the run did not complete (status `{record.get('status')}`); "
                  f"analyzed up to {a['window_ms'][1]:.1f} ms, the last model time all ranks flushed.", ""]
        lines += [f"> Failure: {rundir.describe_failure(f)}" for f in a["failures"]] + ([""] if a["failures"] else [])
    elif a["run_status"] == "terminated":
        lines += [f"> **Stopped early**: the run was stopped by SIGTERM/SIGINT (e.g. SLURM's time limit) at "
                  f"{a['window_ms'][1]:.1f} ms of the {a['t_sim_requested_ms']:.1f} ms asked for; every rank "
                  "stopped at that chunk boundary and closed its file, so this is a complete analysis of a "
                  "shorter run.", ""]
    if a.get("seams_ms"):
        segs = record.get("segments", [])
        lines += [f"> **Continued run**: {len(segs)} segments (jobs), seams at "
                  + ", ".join(f"{t:g} ms" for t in a["seams_ms"]) + ": every neuron's state and the spikes in "
                  "flight were restored at each seam; the Poisson drive drew a new random stream there "
                  "(run.json `segments`).", ""]
    lines += [
        "## Parameters",
        "",
        "| parameter | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in a["parameters"].items()],
        f"| simulated | {record.get('t_model_reached_ms')} ms (dt {cfg.simulation.resolution_ms} ms) |",
        f"| analysis window | {a['window_ms'][0]:.1f}–{a['window_ms'][1]:.1f} ms |",
        "",
        "## Decomposition and timings",
        "",
        f"{d['ranks']} rank(s) × {d['threads_per_rank']} thread(s) = {d['virtual_processes']} virtual processes "
        f"on {', '.join(record.get('hosts', []))}.",
        "",
        "| phase | seconds |",
        "|---|---|",
        f"| NEST create | {timers.get('time_construction_create', float('nan')):.2f} |",
        f"| NEST connect | {timers.get('time_construction_connect', float('nan')):.2f} |",
        f"| NEST simulate | {timers.get('time_simulate', float('nan')):.2f} |",
        f"| run total (wall) | {record.get('wall_time_s', float('nan')):.2f} |",
        f"| gather | {a['timings_s']['gather']:.2f} |",
        f"| statistics | {a['timings_s']['statistics']:.2f} |",
        "",
        "## Statistics",
        "",
        "| measure | excitatory | inhibitory | network |",
        "|---|---|---|---|",
        *[f"| {label} | " + " | ".join(_fmt(fmt, pops[p][key]) for p in (*POPULATIONS, "network"))
          + " |" for label, key, fmt in ROWS],
        "| mean-field stationary rate [Hz] | " + " | ".join(
            [f"{a['meanfield_rate_hz']:.2f}" if a["meanfield_stable"] is not False
             else "no stable stationary state"] * 3) + " |",
        "",
        "Regime thresholds (hpc_brunel.analysis.regimes.REGIME_THRESHOLDS; chi_inf is chi corrected for the number of "
        "recorded neurons): "
        + ", ".join(f"{k} = {v}" for k, v in a["regime_thresholds"].items()),
        "",
    ]
    if plots:
        lines += ["## Figures", "", "![raster](raster.png)", "", "![distributions](distributions.png)", "",
                  "![spectrum](spectrum.png)", ""]
    return "\n".join(lines)
