"""Brunel's (2000) Fig. 8 boundaries from the eigenvalues of the stationary state, for the
sweep's figure: the fast Hopf line, the slow band and the SR edge, cached in the sweep directory."""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hpc_brunel.constants import fast_slow_cut_hz

THEORY_LINES_JSON = "theory_lines.json"


def theory_lines(g_min: float, g_max: float, eta_min: float, eta_max: float, base=None, g_step: float = 0.25):
    """Brunel's Fig. 8 boundaries from the eigenvalues, for a plot:
    {"fast": [(g, eta, freq_hz)], "slow": [(g, eta, freq_hz)], "sr": [(g, eta, freq_hz)]}.
    The fast Hopf line from `stability.phase_boundaries` (modes at or above the
    fast/slow cut for the model's D); the slow band from `stability.slow_band` (adaptive
    in eta: a band narrower than any fixed step is found) every 0.5 in g; the SR edge
    from `stability.sr_edge` (the g where the mean-driven state turns stable) every
    0.5 in eta. A few minutes on one core (the SR edge's states are slow to evaluate)."""
    from hpc_brunel.theory.meanfield import MeanFieldParams
    from hpc_brunel.theory.stability import (QUIESCENT_RATE_HZ, is_mean_driven, phase_boundaries, slow_band, sr_edge,
                                             stationary_state)

    base = base or MeanFieldParams()
    cut = fast_slow_cut_hz(base.delay_ms)
    eta_lo = max(eta_min, 0.05)
    gs = np.arange(g_min, g_max + 1e-9, g_step)
    fast = []
    # the fast line belongs to the inhibition-dominated side (g > 4); below it a change of stability is
    # the SR edge or the onset of activity (and its mean-driven states cost 10-20 s each)
    gs_fast = gs[gs > 4.0]
    for b in phase_boundaries(gs_fast, eta_lo, eta_max, base, n_eta=int(round((eta_max - eta_lo) / 0.25)) + 1):
        # a change of a mean-driven state is the SR edge (computed below, across g), and one whose stable
        # side is the quiescent state the onset of activity: neither is the fast line
        calm = stationary_state(base.with_(g=b.g, eta=b.eta + (0.01 if b.becomes_stable else -0.01)))
        if (math.isfinite(b.freq_hz) and b.freq_hz >= cut and calm.stable and calm.rate_hz >= QUIESCENT_RATE_HZ
                and not is_mean_driven(base.with_(g=b.g, eta=b.eta), b.rate_hz)):
            fast.append((b.g, round(b.eta, 4), b.freq_hz))
    slow = []
    band = (max(eta_lo, 0.6), min(eta_max, 1.1))
    if band[1] > band[0]:
        for g in np.arange(g_min, g_max + 1e-9, max(g_step, 0.5)):
            for b in slow_band(float(g), *band, base).boundaries:
                if math.isfinite(b.freq_hz):
                    slow.append((b.g, round(b.eta, 4), b.freq_hz))
    sr = []
    for eta in np.arange(max(eta_lo, 0.5), eta_max + 1e-9, 0.5):
        b = sr_edge(float(eta), base, g_min=g_min, g_max=g_max, tol=0.02)
        if b is not None:
            sr.append((round(b.g, 4), float(eta), b.freq_hz))
    return {"fast": fast, "slow": slow, "sr": sr}


THEORY_LINES_VERSION = 4  # bump when theory_lines computes something else


def cached_theory_lines(sweep_dir: Path, g_min, g_max, eta_min, eta_max, base) -> dict:
    """theory_lines, kept in the sweep directory (a minute or two of computing)
    and recomputed only when the ranges or the model's parameters change."""
    from hpc_brunel.theory import stability

    key = {"ranges": [g_min, g_max, eta_min, eta_max], "params": asdict(base), "version": THEORY_LINES_VERSION,
           "cuts": [fast_slow_cut_hz(base.delay_ms), stability.SR_SATURATION_FRACTION, stability.MEAN_DRIVEN_SIGMAS,
                    stability.DEEP_MEAN_DRIVEN_SIGMAS]}
    f = Path(sweep_dir) / THEORY_LINES_JSON
    if f.exists():
        old = json.loads(f.read_text())
        if old.get("key") == json.loads(json.dumps(key)):
            return old["lines"]
    lines = theory_lines(g_min, g_max, eta_min, eta_max, base)
    f.write_text(json.dumps({"key": key, "lines": lines}, indent=1))
    return lines
