"""Plots of a scaling results table (from this machine or a cluster)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hpc_brunel.studies.scaling import aggregate, read_table, yerr  # noqa: E402

PHASES = [  # (label, column); "other simulate" is time_simulate minus the listed simulation phases
    ("create", "time_construction_create_max"),
    ("connect", "time_construction_connect_max"),
    ("update", "time_update_max"),
    ("deliver spikes", "time_deliver_spike_data_max"),
    ("communicate spikes", "time_communicate_spike_data_max"),
    ("gather+collocate spikes", None),
    ("other simulate", None),
]


#: Said on the plot and under the table when NEST was built without detailed timers (a cluster's
#: NEST module, CMake's default): NEST then has only time_simulate for the simulation phase.
NO_DETAILED_TIMERS = ("NEST built without detailed timers: update / deliver / communicate are empty, "
                      "the simulation phase is shown whole")


#: How an oversubscribed point (more VPs than cores) is drawn in the wall-time panels: its wall time
#: and everything derived from it (speedup, efficiency, real-time factor) is not meaningful there.
OVERSUBSCRIBED_NOTE = "hatched / open: oversubscribed (VPs > cores), wall time not meaningful"


def wall_style(a: dict) -> dict:
    """Bar style of an aggregated point in a wall-time panel: hatched and faint when oversubscribed."""
    return {"hatch": "//", "alpha": 0.35} if a["oversubscribed"] else {"hatch": None, "alpha": 1.0}


def _points(ax, x, y, agg, **kw) -> None:
    """Markers of a wall-time panel: filled for points on dedicated cores, open when oversubscribed."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    over = np.array([a["oversubscribed"] for a in agg], bool)
    ax.plot(x[~over], y[~over], "o", color="tab:blue", **kw)
    if over.any():
        ax.plot(x[over], y[over], "o", mfc="none", color="tab:blue", label="oversubscribed")


def has_detailed_timers(a: dict) -> bool:
    """Whether an aggregated point has NEST's per-phase simulation timers."""
    return bool(np.isfinite(a.get("time_update_max", float("nan"))))


def phase_times(a: dict, stat: str = "max") -> dict[str, float]:
    """Seconds per phase; stat 'max' (over ranks, each phase on its own) or 'mean'. Without
    detailed timers the per-phase entries are NaN and "other simulate" is all of time_simulate."""
    def v(col):
        return a.get(col.replace("_max", f"_{stat}"), float("nan"))

    if not has_detailed_timers(a):
        out = {label: (v(col) if col in ("time_construction_create_max", "time_construction_connect_max")
                       else float("nan")) for label, col in PHASES}
        out["other simulate"] = v("time_simulate_max")
        return out
    gather = v("time_gather_spike_data_max") + v("time_collocate_spike_data_max")
    known = v("time_update_max") + v("time_deliver_spike_data_max") + v("time_communicate_spike_data_max") + gather
    out = {label: v(col) for label, col in PHASES if col}
    out["gather+collocate spikes"] = gather
    out["other simulate"] = max(0.0, v("time_simulate_max") - known)
    return out


def _stacked_bars(ax, x, agg, first: int, value) -> None:
    """Stacked bars of PHASES[first:], one bar per aggregated point; value(a, label) gives the height
    (wall time: oversubscribed points hatched, see wall_style)."""
    cmap = plt.get_cmap("tab10")
    bottom = np.zeros(len(agg))
    for k, (label, _) in enumerate(PHASES[first:], start=first):
        vals = np.nan_to_num(np.array([value(a, label) for a in agg], float))  # a missing timer: no bar
        bars = ax.bar(x, vals, bottom=bottom, label=label, color=cmap(k))
        for bar, a in zip(bars, agg):
            st = wall_style(a)
            bar.set_hatch(st["hatch"])
            bar.set_alpha(st["alpha"])
        bottom += vals


def _reps(agg) -> str:
    lo, hi = min(a["repetitions"] for a in agg), max(a["repetitions"] for a in agg)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def plot_table(table: Path, out_dir: Path | None = None) -> list[Path]:
    """Draw the scaling plot (scaling_<kind>.png) of a results table (results.jsonl or
    the directory holding it) into out_dir (default: the table's directory); returns
    the paths written."""
    header, rows = read_table(table)
    kind = header.get("series") or rows[0]["series"]
    agg = aggregate(rows, kind)
    out_dir = Path(out_dir or (Path(table) if Path(table).is_dir() else Path(table).parent))
    labels = [f"{a['ranks']}x{a['threads_per_rank']}" + ("*" if a["oversubscribed"] else "") for a in agg]
    x = np.arange(len(agg))
    vps = np.array([a["vps"] for a in agg], float)
    m = header.get("machine", {})
    over = any(a["oversubscribed"] for a in agg)
    subtitle = (f"{kind} scaling, {agg[0]['neurons'] if kind == 'strong' else 'growing'} neurons; "
                f"{m.get('cpu_model', '?')} ({m.get('cpus_online', '?')} CPUs), {header.get('date', '')}"
                + (f"; * oversubscribed: {OVERSUBSCRIBED_NOTE}; memory, CPU work and send buffer stay "
                   "meaningful" if over else "")
                + f"\nmedian over {_reps(agg)} repetitions per point; error bars: min-max over the repetitions")

    fig, axs = plt.subplots(2, 4, figsize=(20, 8.5))
    ax = axs[0, 0]
    _stacked_bars(ax, x, agg, 0, lambda a, label: phase_times(a)[label])
    ax.errorbar(x, [a["time_to_solution_s"] for a in agg], yerr=yerr(agg, "time_to_solution_s"), fmt="none",
                ecolor="k", capsize=4, label="min-max over repetitions")
    ax.set_xticks(x, labels)
    ax.set_ylabel("time [s] (NEST timers, max over ranks)")
    ax.set_title("time to solution by phase" if all(has_detailed_timers(a) for a in agg)
                 else "time to solution by phase\n(" + NO_DETAILED_TIMERS + ")", fontsize=None if all(
                     has_detailed_timers(a) for a in agg) else 7)
    ax.legend(fontsize=7)

    ax = axs[0, 1]
    ax.errorbar(x, [a["real_time_factor"] for a in agg], yerr=yerr(agg, "real_time_factor"), fmt="-", capsize=4)
    _points(ax, x, [a["real_time_factor"] for a in agg], agg)
    ax.set_xticks(x, labels)
    ax.set_ylabel("wall time / model time")
    ax.set_title("real-time factor (simulation phase)")
    ax.axhline(1.0, color="gray", ls=":", lw=1)

    ax = axs[0, 2]
    if kind == "strong":
        ax.errorbar(vps, [a["speedup"] for a in agg], yerr=yerr(agg, "speedup"), fmt="none", capsize=4,
                    label="measured (median, min-max)")
        _points(ax, vps, [a["speedup"] for a in agg], agg)
        for a, xi, yi, lab in zip(agg, vps, [a["speedup"] for a in agg], labels):
            ax.annotate(lab, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ref_vps = min(vps)
        grid = np.linspace(ref_vps, max(vps), 20)
        ax.plot(grid, grid / ref_vps, "k--", lw=1, label="ideal")
        ax.set_xlabel("virtual processes")
        ax.set_ylabel("speedup")
        ax.set_title("speedup of the simulation phase")
    else:
        ax.errorbar(x, [a["time_simulate_max"] for a in agg], yerr=yerr(agg, "time_simulate_max"), fmt="-",
                    capsize=4, label="measured (median, min-max)")
        _points(ax, x, [a["time_simulate_max"] for a in agg], agg)
        ax.axhline(agg[0]["time_simulate_max"], color="k", ls="--", lw=1, label="ideal (flat)")
        ax.set_xticks(x, labels)
        ax.set_ylabel("time_simulate [s]")
        ax.set_title("simulation time (weak scaling)")
    ax.legend(fontsize=8)

    ax = axs[1, 0]
    bars = ax.bar(x, [a["efficiency"] for a in agg], yerr=yerr(agg, "efficiency"), capsize=4, color="tab:green")
    for bar, a in zip(bars, agg):
        bar.set_hatch(wall_style(a)["hatch"])
        bar.set_alpha(wall_style(a)["alpha"])
    ax.axhline(1.0, color="k", ls="--", lw=1, label="ideal")
    ax.set_xticks(x, labels)
    ax.set_ylabel("parallel efficiency")
    ax.set_title(f"efficiency vs {agg[0]['reference']}")
    ax.legend(fontsize=8)

    ax = axs[1, 1]
    ax.bar(x - 0.2, [a["vm_hwm_mib_max"] for a in agg], 0.4, yerr=yerr(agg, "vm_hwm_mib_max"), capsize=3,
           label="peak RSS, max rank")
    ax.bar(x + 0.2, [a["vm_hwm_mib_mean"] * a["ranks"] for a in agg], 0.4,
           yerr=yerr(agg, "vm_hwm_mib_mean", lambda a: a["ranks"]), capsize=3, label="peak RSS, sum of ranks")
    ax.set_xticks(x, labels)
    ax.set_ylabel("MiB")
    ax.set_title("memory (VmHWM)")
    ax.legend(fontsize=8)

    ax = axs[1, 2]
    _stacked_bars(ax, x, agg, 2, lambda a, label: phase_times(a, "mean")[label] / a["time_simulate_mean"])
    ax.set_xticks(x, labels)
    ax.set_ylabel("fraction of time_simulate (mean over ranks)")
    ax.set_title("simulation phase fractions")
    ax.legend(fontsize=7)

    ax = axs[0, 3]  # meaningful when oversubscribed: CPU time is what the processes got from the cores
    ax.bar(x, [a.get("cpu_update_deliver_s_sum", float("nan")) for a in agg],
           yerr=yerr(agg, "cpu_update_deliver_s_sum") if "cpu_update_deliver_s_sum" in agg[0]["spread"] else None,
           capsize=3, color="tab:purple")
    ax.set_xticks(x, labels)
    ax.set_ylabel("CPU s, summed over VPs")
    ax.set_title("work: NEST update + deliver CPU time")

    ax = axs[1, 3]
    ax.bar(x, [a.get("spike_send_buffer_bytes_max", float("nan")) for a in agg], color="tab:gray")
    ax.set_xticks(x, labels)
    ax.set_ylabel("bytes per rank and exchange")
    ax.set_title("spike send buffer (MPI_Alltoall volume)")

    fig.suptitle(subtitle, fontsize=10)
    fig.tight_layout()
    path = out_dir / f"scaling_{kind}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def format_table(agg: list[dict]) -> str:
    """A Markdown table of `aggregate`'s rows: decomposition, phase times (s), real-time
    factor, speedup, efficiency, peak memory per rank (MiB) and rate (Hz)."""
    cols = [("decomp", lambda a: f"{a['ranks']}x{a['threads_per_rank']}" + ("*" if a["oversubscribed"] else "")),
            ("VPs", lambda a: f"{a['vps']}"), ("neurons", lambda a: f"{a['neurons']}"),
            ("create", lambda a: f"{a['time_construction_create_max']:.2f}"),
            ("connect", lambda a: f"{a['time_construction_connect_max']:.2f}"),
            ("simulate", lambda a: f"{a['time_simulate_max']:.2f}"),
            ("update", lambda a: f"{a['time_update_max']:.2f}"),
            ("deliver", lambda a: f"{a['time_deliver_spike_data_max']:.2f}"),
            ("communicate", lambda a: f"{a['time_communicate_spike_data_max']:.2f}"),
            ("RTF", lambda a: f"{a['real_time_factor']:.2f}"),
            ("speedup", lambda a: f"{a['speedup']:.2f}"), ("efficiency", lambda a: f"{a['efficiency']:.2f}"),
            ("RSS/rank MiB", lambda a: f"{a['vm_hwm_mib_max']:.0f}"), ("rate Hz", lambda a: f"{a['rate_hz']:.1f}")]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for a in agg:
        lines.append("| " + " | ".join("" if f(a) == "nan" else f(a) for _, f in cols) + " |")
    if not all(has_detailed_timers(a) for a in agg):
        lines.append(f"\n{NO_DETAILED_TIMERS}.")
    return "\n".join(lines)
