"""The finite-size study's bookkeeping (no NEST): agreement per N, the table, the committed data."""
from pathlib import Path

from hpc_brunel.studies import finite_size as F
from hpc_brunel.studies import sweep as S

ROOT = Path(__file__).resolve().parents[2]


def _row(n, g, eta, theory, label, chi=0.1, kind="band"):
    return F.Row(n, g, eta, kind, theory, label, chi, chi, 150.0, 30.0, 0.9, 10.0, 2)


def test_agreement_counts_theory_q_as_silent_and_undetermined_apart():
    rows = [_row(12500, 4.5, 2.0, "AI", "AI"), _row(12500, 5.0, 2.0, "AI", "undetermined"),
            _row(12500, 5.0, 3.0, "AI", "SI-fast"), _row(12500, 6.0, 0.5, "Q", "silent", kind="control"),
            _row(50000, 4.5, 2.0, "AI", "AI")]
    ag = F.agreement_by_n(rows)
    assert ag[12500]["band"] == (1, 1, 3) and ag[12500]["control"] == (1, 0, 1)
    assert ag[50000]["band"] == (1, 0, 1) and ag[50000]["control"] == (0, 0, 0)
    md = F.table_md(rows)
    assert "| 12,500 | 0.08 | 1 of 3 | 1 | 1 of 1 |" in md and "| 50,000 | 0.02 | 1 of 1 | 0 | 0 of 0 |" in md


def test_csv_round_trip_and_figure(tmp_path):
    rows = [_row(12500, 4.5, 2.0, "AI", "AI", 0.12), _row(50000, 4.5, 2.0, "AI", "AI", 0.06)]
    F.write_csv(rows, tmp_path / "t.csv")
    back = F.read_csv(tmp_path / "t.csv")
    assert [(r.n_neurons, r.g, r.eta, r.label) for r in back] == [(r.n_neurons, r.g, r.eta, r.label) for r in rows]
    assert F.figure(back, tmp_path / "f.png").stat().st_size > 10_000


def test_study_sizes_keep_the_in_degrees():
    assert [S.scaled_sizes(s) for s in F.SCALES] == [(10000, 2500), (40000, 10000), (100000, 25000)]
    sw = F.study_sweep(10.0, threads=16)
    args = sw.run_args(sw.points[0], Path("x"))
    assert "network.n_excitatory=100000" in args and not any("indegree" in a for a in args)
    assert sw.t_sim_ms == 1100.0 and len(F.BAND_POINTS) >= 12


def test_committed_study_matches_its_table():
    """analysis/finite_size/: the table and the README's summary are made from the committed csv."""
    d = ROOT / "analysis" / "finite_size"
    rows = F.read_csv(d / F.STUDY_CSV)
    assert (d / F.STUDY_MD).read_text().strip() == F.table_md(rows).strip()
    readme = (ROOT / "README.md").read_text()
    assert all(line in readme for line in F.table_md(rows).splitlines()[2:5])  # the summary, one row per N
    assert {r.n_neurons for r in rows} == {12500, 50000, 125000}
    theory = F.theory_labels()
    assert all(r.theory_label == theory[(r.g, r.eta)] for r in rows)  # labels of the current theory


def test_planner_sizes_each_point_at_its_mean_field_rate():
    """F.planned: the planner's prediction for the study's network of each N (in-degrees kept, all
    neurons recorded) at the point's stationary rate, checked against nnmt's rate (independent)."""
    from conftest import nnmt_rate_hz

    from hpc_brunel import config
    from hpc_brunel.studies import plan

    model, _ = plan.load_model()
    small, big = (F.planned(model, s, 5.0, 2.0, ranks=1, threads=2) for s in (1.0, 10.0))
    want = nnmt_rate_hz(config.resolve(overrides=[{"network": {"relative_inhibition": 5.0, "eta": 2.0}}]))
    assert abs(small.rate_hz - want) < 1e-3 * want and big.rate_hz == small.rate_hz
    assert (small.neurons, big.neurons) == (12_500, 125_000)
    assert big.synapses == 125_000 * 1250 + 2 * 125_000  # network + one Poisson input and one recorder each
    assert big.peak_rss_total_mib > 5 * small.peak_rss_total_mib
    assert big.simulate_s_per_model_s > 5 * small.simulate_s_per_model_s
    sr = F.planned(model, 1.0, 3.0, 2.0, ranks=1, threads=2)  # the SR control: the high-rate state's cost
    assert sr.rate_hz > 250 and sr.simulate_s_per_model_s > 5 * small.simulate_s_per_model_s


def test_run_refuses_a_scale_the_planner_says_does_not_fit(tmp_path, monkeypatch, capsys):
    """analysis/finite_size.py run: one error line naming --scale, exit 2, nothing simulated."""
    import importlib.util

    monkeypatch.setenv("HPC_BRUNEL_FINITE_SIZE_RUNS", str(tmp_path))
    spec = importlib.util.spec_from_file_location("fs_script", ROOT / "analysis" / "finite_size.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "machine_memory_mib", lambda: 1000.0)  # the planner says ~6,400 MiB
    assert script.run(10.0, 1, 2, None, False, [(7.0, 2.0)]) == 2
    err = capsys.readouterr().err
    assert "error: --scale 10: the planner predicts" in err and "this machine has 1,000 MiB" in err
    assert not any((tmp_path / "scale10").glob("g*/run.json"))
