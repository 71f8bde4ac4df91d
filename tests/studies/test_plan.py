"""`hpc_brunel plan`: the memory and time models, their fit and the allocation check.
Pure Python (no NEST): points are generated from known constants."""
import math

import pytest

from hpc_brunel.config import RunConfig, resolve
from hpc_brunel.studies import plan

TRUE = plan.Model(m0_mib=150.0, mib_per_synapse_on_rank=40 / 2**20, mib_per_neuron_in_network=900 / 2**20,
                  c_s=2e-7, p=1.6)


def point(n, ranks, threads=1, rate=38.0):
    syn = n * 1252
    return plan.Point(n, ranks, threads, syn, rate, TRUE.peak_rss_per_rank_mib(n, ranks, syn),
                      TRUE.simulate_s_per_model_s(n, ranks * threads, rate))


def test_fit_recovers_the_constants_and_predicts_unseen_points():
    cal = [point(12500, 2), point(50000, 2), point(12500, 1)]
    m = plan.fit(cal)
    assert m.m0_mib == pytest.approx(150.0, rel=1e-6)
    assert m.mib_per_synapse_on_rank * 2**20 == pytest.approx(40.0, rel=1e-6)
    assert m.p == pytest.approx(1.6, rel=1e-6)
    for (p, e_mem, e_sim) in plan.validation_errors(m, [point(125000, 2), point(25000, 1), point(25000, 4, 2)]):
        assert abs(e_mem) < 1e-6 and abs(e_sim) < 1e-6, p


def test_more_ranks_less_memory_per_rank_more_in_all():
    a = plan.predict(TRUE, neurons=125000, ranks=2, threads=1, rate_hz=38.0)
    b = plan.predict(TRUE, neurons=125000, ranks=8, threads=1, rate_hz=38.0)
    assert b.peak_rss_per_rank_mib < a.peak_rss_per_rank_mib and b.peak_rss_total_mib > a.peak_rss_total_mib
    assert b.simulate_s_per_model_s < a.simulate_s_per_model_s


@pytest.mark.parametrize("lines, cpus, mib", [
    (["--mem=64G"], 8, 65536.0), (["--mem=2000"], 8, 2000.0), (["--mem-per-cpu=2G"], 8, 16384.0),
    (["--mem=0"], 8, None), (["--exclusive"], 8, None), ([], 8, None), (["--mem=1T"], 1, 1024.0**2),
])
def test_slurm_memory_requests(lines, cpus, mib):
    assert plan.slurm_mem_mib(lines, cpus) == mib


def test_jobscript_warns_when_the_memory_asked_for_cannot_hold_the_network():
    big = resolve(overrides=[{"network": {"n_excitatory": 100000, "n_inhibitory": 25000}}])
    kw = dict(nodes=1, ntasks_per_node=2, cpus_per_task=1)
    lines = plan.allocation_warnings(big, extra_sbatch=["--mem=1G"], **kw)
    assert len(lines) == 2 and "warning" in lines[1] and ">= " in lines[1]
    need = int(lines[1].split(">= ")[1].split()[0])
    assert need >= 2
    kw_need = {**kw, "nodes": need}
    assert len(plan.allocation_warnings(big, extra_sbatch=["--mem=1G"], **kw_need)) == 1  # the advice fits
    kw_less = {**kw, "nodes": need - 1}
    assert len(plan.allocation_warnings(big, extra_sbatch=["--mem=1G"], **kw_less)) == 2  # and is the least
    assert len(plan.allocation_warnings(RunConfig(), extra_sbatch=[], **kw)) == 1  # nothing asked: only the plan


def test_shipped_table_validates_within_20_percent():
    """The measured table shipped with the package (scaling/bench_network_size.py on this
    machine): fitted on three points, the other points are predicted within 20 %."""
    model, errors = plan.load_model()
    assert len(errors) >= 3
    for p, e_mem, e_sim in errors:
        assert abs(e_mem) <= 0.20 and abs(e_sim) <= 0.20, (p, e_mem, e_sim)
    assert math.isfinite(model.p) and model.p > 0
