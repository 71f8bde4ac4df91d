"""Brunel's (2000) Fig. 8 boundaries from linear stability, for the sweep's figure:
the fast Hopf line, the slow band and the SR edge, cached in the sweep directory."""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hpc_brunel.constants import FAST_SLOW_CUT_HZ

THEORY_LINES_JSON = "theory_lines.json"


def theory_lines(g_min: float, g_max: float, eta_min: float, eta_max: float, base=None, g_step: float = 0.25):
    """Brunel's Fig. 8 boundaries from linear stability, for a plot:
    {"fast": [(g, eta, freq_hz)], "slow": [(g, eta, freq_hz)], "sr": [(g, eta)]}.
    Hopf points from `stability.phase_boundaries` (fast/slow split at
    FAST_SLOW_CUT_HZ; the slow band is narrow, eta ~0.85-0.91, so it is
    scanned in steps of 0.01 there); the SR edge is where theory_label turns SR,
    bisected in g at each eta (its stability change has no oscillation frequency)."""
    from hpc_brunel.theory.meanfield import MeanFieldParams
    from hpc_brunel.theory.stability import phase_boundaries, theory_label

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
    from hpc_brunel.theory import stability

    key = {"ranges": [g_min, g_max, eta_min, eta_max], "params": asdict(base), "version": THEORY_LINES_VERSION,
           "cuts": [FAST_SLOW_CUT_HZ, stability.SR_SATURATION_FRACTION, stability.MEAN_DRIVEN_SIGMAS]}
    f = Path(sweep_dir) / THEORY_LINES_JSON
    if f.exists():
        old = json.loads(f.read_text())
        if old.get("key") == json.loads(json.dumps(key)):
            return old["lines"]
    lines = theory_lines(g_min, g_max, eta_min, eta_max, base)
    f.write_text(json.dumps({"key": key, "lines": lines}, indent=1))
    return lines
