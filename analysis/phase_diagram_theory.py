"""Redo the theory side of the committed phase diagram (analysis/phase_diagram/) with the current
theory, from the committed table alone (the sweep's run directories are not kept):

    python analysis/phase_diagram_theory.py      # ~15 min on one core
    python analysis/phase_diagram_theory.py --lines-only   # keep sweep.csv's theory labels; lines and figure

The simulated labels in sweep.csv stay as measured (2026-11-26, 12,500 neurons, 300 ms per cell);
their theory_label / theory_state columns, agreement.md, theory_lines.json and phase_diagram.png are
recomputed (`stability.theory_grid`, `sweep_theory.theory_lines`: every boundary from the
eigenvalues). The figure has no example rasters (they need the run directories).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.studies import sweep_plots, sweep_table, sweep_theory  # noqa: E402
from hpc_brunel.theory.meanfield import MeanFieldParams  # noqa: E402
from hpc_brunel.theory.stability import theory_grid  # noqa: E402

D = ROOT / "analysis" / "phase_diagram"


def main() -> int:
    with open(D / sweep_table.SWEEP_CSV) as f:
        raw = list(csv.DictReader(f))
    rows = []
    for r in raw:
        row = {k: (float(v) if k not in ("label", "v_init", "theory_label", "theory_state") and v not in ("",)
                   else (None if v == "" else v)) for k, v in r.items()}
        row["neurons"], row["t_sim_ms"] = int(row["neurons"]), float(row["t_sim_ms"])
        rows.append(row)
    base = MeanFieldParams()
    gs, etas = sorted({r["g"] for r in rows}), sorted({r["eta"] for r in rows})
    tg = theory_grid(gs, etas, base) if "--lines-only" not in sys.argv else None
    for r in rows if tg is not None else ():
        i, j = gs.index(r["g"]), etas.index(r["eta"])
        r["theory_label"] = tg.labels[i][j]
        r["theory_state"] = tg.states[i][j].describe().replace(",", ";")
    with open(D / sweep_table.SWEEP_CSV, "w", newline="") as out:
        w = csv.DictWriter(out, fieldnames=list(raw[0]), lineterminator="\n")
        w.writeheader()
        w.writerows({k: sweep_table._csv_value(v) for k, v in r.items()} for r in rows)
    ag = sweep_table.agreement(rows)
    (D / sweep_table.AGREEMENT_MD).write_text(ag.table() + "\n")
    print(ag.table())
    (D / sweep_theory.THEORY_LINES_JSON).unlink(missing_ok=True)
    lines = sweep_theory.cached_theory_lines(D, min(gs), max(gs), min(etas), max(etas), base)
    print(json.dumps(lines))
    sweep_plots.phase_diagram(rows, D / "phase_diagram.png", neurons=rows[0]["neurons"], lines=lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
