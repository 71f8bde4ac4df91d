"""The seam checks of a continued run (hpc_brunel.analysis.seams) on synthetic trains
with known answers (no NEST)."""
import numpy as np

from hpc_brunel.analysis import seams


def poisson(n, rate_hz, t0, t1, rng):
    counts = rng.poisson(rate_hz * (t1 - t0) / 1000.0, n)
    ids = np.repeat(np.arange(n), counts)
    return ids, rng.uniform(t0, t1, counts.sum())


def test_population_rate_counts_per_neuron_and_bin():
    times = np.array([0.2, 0.7, 1.5, 2.9, 2.95])
    r = seams.population_rate_hz(times, n_neurons=10, t_start_ms=0.0, t_stop_ms=3.0, bin_ms=1.0)
    assert np.allclose(r, np.array([2, 1, 2]) / (10 * 1e-3))


def test_a_silent_gap_after_the_seam_is_a_transient_and_a_stationary_run_is_not():
    rng = np.random.default_rng(1)
    ids, t = poisson(2000, 20.0, 0.0, 2000.0, rng)
    ok = seams.seam_transient(t, 2000, 1000.0, reference=(100.0, 900.0), k_sd=4.0)
    assert ok.bins_outside == 0 and abs(ok.band_mean_hz - 20.0) < 1.0
    gap = (t < 1000.0) | (t >= 1008.0)  # a naive restore: silence for 8 ms
    bad = seams.seam_transient(t[gap], 2000, 1000.0, reference=(100.0, 900.0), k_sd=4.0)
    assert bad.bins_outside >= 8


def test_standard_error_comparison_by_hand():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0, 2.0])
    diff, se, ok = seams.within_standard_errors(a, b)
    assert diff == 0.0 and np.isclose(se, np.sqrt(1.0 / 3)) and ok
    diff, se, ok = seams.within_standard_errors(a + 2.0, b + np.array([0, 0.1, 0, 0.1]))
    assert np.isclose(diff, 1.95) and np.isclose(se, np.sqrt(1.0 / 3 + np.var([0, 0.1, 0, 0.1], ddof=1) / 4))
    assert not ok


def test_block_statistics_and_rate_correlation():
    rng = np.random.default_rng(2)
    n = 400
    rates = rng.uniform(5.0, 50.0, n)  # a fixed heterogeneity: strongly correlated across any time point
    counts = rng.poisson(rates * 4.0)
    ids = np.repeat(np.arange(n), counts)
    t = rng.uniform(0.0, 4000.0, counts.sum())
    b = seams.block_statistics(ids, t, n, 0.0, 4000.0, n_blocks=4)
    assert np.allclose(b["rate_hz"].mean(), rates.mean(), rtol=0.03)
    assert np.all(np.abs(b["cv_isi"] - 1.0) < 0.1)  # Poisson
    assert np.all(b["chi_inf"] < 0.05)  # independent
    r = seams.rate_correlation(ids, t, n, 0.0, 2000.0, 4000.0)
    c1 = np.bincount(ids[t < 2000.0], minlength=n)
    c2 = np.bincount(ids[t >= 2000.0], minlength=n)
    assert np.isclose(r, np.corrcoef(c1, c2)[0, 1]) and r > 0.8
