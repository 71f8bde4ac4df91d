"""`python -m hpc_brunel sweep`: Brunel's (2000) Fig. 8 phase diagram from
simulations over a g x eta grid.

Each grid point is an independent run directory under the sweep directory
(`g<g>_eta<eta>/`), labelled by the analysis from its spikes alone. Points run in
parallel: locally over a bounded pool of mpirun jobs, on a cluster as a SLURM job
array. Resumable: a point whose analysis.json exists is not run again.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import ConfigError, RunConfig
from .parallel import mpirun_argv

SWEEP_JSON = "sweep.json"
SWEEP_CSV = "sweep.csv"
LABEL_COLORS = {"SR": "#d62728", "SI-fast": "#ff7f0e", "AI": "#2ca02c", "SI-slow": "#1f77b4", "silent": "#bbbbbb",
                "undetermined": "#ffffff"}


@dataclass
class SweepPoint:
    g: float
    eta: float

    @property
    def name(self) -> str:
        return f"g{self.g:g}_eta{self.eta:g}"


@dataclass
class Sweep:
    points: list[SweepPoint]
    t_sim_ms: float = 300.0
    seed: int = 12345
    ranks: int = 1
    threads: int = 1
    scale: float = 1.0  # fraction of the full network's neurons; the in-degrees C_E, C_I stay
    v_init: str = "uniform"  # neuron.v_init_distribution of every point
    extra_args: list[str] = field(default_factory=list)

    def save(self, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        (d / SWEEP_JSON).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, d: Path) -> "Sweep":
        data = json.loads((Path(d) / SWEEP_JSON).read_text())
        data["points"] = [SweepPoint(**p) for p in data["points"]]
        data.setdefault("v_init", "fixed")  # sweeps written before the option started at V_m = 0
        return cls(**data)

    def run_args(self, p: SweepPoint, run_dir: Path) -> list[str]:
        args = ["run", "--run-dir", str(run_dir), "--overwrite", "--no-analyze", "--g", f"{p.g:g}",
                "--eta", f"{p.eta:g}", "--t-sim-ms", f"{self.t_sim_ms:g}", "--seed", str(self.seed),
                "--threads", str(self.threads), "--set", f"neuron.v_init_distribution={self.v_init}"]
        if self.scale != 1.0:
            n_e, n_i = scaled_sizes(self.scale)
            args += ["--set", f"network.n_excitatory={n_e}", "--set", f"network.n_inhibitory={n_i}"]
        return args + list(self.extra_args)


def min_scale() -> float:
    """The smallest --scale that keeps N >= C in both populations (C_E/N_E, C_I/N_I)."""
    n = RunConfig().network
    return max(n.indegree_excitatory / n.n_excitatory, n.indegree_inhibitory / n.n_inhibitory)


def scaled_sizes(scale: float) -> tuple[int, int]:
    """N_E, N_I of a network scaled by `scale`. Only the population sizes shrink:
    the in-degrees C_E, C_I, the weight J and the delay stay, so the mean field
    (which depends on C_E J, C_E J^2, g, eta) is the paper's; what changes is the
    connection probability C/N (0.1 / scale) and so the amount of shared input,
    which moves the boundaries of the synchronous states (finite-size effects)."""
    if not (min_scale() <= scale <= 1):
        raise ConfigError(f"--scale {scale:g}: allowed {min_scale():g} <= scale <= 1 (the populations shrink and "
                          "the in-degrees C_E = 1000, C_I = 250 stay, so N must stay >= C)")
    n = RunConfig().network
    return round(n.n_excitatory * scale), round(n.n_inhibitory * scale)


def grid(g_range: tuple[float, float, float], eta_range: tuple[float, float, float]) -> list[SweepPoint]:
    """(min, max, step) each; both ends included."""
    def axis(lo, hi, step, name):
        if not (step > 0 and hi >= lo and all(math.isfinite(x) for x in (lo, hi, step))):
            raise ConfigError(f"--{name} {lo}:{hi}:{step}: allowed MIN:MAX:STEP with STEP > 0 and MAX >= MIN")
        n = int(round((hi - lo) / step)) + 1
        return [round(lo + k * step, 6) for k in range(n)]

    gs = axis(*g_range, "g")
    etas = axis(*eta_range, "eta")
    if min(gs) < 0 or min(etas) < 0:
        raise ConfigError("--g and --eta: allowed values >= 0")
    return [SweepPoint(g, eta) for eta in etas for g in gs]


def parse_range(text: str, name: str) -> tuple[float, float, float]:
    try:
        lo, hi, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--{name} {text!r}: allowed MIN:MAX:STEP, e.g. 0:8:1") from None
    return lo, hi, step


def point_done(d: Path) -> bool:
    return (d / "analysis.json").exists()


def run_point(sweep: Sweep, p: SweepPoint, sweep_dir: Path, python: str = sys.executable) -> str:
    """Simulate and analyze one point (no plots). Returns its label."""
    from .analyze import analyze_run

    run_dir = sweep_dir / p.name
    cmd = [python, "-m", "hpc_brunel", *sweep.run_args(p, run_dir)]
    if sweep.ranks > 1 or sweep.threads > 1:
        cmd, env = mpirun_argv(sweep.ranks, sweep.threads, cmd)
    else:
        env = {}
    proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()][:2]
        raise RuntimeError(f"{p.name}: run failed (exit {proc.returncode}): {' | '.join(errors) or proc.stderr[-500:]}")
    a = analyze_run(run_dir, plots=False, t_transient_ms=min(100.0, sweep.t_sim_ms / 3))
    return a["regime"]


def run_local(sweep: Sweep, sweep_dir: Path, jobs: int = 1, log=print) -> list[str]:
    """Run the missing points over a bounded pool of `jobs` concurrent mpirun jobs."""
    sweep.save(sweep_dir)
    todo = [p for p in sweep.points if not point_done(sweep_dir / p.name)]
    log(f"[sweep] {len(sweep.points) - len(todo)} of {len(sweep.points)} points done already; running {len(todo)} "
        f"with {jobs} concurrent job(s) of {sweep.ranks} rank(s) x {sweep.threads} thread(s)")
    failures = []
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_point, sweep, p, sweep_dir): p for p in todo}
        for k, fut in enumerate(as_completed(futures), 1):
            p = futures[fut]
            try:
                label = fut.result()
                with lock:
                    log(f"[sweep] {k}/{len(todo)} g={p.g:g} eta={p.eta:g}: {label}")
            except Exception as e:  # keep going: the other points are independent
                failures.append(str(e))
                log(f"[sweep] {k}/{len(todo)} FAILED {e}")
    return failures


def collect(sweep_dir: Path) -> list[dict]:
    """One row per analyzed point -> sweep.csv (and the rows)."""
    from .meanfield import stationary_rate_for_config
    from .config import from_dict
    import dataclasses

    sweep = Sweep.load(sweep_dir)
    rows = []
    for p in sweep.points:
        f = sweep_dir / p.name / "analysis.json"
        if not f.exists():
            continue
        a = json.loads(f.read_text())
        pops = a["populations"]
        cfg = from_dict(json.loads((sweep_dir / p.name / "run.json").read_text())["config"])
        mf = stationary_rate_for_config(dataclasses.replace(cfg))
        rows.append({
            "g": p.g, "eta": p.eta, "rate_e_hz": pops["excitatory"]["rate_mean_hz"],
            "rate_i_hz": pops["inhibitory"]["rate_mean_hz"], "cv_isi": pops["network"]["cv_isi_mean"],
            "synchrony_chi": pops["network"]["synchrony_chi"], "psd_peak_hz": pops["network"]["psd_peak_hz"],
            "psd_peak_ratio": pops["network"]["psd_peak_ratio"], "label": a["regime"], "meanfield_rate_hz": mf,
            "neurons": cfg.network.n_neurons, "t_sim_ms": cfg.simulation.t_sim_ms,
        })
    with open(sweep_dir / SWEEP_CSV, "w") as out:
        if rows:
            out.write(",".join(rows[0]) + "\n")
            for r in rows:
                out.write(",".join("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
                                   for v in r.values()) + "\n")
    return rows


def phase_diagram(rows: list[dict], path: Path, *, neurons: int, rasters: dict | None = None) -> Path:
    """Regions coloured by label on the (g, eta) grid, the balance line g = 4,
    mean-field rate contours; with `rasters` {label: run_dir} a row of example rasters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from .meanfield import stationary_rate_hz

    gs = sorted({r["g"] for r in rows})
    etas = sorted({r["eta"] for r in rows})
    labels = list(LABEL_COLORS)
    z = np.full((len(etas), len(gs)), np.nan)
    for r in rows:
        z[etas.index(r["eta"]), gs.index(r["g"])] = labels.index(r["label"])
    n_ras = len(rasters or {})
    fig = plt.figure(figsize=(11, 6.5 if not n_ras else 9.5))
    ax = fig.add_axes([0.08, 0.42 if n_ras else 0.1, 0.62, 0.52 if n_ras else 0.82])

    def edges(v):
        v = np.asarray(v, float)
        if len(v) == 1:
            return np.array([v[0] - 0.5, v[0] + 0.5])
        mid = (v[1:] + v[:-1]) / 2
        return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])

    from matplotlib.colors import ListedColormap

    cmap = ListedColormap([LABEL_COLORS[k] for k in labels])
    ax.pcolormesh(edges(gs), edges(etas), z, cmap=cmap, vmin=-0.5, vmax=len(labels) - 0.5, alpha=0.85)
    # mean-field stationary rate contours on a fine grid
    gg = np.linspace(min(gs), max(gs), 60)
    ee = np.linspace(max(min(etas), 0.05), max(etas), 50)
    mf = np.array([[stationary_rate_hz(c_e=1000, c_i=250, j_mv=0.1, g=g, eta=e, tau_m_ms=20.0, t_ref_ms=2.0,
                                       v_th_mv=20.0, v_reset_mv=10.0) for g in gg] for e in ee])
    cs = ax.contour(gg, ee, mf, levels=[1, 5, 10, 20, 40, 80, 160], colors="k", linewidths=0.7)
    ax.clabel(cs, fmt="%g Hz", fontsize=7)
    ax.axvline(4.0, color="k", ls="--", lw=1.2)
    ax.text(4.05, max(etas) * 0.97, "g = 4 (balance)", fontsize=8, va="top")
    for r in rows:
        ax.text(r["g"], r["eta"], r["label"].replace("SI-", "SI\n"), ha="center", va="center", fontsize=6)
    ax.set_xlabel("g (relative inhibition)")
    ax.set_ylabel(r"$\eta = \nu_{ext}/\nu_{thr}$")
    ax.set_title(f"Phase diagram from simulations ({neurons} neurons); black: mean-field rate")
    ax.legend(handles=[Patch(color=LABEL_COLORS[k], label=k) for k in labels], loc="upper left",
              bbox_to_anchor=(1.01, 1.0), fontsize=9)
    if n_ras:
        from .gather import read_sonata

        for k, (label, run_dir) in enumerate(rasters.items()):
            axr = fig.add_axes([0.06 + k * 0.235, 0.06, 0.2, 0.25])
            s = read_sonata(Path(run_dir) / "spikes.h5")
            ids, t, _ = s["excitatory"]
            t_hi = t.max() if len(t) else 0
            w = (ids < 50) & (t > t_hi - 100)
            axr.plot(t[w], ids[w], "|", ms=2, color=LABEL_COLORS[label])
            a = json.loads((Path(run_dir) / "analysis.json").read_text())
            axr.set_title(f"{label}: g={a['parameters']['g']:g}, eta={a['parameters']['eta']:g}", fontsize=8)
            axr.set_xlabel("time [ms]", fontsize=7)
            axr.tick_params(labelsize=6)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
