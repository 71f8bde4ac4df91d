"""hpc_brunel.studies.plan (pure Python, no NEST): the planner against the measured tables it ships
with (hpc_brunel/data/network_size.csv, scaling/bench_network_size.py: real runs of the network on
one machine, for the default synapse model and lean mode's; hpc_brunel/data/ranks.csv,
scaling/ladder.py: the default synapse model at 1-64 ranks, the memory model of that synapse model).
Each is fitted on its calibration rows only and must predict the held-out rows' measured peak memory
and simulate time; then the measured range, the communication term, the allocation check and the
SLURM memory parsing."""
import csv
import math

import pytest

from hpc_brunel.config import DEFAULT_SYNAPSE_MODEL, LEAN_SYNAPSE_MODEL, RunConfig, resolve
from hpc_brunel.studies import plan

# The claims (scaling/README.md "hpc_brunel plan", BENCHMARKS.md "Bigger networks and the planner"):
# the held-out points are predicted within 1 % (memory; measured: 0.2 %) and 40 % (simulate time;
# measured: -10 % .. +35 %). The time bound is wide because the table's machine (a shared 2-core VM,
# one run per point) varied up to 2x between repetitions of the same run (BENCHMARKS.md, "The
# network's synapse model"); memory does not vary and is held to 1 %.
MEMORY_REL_BOUND = 0.01
TIME_REL_BOUND = 0.40
HELD_OUT = {(25000, 2, 1), (125000, 2, 1), (25000, 1, 1)}
MODELS = (DEFAULT_SYNAPSE_MODEL, LEAN_SYNAPSE_MODEL)
# ranks.csv (issue 31): held-out rank counts predicted within 5 % (measured: -4.2 % .. +1.9 %); the
# memory of a process depends on its allocation history (48 ranks hold more than 64 in the table),
# so the bound is wider than network_size.csv's 1 %.
RANKS_MEMORY_REL_BOUND = 0.05
RANKS_HELD_OUT = {(12500, 8), (12500, 32), (12500, 48), (25000, 16), (50000, 8)}


def network_size_model(name=DEFAULT_SYNAPSE_MODEL):
    """The model fitted to network_size.csv alone (memory too), with its validation errors."""
    return plan.load_model(plan.DEFAULT_TABLE, name)


def ranks_rows():
    """ranks.csv read with csv alone: {(neurons, ranks): row}."""
    with open(plan.RANKS_TABLE, newline="") as f:
        return {(int(r["neurons"]), int(r["ranks"])): r for r in csv.DictReader(f)}


def measured_rows(model=DEFAULT_SYNAPSE_MODEL):
    """The shipped table read with csv alone (not plan.read_table): {(neurons, ranks, threads): row}
    of one synapse model."""
    with open(plan.DEFAULT_TABLE, newline="") as f:
        return {(int(r["neurons"]), int(r["ranks"]), int(r["threads_per_rank"])): r for r in csv.DictReader(f)
                if r["synapse_model"] == model}


def measured_simulate_s_per_model_s(row):
    return float(row["time_simulate_s"]) / (float(row["t_sim_ms"]) / 1000.0)


def write_table(path, change):
    """A copy of the shipped table with change(row) applied to each row (a dict of strings)."""
    with open(plan.DEFAULT_TABLE, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    for r in rows:
        change(r)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def predict_row(model, row):
    n, ranks, threads = int(row["neurons"]), int(row["ranks"]), int(row["threads_per_rank"])
    return plan.predict(model, neurons=n, ranks=ranks, threads=threads, rate_hz=float(row["rate_hz"]))


def test_the_table_measures_the_default_and_lean_mode():
    with open(plan.DEFAULT_TABLE, newline="") as f:
        names = {r["synapse_model"] for r in csv.DictReader(f)}
    assert names == set(MODELS)
    assert list(plan.load_models()) == list(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_held_out_rows_are_the_ones_the_fit_never_sees(name):
    rows = measured_rows(name)
    assert set(plan.CALIBRATION) <= set(rows) and not HELD_OUT & set(plan.CALIBRATION)
    assert set(rows) - set(plan.CALIBRATION) == HELD_OUT
    # one held-out point lies outside the calibrated range (125,000 > 50,000 neurons): extrapolation
    assert max(n for n, _, _ in HELD_OUT) > max(n for n, _, _ in plan.CALIBRATION)


def test_fit_ignores_the_held_out_rows(tmp_path):
    """Triple the held-out rows' measurements: the fitted models must not move."""
    def triple_held_out(r):
        if (int(r["neurons"]), int(r["ranks"]), int(r["threads_per_rank"])) in HELD_OUT:
            r["peak_rss_per_rank_mib"] = str(3 * float(r["peak_rss_per_rank_mib"]))
            r["time_simulate_s"] = str(3 * float(r["time_simulate_s"]))

    table = write_table(tmp_path / "network_size.csv", triple_held_out)
    for name in MODELS:
        assert plan.load_model(table, name)[0] == network_size_model(name)[0]


@pytest.mark.parametrize("name", MODELS)
def test_predicts_the_held_out_measured_rows(name):
    """Fitted on the calibration rows, the prediction for each held-out row is within the claimed error
    of what was measured: peak memory per rank and simulate time per model second."""
    model, _ = network_size_model(name)
    rows = measured_rows(name)
    for key in sorted(HELD_OUT):
        row = rows[key]
        p = predict_row(model, row)
        assert p.synapses == int(row["synapses"]), key  # the same network as measured
        e_mem = p.peak_rss_per_rank_mib / float(row["peak_rss_per_rank_mib"]) - 1
        e_sim = p.simulate_s_per_model_s / measured_simulate_s_per_model_s(row) - 1
        assert abs(e_mem) <= MEMORY_REL_BOUND, (key, e_mem)
        assert abs(e_sim) <= TIME_REL_BOUND, (key, e_sim)
        assert p.peak_rss_total_mib == pytest.approx(float(row["peak_rss_total_mib"]), rel=MEMORY_REL_BOUND), key


@pytest.mark.parametrize("name", MODELS)
def test_validation_errors_printed_by_plan_are_those_of_the_measured_rows(name):
    """`plan` prints plan.validation_errors: the same held-out rows and the same errors as above."""
    model, errors = network_size_model(name)
    rows = measured_rows(name)
    assert {(p.neurons, p.ranks, p.threads) for p, _, _ in errors} == HELD_OUT
    for p, e_mem, e_sim in errors:
        row = rows[(p.neurons, p.ranks, p.threads)]
        assert e_mem == pytest.approx(model.peak_rss_per_rank_mib(p.neurons, p.ranks, int(row["synapses"]))
                                      / float(row["peak_rss_per_rank_mib"]) - 1, abs=1e-12)
        assert p.simulate_s_per_model_s == pytest.approx(measured_simulate_s_per_model_s(row), rel=1e-12)
        assert abs(e_mem) <= MEMORY_REL_BOUND and abs(e_sim) <= TIME_REL_BOUND, (p, e_mem, e_sim)


@pytest.mark.parametrize("name", MODELS)
def test_fitted_memory_per_synapse_is_the_measured_one(name):
    """The fitted cost of a synapse (from peak RSS) agrees with the table's own, separately measured
    bytes per synapse (RSS growth during connect, summed over ranks) within 5 %."""
    model, _ = network_size_model(name)
    measured = {float(r["bytes_per_synapse"]) for r in measured_rows(name).values()}
    for b in measured:
        assert model.mib_per_synapse_on_rank * 2**20 == pytest.approx(b, rel=0.05)
    assert model.m0_mib > 0 and model.mib_per_neuron_in_network > 0


def test_the_shipped_memory_model_predicts_the_held_out_rank_counts():
    """The default synapse model's memory comes from ranks.csv (1-64 ranks, 12,500-50,000 neurons):
    fitted on its calibration rows, it predicts the held-out ones within 5 %, which `plan` prints;
    48 and 64 ranks are inside its measured range (no EXTRAPOLATED on the memory line)."""
    model, errors = plan.load_model()
    rows = ranks_rows()
    assert set(plan.RANKS_CALIBRATION) | RANKS_HELD_OUT == set(rows)
    assert not RANKS_HELD_OUT & set(plan.RANKS_CALIBRATION)
    for key in RANKS_HELD_OUT:
        row = rows[key]
        p = plan.predict(model, neurons=key[0], ranks=key[1], threads=1, rate_hz=float(row["rate_hz"]))
        assert p.synapses == int(row["synapses"])
        e = p.peak_rss_per_rank_mib / float(row["peak_rss_per_rank_mib"]) - 1
        assert abs(e) <= RANKS_MEMORY_REL_BOUND, (key, e)
    printed = {(p.neurons, p.ranks): e_mem for p, e_mem, e_sim in errors if e_sim is None}
    assert set(printed) == RANKS_HELD_OUT and all(abs(e) <= RANKS_MEMORY_REL_BOUND for e in printed.values())
    # the network_size rows validate the time model only; the ranks rows (oversubscribed) the memory only
    assert {(p.neurons, p.ranks, p.threads) for p, e_mem, _ in errors if e_mem is None} == HELD_OUT
    assert model.mib_per_log2_rank > 0 and model.memory_ranges["ranks"] == (1, 64)
    for ranks in (48, 64):
        p = plan.predict(model, neurons=12500, ranks=ranks, threads=1, rate_hz=38.0)
        lines = plan.report(p, model, errors, plan.DEFAULT_TABLE)
        memory = next(line for line in lines if "peak memory" in line)
        time = next(line for line in lines if "per model second (real-time factor)" in line)
        assert "EXTRAPOLATED" not in memory and f"ranks {ranks} > 2" in time
    # more than the network_size fit at many ranks: the term that grows with the ranks
    old, _ = network_size_model()
    assert model.peak_rss_per_rank_mib(12500, 64) > old.peak_rss_per_rank_mib(12500, 64)


def test_predictions_outside_the_measured_range_stay_sane():
    """Beyond the table (10x its largest network, 1,000 neurons, 1,000,000 neurons on 256 VPs) the
    predictions stay within bounds set by the measured rows, not just finite."""
    model, _ = plan.load_model()
    rows = measured_rows()
    largest = rows[(125000, 2, 1)]
    smallest_mem = min(float(r["peak_rss_per_rank_mib"]) for r in rows.values())
    bytes_per_synapse = min(float(r["bytes_per_synapse"]) for r in rows.values())
    # the time grows faster than the work per VP (cache misses) but not quadratically
    assert 1.0 < model.p < 2.0
    # 10x the largest measured network on the same 2 x 1: 10x the work per VP, so between 10x and 100x
    # its measured time
    big = plan.predict(model, neurons=1250000, ranks=2, threads=1, rate_hz=float(largest["rate_hz"]))
    ratio_t = big.simulate_s_per_model_s / measured_simulate_s_per_model_s(largest)
    assert 10 < ratio_t < 100
    # memory: at least the synapses on the rank at the measured bytes per synapse, at most 1.1x the
    # largest measured point times 10 (10x the synapses and the neurons; every term is at most linear)
    syn_on_rank = big.synapses / big.ranks
    assert syn_on_rank * bytes_per_synapse / 2**20 < big.peak_rss_per_rank_mib
    assert big.peak_rss_per_rank_mib < 1.1 * 10 * float(largest["peak_rss_per_rank_mib"])
    # a network smaller than any measured needs less than the smallest measured, and more than nothing
    tiny = plan.predict(model, neurons=1000, ranks=1, threads=1, rate_hz=38.0)
    assert 0 < model.m0_mib < tiny.peak_rss_per_rank_mib < smallest_mem
    assert 0 < tiny.simulate_s_per_model_s < min(measured_simulate_s_per_model_s(r) for r in rows.values())
    # a cluster-sized run (the README's example, 1,000,000 neurons on 64 ranks x 4 threads): a rank holds
    # fewer synapses than one of the measured 50,000-neuron 2 x 1 run, and 20x the neurons; it needs
    # more than its synapses at the measured bytes per synapse and less than that run plus 2 KiB per
    # extra neuron (10x the fitted cost of a neuron)
    mid = rows[(50000, 2, 1)]
    cluster = plan.predict(model, neurons=1000000, ranks=64, threads=4, rate_hz=38.0)
    assert cluster.synapses / 64 < int(mid["synapses"]) / 2
    assert cluster.synapses / 64 * bytes_per_synapse / 2**20 < cluster.peak_rss_per_rank_mib
    assert cluster.peak_rss_per_rank_mib < float(mid["peak_rss_per_rank_mib"]) + (1000000 - 50000) * 2048 / 2**20
    # ...and fewer spike deliveries per VP than the measured 12,500-neuron 2 x 1 run: its time lies between
    # that run's scaled quadratically and linearly with the work per VP (1 < p < 2), model error allowed
    small = rows[(12500, 2, 1)]
    work = (1000000 * 38.0 / 256) / (12500 * float(small["rate_hz"]) / 2)
    assert work < 1
    t_small = measured_simulate_s_per_model_s(small)
    compute = cluster.simulate_s_per_model_s - cluster.communication_s_per_model_s
    assert 0.9 * t_small * work**2 < compute < 1.1 * t_small * work
    # ...and it says that all of this is an extrapolation
    assert {"ranks 64 > 2", "threads 4 > 1", "vps 256 > 2", "neurons 1,000,000 > 125,000"} <= set(cluster.outside_range)


def test_more_ranks_less_memory_per_rank_more_in_all():
    model, _ = plan.load_model()
    a = plan.predict(model, neurons=125000, ranks=2, threads=1, rate_hz=38.0)
    b = plan.predict(model, neurons=125000, ranks=8, threads=1, rate_hz=38.0)
    assert b.peak_rss_per_rank_mib < a.peak_rss_per_rank_mib and b.peak_rss_total_mib > a.peak_rss_total_mib
    assert b.simulate_s_per_model_s < a.simulate_s_per_model_s
    # threads share their rank's memory and add VPs
    c = plan.predict(model, neurons=125000, ranks=2, threads=4, rate_hz=38.0)
    assert c.peak_rss_per_rank_mib == a.peak_rss_per_rank_mib and c.simulate_s_per_model_s < a.simulate_s_per_model_s


def test_another_machines_table_without_the_calibration_rows_is_fitted_whole(tmp_path):
    # none of the rows is a calibration row any more
    table = write_table(tmp_path / "network_size.csv", lambda r: r.update(threads_per_rank="2"))
    model, errors = plan.load_model(table)
    assert errors == [] and math.isfinite(model.p) and model.p > 0


@pytest.mark.parametrize("lines, cpus, mib", [
    (["--mem=64G"], 8, 65536.0), (["--mem=2000"], 8, 2000.0), (["--mem-per-cpu=2G"], 8, 16384.0),
    (["--mem=0"], 8, None), (["--exclusive"], 8, None), ([], 8, None), (["--mem=1T"], 1, 1024.0**2),
])
def test_memory_asked_with_sbatch_options(lines, cpus, mib):
    assert plan.slurm_mem_mib(lines, cpus) == mib


def test_jobscript_warns_when_the_memory_asked_for_cannot_hold_the_network():
    big = resolve(overrides=[{"network": {"n_excitatory": 100000, "n_inhibitory": 25000}}])
    kw = {"nodes": 1, "ntasks_per_node": 2, "cpus_per_task": 1}
    lines = plan.allocation_warnings(big, extra_sbatch=["--mem=1G"], **kw)
    # the plan for the run's synapse model, the table's other model, and the warning
    assert len(lines) == 3 and "warning" in lines[2] and ">= " in lines[2]
    need = int(lines[2].split(">= ")[1].split()[0])
    assert need >= 2
    kw_need = {**kw, "nodes": need}
    assert len(plan.allocation_warnings(big, extra_sbatch=["--mem=1G"], **kw_need)) == 2  # the advice fits
    kw_less = {**kw, "nodes": need - 1}
    assert len(plan.allocation_warnings(big, extra_sbatch=["--mem=1G"], **kw_less)) == 3  # and is the least
    assert len(plan.allocation_warnings(RunConfig(), extra_sbatch=[], **kw)) == 2  # nothing asked: only the plan


def test_lean_mode_holds_less_and_the_default_is_faster_as_measured():
    """The two models of the shipped table, at a size both measured (125,000 neurons, 2 x 1) and at
    one beyond it: lean mode predicts less memory, the default less simulate time, as in the rows."""
    default, lean = measured_rows(DEFAULT_SYNAPSE_MODEL), measured_rows(LEAN_SYNAPSE_MODEL)
    for key in default:
        assert float(lean[key]["peak_rss_per_rank_mib"]) < float(default[key]["peak_rss_per_rank_mib"]), key
    models = plan.load_models()
    for n in (125000, 500000):
        d, ln = (plan.predict(models[m][0], neurons=n, ranks=2, threads=1, rate_hz=38.0) for m in MODELS)
        assert ln.peak_rss_per_rank_mib < d.peak_rss_per_rank_mib
        assert d.simulate_s_per_model_s <= ln.simulate_s_per_model_s * 1.02


def test_communication_term_is_the_pairwise_alltoall_cost_worked_by_hand():
    """1,000,000 neurons at 38 Hz on 64 ranks, D = 1.5 ms, C = 1,250: 666.7 exchanges per model
    second; per exchange a rank sends 1e6/64 * 38 * 0.0015 = 890.6 spikes to (almost) all 64
    ranks, 8 bytes each = 456,000 B; (64 - 1) * 1.5 us + 456,000 B / 10 GB/s = 94.5 + 45.6 us
    = 140.1 us per exchange, 0.0934 s per model second. On one rank: nothing."""
    c = plan.Communication()
    assert c.s_per_model_s(1000000, 64, 38.0, 1250) == pytest.approx(0.0934, rel=2e-3)
    assert c.s_per_model_s(1000000, 1, 38.0, 1250) == 0.0
    # with few targets per neuron a spike reaches fewer ranks: 1 target -> 1 rank
    one = plan.Communication(latency_s=0.0).s_per_model_s(1000000, 64, 38.0, 1)
    assert one == pytest.approx(666.67 * 890.625 * 1 * 8 / 1e10, rel=1e-3)
    # the fitted model adds only what lies beyond the measured rank counts
    model, _ = plan.load_model()
    top = model.ranges["ranks"][1]
    assert model.extra_communication_s_per_model_s(125000, top, 38.0) == 0.0
    extra = model.extra_communication_s_per_model_s(125000, 64, 38.0)
    assert extra == pytest.approx(c.s_per_model_s(125000, 64, 38.0, 1250) - c.s_per_model_s(125000, top, 38.0, 1250))
    p = plan.predict(model, neurons=125000, ranks=64, threads=1, rate_hz=38.0)
    assert p.communication_s_per_model_s == pytest.approx(extra) and extra > 0
    assert p.simulate_s_per_model_s == pytest.approx(model.compute_s_per_model_s(125000, 64, 38.0) + extra)


def test_every_prediction_outside_the_measured_range_says_so_on_its_line():
    model, errors = plan.load_model()
    inside = plan.predict(model, neurons=50000, ranks=2, threads=1, rate_hz=38.0)
    assert inside.outside_range == () and inside.range_note() == "" and inside.memory_outside_range == ()
    assert not any("EXTRAPOLATED" in line for line in plan.report(inside, model, errors, plan.DEFAULT_TABLE))
    # (keyword, phrase on the memory line or None, phrase on the time line)
    for kw, mem_phrase, time_phrase in (
            ({"neurons": 1000000}, "neurons 1,000,000 > 50,000", "neurons 1,000,000 > 125,000"),
            ({"ranks": 64}, None, "ranks 64 > 2"), ({"ranks": 128}, "ranks 128 > 64", "ranks 128 > 2"),
            ({"threads": 4}, None, "threads 4 > 1"),
            ({"neurons": 1000}, "neurons 1,000 < 12,500", "neurons 1,000 < 12,500")):
        p = plan.predict(model, **{"neurons": 50000, "ranks": 2, "threads": 1, "rate_hz": 38.0, **kw})
        lines = plan.report(p, model, errors, plan.DEFAULT_TABLE)
        memory = next(line for line in lines if "peak memory" in line)
        time = next(line for line in lines if "per model second (real-time factor)" in line)
        assert time_phrase in time and "EXTRAPOLATED" in time, kw
        assert (mem_phrase in memory and "EXTRAPOLATED" in memory) if mem_phrase else "EXTRAPOLATED" not in memory, kw


@pytest.mark.parametrize("x, text", [(0.0123, "0.0123"), (0.000456, "0.000456"), (3.2, "3.2"), (12.34, "12.3"),
                                     (164.4, "164"), (12345.6, "12,346")])
def test_seconds_keep_three_significant_digits(x, text):
    assert plan.seconds(x) == text


def test_jobscript_plan_line_for_a_small_network_on_4_nodes_prints_no_zero_seconds():
    """The issue's case: a 4-node jobscript printed 'simulate ~0.0 s per model second'."""
    lines = plan.allocation_warnings(RunConfig(), nodes=4, ntasks_per_node=2, cpus_per_task=1, extra_sbatch=[])
    assert "~0.0 s" not in "\n".join(lines) and " 0.0 s" not in "\n".join(lines)
    assert "EXTRAPOLATED" in lines[0] and "ranks 8 > 2" in lines[0]
    assert LEAN_SYNAPSE_MODEL in lines[1]  # the other synapse model of the table, for comparison


def test_a_scaling_series_results_csv_is_a_table(tmp_path):
    """`scale strong|weak` writes results.csv with vm_hwm_mib_max and time_simulate_max: plan --table
    reads it (or its directory) as it reads a network_size.csv."""
    with open(plan.DEFAULT_TABLE, newline="") as f:
        rows = list(csv.DictReader(f))
    series = tmp_path / "scaling-weak"
    series.mkdir()
    fields = ["neurons", "ranks", "threads_per_rank", "synapses", "rate_hz", "t_sim_ms", "vm_hwm_mib_max",
              "time_simulate_max", "synapse_model", "point"]
    with open(series / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({**{k: r[k] for k in fields if k in r}, "vm_hwm_mib_max": r["peak_rss_per_rank_mib"],
                        "time_simulate_max": r["time_simulate_s"], "point": "x"})
    for table in (series, series / "results.csv"):
        ours = plan.load_models(table)
        assert list(ours) == list(plan.load_models())
        for name, (model, errors) in ours.items():
            assert model == plan.load_models(plan.DEFAULT_TABLE)[name][0]


def test_plan_says_which_synapse_model_fits_an_allocation():
    models = plan.load_models()
    preds = {name: plan.predict(m, neurons=125000, ranks=2, threads=1, rate_hz=38.0) for name, (m, _) in models.items()}
    d, ln = preds[DEFAULT_SYNAPSE_MODEL], preds[LEAN_SYNAPSE_MODEL]
    model, errors = models[DEFAULT_SYNAPSE_MODEL]
    between = (d.peak_rss_total_mib + ln.peak_rss_total_mib) / 2  # only lean fits on one node with 2 ranks
    line = plan.report(d, model, errors, plan.DEFAULT_TABLE, {LEAN_SYNAPSE_MODEL: ln}, between, 2)[-1]
    assert line.endswith(f"fits with {LEAN_SYNAPSE_MODEL}; fastest that fits: {LEAN_SYNAPSE_MODEL}")
    line = plan.report(d, model, errors, plan.DEFAULT_TABLE, {LEAN_SYNAPSE_MODEL: ln}, 2 * d.peak_rss_total_mib, 2)[-1]
    assert f"fastest that fits: {DEFAULT_SYNAPSE_MODEL}" in line
    line = plan.report(d, model, errors, plan.DEFAULT_TABLE, {LEAN_SYNAPSE_MODEL: ln}, ln.peak_rss_total_mib / 2, 2)[-1]
    assert "none of the measured synapse models fits" in line
    # jobscript: --mem too small for the default but enough for lean mode -> the warning offers --lean
    cfg = resolve(overrides=[{"network": {"n_excitatory": 100000, "n_inhibitory": 25000}}])
    mem_gib = between / 1024
    lines = plan.allocation_warnings(cfg, nodes=1, ntasks_per_node=2, cpus_per_task=1,
                                     extra_sbatch=[f"--mem={int(mem_gib * 1024)}M"])
    assert "warning" in lines[-1] and "--lean" in lines[-1]
