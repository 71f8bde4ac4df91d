"""`hpc_brunel run` with NEST, on one rank and under mpirun -n 2; the refusals that come before
NEST is imported (bad input, a NEST without MPI) run without it."""
import json
import textwrap

import h5py
import numpy as np
import pytest
from conftest import SMALL, hpc_brunel, needs_nest, nnmt_rate_hz

from hpc_brunel.analysis.gather import read_sonata
from hpc_brunel.config import DEFAULT_SYNAPSE_MODEL, LEAN_SYNAPSE_MODEL, SYNAPSE_MODELS, parse_override, resolve
from hpc_brunel.constants import POPULATIONS
from hpc_brunel.simulation import network
from hpc_brunel.simulation import run as simulation


def small_cfg(*extra):
    pairs = [SMALL[i + 1] for i in range(0, len(SMALL), 2)] + list(extra)
    return resolve(overrides=[parse_override(s) for s in pairs])


def rank_spikes(run_dir):
    """{rank: {population: (ids, times)}} straight from the rank files."""
    out = {}
    for p in sorted(run_dir.glob("rank_*.h5")):
        with h5py.File(p, "r") as f:
            out[int(f.attrs["rank"])] = {
                pop: (f[f"spikes/{pop}/node_ids"][:], f[f"spikes/{pop}/times_ms"][:]) for pop in POPULATIONS
            }
    return out


def check_run(run_dir, cfg, ranks, threads):
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "complete"
    assert rec["decomposition"] == {"ranks": ranks, "threads_per_rank": threads,
                                    "virtual_processes": ranks * threads}
    # connections summed over ranks = N (CE + CI) + one drive per neuron + one recorder link per neuron
    assert rec["synapses_total"] == network.expected_connections(cfg)
    # spikes on disk = NEST's n_events, rank by rank
    files = rank_spikes(run_dir)
    assert sorted(files) == list(range(ranks))
    for r, pops in files.items():
        for pop, (ids, t) in pops.items():
            assert len(ids) == rec["ranks"][r]["n_events"][pop] == rec["ranks"][r]["spikes"][pop]
    # every neuron lives in exactly one rank's file
    owners = {}
    for r, pops in files.items():
        for pop, (ids, t) in pops.items():
            for i in np.unique(ids):
                assert i not in owners, f"neuron {i} in the files of ranks {owners[i]} and {r}"
                owners[i] = r
    # the neurons of both populations spiked, and each rank holds a share
    assert len(owners) > 0.9 * cfg.network.n_neurons
    assert all(sum(len(v[0]) for v in pops.values()) > 0 for pops in files.values())
    check_overhead(rec)
    return rec


def check_overhead(rec):
    """run.json's overhead outside NEST adds up: per rank, the parts of the simulate phase are
    within its wall time, NEST's Simulate calls hold its time_simulate, and the run-level record
    is the rank with the most overhead."""
    for r in rec["ranks"]:
        parts, phases, over = r["simulate_parts_s"], r["python_phases_s"], r["overhead_outside_nest"]
        assert set(parts) == set(simulation.SIMULATE_PARTS) and all(v >= 0 for v in parts.values())
        assert sum(parts.values()) <= phases["simulate"] + 1e-6
        assert 0 < r["startup_s"] < rec["wall_time_s"] + 60
        for key in ("build_s", "prepare_cleanup_s", "read_recorders_s", "write_spikes_s", "outside_nest_s"):
            assert over[key] >= 0, key
        summed = sum(v for k, v in over.items() if k.endswith("_s") and k not in ("startup_s", "outside_nest_s"))
        assert over["outside_nest_s"] == pytest.approx(summed)
    assert rec["overhead_outside_nest"]["outside_nest_s"] == max(r["overhead_outside_nest"]["outside_nest_s"]
                                                                 for r in rec["ranks"])
    assert rec["nest_timers_max_s"]["time_simulate"] <= max(r["simulate_parts_s"]["nest_simulate_calls"]
                                                            for r in rec["ranks"]) + 1e-3


def spike_set(run_dir):
    s = read_sonata(run_dir / "spikes.h5")
    return {p: sorted(zip(s[p][0].tolist(), np.round(s[p][1], 4).tolist())) for p in s}


@needs_nest
def test_single_rank_small_network(tmp_path):
    run_dir = tmp_path / "run"
    proc = hpc_brunel("run", *SMALL, "--t-sim-ms", "300", "--run-dir", run_dir, check=True)
    rec = check_run(run_dir, small_cfg(), 1, 1)
    assert "run complete" in proc.stdout and "regime:" in proc.stdout
    assert (run_dir / "config.toml").exists() and (run_dir / "analysis.json").exists()
    # the resolved config is enough to rerun exactly
    again = tmp_path / "again"
    hpc_brunel("run", "--config", run_dir / "config.toml", "--run-dir", again, "--no-analyze", check=True)
    assert rank_spikes(again)[0]["excitatory"][1].tolist() == rank_spikes(run_dir)[0]["excitatory"][1].tolist()
    assert rec["rng_seed"] == 12345


@needs_nest
@pytest.mark.mpi
def test_two_ranks_small_network(tmp_path):
    run_dir = tmp_path / "run"
    proc = hpc_brunel("run", *SMALL, "--t-sim-ms", "300", "--run-dir", run_dir, ranks=2, check=True)
    check_run(run_dir, small_cfg(), 2, 1)
    assert proc.stderr.count("decomposition: 2 rank(s) x 1 thread(s)") == 1  # logged once, by rank 0
    assert "[rank 1]" not in proc.stderr  # other ranks stay quiet


@needs_nest
@pytest.mark.mpi
def test_same_spikes_whatever_the_rank_thread_split(tmp_path):
    a, b = tmp_path / "1x2", tmp_path / "2x1"
    hpc_brunel("run", *SMALL, "--t-sim-ms", "200", "--run-dir", a, "--threads", "2", ranks=1, threads=2, check=True)
    hpc_brunel("run", *SMALL, "--t-sim-ms", "200", "--run-dir", b, ranks=2, check=True)
    check_run(a, small_cfg(), 1, 2)
    sa, sb = spike_set(a), spike_set(b)
    assert sum(len(v) for v in sa.values()) > 1000
    assert sa == sb
    # ...and a different seed gives different spikes
    c = tmp_path / "seed"
    hpc_brunel("run", *SMALL, "--t-sim-ms", "200", "--run-dir", c, "--seed", "99", ranks=2, check=True)
    assert spike_set(c) != sb


@needs_nest
@pytest.mark.mpi
def test_uniform_initial_state_is_in_range_and_independent_of_the_split(tmp_path):
    """neuron.v_init_distribution = uniform: V_m(0) in [E_L, V_th) (read back from NEST),
    spread over the range, and the same spikes at 1x2 and 2x1 (NEST's per-VP streams)."""
    probe = textwrap.dedent("""
        import json, nest
        from hpc_brunel.simulation import network
        from hpc_brunel.config import resolve
        nest.set_verbosity("M_ERROR")
        cfg = resolve(overrides=[{"neuron": {"e_l_mv": -70.0, "v_threshold_mv": -50.0, "v_reset_mv": -60.0,
                                              "v_init_distribution": "uniform"}}])
        pop = nest.Create("iaf_psc_delta", 2000, params=network.initial_state(nest, cfg))
        print(json.dumps(list(pop.get("V_m"))))
    """)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    v = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    assert v.min() >= -70.0 and v.max() < -50.0
    assert np.histogram(v, bins=4, range=(-70, -50))[0].min() > 400  # ~500 per quarter: spread, not fixed
    uni = ("--set", "neuron.v_init_distribution=uniform")
    a, b = tmp_path / "1x2", tmp_path / "2x1"
    hpc_brunel("run", *SMALL, *uni, "--t-sim-ms", "150", "--run-dir", a, "--threads", "2", ranks=1, threads=2,
               check=True)
    hpc_brunel("run", *SMALL, *uni, "--t-sim-ms", "150", "--run-dir", b, ranks=2, check=True)
    sa, sb = spike_set(a), spike_set(b)
    assert sum(len(x) for x in sa.values()) > 100 and sa == sb
    fixed = tmp_path / "fixed"
    hpc_brunel("run", *SMALL, "--t-sim-ms", "150", "--run-dir", fixed, ranks=2, check=True)
    assert spike_set(fixed) != sb  # the start matters


@needs_nest
def test_partial_recording(tmp_path):
    run_dir = tmp_path / "run"
    hpc_brunel("run", *SMALL, "--t-sim-ms", "200", "--record", "30", "--run-dir", run_dir, check=True)
    cfg = small_cfg("recording.n_record_per_population=30")
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["synapses_total"] == network.expected_connections(cfg)
    ids = rank_spikes(run_dir)[0]
    assert ids["excitatory"][0].max() <= 30 and ids["inhibitory"][0].min() > 800
    assert ids["inhibitory"][0].max() <= 830


@pytest.mark.mpi
@pytest.mark.parametrize("bad,name", [
    (["--set", "network.indegree_excitatory=20000"], "network.indegree_excitatory"),
    (["--set", "network.delay_ms=0.05"], "network.delay_ms"),
    (["--threads", "64"], "threads per rank"),
])
def test_bad_input_exits_2_on_every_rank_and_creates_nothing(tmp_path, bad, name):
    run_dir = tmp_path / "run"
    proc = hpc_brunel("run", *bad, "--run-dir", run_dir, ranks=2)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hpc_brunel: error:")]
    assert len(errors) == 1 and name in errors[0]
    assert not run_dir.exists()


@pytest.mark.mpi
def test_nest_without_mpi_is_refused_under_mpirun(tmp_path):
    """A stand-in for the PyPI wheel: a NEST that sees one process and has no MPI."""
    fake = tmp_path / "fake" / "nest"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(textwrap.dedent("""
        __version__ = "3.10.0"
        build_info = {"have_mpi": False}
        def NumProcesses(): return 1
        def Rank(): return 0
    """))
    proc = hpc_brunel("run", "--run-dir", tmp_path / "run", ranks=2, env={"PYTHONPATH": str(fake.parent)})
    assert proc.returncode == 2
    assert "built without MPI" in proc.stderr and "duplicate simulations" in proc.stderr
    assert "make setup" in proc.stderr
    assert not (tmp_path / "run").exists()


@needs_nest
@pytest.mark.mpi
def test_every_synapse_model_gives_the_same_spikes_and_lean_mode_the_least_memory(tmp_path):
    """The four static synapses NEST offers for the network's connections (weight per model or per
    connection, compact or full target index) deliver the same spikes: same seed, same VPs, same
    (id, time) set. Lean mode (--lean) uses LEAN_SYNAPSE_MODEL and peaks lowest: 4,000 neurons with
    C = 1,000 + 250 (5 M synapses, enough to see the bytes per synapse)."""
    size = ["--set", "network.n_excitatory=3200", "--set", "network.n_inhibitory=800"]
    sets, peak = {}, {}
    for model in SYNAPSE_MODELS:
        run_dir = tmp_path / model
        args = ["--lean"] if model == LEAN_SYNAPSE_MODEL else ["--set", f"network.synapse_model={model}"]
        hpc_brunel("run", *size, *args, "--t-sim-ms", "200", "--run-dir", run_dir, "--no-analyze", ranks=2, check=True)
        rec = json.loads((run_dir / "run.json").read_text())
        assert rec["config"]["network"]["synapse_model"] == model
        files = rank_spikes(run_dir)
        sets[model] = {pop: sorted(zip(np.concatenate([f[pop][0] for f in files.values()]).tolist(),
                                       np.concatenate([f[pop][1] for f in files.values()]).tolist()))
                       for pop in POPULATIONS}
        peak[model] = sum(r["memory_kib"]["VmHWM"] for r in rec["ranks"])
    assert sum(len(v) for v in sets[DEFAULT_SYNAPSE_MODEL].values()) > 10000
    for model in SYNAPSE_MODELS:
        assert sets[model] == sets[DEFAULT_SYNAPSE_MODEL], model
    # the lean model stores neither a weight nor a full target pointer per connection: at least
    # 8 bytes per synapse less than static_synapse (measured: 24, BENCHMARKS.md)
    synapses = 4000 * 1252
    assert peak[LEAN_SYNAPSE_MODEL] == min(peak.values())
    assert (peak["static_synapse"] - peak[LEAN_SYNAPSE_MODEL]) * 1024 > 8 * synapses


@needs_nest
@pytest.mark.slow
@pytest.mark.mpi
def test_full_network_two_ranks_is_ai_near_mean_field(tmp_path):
    """The paper's 12,500-neuron network, 2 ranks, 500 ms."""
    run_dir = tmp_path / "full"
    hpc_brunel("run", "--t-sim-ms", "500", "--run-dir", run_dir, ranks=2, check=True, timeout=900)
    cfg = resolve(overrides=[{"simulation": {"t_sim_ms": 500.0}}])
    check_run(run_dir, cfg, 2, 1)
    a = json.loads((run_dir / "analysis.json").read_text())
    assert a["regime"] == "AI"
    assert a["populations"]["network"]["rate_mean_hz"] == pytest.approx(a["meanfield_rate_hz"], rel=0.04)
    assert a["meanfield_rate_hz"] == pytest.approx(nnmt_rate_hz(cfg), rel=1e-6)  # independent: nnmt


LOCAL_COUNT = r"""
import sys, warnings
sys.argv = sys.argv[:1]
import nest
from hpc_brunel.simulation import kernel
from hpc_brunel.simulation import network
from hpc_brunel.config import parse_override, resolve
pairs = %r
cfg = resolve(overrides=[parse_override(s) for s in pairs])
kernel.setup_kernel(nest, threads_per_rank=int(%r), resolution_ms=0.1, rng_seed=1)
net = network.build(nest, cfg)
ours = network.local_neuron_count(nest, net)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    nests = {name: len(nest.GetLocalNodeCollection(pop)) for name, pop in net.neurons.items()}
open("%s/rank_%%d.txt" %% nest.Rank(), "w").write(f"{ours == nests} {ours} {nests}")
"""


@needs_nest
@pytest.mark.mpi
@pytest.mark.parametrize("ranks, threads", [(1, 2), (2, 1), (2, 2), (3, 1)])
def test_local_neuron_count_is_nests(tmp_path, ranks, threads):
    """network.local_neuron_count (from NEST's node distribution) against
    nest.GetLocalNodeCollection, which it replaces because it costs memory."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    from hpc_brunel.simulation.parallel import mpirun_argv

    pairs = [SMALL[i + 1] for i in range(0, len(SMALL), 2)] + ["network.n_inhibitory=201"]  # uneven split
    cmd = [sys.executable, "-c", LOCAL_COUNT % (pairs, threads, tmp_path)]
    env = {**os.environ, "PYNEST_QUIET": "1"}
    if ranks > 1 or threads > 1:
        cmd, extra = mpirun_argv(ranks, threads, cmd)
        env.update(extra)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    lines = [(tmp_path / f"rank_{r}.txt").read_text() for r in range(ranks)]  # one per rank: each must exist
    assert all(ln.startswith("True ") for ln in lines), "\n".join(lines)


@needs_nest
def test_nest_is_imported_without_pandas_and_matplotlib_which_stay_importable():
    """kernel.import_nest hides pandas and matplotlib from PyNEST's optional imports
    (55 MiB per rank, BENCHMARKS.md) and leaves both importable afterwards."""
    import subprocess
    import sys

    code = ("import sys; from hpc_brunel.simulation import kernel; nest = kernel.import_nest(); "
            "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules)); "
            "import pandas, matplotlib; print(nest.__version__, bool(pandas.DataFrame), bool(matplotlib.__version__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.strip().splitlines()[-2:]
    assert first == "[]"
    assert second.endswith("True True")
