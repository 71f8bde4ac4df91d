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

from hpc_brunel.config import RunConfig
from hpc_brunel.constants import ANALYSIS_JSON, RUN_JSON, default_transient_ms
from hpc_brunel.errors import ConfigError
from hpc_brunel.simulation.parallel import mpirun_argv

SWEEP_JSON = "sweep.json"
PHASE_DIAGRAM_PNG = "phase_diagram.png"


@dataclass
class SweepPoint:
    """One cell of the grid: relative inhibition g and external drive eta."""

    g: float
    eta: float

    @property
    def name(self) -> str:
        """The point's run directory name, e.g. g5_eta2."""
        return f"g{self.g:g}_eta{self.eta:g}"


@dataclass
class Sweep:
    """A g x eta sweep: its points and the settings every point runs with (model time
    in ms, seed, ranks x threads, population scale, initial V_m, extra `run` options);
    stored as sweep.json in the sweep directory."""

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
        """Write the sweep to <d>/sweep.json (creating the directory)."""
        d.mkdir(parents=True, exist_ok=True)
        (d / SWEEP_JSON).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, d: Path) -> "Sweep":
        """The sweep stored in <d>/sweep.json (older files get their defaults of the time)."""
        data = json.loads((Path(d) / SWEEP_JSON).read_text())
        data["points"] = [SweepPoint(**p) for p in data["points"]]
        data.setdefault("v_init", "fixed")  # sweeps written before the option started at V_m = 0
        data.setdefault("format_version", 1)
        return cls(**data)

    def check_resume(self, d: Path) -> None:
        """Raise ConfigError when the sweep directory `d` holds a sweep this one
        cannot continue (other settings, or an old --scale that shrank the in-degrees)."""
        if not (Path(d) / SWEEP_JSON).exists():
            return
        old = Sweep.load(d)
        if old.format_version != self.format_version and old.scale != 1.0:
            raise ConfigError(f"--out {d} holds a sweep whose --scale {old.scale} shrank the in-degrees too (older "
                              "hpc_brunel); --scale now keeps them: choose another --out")
        if (old.t_sim_ms, old.seed, old.scale, old.v_init) != (self.t_sim_ms, self.seed, self.scale, self.v_init):
            raise ConfigError(f"--out {d} holds a sweep with other settings (t_sim_ms, seed, scale, v_init = "
                              f"{old.t_sim_ms}, {old.seed}, {old.scale}, {old.v_init}); choose another --out")

    def run_args(self, p: SweepPoint, run_dir: Path) -> list[str]:
        """The `hpc_brunel run` arguments of point p into run_dir (without analysis)."""
        args = ["run", "--run-dir", str(run_dir), "--overwrite", "--no-analyze", "--g", f"{p.g:g}",
                "--eta", f"{p.eta:g}", "--t-sim-ms", f"{self.t_sim_ms:g}", "--seed", str(self.seed),
                "--threads", str(self.threads), "--set", f"neuron.v_init_distribution={self.v_init}"]
        if self.scale != 1.0:
            n_e, n_i = scaled_sizes(self.scale)
            args += ["--set", f"network.n_excitatory={n_e}", "--set", f"network.n_inhibitory={n_i}"]
        return args + list(self.extra_args)


#: The largest --scale: 10 x the paper's network (N = 125,000, C/N = 0.008), the finite-size study's largest.
MAX_SCALE = 10.0


def min_scale() -> float:
    """The smallest --scale that keeps N >= C in both populations (C_E/N_E, C_I/N_I)."""
    n = RunConfig().network
    return max(n.indegree_excitatory / n.n_excitatory, n.indegree_inhibitory / n.n_inhibitory)


def scaled_sizes(scale: float) -> tuple[int, int]:
    """N_E, N_I of a network scaled by `scale`. Only the population sizes change:
    the in-degrees C_E, C_I, the weight J and the delay stay, so the mean field
    (which depends on C_E J, C_E J^2, g, eta) is the paper's; what changes is the
    connection probability C/N (0.1 / scale) and so the amount of shared input,
    which moves the boundaries of the synchronous states (finite-size effects)."""
    if not (min_scale() <= scale <= MAX_SCALE):
        raise ConfigError(f"--scale {scale:g}: allowed {min_scale():g} <= scale <= {MAX_SCALE:g} (the populations "
                          "change and the in-degrees C_E = 1000, C_I = 250 stay, so N must stay >= C)")
    n = RunConfig().network
    return round(n.n_excitatory * scale), round(n.n_inhibitory * scale)


def scale_note(scale: float) -> str:
    """What a sweep at --scale != 1 changes, in one line."""
    n = RunConfig().network
    n_e, n_i = scaled_sizes(scale)
    return (f"sweep on a scaled network: N_E = {n_e}, N_I = {n_i} ({scale:g} of the neurons) with the paper's "
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
    """(min, max, step) from "MIN:MAX:STEP"; ConfigError naming --<name> otherwise."""
    try:
        lo, hi, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--{name} {text!r}: allowed MIN:MAX:STEP, e.g. 0:8:1") from None
    return lo, hi, step


def point_done(d: Path) -> bool:
    """Whether the point's run directory `d` has been analyzed (then it is not run again)."""
    return (d / ANALYSIS_JSON).exists()


def run_point(sweep: Sweep, p: SweepPoint, sweep_dir: Path, python: str = sys.executable) -> str:
    """Simulate and analyze one point (no plots). Returns its label."""
    from hpc_brunel.analysis.analyze import analyze_run

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
    a = analyze_run(run_dir, plots=False, t_transient_ms=default_transient_ms(sweep.t_sim_ms))
    return a["regime"]


def relabel(sweep_dir: Path, log=print) -> list[str]:
    """Label every finished point again with the current rule, from its stored
    statistics (analyze.relabel_run: no simulation, no re-analysis), so that the
    sweep's table and diagram follow a changed label rule."""
    from hpc_brunel.analysis.analyze import relabel_run

    sweep = Sweep.load(sweep_dir)
    done = [p for p in sweep.points if point_done(sweep_dir / p.name)]
    failures, changed = [], 0
    for p in done:
        try:
            before = json.loads((sweep_dir / p.name / ANALYSIS_JSON).read_text())["regime"]
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


def finish(out: Path, log=print) -> list[dict]:
    """Table, theory comparison and phase diagram of the points that finished.

    Parameters
    ----------
    out : pathlib.Path
        The sweep directory.
    log : callable
        Where progress lines go.

    Returns
    -------
    list of dict
        The sweep's table (`sweep_table.collect`).
    """
    from hpc_brunel.analysis.results import load_run
    from hpc_brunel.config import PRESETS, from_dict
    from hpc_brunel.labels import LABELS
    from hpc_brunel.studies import sweep_plots, sweep_table, sweep_theory
    from hpc_brunel.theory.meanfield import MeanFieldParams

    sweep = Sweep.load(out)
    rows = sweep_table.collect(out, sweep.points)
    examples = {}
    for lab in LABELS:  # the grid point nearest each Fig. 8 example
        if lab.preset is None:
            continue
        g, eta = PRESETS[lab.preset]
        cand = [r for r in rows if r["label"] == lab.name]
        if cand:
            best = min(cand, key=lambda r: (r["g"] - g) ** 2 + (r["eta"] - eta) ** 2)
            run = load_run(out / SweepPoint(best["g"], best["eta"]).name, populations=["excitatory"],
                           neurons=sweep_plots.RASTER_NEURONS)
            exc = run.spikes["excitatory"]
            examples[lab.name] = (exc.node_ids, exc.times_ms, best["g"], best["eta"])
    if rows:
        gs, etas = [r["g"] for r in rows], [r["eta"] for r in rows]
        first = out / SweepPoint(rows[0]["g"], rows[0]["eta"]).name / RUN_JSON
        base = MeanFieldParams.from_config(from_dict(json.loads(first.read_text())["config"]))
        lines = sweep_theory.cached_theory_lines(out, min(gs), max(gs), min(etas), max(etas), base)
        ag = sweep_table.agreement(rows)
        (out / sweep_table.AGREEMENT_MD).write_text(ag.table() + "\n")
        log(ag.table())
        path = sweep_plots.phase_diagram(rows, out / PHASE_DIAGRAM_PNG, neurons=rows[0]["neurons"],
                                         rasters=examples, lines=lines)
        log(f"phase diagram: {path}")
    log(f"table: {out / sweep_table.SWEEP_CSV} ({len(rows)} of {len(sweep.points)} points)")
    return rows
