"""The sweep's table (sweep.csv) and its agreement with theory, cell by cell."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from hpc_brunel.config import from_dict
from hpc_brunel.constants import ANALYSIS_JSON, RUN_JSON
from hpc_brunel.labels import SIM_FOR_THEORY, THEORY_LABELS, UNDETERMINED

SWEEP_CSV = "sweep.csv"
AGREEMENT_MD = "agreement.md"


def collect(sweep_dir: Path, points, *, theory: bool = True) -> list[dict]:
    """The sweep's table: one row per analyzed point, written to sweep.csv.

    Parameters
    ----------
    sweep_dir : pathlib.Path
        The sweep directory (one run directory per point, named by the point).
    points : list of SweepPoint
        The grid's points, in table order; those not analyzed yet are left out.
    theory : bool
        Add the label that linear stability predicts for the same (g, eta)
        (`stability.theory_grid`) and the mean field's state.

    Returns
    -------
    list of dict
        The rows, as written to sweep.csv.
    """
    rows, cfg = [], None
    for p in points:
        f = sweep_dir / p.name / ANALYSIS_JSON
        if not f.exists():
            continue
        a = json.loads(f.read_text())
        pops = a["populations"]
        cfg = from_dict(json.loads((sweep_dir / p.name / RUN_JSON).read_text())["config"])
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
        from hpc_brunel.theory.meanfield import MeanFieldParams
        from hpc_brunel.theory.stability import theory_grid

        gs, etas = sorted({r["g"] for r in rows}), sorted({r["eta"] for r in rows})
        tg = theory_grid(gs, etas, MeanFieldParams.from_config(cfg))
        for r in rows:
            i, j = gs.index(r["g"]), etas.index(r["eta"])
            r["theory_label"] = tg.labels[i][j]
            r["theory_state"] = tg.states[i][j].describe().replace(",", ";")
    with open(sweep_dir / SWEEP_CSV, "w", newline="") as out:
        if rows:
            w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows({k: _csv_value(v) for k, v in r.items()} for r in rows)
    return rows


def _csv_value(v) -> str:
    return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


@dataclass
class Agreement:
    """How many grid cells the simulation puts on the side theory predicts, per
    theory label: cells, agree, undetermined, and the simulated labels of the rest."""

    per_label: dict  # theory label -> {"cells": n, "agree": n, "undetermined": n, "other": {label: n}}

    @property
    def cells(self) -> int:
        """Grid cells compared, all theory labels together."""
        return sum(v["cells"] for v in self.per_label.values())

    @property
    def agree(self) -> int:
        """Cells whose simulated label is the theory's (theory's "Q" is the simulation's "silent")."""
        return sum(v["agree"] for v in self.per_label.values())

    def table(self) -> str:
        """The Markdown table of agreement.md: one row per theory label and a total."""
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
        if r["label"] == SIM_FOR_THEORY.get(th):  # e.g. theory's quiescent "Q" is the simulation's "silent"
            v["agree"] += 1
        elif r["label"] == UNDETERMINED:
            v["undetermined"] += 1
        else:
            v["other"][r["label"]] = v["other"].get(r["label"], 0) + 1
    return Agreement({k: per[k] for k in THEORY_LABELS if k in per})
