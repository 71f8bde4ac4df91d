"""Checks of a continued run at its seams (pure functions: numpy only).

A run continued from a checkpoint (`run --continue`) should look, at each seam,
like the same network simulated without a stop: no transient in the population
rate, the same per-neuron heterogeneity across the seam, and the same statistics
after it as an uninterrupted run (up to the Poisson drive's new random stream).
These functions measure that; tests/cluster/test_slurm.py,
tests/simulation/test_seam_locked.py, scaling/bench_checkpoint.py and
scaling/bench_seams.py use them.

The population rate is a noisy, oscillating signal (1-ms bins: sd ~ 20 Hz around
38 Hz in the default network), so one seam says little: `seam_locked_rate`
averages many seams and compares them with the same average at control times of
the same run, away from any seam (`control_times_ms`).
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


def control_times_ms(seams_ms, t_start_ms: float, t_stop_ms: float, *, window_ms: float = 20.0,
                     min_distance_ms: float = 40.0, n: int = 120, seed: int = 0) -> np.ndarray:
    """Random times of a run at least `min_distance_ms` from every seam, each followed
    by `window_ms` inside [t_start_ms, t_stop_ms): the control for `seam_locked_rate`.

    Parameters
    ----------
    seams_ms : array_like
        The run's seams [ms].
    t_start_ms, t_stop_ms : float
        Where control windows may lie [ms] (after the initial transient).
    window_ms, min_distance_ms : float
        Length of the window after each time, and the distance kept from any seam [ms].
    n : int
        How many times (fewer if the run has no room for them).
    seed : int
        Seed of the draw (the same seed gives the same times).

    Returns
    -------
    numpy.ndarray
        Sorted times [ms], on a 0.1-ms grid.
    """
    seams = np.asarray(seams_ms, dtype=float).reshape(-1)
    rng = np.random.default_rng(seed)
    cand = np.round(rng.uniform(t_start_ms, t_stop_ms - window_ms, 50 * n + 1000), 1)
    if len(seams):
        cand = cand[np.min(np.abs(cand[:, None] - seams[None, :]), axis=1) >= min_distance_ms]
    return np.sort(cand[:n])


@dataclass(frozen=True)
class SeamLocked:
    """The population rate after many seams against the same after control times.

    Attributes
    ----------
    bin_ms : float
        Bin width [ms]; bin k is (t + k bin, t + (k + 1) bin] after each seam or control time t.
    seam_mean_hz, seam_se_hz : numpy.ndarray
        Mean over seams of the rate in each bin, and its standard error.
    control_mean_hz, control_se_hz : numpy.ndarray
        The same over the control times.
    z : numpy.ndarray
        (seam mean - control mean) / sqrt(seam SE^2 + control SE^2), per bin.
    n_seams, n_control : int
        How many seams and control times were averaged.
    """

    bin_ms: float
    seam_mean_hz: np.ndarray
    seam_se_hz: np.ndarray
    control_mean_hz: np.ndarray
    control_se_hz: np.ndarray
    z: np.ndarray
    n_seams: int
    n_control: int

    @property
    def max_abs_z(self) -> float:
        """The largest |z| over the bins."""
        return float(np.max(np.abs(self.z)))

    @property
    def at_ms(self) -> float:
        """End of the bin with the largest |z|, after the seam [ms]."""
        return float((np.argmax(np.abs(self.z)) + 1) * self.bin_ms)


def _locked_rates_hz(times_us: np.ndarray, n_neurons: int, starts_ms, n_bins: int, bin_ms: float) -> np.ndarray:
    """Rate per neuron in bins (t + k bin, t + (k + 1) bin] after each start t: (starts x bins) [Hz]."""
    starts_us = np.rint(np.asarray(starts_ms, dtype=float) * 1000.0).astype(np.int64)
    edges_us = starts_us[:, None] + np.rint(bin_ms * 1000.0 * np.arange(n_bins + 1)).astype(np.int64)[None, :]
    counts = np.diff(np.searchsorted(times_us, edges_us, side="right"), axis=1)
    return counts / (n_neurons * bin_ms / 1000.0)


def seam_locked_rate(times_ms: np.ndarray, n_neurons: int, seams_ms, control_ms, *, window_ms: float = 20.0,
                     bin_ms: float = 0.5) -> SeamLocked:
    """The population rate in the `window_ms` after each seam, averaged over the seams,
    against the same average after the control times (`control_times_ms`).

    A seam that leaves no mark gives |z| of the size that control times placed as
    seams give (the seams' own fluctuation); a transient shows as bins far outside it.
    Times are compared on NEST's 1-us grid, so a spike at a seam belongs to the bin
    before it (the segment that ends there).

    Parameters
    ----------
    times_ms : numpy.ndarray
        Spike times of the population, every neuron [ms].
    n_neurons : int
        Neurons of the population.
    seams_ms, control_ms : array_like
        Seams, and control times [ms]; at least two of each.
    window_ms, bin_ms : float
        The window after each time and the bin width [ms].

    Returns
    -------
    SeamLocked
    """
    seams, control = np.asarray(seams_ms, dtype=float), np.asarray(control_ms, dtype=float)
    if len(seams) < 2 or len(control) < 2:
        raise ValueError(f"seam_locked_rate needs at least 2 seams and 2 control times, got {len(seams)} and "
                         f"{len(control)}")
    times_us = np.sort(np.rint(np.asarray(times_ms, dtype=float) * 1000.0).astype(np.int64))
    n_bins = int(round(window_ms / bin_ms))
    s = _locked_rates_hz(times_us, n_neurons, seams, n_bins, bin_ms)
    c = _locked_rates_hz(times_us, n_neurons, control, n_bins, bin_ms)
    s_se, c_se = s.std(axis=0, ddof=1) / np.sqrt(len(s)), c.std(axis=0, ddof=1) / np.sqrt(len(c))
    se = np.sqrt(s_se ** 2 + c_se ** 2)
    z = np.divide(s.mean(axis=0) - c.mean(axis=0), se, out=np.zeros(n_bins), where=se > 0)
    return SeamLocked(bin_ms, s.mean(axis=0), s_se, c.mean(axis=0), c_se, z, len(s), len(c))


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
