"""Sweep machinery on a tiny grid (2 x 2, small network), end to end, with resume."""
import json

import pytest
from conftest import hpc_brunel, needs_nest

from hpc_brunel.studies import sweep as S
from hpc_brunel.studies import sweep_table


def test_grid_and_bad_ranges():
    pts = S.grid((0, 8, 4), (1, 2, 1))
    assert [(p.g, p.eta) for p in pts] == [(0, 1), (4, 1), (8, 1), (0, 2), (4, 2), (8, 2)]
    with pytest.raises(Exception, match="MIN:MAX:STEP"):
        S.grid((0, 8, 0), (1, 2, 1))
    with pytest.raises(Exception, match="MIN:MAX:STEP"):
        S.parse_range("0-8", "g")


def test_scaled_point_arguments():
    sw = S.Sweep([S.SweepPoint(5, 2)], scale=0.2)
    args = sw.run_args(sw.points[0], S.Path("x"))
    assert "network.n_excitatory=2000" in args and "network.n_inhibitory=500" in args
    assert not any("indegree" in a for a in args)  # C_E, C_I stay: the mean field is the paper's
    assert "neuron.v_init_distribution=uniform" in args
    assert S.min_scale() == 0.1
    with pytest.raises(Exception, match=r"--scale 0\.05: allowed 0\.1 <= scale <= 10"):
        S.scaled_sizes(0.05)
    with pytest.raises(Exception, match=r"--scale 12: allowed 0\.1 <= scale <= 10"):
        S.scaled_sizes(12)
    assert S.scaled_sizes(10) == (100000, 25000)  # the finite-size study's largest network


@needs_nest
def test_tiny_sweep_end_to_end_and_resume(tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--g-range", "3:6:3", "--eta-range", "1:2:1", "--scale", "0.1", "--t-sim-ms", "150", "--jobs", "2",
            "--out", out]
    # ~2 min on 2 cores (points, then the theory lines: SR edges at eta 1, 1.5, 2); 15 min allowed
    first = hpc_brunel(*args, check=True, timeout=900)
    assert "scaled network" in first.stderr
    import csv

    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert len(rows) == 4
    assert {"g", "eta", "rate_e_hz", "synchrony_chi", "synchrony_chi_inf", "label", "theory_label",
            "v_init"} <= set(rows[0])
    assert (out / "phase_diagram.png").stat().st_size > 20_000
    assert {r["label"] for r in rows} <= {"SR", "SI-fast", "AI", "SI-slow", "silent", "undetermined"}
    assert {r["v_init"] for r in rows} == {"uniform"}
    # theory: g = 3 is SR (excitation-dominated), g = 6 at eta 1, 2 is AI (linear stability)
    assert {(r["g"], r["eta"]): r["theory_label"] for r in rows} == {
        ("3", "1"): "SR", ("6", "1"): "AI", ("3", "2"): "SR", ("6", "2"): "AI"}
    assert "| theory says | cells |" in (out / "agreement.md").read_text()
    assert (out / "theory_lines.json").exists()
    mtime = (out / "g3_eta1" / "analysis.json").stat().st_mtime
    # resume: remove one point's result; only that point runs again
    (out / "g6_eta2" / "analysis.json").unlink()
    second = hpc_brunel(*args, check=True, timeout=900)
    assert "3 of 4 points done already; running 1" in second.stdout
    assert (out / "g3_eta1" / "analysis.json").stat().st_mtime == mtime
    assert json.loads((out / "g6_eta2" / "analysis.json").read_text())["parameters"]["g"] == 6.0
    # --relabel: every point analyzed again from its spikes (no simulation), the table follows
    a = json.loads((out / "g3_eta1" / "analysis.json").read_text())
    right = a["regime"]
    (out / "g3_eta1" / "analysis.json").write_text(json.dumps({**a, "regime": "stale-label"}))
    hpc_brunel("sweep", "--relabel", "--out", out, check=True, timeout=900)
    assert json.loads((out / "g3_eta1" / "analysis.json").read_text())["regime"] == right
    rows = {(r["g"], r["eta"]): r["label"] for r in csv.DictReader(open(out / "sweep.csv"))}
    assert rows[("3", "1")] == right and "stale-label" not in rows.values()
    assert (out / "g3_eta1" / "run.json").stat().st_mtime < (out / "g3_eta1" / "analysis.json").stat().st_mtime


def test_agreement_counts_cells_on_the_side_theory_predicts():
    rows = [{"label": "AI", "theory_label": "AI"}, {"label": "SI-fast", "theory_label": "AI"},
            {"label": "undetermined", "theory_label": "SR"}, {"label": "SR", "theory_label": "SR"},
            {"label": "silent", "theory_label": "Q"}]
    ag = sweep_table.agreement(rows)
    assert (ag.cells, ag.agree) == (5, 3)
    assert ag.per_label["AI"] == {"cells": 2, "agree": 1, "undetermined": 0, "other": {"SI-fast": 1}}
    assert ag.per_label["SR"]["undetermined"] == 1
    table = ag.table()
    assert "| AI | 2 | 1 (50 %) | 0 | SI-fast 1 |" in table and "| all | 5 | 3 (60 %) |" in table
