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
    # 2: --scale shrinks the populations only (1: the in-degrees too); v_init
    format_version: int = 2

    def save(self, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        (d / SWEEP_JSON).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, d: Path) -> "Sweep":
        data = json.loads((Path(d) / SWEEP_JSON).read_text())
        data["points"] = [SweepPoint(**p) for p in data["points"]]
        data.setdefault("v_init", "fixed")  # sweeps written before the option started at V_m = 0
        data.setdefault("format_version", 1)
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


def scale_note(scale: float) -> str:
    """What a sweep at --scale < 1 changes, in one line."""
    n = RunConfig().network
    n_e, n_i = scaled_sizes(scale)
    return (f"sweep on a scaled-down network: N_E = {n_e}, N_I = {n_i} ({scale:g} of the neurons) with the paper's "
            f"in-degrees C_E = {n.indegree_excitatory}, C_I = {n.indegree_inhibitory}, J and D: the mean field is "
            f"unchanged, the connection probability is {n.indegree_excitatory / n_e:.2g} instead of "
            f"{n.indegree_excitatory / n.n_excitatory:.2g}, and the extra shared input moves the boundaries of the "
            "synchronous states")


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


def relabel(sweep_dir: Path, log=print) -> list[str]:
    """Label every finished point again with the current rule, from its stored
    statistics (analyze.relabel_run: no simulation, no re-analysis), so that the
    sweep's table and diagram follow a changed label rule."""
    from .analyze import relabel_run

    sweep = Sweep.load(sweep_dir)
    done = [p for p in sweep.points if point_done(sweep_dir / p.name)]
    failures, changed = [], 0
    for p in done:
        try:
            before = json.loads((sweep_dir / p.name / "analysis.json").read_text())["regime"]
            changed += relabel_run(sweep_dir / p.name)["regime"] != before
        except Exception as e:  # keep going: report every point that failed
            failures.append(f"{p.name}: relabel failed: {e}")
    log(f"[sweep] relabelled {len(done) - len(failures)} of {len(sweep.points)} points: {changed} changed label")
    return failures


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


def collect(sweep_dir: Path, *, theory: bool = True) -> list[dict]:
    """One row per analyzed point -> sweep.csv (and the rows), with the label
    that linear stability predicts for the same (g, eta) (`stability.theory_grid`)."""
    from .config import from_dict

    sweep = Sweep.load(sweep_dir)
    rows, cfg = [], None
    for p in sweep.points:
        f = sweep_dir / p.name / "analysis.json"
        if not f.exists():
            continue
        a = json.loads(f.read_text())
        pops = a["populations"]
        cfg = from_dict(json.loads((sweep_dir / p.name / "run.json").read_text())["config"])
        net = pops["network"]
        rows.append({
            "g": p.g, "eta": p.eta, "rate_e_hz": pops["excitatory"]["rate_mean_hz"],
            "rate_i_hz": pops["inhibitory"]["rate_mean_hz"], "cv_isi": net["cv_isi_mean"],
            "synchrony_chi": net["synchrony_chi"], "synchrony_chi_inf": net.get("synchrony_chi_inf"),
            "synchrony_chi_10ms_inf": net.get("synchrony_chi_10ms_inf"), "psd_peak_hz": net["psd_peak_hz"],
            "psd_peak_ratio": net["psd_peak_ratio"], "label": a["regime"], "meanfield_rate_hz": a["meanfield_rate_hz"],
            "neurons": cfg.network.n_neurons, "t_sim_ms": cfg.simulation.t_sim_ms,
            "v_init": cfg.neuron.v_init_distribution,
        })
    if rows and theory:
        from .meanfield import MeanFieldParams
        from .stability import theory_grid

        gs, etas = sorted({r["g"] for r in rows}), sorted({r["eta"] for r in rows})
        tg = theory_grid(gs, etas, MeanFieldParams.from_config(cfg))
        for r in rows:
            i, j = gs.index(r["g"]), etas.index(r["eta"])
            r["theory_label"] = tg.labels[i][j]
            r["theory_state"] = tg.states[i][j].describe().replace(",", ";")
    with open(sweep_dir / SWEEP_CSV, "w") as out:
        if rows:
            out.write(",".join(rows[0]) + "\n")
            for r in rows:
                out.write(",".join("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
                                   for v in r.values()) + "\n")
    return rows


# a simulated label agrees with theory when they name the same state; the
# simulation's "silent" is theory's quiescent state "Q"
SIM_FOR_THEORY = {"SR": "SR", "SI-fast": "SI-fast", "AI": "AI", "SI-slow": "SI-slow", "Q": "silent"}


@dataclass
class Agreement:
    """How many grid cells the simulation puts on the side theory predicts, per
    theory label: cells, agree, undetermined, and the simulated labels of the rest."""

    per_label: dict  # theory label -> {"cells": n, "agree": n, "undetermined": n, "other": {label: n}}

    @property
    def cells(self) -> int:
        return sum(v["cells"] for v in self.per_label.values())

    @property
    def agree(self) -> int:
        return sum(v["agree"] for v in self.per_label.values())

    def table(self) -> str:
        lines = ["| theory says | cells | simulation agrees | undetermined | simulation says instead |",
                 "|---|---|---|---|---|"]
        for lab, v in self.per_label.items():
            other = ", ".join(f"{k} {n}" for k, n in sorted(v["other"].items())) or "–"
            lines.append(f"| {lab} | {v['cells']} | {v['agree']} ({100 * v['agree'] / v['cells']:.0f} %) | "
                         f"{v['undetermined']} | {other} |")
        lines.append(f"| all | {self.cells} | {self.agree} ({100 * self.agree / max(1, self.cells):.0f} %) | "
                     f"{sum(v['undetermined'] for v in self.per_label.values())} | |")
        return "\n".join(lines)


def agreement(rows: list[dict]) -> Agreement:
    """Cell-by-cell comparison of the simulated labels with `theory_label`."""
    per = {}
    for r in rows:
        th = r.get("theory_label")
        if th is None:  # collected without theory
            continue
        v = per.setdefault(th, {"cells": 0, "agree": 0, "undetermined": 0, "other": {}})
        v["cells"] += 1
        if r["label"] == SIM_FOR_THEORY.get(th):
            v["agree"] += 1
        elif r["label"] == "undetermined":
            v["undetermined"] += 1
        else:
            v["other"][r["label"]] = v["other"].get(r["label"], 0) + 1
    order = ["SR", "SI-fast", "AI", "SI-slow", "Q"]
    return Agreement({k: per[k] for k in order if k in per})


def theory_lines(g_min: float, g_max: float, eta_min: float, eta_max: float, base=None, g_step: float = 0.25):
    """Brunel's Fig. 8 boundaries from linear stability, for a plot:
    {"fast": [(g, eta, freq_hz)], "slow": [(g, eta, freq_hz)], "sr": [(g, eta)]}.
    Hopf points from `stability.phase_boundaries` (fast/slow split at
    stability.FAST_SLOW_CUT_HZ; the slow band is narrow, eta ~0.85-0.91, so it is
    scanned in steps of 0.01 there); the SR edge is where theory_label turns SR,
    bisected in g at each eta (its stability change has no oscillation frequency)."""
    from .meanfield import MeanFieldParams
    from .stability import FAST_SLOW_CUT_HZ, phase_boundaries, theory_label

    base = base or MeanFieldParams()
    eta_lo = max(eta_min, 0.05)
    gs = np.arange(g_min, g_max + 1e-9, g_step)
    fast, slow = [], []
    main = phase_boundaries(gs, eta_lo, eta_max, base, n_eta=int(round((eta_max - eta_lo) / 0.25)) + 1)
    band = (max(eta_lo, 0.78), min(eta_max, 1.0))
    fine = () if band[1] <= band[0] else phase_boundaries(
        np.arange(g_min, g_max + 1e-9, max(g_step, 0.5)), *band, base, n_eta=int(round((band[1] - band[0]) / 0.01)) + 1)
    for b in main:  # a change without a frequency is a mean-driven (SR) state: the SR edge below
        if math.isfinite(b.freq_hz) and b.freq_hz >= FAST_SLOW_CUT_HZ:
            fast.append((b.g, round(b.eta, 4), b.freq_hz))
    for b in (*main, *fine):
        pt = (b.g, round(b.eta, 4), b.freq_hz)
        if math.isfinite(b.freq_hz) and b.freq_hz < FAST_SLOW_CUT_HZ and pt not in slow:
            slow.append(pt)
    sr = []
    for eta in np.linspace(eta_lo, eta_max, 15):
        def is_sr(g):
            return theory_label(base.with_(g=float(g), eta=float(eta))) == "SR"
        lo, hi = g_min, g_max
        if not is_sr(lo) or is_sr(hi):
            continue
        while hi - lo > 0.02:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if is_sr(mid) else (lo, mid)
        sr.append((0.5 * (lo + hi), float(eta)))
    return {"fast": fast, "slow": slow, "sr": sr}


THEORY_LINES_VERSION = 1  # bump when theory_lines computes something else


def cached_theory_lines(sweep_dir: Path, g_min, g_max, eta_min, eta_max, base) -> dict:
    """theory_lines, kept in the sweep directory (a minute or two of computing)
    and recomputed only when the ranges or the model's parameters change."""
    from . import stability

    key = {"ranges": [g_min, g_max, eta_min, eta_max], "params": asdict(base), "version": THEORY_LINES_VERSION,
           "cuts": [stability.FAST_SLOW_CUT_HZ, stability.SR_SATURATION_FRACTION, stability.MEAN_DRIVEN_SIGMAS]}
    f = Path(sweep_dir) / "theory_lines.json"
    if f.exists():
        old = json.loads(f.read_text())
        if old.get("key") == json.loads(json.dumps(key)):
            return old["lines"]
    lines = theory_lines(g_min, g_max, eta_min, eta_max, base)
    f.write_text(json.dumps({"key": key, "lines": lines}, indent=1))
    return lines


def phase_diagram(rows: list[dict], path: Path, *, neurons: int, rasters: dict | None = None,
                  lines: dict | None = None) -> Path:
    """Regions coloured by label on the (g, eta) grid with the theory boundaries
    (`theory_lines`) and the balance line g = 4; beside it the agreement map (cell
    by cell: agrees with theory, undetermined, disagrees); with `rasters`
    {label: run_dir} a row of example rasters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    gs = sorted({r["g"] for r in rows})
    etas = sorted({r["eta"] for r in rows})
    labels = list(LABEL_COLORS)
    z = np.full((len(etas), len(gs)), np.nan)
    agree = np.full((len(etas), len(gs)), np.nan)
    for r in rows:
        j, i = etas.index(r["eta"]), gs.index(r["g"])
        z[j, i] = labels.index(r["label"])
        if "theory_label" in r:
            agree[j, i] = (0 if r["label"] == SIM_FOR_THEORY.get(r["theory_label"])
                           else 1 if r["label"] == "undetermined" else 2)
    n_ras = len(rasters or {})
    fig = plt.figure(figsize=(15, 6.5 if not n_ras else 9.5))
    bottom, height = (0.42, 0.5) if n_ras else (0.1, 0.8)
    ax = fig.add_axes([0.05, bottom, 0.42, height])
    axa = fig.add_axes([0.53, bottom, 0.3, height])

    def edges(v):
        v = np.asarray(v, float)
        if len(v) == 1:
            return np.array([v[0] - 0.5, v[0] + 0.5])
        mid = (v[1:] + v[:-1]) / 2
        return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])

    cmap = ListedColormap([LABEL_COLORS[k] for k in labels])
    ax.pcolormesh(edges(gs), edges(etas), z, cmap=cmap, vmin=-0.5, vmax=len(labels) - 0.5, alpha=0.85,
                  edgecolors="#888888", linewidth=0.3)
    acmap = ListedColormap(["#9be39b", "#eeeeee", "#f08080"])
    axa.pcolormesh(edges(gs), edges(etas), agree, cmap=acmap, vmin=-0.5, vmax=2.5, edgecolors="#888888",
                   linewidth=0.3)
    for r in rows:
        ax.text(r["g"], r["eta"], r["label"].replace("SI-", "SI\n").replace("undetermined", "?"), ha="center",
                va="center", fontsize=6)
        if "theory_label" in r:
            axa.text(r["g"], r["eta"], r["theory_label"].replace("SI-", "SI\n"), ha="center", va="center",
                     fontsize=6)
    for a in (ax, axa):
        if lines:
            for key, style in (("fast", "k-"), ("sr", "k:")):
                pts = sorted(lines[key])
                if pts:
                    a.plot([p[0] for p in pts], [p[1] for p in pts], style, lw=1.8)
            if lines["slow"]:  # the slow band: where the slow mode is unstable (a few hundredths of eta wide)
                a.plot([p[0] for p in lines["slow"]], [p[1] for p in lines["slow"]], "k_", ms=9, mew=2)
        a.axvline(4.0, color="#555555", ls="-.", lw=0.8)
        a.set_xlim(edges(gs)[0], edges(gs)[-1])
        a.set_ylim(edges(etas)[0], edges(etas)[-1])
        a.set_xlabel("g (relative inhibition)")
        a.set_ylabel(r"$\eta = \nu_{ext}/\nu_{thr}$")
    v_init = rows[0].get("v_init", "fixed")
    ax.set_title(f"Simulated labels ({neurons} neurons, {rows[0]['t_sim_ms']:g} ms, V_m(0) {v_init}); "
                 "lines: linear stability", fontsize=9)
    n_agree = int(np.nansum(agree == 0))
    n_cells = int(np.sum(np.isfinite(agree)))
    axa.set_title(f"Agreement with theory: {n_agree}/{n_cells} cells (text: theory's label)", fontsize=9)
    handles = [Patch(color=LABEL_COLORS[k], label=k) for k in labels]
    handles += [Patch(color="#9be39b", label="agrees"), Patch(color="#eeeeee", label="undetermined"),
                Patch(color="#f08080", label="disagrees")]
    if lines:
        handles += [plt.Line2D([], [], color="k", ls=ls, label=lab) for ls, lab in
                    (("-", "theory: Hopf line, fast mode"), (":", "theory: SR edge"))]
        handles.append(plt.Line2D([], [], color="k", marker="_", ls="", ms=9, mew=2,
                                  label="theory: slow-mode band edges"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.85, 0.95 if not n_ras else 0.92), fontsize=8)
    if n_ras:
        from .gather import read_sonata

        for k, (label, run_dir) in enumerate(rasters.items()):
            axr = fig.add_axes([0.05 + k * 0.21, 0.06, 0.18, 0.25])
            sp = read_sonata(Path(run_dir) / "spikes.h5")
            ids, t, _ = sp["excitatory"]
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


AGREEMENT_MD = "agreement.md"


def finish(out: Path, failures=(), log=print) -> int:
    """Table, theory comparison and phase diagram of the points that finished."""
    from .config import REGIMES, from_dict
    from .meanfield import MeanFieldParams

    rows = collect(out)
    sweep = Sweep.load(out)
    examples = {}
    for label in ("SR", "SI-fast", "AI", "SI-slow"):  # the grid point nearest each Fig. 8 example
        g, eta = REGIMES[label.lower()]
        cand = [r for r in rows if r["label"] == label]
        if cand:
            best = min(cand, key=lambda r: (r["g"] - g) ** 2 + (r["eta"] - eta) ** 2)
            examples[label] = out / SweepPoint(best["g"], best["eta"]).name
    if rows:
        gs, etas = [r["g"] for r in rows], [r["eta"] for r in rows]
        first = out / SweepPoint(rows[0]["g"], rows[0]["eta"]).name / "run.json"
        base = MeanFieldParams.from_config(from_dict(json.loads(first.read_text())["config"]))
        lines = cached_theory_lines(out, min(gs), max(gs), min(etas), max(etas), base)
        ag = agreement(rows)
        (out / AGREEMENT_MD).write_text(ag.table() + "\n")
        log(ag.table())
        path = phase_diagram(rows, out / "phase_diagram.png", neurons=rows[0]["neurons"], rasters=examples,
                             lines=lines)
        log(f"phase diagram: {path}")
    log(f"table: {out / SWEEP_CSV} ({len(rows)} of {len(sweep.points)} points)")
    for f in failures:
        print(f"hpc_brunel: error: {f}", file=sys.stderr)
    return 1 if failures else 0
