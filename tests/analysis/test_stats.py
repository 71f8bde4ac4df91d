"""hpc_brunel.analysis.stats on synthetic spike trains with known answers (the mean-field rates are
checked in tests/theory/test_meanfield.py)."""
import numpy as np
import pytest

from hpc_brunel.analysis import stats


def poisson_trains(n, rate_hz, t_ms, seed=1):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate_hz * t_ms / 1000.0, size=n)
    ids = np.repeat(np.arange(n), counts)
    times = rng.uniform(0, t_ms, size=counts.sum())
    return ids, times


def test_poisson_trains_cv_one_fano_one():
    ids, t = poisson_trains(500, 20.0, 20_000.0)
    cv = stats.isi_cv(ids, t)
    assert len(cv) == 500
    assert cv.mean() == pytest.approx(1.0, abs=0.03)
    c = stats.population_counts(t, 0, 20_000, 5.0)
    assert stats.fano_factor(c) == pytest.approx(1.0, abs=0.1)
    # independent trains: chi ~ 1/sqrt(N)
    chi = stats.synchrony_chi(ids, t, 500, 0, 20_000, 1.0)
    assert chi == pytest.approx(1 / np.sqrt(500), rel=0.3)
    assert stats.firing_rates_hz(ids, 500, 20_000).mean() == pytest.approx(20.0, rel=0.02)


def test_regular_trains_cv_zero_and_identical_trains_chi_one():
    n, period = 50, 10.0
    times = np.tile(np.arange(0, 1000, period), n)
    ids = np.repeat(np.arange(n), len(np.arange(0, 1000, period)))
    cv = stats.isi_cv(ids, times)
    assert np.allclose(cv, 0.0)
    assert stats.synchrony_chi(ids, times, n, 0, 1000, 1.0) == pytest.approx(1.0)


def test_cv_needs_three_spikes_and_counts_silent_neurons():
    ids = np.array([0, 0, 1, 1, 1])
    t = np.array([1.0, 5.0, 1.0, 3.0, 7.0])
    cv = stats.isi_cv(ids, t)  # neuron 0 has 2 spikes: excluded
    assert cv == pytest.approx([np.std([2, 4]) / 3.0])
    rates = stats.firing_rates_hz(ids, 4, 1000.0)
    assert list(rates) == [2.0, 3.0, 0.0, 0.0]


def test_cv_matches_elephant():
    elephant = pytest.importorskip("elephant.statistics")
    import quantities as pq

    rng = np.random.default_rng(3)
    ids, t = [], []
    for i in range(40):  # gamma trains of varying regularity
        isi = rng.gamma(shape=1 + i / 10, scale=5.0, size=200)
        st = np.cumsum(isi)
        ids.append(np.full(len(st), i))
        t.append(st)
    ids, t = np.concatenate(ids), np.concatenate(t)
    ours = stats.isi_cv(ids, t)
    theirs = [elephant.cv(elephant.isi(np.sort(t[ids == i]) * pq.ms)) for i in range(40)]
    assert np.allclose(ours, theirs, rtol=1e-10)


def test_sinusoidal_population_peaks_at_its_frequency():
    rng = np.random.default_rng(5)
    f_hz, n, t_ms = 40.0, 400, 4000.0
    grid = np.arange(0, t_ms, 0.1)
    lam = 20.0 * (1 + 0.8 * np.sin(2 * np.pi * f_hz * grid / 1000.0)) * 1e-4  # per 0.1 ms
    spikes = rng.random((n, len(grid))) < lam
    ids, k = np.nonzero(spikes)
    times = grid[k]
    sp = stats.rate_spectrum(times, n, 0, t_ms)
    assert sp.peak_hz == pytest.approx(f_hz, abs=2.0)
    assert sp.peak_ratio > 10
    s = stats.population_stats(ids, times, n, 0, t_ms)
    assert s["psd_peak_hz"] == pytest.approx(f_hz, abs=2.0)
    # ...while a Poisson population has a flat spectrum
    ids2, t2 = poisson_trains(400, 20.0, 4000.0)
    assert stats.rate_spectrum(t2, 400, 0, 4000.0).peak_ratio < 4
