"""Scaling: aggregation and plots on a synthetic table (exact numbers), and a tiny real series."""
import json

import pytest
from conftest import hpc_brunel, needs_nest

from hpc_brunel.studies import scaling
from hpc_brunel.studies.scaling_plots import format_table, phase_times, plot_table


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


def test_a_nest_without_detailed_timers_leaves_the_phase_columns_empty_and_says_why(tmp_path):
    """A cluster's NEST module (CMake default: no detailed timers) has time_simulate only."""
    detailed = ("time_update", "time_deliver_spike_data", "time_communicate_spike_data", "time_gather_spike_data",
                "time_collocate_spike_data")
    rows = [{k: v for k, v in row(r, 1, 0, t).items() if not k.startswith(detailed)} for r, t in ((1, 10.0), (2, 5.5))]
    with open(tmp_path / scaling.RESULTS_JSONL, "w") as f:
        f.write(json.dumps({"header": {"series": "strong", "machine": {"cpu_model": "test CPU", "cpus_online": 2},
                                       "date": "2026-11-30"}}) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    agg = scaling.aggregate(rows, "strong")
    pt = phase_times(agg[1])
    assert pt["other simulate"] == pytest.approx(5.5) and pt["update"] != pt["update"]  # NaN: not measured
    text = format_table(agg)
    assert "nan" not in text and "| 2x1 | 2 | 12500 | 0.10 | 2.00 | 5.50 |  |  |  |" in text, text
    assert "without detailed timers" in text
    paths = plot_table(tmp_path)
    assert paths[0].exists() and paths[0].stat().st_size > 20_000


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
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(out / scaling.RESULTS_CSV)
    assert sorted(df["tasks_per_node"]) == [1, 2] and set(df["num_nodes"]) == {1} and set(df["threads_per_task"]) == {1}
    for col in ("py_time_create", "py_time_connect", "py_time_presimulate", "time_simulate", "base_memory",
                "network_memory", "init_memory", "total_memory"):
        assert (df[col] > 0).all(), col
    assert (df["network_memory"] >= df["base_memory"]).all()
    assert list(df["num_connections"]) == [r["synapses"] for r in rows]
    # a second call finds the points done and only redraws
    again = hpc_brunel(*args, check=True)
    assert again.stdout.count("done already, skipped") == 2


def test_spread_over_repetitions_exact():
    rows = [row(1, 1, 0, 10.0), row(1, 1, 1, 12.0), row(1, 1, 2, 11.0), row(2, 1, 0, 6.0), row(2, 1, 1, 4.0)]
    agg = {f"{a['ranks']}x{a['threads_per_rank']}": a for a in scaling.aggregate(rows, "strong")}
    sp = agg["1x1"]["spread"]["time_simulate_max"]
    assert (sp["min"], sp["max"], sp["n"]) == (10.0, 12.0, 3) and sp["sd"] == pytest.approx(1.0)
    # speedup of each 2x1 repetition against the 1x1 median (11 s): 11/6 .. 11/4
    assert agg["2x1"]["spread"]["speedup"]["min"] == pytest.approx(11 / 6)
    assert agg["2x1"]["spread"]["speedup"]["max"] == pytest.approx(11 / 4)
    lo, hi = scaling.yerr(scaling.aggregate(rows, "strong"), "time_simulate_max")
    assert lo[0] == pytest.approx(1.0) and hi[0] == pytest.approx(1.0)


def test_results_csv_reads_with_pandas_and_the_bennch_plot_grouping(tmp_path):
    """pandas reads results.csv with its header row; beNNch's column names are there and
    beNNch-plot's own aggregation (groupby its four keys, mean/std of the rest) runs on it."""
    pd = pytest.importorskip("pandas")
    rows = []
    for ranks, threads, sims in ((1, 1, (10.0, 12.0)), (2, 1, (6.0, 5.0))):
        for rep, sim in enumerate(sims):
            r = row(ranks, threads, rep, sim)
            r.update(seed=12345 + rep, hosts="node1", t_sim_ms=500.0, synapses=15_650_000, spikes=230_000,
                     wall_create_s=0.02, wall_connect_s=2.1, mem_base_kib_sum=1e5, mem_network_kib_sum=9e5,
                     mem_init_kib_sum=9.5e5, mem_total_kib_sum=1e6)
            rows.append(r)
    scaling.write_results(tmp_path, {"series": "strong", "machine": {"cpu_model": "test CPU", "cpus_online": 2},
                                     "date": "2026-11-26"}, rows)
    first = (tmp_path / scaling.RESULTS_CSV).read_text().splitlines()[0]
    assert first.startswith("rng_seed,num_nodes,tasks_per_node,threads_per_task")
    df = pd.read_csv(tmp_path / scaling.RESULTS_CSV)
    assert len(df) == 4
    for col in scaling.BENNCH_COLUMNS:
        assert col in df.columns, col
    assert list(df["tasks_per_node"]) == [1, 1, 2, 2] and set(df["num_nodes"]) == {1}
    assert list(df["time_simulate"]) == [10.0, 12.0, 6.0, 5.0]  # = our time_simulate_max
    assert list(df["time_simulate_max"]) == [10.0, 12.0, 6.0, 5.0]  # our names stay as aliases
    assert list(df["model_time_sim"]) == [500.0] * 4 and list(df["rng_seed"]) == [12345, 12346] * 2
    assert df["py_time_connect"].iloc[0] == 2.1 and df["total_memory"].iloc[0] == 1e6
    stats = ["time_construction_create", "time_construction_connect", "time_simulate", "time_collocate_spike_data",
             "time_communicate_spike_data", "time_deliver_spike_data", "time_update", "time_gather_spike_data",
             "time_communicate_prepare", "py_time_create", "py_time_connect", "base_memory", "network_memory",
             "init_memory", "total_memory", "num_connections", "local_spike_counter"]
    g = df.drop("rng_seed", axis=1).groupby(["num_nodes", "threads_per_task", "tasks_per_node", "model_time_sim"],
                                            as_index=False).agg({**{k: "first" for k in ()},
                                                                 **{k: ["mean", "std"] for k in stats}})
    assert g[("time_simulate", "mean")].tolist() == [11.0, 5.5]
    meta = json.loads((tmp_path / scaling.RESULTS_META).read_text())
    assert meta["machine"]["cpu_model"] == "test CPU" and "units" in meta
    header, back = scaling.read_table(tmp_path)
    assert header["series"] == "strong" and len(back) == 4


def test_oversubscribed_points_are_hatched_in_the_wall_time_panels_and_work_and_volume_are_kept(tmp_path):
    """A series run on fewer cores than VPs (oversubscribed, e.g. 64 ranks on a laptop): its wall times
    mean nothing, its memory, CPU work and message volume do. results.csv says which points
    (the oversubscribed column), the wall-time panels hatch their bars and draw open markers, the
    work and send-buffer panels are drawn from their columns."""
    from hpc_brunel.studies import scaling_plots

    rows = [row(1, 1, 0, 10.0), row(2, 1, 0, 5.5), row(16, 1, 0, 9.0), row(64, 1, 0, 30.0)]
    for r, cpu, buf in zip(rows, (19.2, 13.6, 18.3, 28.7), (5096, 8928, 10496, 9216)):
        r.update(cpu_update_deliver_s_sum=cpu, spike_send_buffer_bytes_max=float(buf))
    agg = scaling.aggregate(rows, "strong")
    assert [a["oversubscribed"] for a in agg] == [False, False, True, True]
    assert [scaling_plots.wall_style(a)["hatch"] for a in agg] == [None, None, "//", "//"]
    assert [a["cpu_update_deliver_s_sum"] for a in agg] == [19.2, 13.6, 18.3, 28.7]
    with open(tmp_path / scaling.RESULTS_JSONL, "w") as f:
        f.write(json.dumps({"header": {"series": "strong", "machine": {"cpu_model": "test CPU", "cpus_online": 2},
                                       "date": "2026-12-07"}}) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    import matplotlib.pyplot as plt

    figs = []
    real_savefig = plt.Figure.savefig

    def keep(fig, *a, **kw):
        figs.append(fig)
        return real_savefig(fig, *a, **kw)

    plt.Figure.savefig = keep
    try:
        paths = plot_table(tmp_path)
    finally:
        plt.Figure.savefig = real_savefig
    assert paths[0].exists()
    axes = {ax.get_title().split("\n")[0]: ax for ax in figs[0].axes}
    tts = axes["time to solution by phase"]
    hatched = [p.get_hatch() for p in tts.patches]
    assert hatched.count("//") == 2 * len(scaling_plots.PHASES) and hatched.count(None) == 2 * len(scaling_plots.PHASES)
    eff = [p.get_hatch() for p in axes[f"efficiency vs {agg[0]['reference']}"].patches]
    assert eff == [None, None, "//", "//"]
    work = axes["work: NEST update + deliver CPU time"]
    assert [round(p.get_height(), 1) for p in work.patches] == [19.2, 13.6, 18.3, 28.7]
    assert all(p.get_hatch() is None for p in work.patches)  # kept, not hatched
    assert "oversubscribed" in figs[0]._suptitle.get_text()
