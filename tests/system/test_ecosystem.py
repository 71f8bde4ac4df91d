"""A real small run (2 ranks) read by third-party tools: libsonata reads spikes.h5,
hpc_brunel.load_run + Neo + Elephant reproduce the analysis, the [kernel] section
reaches NEST and run.json, and bad kernel settings stop every rank with one line."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import ROOT, SMALL, hpc_brunel, needs_nest

pytestmark = [needs_nest, pytest.mark.mpi]

KERNEL = ["--set", "kernel.keep_source_table=false", "--set", "kernel.update_time_limit=600",
          "--set", "kernel.spike_buffer_shrink_limit=0.25"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eco") / "run"
    hpc_brunel("run", *SMALL, *KERNEL, "--t-sim-ms", "300", "--run-dir", run_dir, ranks=2, check=True)
    return run_dir


def test_libsonata_reads_spikes_h5(small_run):
    libsonata = pytest.importorskip("libsonata")
    rec = json.loads((small_run / "run.json").read_text())
    with h5py.File(small_run / "spikes.h5", "r") as f:  # SONATA: magic and version on the file root
        assert int(f.attrs["magic"]) == 0x0A7A and list(f.attrs["version"]) == [0, 1]
    reader = libsonata.SpikeReader(str(small_run / "spikes.h5"))
    assert sorted(reader.get_population_names()) == ["excitatory", "inhibitory"]
    n = {"excitatory": 800, "inhibitory": 200}
    for p in ("excitatory", "inhibitory"):
        pop = reader[p]
        assert pop.sorting == "by_time"
        assert pop.time_units == "ms"
        d = pop.get_dict()
        ids, t = np.asarray(d["node_ids"]), np.asarray(d["timestamps"])
        assert len(t) == rec["spikes"][p] > 0  # every spike NEST counted
        assert np.all(np.diff(t) >= 0)
        assert ids.min() >= 0 and ids.max() < n[p]  # node ids within the population, from 0
        assert 0.0 < t.min() and t.max() <= 300.0
        t0, t1 = pop.times
        assert 0.0 <= t0 <= t.min() and t.max() <= t1
        assert len(pop.get(tstart=100.0, tstop=200.0)) == int(np.sum((t >= 100.0) & (t <= 200.0)))


def test_load_run_matches_the_analysis_and_elephant(small_run):
    import hpc_brunel as api

    rec = json.loads((small_run / "run.json").read_text())
    run = api.load_run(small_run)
    assert run.source == "spikes.h5" and run.status == "complete"
    assert {p: len(s) for p, s in run.spikes.items()} == rec["spikes"]
    assert run.config.kernel["keep_source_table"] is False
    a = run.statistics
    part = api.load_run(small_run, t_start_ms=a["window_ms"][0], t_stop_ms=a["window_ms"][1])
    for p in ("excitatory", "inhibitory"):
        assert part.spikes[p].rates_hz().mean() == pytest.approx(a["populations"][p]["rate_mean_hz"], rel=1e-9)
    # the example script: Elephant on Neo trains from load_run agrees with hpc_brunel's analysis
    out = subprocess.run([sys.executable, str(ROOT / "analysis" / "elephant_example.py"), str(small_run),
                          "--t-start-ms", str(a["window_ms"][0]), "--t-stop-ms", str(a["window_ms"][1])],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    sys.path.insert(0, str(ROOT / "analysis"))
    try:
        from elephant_example import elephant_stats
    finally:
        sys.path.pop(0)
    res = elephant_stats(small_run, t_start_ms=a["window_ms"][0], t_stop_ms=a["window_ms"][1])
    for p in ("excitatory", "inhibitory"):
        assert res[p]["rate_mean_hz"] == pytest.approx(a["populations"][p]["rate_mean_hz"], rel=1e-6)
        assert res[p]["cv_isi_mean"] == pytest.approx(a["populations"][p]["cv_isi_mean"], rel=1e-6)
    # the run from the rank files (before/without spikes.h5) gives the same spikes
    (small_run / "spikes.h5").rename(small_run / "spikes.h5.bak")
    try:
        raw = api.load_run(small_run, t_start_ms=50, t_stop_ms=250, neurons=100)
    finally:
        (small_run / "spikes.h5.bak").rename(small_run / "spikes.h5")
    same = api.load_run(small_run, t_start_ms=50, t_stop_ms=250, neurons=100)
    assert raw.source == "rank files"
    for p in ("excitatory", "inhibitory"):
        assert np.array_equal(raw.spikes[p].times_ms, same.spikes[p].times_ms)
        assert sorted(zip(raw.spikes[p].node_ids, raw.spikes[p].times_ms)) == \
            sorted(zip(same.spikes[p].node_ids, same.spikes[p].times_ms))


def test_kernel_settings_reach_nest_and_the_provenance(small_run):
    rec = json.loads((small_run / "run.json").read_text())
    ks = rec["kernel_settings"]  # read back from NEST after set-up
    assert ks["keep_source_table"] is False and ks["update_time_limit"] == 600.0
    assert ks["spike_buffer_shrink_limit"] == 0.25
    assert ks["use_compressed_spikes"] is True  # NEST's default, recorded too
    assert rec["config"]["kernel"] == {"keep_source_table": False, "update_time_limit": 600.0,
                                       "spike_buffer_shrink_limit": 0.25}
    assert "kernel" in (small_run / "config.toml").read_text()
    for r in rec["ranks"]:  # beNNch's memory phases and the create/connect split, per rank
        assert 0 < r["memory_phases_kib"]["base"] <= r["memory_phases_kib"]["network"]
        assert r["python_phases_s"]["create"] > 0 and r["python_phases_s"]["connect"] > 0


def test_our_kernel_key_list_is_nests(tmp_path):
    """NEST_KERNEL_SETTABLE + NEST_KERNEL_MANAGED = the installed NEST's settable kernel attributes."""
    code = ("import os; os.environ['PYNEST_QUIET']='1'; import nest, json; from hpc_brunel.simulation import kernel; "
            "print(json.dumps([kernel.nest_version(nest), sorted(kernel.nest_settable_kernel_keys(nest) or [])]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    version, keys = json.loads(out.stdout.strip().splitlines()[-1])
    nest_keys = set(keys)
    if not nest_keys:
        pytest.skip("this NEST does not expose its list of kernel attributes")
    from hpc_brunel.config import NEST_KERNEL_MANAGED, NEST_KERNEL_SETTABLE, NEST_KERNEL_SINCE

    ours = {k for k in set(NEST_KERNEL_SETTABLE) | set(NEST_KERNEL_MANAGED)
            if tuple(version) >= NEST_KERNEL_SINCE.get(k, (0, 0))}
    assert ours == nest_keys


@pytest.mark.parametrize("setting,name", [
    ("kernel.keep_source_tabel=false", "kernel.keep_source_tabel"),   # unknown key: refused by the config
    ("kernel.rng_type=\"no_such_rng\"", "kernel.rng_type"),          # refused by NEST itself
])
def test_bad_kernel_setting_exits_2_on_every_rank(tmp_path, setting, name):
    run_dir = tmp_path / "run"
    proc = hpc_brunel("run", *SMALL, "--set", setting, "--run-dir", run_dir, ranks=2)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hpc_brunel: error:")]
    assert len(errors) == 1 and name in errors[0], proc.stderr
    assert not run_dir.exists()
