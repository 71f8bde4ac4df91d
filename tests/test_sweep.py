"""Sweep machinery on a tiny grid (2 x 2, small network), end to end, with resume."""
import json

import pytest

from conftest import hpc_brunel, needs_nest
from hpc_brunel import sweep as S


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
    with pytest.raises(Exception, match=r"--scale 0\.05: allowed 0\.1 <= scale <= 1"):
        S.scaled_sizes(0.05)


@needs_nest
def test_tiny_sweep_end_to_end_and_resume(tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--g-range", "3:6:3", "--eta-range", "1:2:1", "--scale", "0.1", "--t-sim-ms", "150", "--jobs", "2",
            "--out", out]
    first = hpc_brunel(*args, check=True)
    assert "scaled-down network" in first.stderr
    rows = (out / "sweep.csv").read_text().splitlines()
    assert rows[0].startswith("g,eta,rate_e_hz,rate_i_hz,cv_isi,synchrony_chi,psd_peak_hz")
    assert len(rows) == 5
    assert (out / "phase_diagram.png").stat().st_size > 20_000
    labels = {ln.split(",")[0] + "," + ln.split(",")[1]: ln.split(",")[8] for ln in rows[1:]}
    assert set(labels.values()) <= {"SR", "SI-fast", "AI", "SI-slow", "silent"}
    mtime = (out / "g3_eta1" / "analysis.json").stat().st_mtime
    # resume: remove one point's result; only that point runs again
    (out / "g6_eta2" / "analysis.json").unlink()
    second = hpc_brunel(*args, check=True)
    assert "3 of 4 points done already; running 1" in second.stdout
    assert (out / "g3_eta1" / "analysis.json").stat().st_mtime == mtime
    assert json.loads((out / "g6_eta2" / "analysis.json").read_text())["parameters"]["g"] == 6.0
