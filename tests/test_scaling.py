"""Scaling: aggregation and plots on a synthetic table (exact numbers), and a tiny real series."""
import json

import pytest

from conftest import hpc_brunel, needs_nest
from hpc_brunel import scaling
from hpc_brunel.scaling_plots import format_table, phase_times, plot_table


def row(ranks, threads, rep, sim, kind="strong", neurons=12500):
    r = {"series": kind, "point": f"{ranks}x{threads}-rep{rep}", "ranks": ranks, "threads_per_rank": threads,
         "vps": ranks * threads, "repetition": rep, "neurons": neurons, "oversubscribed": ranks * threads > 2,
         "time_construction_create_max": 0.1, "time_construction_connect_max": 2.0, "time_simulate_max": sim,
         "time_update_max": sim / 2, "time_gather_spike_data_max": 0.1, "time_communicate_spike_data_max": 0.2,
         "time_deliver_spike_data_max": sim / 4, "time_collocate_spike_data_max": 0.05,
         "wall_build_network_s": 2.2, "wall_simulate_s": sim + 0.5, "wall_total_s": sim + 3,
         "real_time_factor": (sim + 0.5) / 0.5, "vm_hwm_mib_max": 700.0 / ranks, "vm_hwm_mib_mean": 690.0 / ranks,
         "rate_hz": 37.5}
    r.update({k.replace("_max", "_mean"): v for k, v in r.items() if k.startswith("time_") and k.endswith("_max")})
    return r


def test_aggregate_strong_exact():
    rows = [row(1, 1, 0, 10.0), row(1, 1, 1, 12.0), row(1, 1, 2, 11.0),
            row(2, 1, 0, 6.0), row(2, 1, 1, 5.0), row(1, 2, 0, 8.0), row(1, 2, 1, 7.0)]
    agg = {f"{a['ranks']}x{a['threads_per_rank']}": a for a in scaling.aggregate(rows, "strong")}
    assert agg["1x1"]["time_simulate_max"] == 11.0  # median of 10, 11, 12
    assert agg["2x1"]["time_simulate_max"] == 5.5  # median of 5, 6
    assert agg["2x1"]["speedup"] == pytest.approx(2.0)
    assert agg["2x1"]["efficiency"] == pytest.approx(1.0)
    assert agg["1x2"]["speedup"] == pytest.approx(11.0 / 7.5)
    assert agg["1x2"]["efficiency"] == pytest.approx(11.0 / 7.5 / 2)
    assert agg["1x1"]["time_to_solution_s"] == pytest.approx(0.1 + 2.0 + 11.0)
    assert agg["1x1"]["repetitions"] == 3
    pt = phase_times(agg["2x1"])
    assert pt["update"] == pytest.approx(5.5 / 2) and pt["gather+collocate spikes"] == pytest.approx(0.15)
    assert sum(pt[k] for k in pt if k not in ("create", "connect")) == pytest.approx(5.5)


def test_aggregate_weak_exact():
    rows = [row(1, 1, 0, 10.0, "weak", 3125), row(2, 1, 0, 12.5, "weak", 6250), row(4, 1, 0, 20.0, "weak", 12500)]
    agg = scaling.aggregate(rows, "weak")
    assert [a["efficiency"] for a in agg] == pytest.approx([1.0, 0.8, 0.5])
    assert [a["speedup"] for a in agg] == pytest.approx([1.0, 1.6, 2.0])


def test_plots_and_table_from_a_results_file(tmp_path):
    rows = [row(1, 1, 0, 10.0), row(1, 2, 0, 6.0), row(2, 1, 0, 5.5), row(4, 1, 0, 7.0)]
    with open(tmp_path / scaling.RESULTS_JSONL, "w") as f:
        f.write(json.dumps({"header": {"series": "strong", "machine": {"cpu_model": "test CPU", "cpus_online": 2},
                                       "date": "2026-11-25"}}) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    paths = plot_table(tmp_path)
    assert paths[0].exists() and paths[0].stat().st_size > 20_000
    text = format_table(scaling.aggregate(rows, "strong"))
    assert "| 4x1* |" in text and "| 2x1 | 2 | 12500 |" in text


def test_plan_and_bad_decompositions():
    s = scaling.plan("weak", [(1, 1), (2, 2)], repetitions=2, neurons_per_vp=2000)
    assert [p.n_excitatory + p.n_inhibitory for p in s.points] == [2000, 2000, 8000, 8000]
    assert [p.seed for p in s.points[:2]] == [12345, 12346]
    with pytest.raises(Exception, match="RANKSxTHREADS"):
        scaling.parse_decompositions("2by1")


@needs_nest
@pytest.mark.mpi
def test_tiny_real_series_end_to_end(tmp_path):
    out = tmp_path / "series"
    args = ["scale", "strong", "--decompositions", "1x1,2x1", "--repetitions", "1", "--t-sim-ms", "100",
            "--presim-ms", "20", "--neurons", "1250", "--out", out,
            "--run-args", "--set network.indegree_excitatory=100 --set network.indegree_inhibitory=25"]
    proc = hpc_brunel(*args, check=True)
    assert (out / "scaling_strong.png").exists()
    header, rows = scaling.read_table(out)
    assert header["machine"]["cpus_online"] >= 1 and not header["missing_points"]
    assert sorted((r["ranks"], r["threads_per_rank"]) for r in rows) == [(1, 1), (2, 1)]
    for r in rows:
        assert r["neurons"] == 1250 and r["time_simulate_max"] > 0 and r["vm_hwm_mib_max"] > 0
        assert r["synapses"] == 1250 * 125 + 1250 + 1250
    assert "| 2x1 |" in proc.stdout
    # a second call finds the points done and only redraws
    again = hpc_brunel(*args, check=True)
    assert again.stdout.count("done already, skipped") == 2
