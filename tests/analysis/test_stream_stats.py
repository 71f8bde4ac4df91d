"""Streaming statistics (hpc_brunel.analysis.stream_stats) against the in-memory reference
implementation (hpc_brunel.analysis.stats.population_stats) on the same synthetic spikes,
fed in chunks cut anywhere: through ISIs, through 1 ms and 10 ms bins, between
spikes at the same time."""
import tracemalloc

import numpy as np
import pytest

from hpc_brunel.analysis import stats, stream_stats

SCALARS = ("n_neurons", "n_spikes", "rate_mean_hz", "rate_sd_hz", "rate_median_hz", "silent_fraction",
           "cv_isi_mean", "cv_isi_median", "cv_isi_n_neurons", "fano_1ms", "fano_5ms", *stats.SYNCHRONY_KEYS,
           "psd_peak_hz", "psd_peak_ratio")


def time_sorted(ids, t):
    o = np.lexsort((ids, t))
    return ids[o], t[o]


def poisson(n, rate_hz, t_ms, seed=1, t_ref_ms=2.0, dt=0.1):
    """Poisson-like trains on the dt grid with a refractory period (as NEST writes them)."""
    rng = np.random.default_rng(seed)
    ids, ts = [], []
    for i in range(n):
        isi = t_ref_ms + rng.exponential(1000.0 / rate_hz, size=int(rate_hz * t_ms / 1000 * 2) + 10)
        st = np.round(np.cumsum(isi) / dt) * dt
        st = st[st < t_ms]
        ids.append(np.full(len(st), i))
        ts.append(st)
    return time_sorted(np.concatenate(ids), np.concatenate(ts))


def synchronous(n, period_ms, t_ms, jitter_ms=0.0, seed=2):
    """Every neuron fires at (nearly) the same times: several spikes per 10 ms bin."""
    rng = np.random.default_rng(seed)
    base = np.arange(0.5, t_ms, period_ms)
    ids = np.repeat(np.arange(n), len(base))
    t = np.tile(base, n) + np.round(rng.uniform(0, jitter_ms, size=n * len(base)), 1)
    keep = t < t_ms
    return time_sorted(ids[keep], t[keep])


def regular(n, t_ms):
    """Regular trains with neuron-specific periods 2.5 .. 12 ms and phases."""
    ids, ts = [], []
    for i in range(n):
        period = 2.5 + (i % 20) * 0.5
        st = np.arange((i % 7) * 0.3, t_ms, period)
        ids.append(np.full(len(st), i))
        ts.append(np.round(st, 1))
    return time_sorted(np.concatenate(ids), np.concatenate(ts))


def bursts(n, t_ms, seed=3):
    """Bursts of 3 spikes 0.3 ms apart (no refractory period): runs of more than
    one spike per neuron in a 1 ms bin."""
    rng = np.random.default_rng(seed)
    ids, ts = [], []
    for i in range(n):
        onsets = np.sort(rng.uniform(0, t_ms - 1, size=int(t_ms / 40)))
        st = np.round((onsets[:, None] + np.array([0.0, 0.3, 0.6])).ravel(), 1)
        st = st[st < t_ms]
        ids.append(np.full(len(st), i))
        ts.append(st)
    return time_sorted(np.concatenate(ids), np.concatenate(ts))


def stream(ids, t, n, t0, t1, cuts):
    acc = stream_stats.StreamingPopulationStats(n, t0, t1)
    for a, b in zip(cuts[:-1], cuts[1:]):
        acc.add_chunk(ids[a:b], t[a:b])
    return acc


def cuts_random(n_spikes, n_chunks, seed=0):
    rng = np.random.default_rng(seed)
    inner = np.sort(rng.choice(np.arange(1, n_spikes), size=min(n_chunks - 1, n_spikes - 1), replace=False))
    return [0, *inner.tolist(), n_spikes]


def cuts_at_times(t, times_ms):
    """Cut just inside bins: at the first spike at or after each time."""
    return [0, *np.searchsorted(t, times_ms).tolist(), len(t)]


def assert_same(got: dict, ref: dict, rtol=1e-9):
    for k in SCALARS:
        g, r = got[k], ref[k]
        if isinstance(r, float) and np.isnan(r):
            assert np.isnan(g), k
        else:
            assert g == pytest.approx(r, rel=rtol, abs=1e-12), k
    np.testing.assert_array_equal(got["_rates_hz"], ref["_rates_hz"])
    np.testing.assert_allclose(got["_cv"], ref["_cv"], rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(got["_spectrum"].power, ref["_spectrum"].power, rtol=rtol, atol=0)


DATASETS = {
    "poisson": lambda: (*poisson(300, 30.0, 2000.0), 300),
    "synchronous": lambda: (*synchronous(100, 7.3, 2000.0, jitter_ms=2.0), 100),
    "regular": lambda: (*regular(120, 2000.0), 120),
    "bursts": lambda: (*bursts(80, 2000.0), 80),
}
WINDOWS = [(100.0, 2000.0), (100.0, 1903.7), (0.0, 2000.0), (250.3, 1002.0)]


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"{w[0]}-{w[1]}")
def test_streaming_equals_reference_random_cuts(name, window):
    ids, t, n = DATASETS[name]()
    ref = stats.population_stats(ids, t, n, *window)
    for n_chunks in (1, 7, 150):
        got = stream(ids, t, n, *window, cuts_random(len(t), n_chunks, seed=n_chunks)).result().to_dict()
        assert_same(got, ref)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_cuts_through_bins_and_isis(name):
    """Chunk borders 0.4 ms and 5 ms into 10 ms bins, and in the middle of 1 ms bins."""
    ids, t, n = DATASETS[name]()
    t0, t1 = 100.0, 1900.0
    ref = stats.population_stats(ids, t, n, t0, t1)
    for offset in (0.4, 5.0, 9.95):
        cuts = cuts_at_times(t, np.arange(t0 + offset, t1, 37.0))
        assert_same(stream(ids, t, n, t0, t1, cuts).result().to_dict(), ref)


def test_one_spike_per_chunk_and_empty_chunks():
    ids, t, n = DATASETS["bursts"]()
    keep = t < 400
    ids, t = ids[keep], t[keep]
    ref = stats.population_stats(ids, t, n, 50.0, 400.0)
    acc = stream_stats.StreamingPopulationStats(n, 50.0, 400.0)
    for k in range(len(t)):
        acc.add_chunk(ids[k:k + 1], t[k:k + 1])
        acc.add_chunk(ids[:0], t[:0])
    assert_same(acc.result().to_dict(), ref)


def test_network_from_populations_equals_reference_on_concatenation():
    ids_e, t_e = poisson(400, 20.0, 1500.0, seed=4)
    ids_i, t_i = synchronous(100, 9.1, 1500.0, jitter_ms=3.0)
    t0, t1 = 100.0, 1500.0
    acc_e = stream(ids_e, t_e, 400, t0, t1, cuts_random(len(t_e), 13))
    acc_i = stream(ids_i, t_i, 100, t0, t1, cuts_random(len(t_i), 5))
    got = stream_stats.combine_populations([acc_e, acc_i]).to_dict()
    ref = stats.population_stats(np.concatenate([ids_e, ids_i + 400]), np.concatenate([t_e, t_i]), 500, t0, t1)
    assert_same(got, ref)
    # and the populations themselves
    assert_same(acc_e.result().to_dict(), stats.population_stats(ids_e, t_e, 400, t0, t1))


def test_known_answers_survive_streaming():
    """Identical trains: chi = 1 on both bin sizes, CV 0 for regular trains."""
    n, period = 50, 7.0  # 1 or 2 spikes per 10 ms bin, the same for every neuron
    base = np.arange(0, 1000, period)
    ids = np.tile(np.arange(n), len(base))
    t = np.repeat(base, n)
    res = stream(ids, t, n, 0.0, 1000.0, cuts_random(len(t), 9)).result()
    assert res.synchrony_chi == pytest.approx(1.0)
    assert res.synchrony_chi_10ms == pytest.approx(1.0)
    assert np.allclose(res.cv, 0.0)


def test_silent_population_and_empty_window():
    res = stream_stats.StreamingPopulationStats(10, 0.0, 500.0).result()
    ref = stats.population_stats(np.empty(0, dtype=np.int64), np.empty(0), 10, 0.0, 500.0)
    assert_same(res.to_dict(), ref)
    assert res.n_spikes == 0 and res.silent_fraction == 1.0


def test_unsorted_input_is_refused():
    acc = stream_stats.StreamingPopulationStats(5, 0.0, 100.0)
    with pytest.raises(ValueError, match="sorted by time"):
        acc.add_chunk(np.array([0, 1]), np.array([5.0, 4.0]))
    acc.add_chunk(np.array([0]), np.array([50.0]))
    with pytest.raises(ValueError, match="sorted by time"):
        acc.add_chunk(np.array([1]), np.array([40.0]))
    with pytest.raises(ValueError, match="node ids"):
        acc.add_chunk(np.array([7]), np.array([60.0]))


def test_state_is_bounded_by_neurons_not_by_chunks():
    """The accumulator keeps no chunk: its state and the Python heap it holds do
    not grow from 10 to 400 chunks of 5,000 spikes each."""
    n, t0, t1 = 2000, 0.0, 40_000.0
    rng = np.random.default_rng(7)
    acc = stream_stats.StreamingPopulationStats(n, t0, t1)
    nbytes0 = acc.state_nbytes
    chunk_ms = (t1 - t0) / 400

    def feed(k):
        t = np.sort(rng.uniform(k * chunk_ms, (k + 1) * chunk_ms, 5000))
        acc.add_chunk(rng.integers(0, n, 5000), t)

    tracemalloc.start()
    try:
        for k in range(10):
            feed(k)
        mem10 = tracemalloc.get_traced_memory()[0]
        for k in range(10, 400):
            feed(k)
        mem400 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert acc.state_nbytes == nbytes0
    assert mem400 - mem10 < 64 * 1024, f"heap grew by {mem400 - mem10} bytes from 10 to 400 chunks"
    assert acc.result().n_spikes == 400 * 5000


def test_analyze_streaming_equals_in_memory_on_a_gathered_file(tmp_path):
    """analyze's path (SONATA file read block by block) gives the numbers and the
    label of the in-memory reference (whole file read, E+I concatenated)."""
    from hpc_brunel.analysis import analyze, gather
    from hpc_brunel.simulation import synthetic

    synthetic.write_run(tmp_path, n_ranks=3, n_excitatory=400, n_inhibitory=100, n_chunks=12, chunk_ms=50.0,
                        rate_hz=30.0)
    gather.gather(tmp_path)
    path = tmp_path / gather.SPIKES_FILE
    ref = analyze.compute(gather.read_sonata(path), 100.0, 583.3)
    got = analyze.compute_streaming(path, 100.0, 583.3, block_spikes=777)
    assert got["regime"] == ref["regime"]
    for p in ("excitatory", "inhibitory", "network"):
        assert_same(got[p], ref[p])
    win = gather.read_sonata_window(path, 200.0, 300.05)
    full = gather.read_sonata(path)
    for p in ("excitatory", "inhibitory"):
        keep = (full[p][1] >= 200.0) & (full[p][1] < 300.05)
        np.testing.assert_array_equal(win[p][1], full[p][1][keep])
        np.testing.assert_array_equal(win[p][0], full[p][0][keep])


def test_negative_ids_are_refused():
    acc = stream_stats.StreamingPopulationStats(5, 0.0, 100.0)
    with pytest.raises(ValueError, match="node ids"):
        acc.add_chunk(np.array([-1]), np.array([60.0]))
