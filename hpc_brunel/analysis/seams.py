"""Checks of a continued run at its seams (pure functions: numpy only).

A run continued from a checkpoint (`run --continue`) should look, at each seam,
like the same network simulated without a stop: no transient in the population
rate, the same per-neuron heterogeneity across the seam, and the same statistics
after it as an uninterrupted run (up to the Poisson drive's new random stream).
These functions measure that; tests/cluster/test_slurm.py and
scaling/bench_checkpoint.py use them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpc_brunel.analysis.stats import firing_rates_hz, isi_cv, population_counts, synchrony


def population_rate_hz(times_ms: np.ndarray, n_neurons: int, t_start_ms: float, t_stop_ms: float,
                       bin_ms: float = 1.0) -> np.ndarray:
    """The population rate per neuron in bins of `bin_ms` over [t_start_ms, t_stop_ms) [Hz].

    Parameters
    ----------
    times_ms : numpy.ndarray
        Spike times of the population [ms].
    n_neurons : int
        Neurons of the population.
    t_start_ms, t_stop_ms, bin_ms : float
        The window and the bin width [ms].

    Returns
    -------
    numpy.ndarray
        Spikes per bin / (n_neurons * bin width in s).
    """
    counts = population_counts(np.asarray(times_ms), t_start_ms, t_stop_ms, bin_ms)
    return counts / (n_neurons * bin_ms / 1000.0)


@dataclass(frozen=True)
class SeamTransient:
    """The population rate just after a seam against the run's fluctuation band.

    Attributes
    ----------
    seam_ms : float
        Model time of the seam.
    rate_after_hz : numpy.ndarray
        Population rate in the bins after the seam.
    band_mean_hz, band_sd_hz : float
        Mean and standard deviation of the binned rate in the stationary reference windows.
    k_sd : float
        Half-width of the band in standard deviations.
    bins_outside : int
        Bins after the seam outside mean +- k_sd * sd.
    """

    seam_ms: float
    rate_after_hz: np.ndarray
    band_mean_hz: float
    band_sd_hz: float
    k_sd: float
    bins_outside: int


def seam_transient(times_ms: np.ndarray, n_neurons: int, seam_ms: float, reference: tuple[float, float],
                   window_ms: float = 20.0, bin_ms: float = 1.0, k_sd: float = 5.0) -> SeamTransient:
    """Whether the population rate in the `window_ms` after `seam_ms` stays within the
    fluctuation band (mean +- k_sd sd of the binned rate over the `reference`
    window [start, stop) ms, chosen away from any seam)."""
    ref = population_rate_hz(times_ms, n_neurons, reference[0], reference[1], bin_ms)
    after = population_rate_hz(times_ms, n_neurons, seam_ms, seam_ms + window_ms, bin_ms)
    mean, sd = float(ref.mean()), float(ref.std(ddof=1))
    outside = int(np.count_nonzero(np.abs(after - mean) > k_sd * sd))
    return SeamTransient(seam_ms, after, mean, sd, k_sd, outside)


def block_statistics(ids: np.ndarray, times_ms: np.ndarray, n_neurons: int, t_start_ms: float,
                     t_stop_ms: float, n_blocks: int = 5) -> dict[str, np.ndarray]:
    """Mean rate [Hz], mean CV(ISI) and chi_inf (1 ms bins) in each of `n_blocks`
    equal blocks of [t_start_ms, t_stop_ms): batch means for standard errors.

    Parameters
    ----------
    ids : numpy.ndarray of int
        Node id (0 .. n_neurons - 1) of each spike.
    times_ms : numpy.ndarray of float
        Spike times [ms].
    n_neurons : int
        Neurons of the population.
    t_start_ms, t_stop_ms : float
        The window [ms].
    n_blocks : int
        Number of blocks.

    Returns
    -------
    dict
        {"rate_hz", "cv_isi", "chi_inf"}: one value per block.
    """
    ids, times_ms = np.asarray(ids), np.asarray(times_ms)
    edges = np.linspace(t_start_ms, t_stop_ms, n_blocks + 1)
    out = {"rate_hz": [], "cv_isi": [], "chi_inf": []}
    for a, b in zip(edges[:-1], edges[1:]):
        m = (times_ms >= a) & (times_ms < b)
        out["rate_hz"].append(float(firing_rates_hz(ids[m], n_neurons, b - a).mean()))
        cv = isi_cv(ids[m], times_ms[m])
        out["cv_isi"].append(float(np.nanmean(cv)) if np.isfinite(cv).any() else float("nan"))
        out["chi_inf"].append(synchrony(ids[m], times_ms[m], n_neurons, a, b, 1.0).chi_inf)
    return {k: np.asarray(v) for k, v in out.items()}


def within_standard_errors(a: np.ndarray, b: np.ndarray, k: float = 2.0) -> tuple[float, float, bool]:
    """Compare two sets of batch means: (difference of the means, its standard error,
    whether |difference| <= k standard errors)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    return diff, se, abs(diff) <= k * se


def rate_correlation(ids: np.ndarray, times_ms: np.ndarray, n_neurons: int, t_a_ms: float, t_b_ms: float,
                     t_c_ms: float) -> float:
    """Pearson correlation across neurons of the per-neuron rates in [t_a, t_b) and
    [t_b, t_c): how much of the rate heterogeneity carries across t_b."""
    ids, times_ms = np.asarray(ids), np.asarray(times_ms)
    before = (times_ms >= t_a_ms) & (times_ms < t_b_ms)
    after = (times_ms >= t_b_ms) & (times_ms < t_c_ms)
    r1 = firing_rates_hz(ids[before], n_neurons, t_b_ms - t_a_ms)
    r2 = firing_rates_hz(ids[after], n_neurons, t_c_ms - t_b_ms)
    return float(np.corrcoef(r1, r2)[0, 1])
