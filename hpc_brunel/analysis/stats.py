"""Spike-train statistics of the Brunel network: pure functions on numpy arrays
(node ids 0..n-1 within a population, spike times in ms). No NEST, no MPI, no files.

The regime labels built on these statistics (thresholds, the finite-size rule
and "undetermined") are in hpc_brunel.analysis.regimes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


def firing_rates_hz(ids: np.ndarray, n_neurons: int, duration_ms: float) -> np.ndarray:
    """Per-neuron firing rate [Hz] for all n_neurons (silent ones included).

    Parameters
    ----------
    ids : numpy.ndarray of int
        Node id (0 .. n_neurons - 1) of each spike in the window.
    n_neurons : int
        Neurons of the population.
    duration_ms : float
        Length of the window, ms.

    Returns
    -------
    numpy.ndarray of float
        Rate of neuron i at index i, Hz.
    """
    counts = np.bincount(ids, minlength=n_neurons)[:n_neurons]
    return counts / (duration_ms / 1000.0)


def isi_cv(ids: np.ndarray, times_ms: np.ndarray, min_spikes: int = 3) -> np.ndarray:
    """CV of the inter-spike intervals of every neuron with >= min_spikes spikes.

    Parameters
    ----------
    ids : numpy.ndarray of int
        Node id of each spike.
    times_ms : numpy.ndarray of float
        Spike times, ms (any order).
    min_spikes : int
        Neurons with fewer spikes are left out (at least 3 spikes are needed whatever its value).

    Returns
    -------
    numpy.ndarray of float
        std / mean of the ISIs, one per neuron that qualifies, in neuron order.
    """
    if len(ids) == 0:
        return np.empty(0)
    order = np.lexsort((times_ms, ids))
    ids_s, t_s = ids[order], times_ms[order]
    same = ids_s[1:] == ids_s[:-1]
    isi = np.diff(t_s)[same]
    owner = ids_s[1:][same]
    n_isi = np.bincount(owner)
    keep = np.nonzero(n_isi >= max(2, min_spikes - 1))[0]
    s1 = np.bincount(owner, weights=isi)
    s2 = np.bincount(owner, weights=isi * isi)
    n = n_isi[keep].astype(float)
    mean = s1[keep] / n
    var = np.maximum(s2[keep] / n - mean**2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.sqrt(var) / mean
    return cv[np.isfinite(cv)]


def population_counts(times_ms: np.ndarray, t_start_ms: float, t_stop_ms: float, bin_ms: float) -> np.ndarray:
    """Spikes of the population per bin of bin_ms from t_start_ms (round((t_stop - t_start) / bin_ms) bins)."""
    n_bins = int(round((t_stop_ms - t_start_ms) / bin_ms))
    edges = t_start_ms + bin_ms * np.arange(n_bins + 1)
    counts, _ = np.histogram(times_ms, bins=edges)
    return counts


def fano_factor(counts: np.ndarray) -> float:
    """Variance / mean of the population counts per bin (NaN without spikes)."""
    m = counts.mean() if len(counts) else 0.0
    return float(counts.var() / m) if m > 0 else float("nan")


def synchrony_chi(ids: np.ndarray, times_ms: np.ndarray, n_neurons: int, t_start_ms: float, t_stop_ms: float,
                  bin_ms: float = 1.0) -> float:
    """Golomb's synchrony measure chi (Golomb & Rinzel 1993; Golomb 2007, Scholarpedia
    "Neuronal synchrony measures"), on binned spike counts:

        chi^2 = Var_t[ mean_i c_i(t) ] / mean_i Var_t[ c_i(t) ]

    chi is 1 for identical trains and ~1/sqrt(N) for independent ones; Brunel &
    Hakim (1999) use the same normalised variance of the population activity.
    `synchrony` gives chi with its finite-size correction.

    Parameters
    ----------
    ids : numpy.ndarray of int
        Node id (0 .. n_neurons - 1) of each spike.
    times_ms : numpy.ndarray of float
        Spike times, ms.
    n_neurons : int
        Neurons of the population (silent ones count).
    t_start_ms, t_stop_ms : float
        The window [t_start_ms, t_stop_ms).
    bin_ms : float
        Bin width, ms.

    Returns
    -------
    float
        chi (NaN without spikes or with fewer than two bins).
    """
    return synchrony(ids, times_ms, n_neurons, t_start_ms, t_stop_ms, bin_ms).chi


@dataclass(frozen=True)
class Synchrony:
    """Golomb's chi of N recorded neurons and chi corrected for the finite-size floor.

    With N neurons, chi^2 = 1/N + (N - 1)/N * rho, where rho = sum_{i != j} cov_ij /
    ((N - 1) sum_i var_i) is the (variance-weighted) mean pairwise correlation of the
    binned counts: independent trains give chi ~ 1/sqrt(N) however asynchronous the
    network is. ``chi_inf = sqrt(max(rho, 0))`` is what chi would be for all neurons
    of an infinitely large population (for the 12,500-neuron network chi and chi_inf
    differ by < 1e-3 at chi ~ 0.1), so one threshold holds whatever the number of
    recorded neurons. ``rho_se`` is the standard error of rho: batch means of the
    population variance over N_BLOCKS contiguous blocks of the window (it grows for
    few neurons, few spikes, short windows and slow oscillations); NaN with fewer
    than 2 * N_BLOCKS bins."""

    chi: float
    rho: float
    rho_se: float
    n_neurons: int

    @property
    def chi_inf(self) -> float:
        """sqrt(max(rho, 0)): chi for all neurons of an infinite population (NaN if rho is)."""
        return float(np.sqrt(max(self.rho, 0.0))) if np.isfinite(self.rho) else float("nan")


N_BLOCKS = 10  # blocks for the standard error of rho (batch means)


def synchrony_from_counts(pop_counts: np.ndarray, mean_var_i: float, n_neurons: int) -> Synchrony:
    """`Synchrony` from the population's spike counts per bin and the mean over
    neurons of each neuron's variance of its binned counts.

    Parameters
    ----------
    pop_counts : numpy.ndarray
        Spikes of all N neurons per bin (the window's bins, in time order).
    mean_var_i : float
        mean_i Var_t[c_i(t)] over the N neurons (silent neurons included).
    n_neurons : int
        N.

    Returns
    -------
    Synchrony
    """
    n_bins = len(pop_counts)
    if n_bins < 2 or pop_counts.sum() == 0 or not mean_var_i > 0:
        return Synchrony(float("nan"), float("nan"), float("nan"), int(n_neurons))
    x = pop_counts / n_neurons
    dev2 = (x - x.mean()) ** 2
    chi2 = dev2.mean() / mean_var_i
    chi = float(np.sqrt(chi2))
    if n_neurons < 2:
        return Synchrony(chi, float("nan"), float("nan"), int(n_neurons))
    k = n_neurons / (n_neurons - 1.0)
    rho = k * (chi2 - 1.0 / n_neurons)
    if n_bins < 2 * N_BLOCKS:  # a block of one bin has no variance of its own: no honest error
        return Synchrony(chi, float(rho), float("nan"), int(n_neurons))
    block_var = np.array([blk.mean() for blk in np.array_split(dev2, N_BLOCKS)])
    rho_se = k * float(block_var.std(ddof=1)) / np.sqrt(N_BLOCKS) / mean_var_i
    return Synchrony(chi, float(rho), rho_se, int(n_neurons))


def synchrony(ids: np.ndarray, times_ms: np.ndarray, n_neurons: int, t_start_ms: float, t_stop_ms: float,
              bin_ms: float = 1.0) -> Synchrony:
    """Golomb's chi and its finite-size correction (`Synchrony`) from spikes
    (node ids 0..n_neurons-1, times in ms) in [t_start_ms, t_stop_ms).

    Parameters
    ----------
    ids : numpy.ndarray of int
        Node id of each spike.
    times_ms : numpy.ndarray of float
        Spike times, ms; spikes outside the window are ignored.
    n_neurons : int
        Neurons of the population (silent ones count).
    t_start_ms, t_stop_ms : float
        The window [t_start_ms, t_stop_ms).
    bin_ms : float
        Bin width, ms (floor binning from t_start_ms).

    Returns
    -------
    Synchrony
        chi, rho, rho_se (NaN where they cannot be computed) and n_neurons.
    """
    n_bins = int(round((t_stop_ms - t_start_ms) / bin_ms))
    if n_bins < 2 or len(ids) == 0:
        return synchrony_from_counts(np.zeros(0), 0.0, n_neurons)
    b = np.floor((times_ms - t_start_ms) / bin_ms).astype(np.int64)
    ok = (b >= 0) & (b < n_bins)
    b, i = b[ok], ids[ok].astype(np.int64)
    pop = np.bincount(b, minlength=n_bins)
    # Per-neuron variance without a dense neuron x bin matrix.
    keys, c = np.unique(i * n_bins + b, return_counts=True)
    key_neuron = keys // n_bins
    sum_c = np.bincount(i, minlength=n_neurons)[:n_neurons].astype(float)
    sum_c2 = np.bincount(key_neuron, weights=c.astype(float) ** 2, minlength=n_neurons)[:n_neurons]
    var_i = sum_c2 / n_bins - (sum_c / n_bins) ** 2
    return synchrony_from_counts(pop, float(var_i.mean()), n_neurons)


@dataclass
class Spectrum:
    """Welch power spectrum of a population rate and its peak (see `rate_spectrum`)."""

    freq_hz: np.ndarray
    power: np.ndarray  # PSD of the population rate, (spikes/s)^2/Hz per neuron^2
    peak_hz: float
    peak_ratio: float  # PSD at the peak / mean PSD over the band


def rate_spectrum(times_ms: np.ndarray, n_neurons: int, t_start_ms: float, t_stop_ms: float, bin_ms: float = 1.0,
                  segment_ms: float = 256.0, f_min_hz: float = 5.0) -> Spectrum:
    """Welch power spectrum of the population rate (mean removed), its peak above
    f_min_hz, and the peak's power relative to the mean power over that band.

    Parameters
    ----------
    times_ms : numpy.ndarray of float
        Spike times of the population, ms.
    n_neurons : int
        Neurons of the population: the rate is spikes per neuron per second.
    t_start_ms, t_stop_ms : float
        The window [t_start_ms, t_stop_ms).
    bin_ms : float
        Bin width of the rate, ms (sampling rate 1000 / bin_ms Hz).
    segment_ms : float
        Length of Welch's segments, ms.
    f_min_hz : float
        The peak is searched at and above this frequency.

    Returns
    -------
    Spectrum
        freq_hz, power (Hz^2/Hz, of the rate per neuron), peak_hz and peak_ratio; empty arrays and NaN
        peak for fewer than 16 bins, NaN peak when the band holds no power.
    """
    counts = population_counts(times_ms, t_start_ms, t_stop_ms, bin_ms)
    return spectrum_from_counts(counts, n_neurons, bin_ms, segment_ms, f_min_hz)


def spectrum_from_counts(counts: np.ndarray, n_neurons: int, bin_ms: float = 1.0, segment_ms: float = 256.0,
                         f_min_hz: float = 5.0) -> Spectrum:
    """Welch spectrum of the population rate from its counts per bin (what
    `rate_spectrum` computes after binning the spike times; the streaming
    statistics keep the counts).

    Parameters
    ----------
    counts : numpy.ndarray
        Spikes of the population per bin, in time order.
    n_neurons, bin_ms, segment_ms, f_min_hz
        As in `rate_spectrum`.

    Returns
    -------
    Spectrum
    """
    rate_hz = counts / n_neurons / (bin_ms / 1000.0)
    fs = 1000.0 / bin_ms
    nper = int(min(len(rate_hz), max(16, round(segment_ms / bin_ms))))
    if len(rate_hz) < 16:
        return Spectrum(np.empty(0), np.empty(0), float("nan"), float("nan"))
    f, p = signal.welch(rate_hz, fs=fs, nperseg=nper, detrend="constant")
    band = f >= f_min_hz
    if not band.any() or p[band].mean() <= 0:
        return Spectrum(f, p, float("nan"), float("nan"))
    k = np.argmax(p[band])
    return Spectrum(f, p, float(f[band][k]), float(p[band][k] / p[band].mean()))


def population_stats(ids: np.ndarray, times_ms: np.ndarray, n_neurons: int, t_start_ms: float,
                     t_stop_ms: float) -> dict:
    """All statistics of one population in the window [t_start, t_stop).

    The in-memory reference for what `analyze` computes (streaming:
    :mod:`hpc_brunel.analysis.stream_stats`, which gives the same numbers).

    Parameters
    ----------
    ids : numpy.ndarray of int
        Node id (0 .. n_neurons - 1) of each spike.
    times_ms : numpy.ndarray of float
        Spike times, ms; spikes outside the window are dropped.
    n_neurons : int
        Neurons of the population (silent ones count).
    t_start_ms, t_stop_ms : float
        The window [t_start_ms, t_stop_ms).

    Returns
    -------
    dict
        n_neurons, n_spikes, rate_mean_hz, rate_sd_hz, rate_median_hz, silent_fraction,
        cv_isi_mean, cv_isi_median, cv_isi_n_neurons (neurons with >= 3 spikes),
        fano_1ms, fano_5ms, the synchrony entries of `synchrony_fields` (1 ms and 10 ms
        bins), psd_peak_hz, psd_peak_ratio; and, for the figures, _rates_hz,
        _duration_ms, _cv, _spectrum. NaN where a measure cannot be computed.
    """
    w = (times_ms >= t_start_ms) & (times_ms < t_stop_ms)
    ids, times_ms = ids[w], times_ms[w]
    duration = t_stop_ms - t_start_ms
    rates = firing_rates_hz(ids, n_neurons, duration)
    cv = isi_cv(ids, times_ms)
    spec = rate_spectrum(times_ms, n_neurons, t_start_ms, t_stop_ms)
    c1 = population_counts(times_ms, t_start_ms, t_stop_ms, 1.0)
    c5 = population_counts(times_ms, t_start_ms, t_stop_ms, 5.0)
    return {
        "n_neurons": int(n_neurons),
        "n_spikes": int(len(ids)),
        "rate_mean_hz": float(rates.mean()),
        "rate_sd_hz": float(rates.std()),
        "rate_median_hz": float(np.median(rates)),
        "silent_fraction": float(np.mean(rates == 0)),
        "cv_isi_mean": float(cv.mean()) if len(cv) else float("nan"),
        "cv_isi_median": float(np.median(cv)) if len(cv) else float("nan"),
        "cv_isi_n_neurons": int(len(cv)),
        "fano_1ms": fano_factor(c1),
        "fano_5ms": fano_factor(c5),
        **synchrony_fields(synchrony(ids, times_ms, n_neurons, t_start_ms, t_stop_ms, 1.0),
                           synchrony(ids, times_ms, n_neurons, t_start_ms, t_stop_ms, 10.0)),
        "psd_peak_hz": spec.peak_hz,
        "psd_peak_ratio": spec.peak_ratio,
        "_rates_hz": rates,
        "_duration_ms": duration,
        "_cv": cv,
        "_spectrum": spec,
    }


SYNCHRONY_KEYS = ("synchrony_chi", "synchrony_chi_inf", "synchrony_rho", "synchrony_rho_se",
                  "synchrony_chi_10ms", "synchrony_chi_10ms_inf", "synchrony_rho_10ms", "synchrony_rho_10ms_se")


def synchrony_fields(s1: Synchrony, s10: Synchrony) -> dict:
    """The synchrony entries of a population's statistics (1 ms and 10 ms bins).

    Parameters
    ----------
    s1, s10 : Synchrony
        Synchrony on 1 ms and on 10 ms bins.

    Returns
    -------
    dict
        SYNCHRONY_KEYS -> chi, chi_inf, rho, rho_se of each.
    """
    vals = (s1.chi, s1.chi_inf, s1.rho, s1.rho_se, s10.chi, s10.chi_inf, s10.rho, s10.rho_se)
    return dict(zip(SYNCHRONY_KEYS, vals))
