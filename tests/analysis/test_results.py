"""The Python API on synthetic run directories (no NEST): hpc_brunel.load_run with a
time window and a neuron subset, from the rank files and from spikes.h5, to_pandas,
to_neo (and Elephant on the result), and no NEST/mpi4py import."""
import subprocess
import sys

import h5py
import numpy as np
import pytest
from test_gather import N_E, N_I, as_pairs, make_run

import hpc_brunel
from hpc_brunel.analysis import gather
from hpc_brunel.analysis.results import _bisect


def expect(truth, pop, t0=-np.inf, t1=np.inf, neurons=None):
    ids, t = truth[pop]
    keep = (t >= t0) & (t < t1)
    if neurons is not None:
        keep &= np.isin(ids, neurons)
    return as_pairs(ids[keep], t[keep])


@pytest.mark.parametrize("gathered", [False, True], ids=["rank-files", "spikes.h5"])
def test_load_run_whole_window_and_subset(tmp_path, gathered):
    truth = make_run(tmp_path, n_ranks=3, n_chunks=4, chunk_ms=50.0)
    if gathered:
        gather.gather(tmp_path)
    run = hpc_brunel.load_run(tmp_path)
    assert run.source == ("spikes.h5" if gathered else "rank files")
    assert (run.t_start_ms, run.t_stop_ms) == (0.0, 200.0) and run.status == "complete" and not run.partial
    assert run.config.network.n_excitatory == N_E and run.provenance["run_id"] == "test-run"
    for p in ("excitatory", "inhibitory"):
        s = run.spikes[p]
        assert as_pairs(s.node_ids, s.times_ms) == expect(truth, p)
        assert np.all(np.diff(s.times_ms) >= 0)
        assert s.nest_first_node_id == (1 if p == "excitatory" else 1 + N_E)
        assert np.array_equal(s.nest_ids, s.node_ids + s.nest_first_node_id)
    # a window that cuts chunks, and a neuron subset
    part = hpc_brunel.load_run(tmp_path, t_start_ms=30.0, t_stop_ms=130.0, neurons={"excitatory": [0, 3, 7]})
    assert (part.t_start_ms, part.t_stop_ms) == (30.0, 130.0)
    assert as_pairs(part.spikes["excitatory"].node_ids, part.spikes["excitatory"].times_ms) == \
        expect(truth, "excitatory", 30.0, 130.0, [0, 3, 7])
    assert len(part.spikes["inhibitory"]) == 0  # not asked for
    first5 = hpc_brunel.load_run(tmp_path, t_start_ms=100, neurons=5, populations=["inhibitory"])
    assert list(first5.spikes) == ["inhibitory"]
    assert as_pairs(first5.spikes["inhibitory"].node_ids, first5.spikes["inhibitory"].times_ms) == \
        expect(truth, "inhibitory", 100.0, 200.0, range(5))


def test_to_pandas_and_to_neo(tmp_path):
    pd = pytest.importorskip("pandas")
    neo = pytest.importorskip("neo")
    truth = make_run(tmp_path)
    run = hpc_brunel.load_run(tmp_path, t_start_ms=50.0, t_stop_ms=150.0)
    df = run.to_pandas()
    assert list(df.columns) == ["population", "node_id", "nest_node_id", "time_ms"]
    assert isinstance(df["population"].dtype, pd.CategoricalDtype)
    assert df["time_ms"].is_monotonic_increasing
    assert len(df) == len(expect(truth, "excitatory", 50, 150)) + len(expect(truth, "inhibitory", 50, 150))
    exc = df[df.population == "excitatory"]
    assert as_pairs(exc.node_id.to_numpy(), exc.time_ms.to_numpy()) == expect(truth, "excitatory", 50, 150)

    trains = run.to_neo()
    assert len(trains) == N_E + N_I  # silent neurons included
    assert all(isinstance(st, neo.SpikeTrain) for st in trains)
    assert float(trains[0].t_start.rescale("ms")) == 50.0 and float(trains[0].t_stop.rescale("ms")) == 150.0
    by_id = {(st.annotations["population"], st.annotations["node_id"]): st for st in trains}
    ids, t = truth["inhibitory"]
    for nid in range(N_I):
        want = np.sort(t[(ids == nid) & (t >= 50) & (t < 150)])
        got = by_id[("inhibitory", nid)]
        assert np.array_equal(got.magnitude, want) and got.annotations["nest_node_id"] == 1 + N_E + nid
    assert len(run.to_neo("excitatory")) == N_E

    elephant = pytest.importorskip("elephant")
    import quantities as pq
    from elephant.statistics import mean_firing_rate, time_histogram

    rate = mean_firing_rate(by_id[("inhibitory", 0)])
    assert float(rate.rescale("Hz")) == pytest.approx(len(by_id[("inhibitory", 0)]) / 0.1)
    hist = time_histogram(trains, bin_size=10 * pq.ms)
    assert int(hist.magnitude.sum()) == len(df)
    assert elephant is not None


def test_bad_window_and_neurons_are_refused(tmp_path):
    make_run(tmp_path)
    with pytest.raises(ValueError, match="holds nothing"):
        hpc_brunel.load_run(tmp_path, t_start_ms=500)
    with pytest.raises(ValueError, match="0..39"):
        hpc_brunel.load_run(tmp_path, neurons={"excitatory": [40]})
    with pytest.raises(FileNotFoundError, match="not an hpc_brunel run"):
        hpc_brunel.load_run(tmp_path / "nothing")


def test_bisect_reads_a_sorted_dataset_in_part(tmp_path):
    t = np.sort(np.random.default_rng(1).uniform(0, 100_000, size=300_000))
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f.create_dataset("t", data=t, chunks=(1 << 14,))
    with h5py.File(tmp_path / "t.h5", "r") as f:
        ds = f["t"]
        for v in (-1.0, 0.0, t[0], t[12345], 5e4, t[-1], 2e5):
            assert _bisect(ds, v, 0, len(t)) == np.searchsorted(t, v, side="left")
        assert _bisect(ds, t[200_000], 150_000, 250_000) == 200_000


def test_load_run_imports_neither_nest_nor_mpi4py(tmp_path):
    make_run(tmp_path)
    code = ("import sys, hpc_brunel; r = hpc_brunel.load_run(sys.argv[1]); r.to_pandas(); "
            "print(sorted(m for m in ('nest', 'mpi4py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
