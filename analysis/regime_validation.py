"""Calibrate and validate the regime labels on two disjoint sets of full-size runs.

    python analysis/regime_validation.py run calibration     # simulate the calibration set
    python analysis/regime_validation.py run validation      # simulate the development set (seeds 101, 102)
    python analysis/regime_validation.py run test            # simulate the test set (seeds 201, 202)
    python analysis/regime_validation.py measure             # measures per run x window x recorded subset
    python analysis/regime_validation.py calibrate           # thresholds suggested by the calibration set
    python analysis/regime_validation.py validate test       # label the held-out cases -> table (README)

Every run records all 12,500 neurons and is simulated once; the conditions are
cut from it: a run of T ms is the first T ms of a longer run with the same seed
(NEST's spikes do not depend on where Simulate stops), and recording the first
n neurons of each population records exactly those neurons' spikes of the
all-recorded run (recording does not touch the dynamics). The calibration set
(four Fig. 8 presets and one more point per regime, seeds 1 and 2, 1 s) and the
held-out sets (other seeds, 5 s, the presets and two more points per regime)
share no run. Three sets, three roles:

  calibration   seeds 1, 2         the thresholds (`calibrate`)
  validation    seeds 101, 102     held out from the calibration; the first rule was
                                   validated on it (90.2 % right), and the present
                                   rule's form (the spectral peak decides fast or slow)
                                   and margin were chosen on it: a development set now
  test          seeds 201, 202     the same points; the test set of the second rule
                                   (96.6 % right, two 300 ms cuts of the AI preset
                                   wrong), then, like the validation set, used to
                                   choose: the fast band's lower edge
  holdout       seeds 301, 302     the same points, simulated after the present rule
                                   was fixed and used for nothing else: the README's
                                   table
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.analysis import (
    regimes,
    stats,
    stream_stats,  # noqa: E402
)
from hpc_brunel.analysis.results import load_run  # noqa: E402
from hpc_brunel.simulation.parallel import mpirun_argv  # noqa: E402

RUNS = Path(os.environ.get("HPC_BRUNEL_REGIME_RUNS", ROOT / "runs" / "regimes"))
OUT = ROOT / "analysis" / "regimes"
WINDOWS_MS = (300.0, 1000.0, 5000.0)  # run lengths; the first 100 ms are discarded
SUBSETS = (50, 200, 1000, 0)  # neurons recorded per population; 0 = all
TRANSIENT_MS = 100.0


@dataclass(frozen=True)
class Case:
    regime: str  # the state this point is in (Brunel 2000, Fig. 8 and hpc_brunel.theory.stability)
    g: float
    eta: float
    seed: int
    t_sim_ms: float
    v_init: str  # neuron.v_init_distribution

    @property
    def name(self) -> str:
        return f"{self.regime}_g{self.g:g}_eta{self.eta:g}_s{self.seed}_{self.v_init}_{self.t_sim_ms:g}ms"


PRESETS = {"SR": (3.0, 2.0), "SI-fast": (6.0, 4.0), "AI": (5.0, 2.0), "SI-slow": (4.5, 0.9)}
# Two more points per regime, away from the Fig. 8 examples and inside the
# region that linear stability (hpc_brunel.theory.stability.theory_label) gives them, not
# next to a boundary: SR g < 4; SI-fast above the fast Hopf line (eta_c = 2.70 at
# g = 7, 2.46 at g = 8); AI between the slow band and the fast line (g = 5:
# 0.89 .. 4.67; g = 6: 0.83 .. 3.26); SI-slow inside the slow band (g = 5: 0.852 ..
# 0.893; g = 8: 0.852 .. 0.872: the theory's SI-slow region is this narrow).
OTHER_POINTS = {"SR": [(2.0, 3.0), (3.0, 1.5)], "SI-fast": [(7.0, 4.0), (8.0, 3.5)],
                "AI": [(6.0, 2.0), (5.0, 1.5)], "SI-slow": [(5.0, 0.87), (4.0, 0.88)]}
# The calibration set's own off-preset points (one per regime, closer to a boundary
# than the validation points: what separates the states is calibrated on them too).
CALIBRATION_POINTS = {"SR": [(2.5, 2.5)], "SI-fast": [(7.0, 3.0)], "AI": [(7.0, 2.0)], "SI-slow": [(4.5, 0.87)]}
# Every off-preset point is in its region by linear stability with the leading
# eigenvalue's real part >= 10 /s away from zero (or a mean-driven SR state).
# SI-slow (8, 0.86) was run as a validation point and labelled AI in every case
# (0.45 Hz, chi_inf(10 ms) 0.04): there the theory's slow mode grows at only
# 2.4 /s in a band 0.02 wide; it is reported beside the table, not in it, and the
# 10 /s rule above was made after seeing it.
# Chosen first, before the theory was computed, and dropped when it was, because
# it puts them next to or across a boundary: SI-fast (5, 4) (theory: AI, the fast
# line is at eta = 4.67; a first look at the table had labelled it SI-fast), AI
# (7, 2.5) (0.2 below the fast line), SI-slow (5, 0.8) and (6, 0.8) (below the
# slow band: theory says quiescent or marginally stable).


def cases(which: str) -> list[Case]:
    if which == "calibration":
        return ([Case(r, g, eta, seed, 1000.0, "fixed") for seed in (1, 2) for r, (g, eta) in PRESETS.items()]
                + [Case(r, g, eta, seed, 1000.0, "uniform") for seed in (1, 2) for r, pts in CALIBRATION_POINTS.items()
                   for g, eta in pts])
    seeds = {"validation": (101, 102), "test": (201, 202), "holdout": (301, 302)}[which]
    out = [Case(r, g, eta, seed, 5000.0, "fixed") for seed in seeds for r, (g, eta) in PRESETS.items()]
    out += [Case(r, g, eta, seed, 5000.0, "uniform") for seed in seeds for r, pts in OTHER_POINTS.items()
            for g, eta in pts if r != "SR" or seed == seeds[0]]  # SR: 6 min per 5 s run on 2 cores, one seed
    return sorted(out, key=lambda c: c.regime == "SR")  # the expensive SR runs last


def run_dir(which: str, c: Case) -> Path:
    return RUNS / which / c.name


def simulate(which: str) -> None:
    for c in cases(which):
        d = run_dir(which, c)
        if (d / "run.json").exists() and json.loads((d / "run.json").read_text()).get("status") == "complete":
            continue
        cmd = [sys.executable, "-m", "hpc_brunel", "run", "--g", f"{c.g:g}", "--eta", f"{c.eta:g}", "--seed",
               str(c.seed), "--t-sim-ms", f"{c.t_sim_ms:g}", "--set", f"neuron.v_init_distribution={c.v_init}",
               "--no-analyze", "--overwrite", "--run-dir", str(d)]
        argv, env = mpirun_argv(2, 1, cmd)
        t0 = time.time()
        subprocess.run(argv, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
        print(f"{c.name}: {time.time() - t0:.0f} s", flush=True)


MEASURES = ("n_neurons", "n_spikes", "rate_mean_hz", "cv_isi_mean", "cv_isi_n_neurons", *stats.SYNCHRONY_KEYS,
            "psd_peak_hz", "psd_peak_ratio")


def network_stats(spikes: dict, n_per_pop: dict, t_lo: float, t_hi: float) -> dict:
    """The network's statistics (E then I) of the given spikes {pop: (ids, times)}."""
    accs = []
    for p in ("excitatory", "inhibitory"):
        ids, t = spikes[p]
        acc = stream_stats.StreamingPopulationStats(n_per_pop[p], t_lo, t_hi)
        acc.add_chunk(ids, t)
        accs.append(acc)
    return stream_stats.combine_populations(accs).to_dict()


def measure_run(d: Path, which: str, c: Case) -> list[dict]:
    """One row per (window, recorded subset) of the run in d."""
    run = load_run(d, t_start_ms=TRANSIENT_MS)
    rows = []
    for w in WINDOWS_MS:
        if w > c.t_sim_ms:
            continue
        for n in SUBSETS:
            sp, n_per = {}, {}
            for p in ("excitatory", "inhibitory"):
                s = run.spikes[p]
                keep = s.times_ms < w
                if n:
                    keep &= s.node_ids < n
                sp[p] = (s.node_ids[keep], s.times_ms[keep])
                n_per[p] = n or s.n_neurons
            st = network_stats(sp, n_per, TRANSIENT_MS, w)
            lab = regimes.classify(st, w - TRANSIENT_MS)
            rows.append({"set": which, "run": c.name, "regime": c.regime, "g": c.g, "eta": c.eta, "seed": c.seed,
                         "v_init": c.v_init, "t_sim_ms": w, "recorded_per_pop": n or "all",
                         **{k: st[k] for k in MEASURES}, "label": lab.label, "best_guess": lab.best_guess,
                         "reason": lab.reason})
    return rows


def measure(sets=("calibration", "validation", "test", "holdout")) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for which in sets:
        for c in cases(which):
            d = run_dir(which, c)
            if not (d / "run.json").exists() or json.loads((d / "run.json").read_text()).get("status") != "complete":
                print(f"missing: {d}", file=sys.stderr)
                continue
            rows += measure_run(d, which, c)
    path = OUT / "measures.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    print(f"{len(rows)} rows -> {path}")
    return path


def read_measures(which: str) -> list[dict]:
    rows = [r for r in csv.DictReader(open(OUT / "measures.csv")) if r["set"] == which]
    if not rows:
        raise SystemExit(f"no {which} rows in {OUT / 'measures.csv'}: run 'measure' first")
    return rows


def _window(r: dict) -> float:
    return float(r["t_sim_ms"]) - TRANSIENT_MS


def calibrate() -> dict:
    """Thresholds from the calibration set: each where the fewest cases of the
    states below it and of the state above fall on the wrong side (halfway in the
    widest gap), over every calibration case (windows x recorded subsets); then the
    margin (in standard errors) as the smallest of 0, 0.25, ... 3 that leaves no
    calibration case confidently wrong."""
    rows = read_measures("calibration")

    def vals(key, states):
        return [float(r[key]) for r in rows if r["regime"] in states and r[key] not in ("", "nan")]

    def between(lower, upper):
        """The threshold with the fewest calibration cases on the wrong side (lower >= t
        or upper < t); among equals, the midpoint of the widest gap between values."""
        values = sorted(set(lower) | set(upper))
        best = None
        for a, b in zip(values, values[1:]):
            t = (a + b) / 2
            errors = sum(v >= t for v in lower) + sum(v < t for v in upper)
            key = (errors, -(b - a))
            if best is None or key < best[0]:
                best = (key, round(t, 3))
        return best[1], (max(lower), min(upper), best[0][0])

    found = {}
    found["regular_cv_max"] = between(vals("cv_isi_mean", {"SR"}), vals("cv_isi_mean", {"AI", "SI-fast", "SI-slow"}))
    found["sr_chi_min"] = between(vals("synchrony_chi_inf", {"AI", "SI-fast", "SI-slow"}),
                                  vals("synchrony_chi_inf", {"SR"}))
    # the slow test separates AI from SI-slow (a fast state is tested against the fast
    # threshold: its spectral peak is above regimes' fast_slow_cut_hz)
    found["slow_chi_10ms_min"] = between(vals("synchrony_chi_10ms_inf", {"AI"}),
                                         vals("synchrony_chi_10ms_inf", {"SI-slow"}))
    found["fast_chi_1ms_min"] = between(vals("synchrony_chi_inf", {"AI"}), vals("synchrony_chi_inf", {"SI-fast"}))
    thresholds = dict(regimes.REGIME_THRESHOLDS, **{k: v for k, (v, _) in found.items()})
    # the fast mode's band starts at the lowest spectral peak of an SI-fast case (the
    # AI cases near the fast threshold peak lower: reported in "ranges")
    fast_peaks = vals("psd_peak_hz", {"SI-fast"})
    ai_near = [float(r["psd_peak_hz"]) for r in rows if r["regime"] == "AI"
               and float(r["synchrony_chi_inf"]) >= 0.9 * found["fast_chi_1ms_min"][0]]
    thresholds["fast_peak_min_hz"] = round(min(fast_peaks), 1)
    found["fast_peak_min_hz"] = (thresholds["fast_peak_min_hz"], (max(ai_near, default=float("nan")), min(fast_peaks), 0))
    # the margin: the smallest (in steps of 0.25 standard errors) that leaves no
    # calibration case confidently wrong (a label other than its state's)
    # (reported, not applied: under the present rule it is 0, and the development set
    # showed 0 too small, so regimes keeps 0.5 -- see the comment at REGIME_THRESHOLDS)
    margin = 3.0
    for k in [0.25 * i for i in range(13)]:
        th = dict(thresholds, margin_se=k)
        labels = [regimes.classify(r, _window(r), th).label for r in rows]
        if not any(lab not in (r["regime"], regimes.UNDETERMINED) for lab, r in zip(labels, rows)):
            margin = k
            break
    labels = [regimes.classify(r, _window(r), thresholds).label for r in rows]
    share = sum(lab == r["regime"] for lab, r in zip(labels, rows)) / len(rows)
    out = {"cases": len(rows), "thresholds": thresholds, "labelled_right": share,
           "smallest_margin_se_without_a_wrong_calibration_case": margin,
           "ranges": {k: {"largest_below": lo, "smallest_above": hi, "cases_on_the_wrong_side": err}
                      for k, (_, (lo, hi, err)) in found.items()}}
    (OUT / "calibration.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    if thresholds != regimes.REGIME_THRESHOLDS:
        print("NOTE: hpc_brunel.analysis.regimes.REGIME_THRESHOLDS differs from these values", file=sys.stderr)
    return out


CONDITION_ORDER = [(w, n) for w in ("300", "1000", "5000") for n in ("50", "200", "1000", "all")]


def validate(which: str = "test") -> Path:
    """Label every held-out case of `which` with hpc_brunel.analysis.regimes (as it is) and with
    the raw-chi rule it replaced; write the table (the README's: the test set)."""
    rows = read_measures(which)
    old = {"regular_cv_max": 0.2, "sr_chi_min": 0.3, "slow_chi_10ms_min": 0.17, "fast_chi_1ms_min": 0.15}

    def old_label(r):  # the rule before: absolute thresholds on the raw chi
        if not float(r["rate_mean_hz"]) >= 0.1:
            return "silent"
        cv, c1, c10 = float(r["cv_isi_mean"] or "nan"), float(r["synchrony_chi"]), float(r["synchrony_chi_10ms"])
        if cv < old["regular_cv_max"] and c1 >= old["sr_chi_min"]:
            return "SR"
        return "SI-slow" if c10 >= old["slow_chi_10ms_min"] else "SI-fast" if c1 >= old["fast_chi_1ms_min"] else "AI"

    cells = {}
    for r in rows:
        lab = regimes.classify(r, _window(r)).label
        c = cells.setdefault((r["regime"], r["t_sim_ms"], r["recorded_per_pop"]), {"n": 0, "right": 0, "undet": 0,
                                                                                   "wrong": [], "old_right": 0})
        c["n"] += 1
        c["right"] += lab == r["regime"]
        c["undet"] += lab == regimes.UNDETERMINED
        if lab not in (r["regime"], regimes.UNDETERMINED):
            c["wrong"].append(f"{lab} (g={r['g']}, eta={r['eta']}, seed {r['seed']})")
        c["old_right"] += old_label(r) == r["regime"]
        c["old_wrong"] = c.get("old_wrong", 0) + (old_label(r) != r["regime"])
    states = ["SR", "SI-fast", "AI", "SI-slow"]
    lines = ["| state | points (g, eta) | " + " | ".join(f"{int(w) / 1000:g} s, {n}" for w, n in CONDITION_ORDER) + " |",
             "|---|---|" + "---|" * len(CONDITION_ORDER)]
    tot = {"n": 0, "right": 0, "undet": 0, "wrong": 0, "old_right": 0, "old_wrong": 0}
    for st in states:
        pts = sorted({(float(r["g"]), float(r["eta"])) for r in rows if r["regime"] == st})
        row = [st, ", ".join(f"({g:g}, {e:g})" for g, e in pts)]
        for w, n in CONDITION_ORDER:
            c = cells.get((st, w, n))
            if not c:
                row.append("–")
                continue
            row.append(f"{c['right']}/{c['n']}" + (f" ({c['undet']} undet.)" if c["undet"] else "")
                       + (" **" + "; ".join(c["wrong"]) + "**" if c["wrong"] else ""))
            for k in ("n", "right", "undet", "old_right", "old_wrong"):
                tot[k] += c[k]
            tot["wrong"] += len(c["wrong"])
        lines.append("| " + " | ".join(row) + " |")
    presets_wrong = [r for r in rows if (float(r["g"]), float(r["eta"])) == PRESETS[r["regime"]]
                     and r["recorded_per_pop"] != "50"
                     and regimes.classify(r, _window(r)).label not in (r["regime"], regimes.UNDETERMINED)]
    summary = (f"{which.capitalize()} set cases: {tot['n']}; labelled right {tot['right']} ({100 * tot['right'] / tot['n']:.1f} %), "
               f"undetermined {tot['undet']}, wrong {tot['wrong']}; Fig. 8 presets with >= 100 neurons recorded per "
               f"population labelled wrong: {len(presets_wrong)}. The rule it replaced (raw chi, same thresholds "
               f"as before, never undetermined): right {tot['old_right']} ({100 * tot['old_right'] / tot['n']:.1f} %), "
               f"wrong {tot['old_wrong']}.")
    by_length = {}
    for (st, w, n), c in cells.items():
        b = by_length.setdefault(w, [0, 0, 0])
        b[0] += c["n"]
        b[1] += c["right"]
        b[2] += c["undet"]
    summary += " By run length: " + ", ".join(
        f"{int(w) / 1000:g} s {b[1]}/{b[0]} right ({100 * b[1] / b[0]:.0f} %, {b[2]} undetermined)"
        for w, b in sorted(by_length.items(), key=lambda kv: float(kv[0]))) + "."
    text = ("\n".join(lines) + "\n\n" + summary + f"\n\nPresets ({which} seeds, 5 s, all neurons):\n\n"
            + presets_table(which) + "\n")
    path = OUT / f"{which}_table.md"
    path.write_text(text)
    print(text)
    return path


LOOKS = {"SR": "all neurons fire regularly near saturation, in lock-step",
         "SI-fast": "irregular neurons, fast ~180 Hz population oscillation",
         "AI": "irregular, nearly stationary population rate",
         "SI-slow": "low rates, slow ~20 Hz population waves"}


def presets_table(which: str = "test") -> str:
    """The README's table of the four presets: held-out seeds, 5 s, all neurons."""
    from hpc_brunel.theory import stability
    from hpc_brunel.theory.meanfield import MeanFieldParams

    rows = [r for r in read_measures(which) if r["t_sim_ms"] == "5000" and r["recorded_per_pop"] == "all"
            and (float(r["g"]), float(r["eta"])) == PRESETS[r["regime"]]]

    def span(key, fmt):
        v = sorted(float(r[key]) for r in sel)
        return fmt.format(v[0]) if fmt.format(v[0]) == fmt.format(v[-1]) else f"{fmt.format(v[0])}–{fmt.format(v[-1])}"

    lines = []
    for st, (g, eta) in PRESETS.items():
        sel = [r for r in rows if r["regime"] == st]
        if not sel:
            continue
        theory = stability.stationary_state(MeanFieldParams(g=g, eta=eta)).describe()
        lines.append(f"| {st} ({g:g}, {eta:g}) | {LOOKS[st]} | {span('rate_mean_hz', '{:.1f}')} Hz | {theory} | "
                     f"{span('cv_isi_mean', '{:.2f}')} | {span('synchrony_chi_inf', '{:.3f}')} | "
                     f"{span('synchrony_chi_10ms_inf', '{:.3f}')} | {span('psd_peak_hz', '{:.0f}')} Hz |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("which", choices=("calibration", "validation", "test", "holdout"))
    m = sub.add_parser("measure")
    m.add_argument("sets", nargs="*", default=["calibration", "validation", "test", "holdout"])
    sub.add_parser("calibrate")
    v = sub.add_parser("validate")
    v.add_argument("which", nargs="?", choices=("validation", "test", "holdout"), default="holdout")
    args = ap.parse_args(argv)
    if args.cmd == "calibrate":
        calibrate()
    elif args.cmd == "validate":
        validate(args.which)
    elif args.cmd == "run":
        simulate(args.which)
    elif args.cmd == "measure":
        measure(args.sets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
