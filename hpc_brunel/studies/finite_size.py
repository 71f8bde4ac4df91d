"""The finite network's approach to the infinite-network theory as N grows.

Brunel's (2000) mean field and its linear stability are for sparse networks
(C/N -> 0). The 12,500-neuron network (C/N = 0.08) is weakly synchronous in a band
of the phase diagram (g 4.5-5.5, eta 1.5-3) where theory says AI. This study keeps
the in-degrees (C_E = 1000, C_I = 250; so the mean field and the theory labels are
the same for every N) and grows N from 12,500 to 50,000 and 125,000
(C/N = 0.08, 0.02, 0.008). Per N it simulates the band's points and one control
per regime elsewhere, 1 s after a 100-ms transient, all neurons recorded, and
reports chi_inf(1 ms), the spectral peak and the label per point, and how many
points agree with theory per N.

Each N is a sweep (`hpc_brunel.studies.sweep`, --scale 1, 4, 10) under one study
directory, so it resumes: analyzed points are kept. `analysis/finite_size.py` runs
and collects it; `make finite-size` does both.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from hpc_brunel.constants import ANALYSIS_JSON, RUN_JSON
from hpc_brunel.labels import SIM_FOR_THEORY, UNDETERMINED

#: The disagreement band: theory AI, the 12,500-neuron sweep (analysis/phase_diagram) SI-fast,
#: SI-slow or undetermined in 7 of these 12 cells. (g, eta).
BAND_POINTS = tuple((g, eta) for g in (4.5, 5.0, 5.5) for eta in (1.5, 2.0, 2.5, 3.0))
#: One point per theory regime outside the band (theory label, g, eta), cheapest first;
#: SR fires at ~330 Hz (9 x the band's cost) and runs last.
CONTROL_POINTS = (("Q", 6.0, 0.5), ("SI-slow", 4.5, 0.9), ("AI", 7.0, 2.0), ("SI-fast", 6.0, 4.0), ("SR", 3.0, 2.0))
#: --scale per N: 12,500, 50,000 and 125,000 neurons.
SCALES = (1.0, 4.0, 10.0)
T_SIM_MS = 1100.0  # 1 s after the 100-ms transient (constants.default_transient_ms)
SEED = 12345
STUDY_CSV = "finite_size.csv"
STUDY_MD = "finite_size.md"
STUDY_PNG = "finite_size.png"


def scale_dir(study_dir: Path, scale: float) -> Path:
    """The sweep directory of one N under the study directory, e.g. <study>/scale4."""
    return Path(study_dir) / f"scale{scale:g}"


def points():
    """All the study's (g, eta), band first, then the controls in order."""
    return [*BAND_POINTS, *((g, eta) for _, g, eta in CONTROL_POINTS)]


def study_sweep(scale: float, *, ranks: int = 1, threads: int = 1, only=None):
    """The sweep of one N: the study's points (or `only` of them), 1.1 s each, the
    paper's in-degrees, V_m uniform between rest and threshold.

    Parameters
    ----------
    scale : float
        One of SCALES (any allowed --scale works).
    ranks, threads : int
        Decomposition of every point's run.
    only : sequence of (g, eta), optional
        A subset of `points()`, in the order given.

    Returns
    -------
    hpc_brunel.studies.sweep.Sweep
    """
    from hpc_brunel.studies.sweep import Sweep, SweepPoint

    pts = [SweepPoint(g, eta) for g, eta in (only if only is not None else points())]
    return Sweep(pts, t_sim_ms=T_SIM_MS, seed=SEED, ranks=ranks, threads=threads, scale=scale, v_init="uniform")


@dataclass(frozen=True)
class Row:
    """One point at one N: what the simulation measured and what theory says."""

    n_neurons: int
    g: float
    eta: float
    kind: str  # "band" or "control"
    theory_label: str
    label: str
    chi_inf_1ms: float
    chi_inf_10ms: float
    psd_peak_hz: float
    rate_hz: float
    cv_isi: float
    wall_s: float
    virtual_processes: int

    @property
    def agrees(self) -> bool:
        """Whether the simulated label is theory's (theory's Q is the simulation's "silent")."""
        return self.label == SIM_FOR_THEORY.get(self.theory_label)


def theory_labels() -> dict:
    """theory_label of every study point (the same for every N: the in-degrees stay)."""
    from hpc_brunel.theory.meanfield import MeanFieldParams
    from hpc_brunel.theory.stability import theory_label

    return {(g, eta): theory_label(MeanFieldParams(g=g, eta=eta)) for g, eta in points()}


def planned(model, scale: float, g: float, eta: float, *, ranks: int, threads: int):
    """The planner's cost of one study point (`hpc_brunel.studies.plan.predict`): the network
    of `scale` (in-degrees kept), all neurons recorded, firing at the mean field's rate of
    (g, eta) (its stationary state's, stable or not: the SR state's ~300 Hz).

    Parameters
    ----------
    model : hpc_brunel.studies.plan.Model
        From `plan.load_model()`.
    scale : float
        N = scale x 12,500.
    g, eta : float
        The point.
    ranks, threads : int
        The decomposition it runs on.

    Returns
    -------
    hpc_brunel.studies.plan.Prediction
        Peak memory per rank and simulate time per model second (x T_SIM_MS / 1000 for the run).
    """
    from hpc_brunel.studies import plan
    from hpc_brunel.studies.sweep import scaled_sizes
    from hpc_brunel.theory.meanfield import MeanFieldParams
    from hpc_brunel.theory.stability import stationary_state

    n_e, n_i = scaled_sizes(scale)
    p = MeanFieldParams(g=g, eta=eta)
    rate_hz = max(stationary_state(p).state_rate_hz, 0.1)  # Q: the recorder and the drive still cost
    return plan.predict(model, neurons=n_e + n_i, ranks=ranks, threads=threads, rate_hz=rate_hz,
                        indegree=p.c_e + p.c_i)


def collect(study_dir: Path, theory: dict | None = None) -> list[Row]:
    """Every analyzed point of every N under `study_dir`, N ascending, band first.

    Parameters
    ----------
    study_dir : pathlib.Path
        Holds one sweep directory per N (`scale_dir`).
    theory : dict, optional
        (g, eta) -> theory label (default: `theory_labels()`).

    Returns
    -------
    list of Row
    """
    from hpc_brunel.studies.sweep import SweepPoint

    theory = theory if theory is not None else theory_labels()
    band = set(BAND_POINTS)
    rows = []
    for d in sorted(Path(study_dir).glob("scale*"), key=lambda p: float(p.name[5:])):
        for g, eta in points():
            run = d / SweepPoint(g, eta).name
            if not (run / ANALYSIS_JSON).exists():
                continue
            a = json.loads((run / ANALYSIS_JSON).read_text())
            r = json.loads((run / RUN_JSON).read_text())
            net = a["populations"]["network"]
            rows.append(Row(int(r["config"]["network"]["n_excitatory"] + r["config"]["network"]["n_inhibitory"]),
                            g, eta, "band" if (g, eta) in band else "control", theory[(g, eta)], a["regime"],
                            _num(net.get("synchrony_chi_inf")), _num(net.get("synchrony_chi_10ms_inf")),
                            _num(net.get("psd_peak_hz")), _num(net.get("rate_mean_hz")),
                            _num(net.get("cv_isi_mean")), float(r["wall_time_s"]),
                            int(r["decomposition"]["virtual_processes"])))
    return rows


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def agreement_by_n(rows: list[Row]) -> dict:
    """Per N: {"band": (agree, undetermined, points), "control": (...)}."""
    out: dict = {}
    for r in rows:
        k = out.setdefault(r.n_neurons, {"band": [0, 0, 0], "control": [0, 0, 0]})[r.kind]
        k[0] += r.agrees
        k[1] += r.label == UNDETERMINED
        k[2] += 1
    return {n: {kind: tuple(v) for kind, v in d.items()} for n, d in out.items()}


def write_csv(rows: list[Row], path: Path) -> None:
    """The study's table, one line per point and N."""
    fields = ["n_neurons", "g", "eta", "kind", "theory_label", "label", "chi_inf_1ms", "chi_inf_10ms", "psd_peak_hz",
              "rate_hz", "cv_isi", "wall_s", "virtual_processes"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(fields)
        for r in rows:
            w.writerow([f"{v:.4g}" if isinstance(v, float) else v for v in (getattr(r, k) for k in fields)])


def read_csv(path: Path) -> list[Row]:
    """Rows written by `write_csv`."""
    out = []
    with open(path) as f:
        for d in csv.DictReader(f):
            out.append(Row(int(d["n_neurons"]), float(d["g"]), float(d["eta"]), d["kind"], d["theory_label"],
                           d["label"], *(float(d[k]) for k in ("chi_inf_1ms", "chi_inf_10ms", "psd_peak_hz",
                                                                "rate_hz", "cv_isi", "wall_s")),
                           int(d["virtual_processes"])))
    return out


def table_md(rows: list[Row]) -> str:
    """Markdown: the agreement per N, then chi_inf(1 ms) / spectral peak / label per point and N."""
    ns = sorted({r.n_neurons for r in rows})
    ag = agreement_by_n(rows)
    lines = ["| N | C_E/N | band points agreeing with theory (AI) | undetermined | controls agreeing | "
             "wall time per point (median) |", "|---|---|---|---|---|---|"]
    for n in ns:
        b, c = ag[n]["band"], ag[n]["control"]
        walls = []  # per thread count (runs with different threads ran on different machines): median and count
        for v in sorted({r.virtual_processes for r in rows if r.n_neurons == n}):
            w = sorted(r.wall_s for r in rows if r.n_neurons == n and r.virtual_processes == v)
            walls.append(f"{w[len(w) // 2]:,.0f} s ({v} threads, {len(w)} runs)")
        lines.append(f"| {n:,} | {1000 / n:.3g} | {b[0]} of {b[2]} | {b[1]} | {c[0]} of {c[2]} | "
                     f"{'; '.join(walls)} |")
    lines += ["", "chi_inf(1 ms) / spectral peak [Hz] / label, per point (g, eta) and N:", "",
              "| g | eta | theory | " + " | ".join(f"N = {n:,}" for n in ns) + " |",
              "|---|---|---|" + "---|" * len(ns)]
    by = {(r.n_neurons, r.g, r.eta): r for r in rows}
    for g, eta in points():
        cells = []
        for n in ns:
            r = by.get((n, g, eta))
            cells.append("–" if r is None else f"{r.chi_inf_1ms:.3f} / {r.psd_peak_hz:.0f} / {r.label}")
        th = next((r.theory_label for r in rows if (r.g, r.eta) == (g, eta)), None)
        if th is not None:
            lines.append(f"| {g:g} | {eta:g} | {th} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(rows: list[Row], path: Path) -> Path:
    """Agreement with theory (band and controls) and chi_inf(1 ms) of every point vs N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({r.n_neurons for r in rows})
    ag = agreement_by_n(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, style in (("band", "o-"), ("control", "s--")):
        frac = [100.0 * ag[n][kind][0] / ag[n][kind][2] if ag[n][kind][2] else float("nan") for n in ns]
        ax1.plot(ns, frac, style, label=f"{kind} points")
    ax1.set(xscale="log", xlabel="N (neurons; C_E = 1000, C_I = 250 fixed)", ylabel="label agrees with theory [%]",
            ylim=(-5, 105), title="agreement with the infinite-network theory")
    ax1.legend()
    for g, eta in points():
        pts = sorted((r.n_neurons, r.chi_inf_1ms, r.kind) for r in rows if (r.g, r.eta) == (g, eta))
        if pts:
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if pts[0][2] == "band" else "s--",
                     lw=1, ms=3, alpha=0.8, label=f"g={g:g}, eta={eta:g}")
    ax2.set(xscale="log", yscale="log", xlabel="N", ylabel="chi_inf (1 ms bins)", title="synchrony vs N")
    ax2.legend(fontsize=5, ncol=2)
    for a in (ax1, ax2):
        a.set_xticks(ns, [f"{n:,}" for n in ns])
        a.minorticks_off()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
