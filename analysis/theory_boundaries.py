"""The phase diagram's boundaries from the characteristic equation, as a table.

    python analysis/theory_boundaries.py      # -> analysis/theory/boundaries.json, boundaries.md (~10 min)

Brunel's (2000) model A (D = 1.5 ms), each boundary from the eigenvalues of the
stationary state (hpc_brunel.theory.stability):
- the fast Hopf line (SI-fast above it): `phase_boundaries` per g, refined to the
  exact critical point (eta_c, f_c) of F(i 2 pi f; eta) = 0;
- the slow band (SI-slow inside it): `slow_band` per g, adaptive in eta (a band of
  width 0.001 is found), or the slow mode's closest approach where there is none;
- the SR edge (SR at smaller g): `sr_edge` per eta, the exact (g_c, f_c).
tests/theory/test_boundaries.py checks every row against an independent solver
(threshold integration of the linearised Fokker-Planck equation) and that the
README's table is this file's.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.constants import fast_slow_cut_hz  # noqa: E402
from hpc_brunel.theory import stability  # noqa: E402
from hpc_brunel.theory.meanfield import MeanFieldParams  # noqa: E402

OUT = ROOT / "analysis" / "theory"
FAST_G = (4.5, 5.0, 6.0, 7.0, 8.0)
SLOW_G = (4.5, 5.0, 5.25, 5.5, 5.75, 6.0, 6.5, 7.0, 7.5, 8.0)
SR_ETA = (1.0, 1.5, 2.0, 3.0, 4.0)


def compute(base: MeanFieldParams) -> dict:
    t0 = time.perf_counter()
    cut = fast_slow_cut_hz(base.delay_ms)
    fast = []
    for g in FAST_G:
        for b in stability.phase_boundaries([g], 1.0, 8.0, base, n_eta=15):
            if math.isfinite(b.freq_hz) and b.freq_hz >= cut and not stability.is_mean_driven(
                    base.with_(g=g, eta=b.eta), b.rate_hz):
                fast.append({"g": g, "eta": b.eta, "freq_hz": b.freq_hz, "rate_hz": b.rate_hz})
                break
    slow = []
    for g in SLOW_G:
        sb = stability.slow_band(g, 0.6, 1.1, base)
        slow.append({"g": g, "edges": [{"eta": b.eta, "freq_hz": b.freq_hz, "rate_hz": b.rate_hz,
                                        "becomes_stable": b.becomes_stable} for b in sb.boundaries],
                     "max_growth_per_s": sb.max_growth_per_s, "eta_of_max": sb.eta_of_max})
    sr = []
    for eta in SR_ETA:
        b = stability.sr_edge(eta, base)
        if b is not None:
            sr.append({"g": b.g, "eta": eta, "freq_hz": b.freq_hz, "rate_hz": b.rate_hz})
    return {"params": {k: getattr(base, k) for k in ("delay_ms", "c_e", "j_mv", "tau_m_ms", "t_ref_ms")},
            "fast": fast, "slow": slow, "sr": sr, "seconds": time.perf_counter() - t0}


def markdown(res: dict) -> str:
    lines = ["| boundary | g | eta | frequency [Hz] | rate there [Hz] |", "|---|---|---|---|---|"]
    for r in res["sr"]:
        lines.append(f"| SR edge (SR at smaller g) | {r['g']:.4f} | {r['eta']:g} | {r['freq_hz']:.0f} | "
                     f"{r['rate_hz']:.0f} |")
    for r in res["fast"]:
        lines.append(f"| fast line (SI-fast above) | {r['g']:g} | {r['eta']:.4f} | {r['freq_hz']:.0f} | "
                     f"{r['rate_hz']:.1f} |")
    for r in res["slow"]:
        if r["edges"]:
            etas = " – ".join(f"{e['eta']:.4f}" for e in r["edges"])
            freqs = " – ".join(f"{e['freq_hz']:.1f}" for e in r["edges"])
            rates = " – ".join(f"{e['rate_hz']:.2f}" for e in r["edges"])
            lines.append(f"| slow band (SI-slow inside) | {r['g']:g} | {etas} | {freqs} | {rates} |")
        else:
            lines.append(f"| slow band: none (closest: Re lambda = {r['max_growth_per_s']:.1f} /s) | {r['g']:g} | "
                         f"{r['eta_of_max']:.4f} | – | – |")
    return "\n".join(lines)


def main() -> int:
    res = compute(MeanFieldParams())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "boundaries.json").write_text(json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    (OUT / "boundaries.md").write_text(md + "\n")
    print(md)
    print(f"[theory] {res['seconds']:.0f} s -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
