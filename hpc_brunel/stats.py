"""Spike-train statistics of the Brunel network: pure functions on numpy arrays
(node ids 0..n-1 within a population, spike times in ms). No NEST, no MPI, no files.

Regime thresholds live in REGIME_THRESHOLDS, and only there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

# --- regime classification: every threshold in one place --------------------
# Golomb's chi on two time scales separates the states: on 1 ms bins it sees the
# fast (~180 Hz) population oscillation of SI-fast, on 10 ms bins it averages
# that out and sees the slow (~20-30 Hz) oscillation of SI-slow.
# Measured on the full 12,500-neuron network, 300 ms (first 100 ms discarded),
# 2x1 decomposition, seeds 1-3, and 600 ms seed 12345 (excitatory population):
#   preset (g, eta)     CV(ISI)       chi 1 ms      chi 10 ms     PSD peak
#   SR      (3, 2)      0.001         0.50-0.51     0.50-0.51     330 Hz
#   SI-fast (6, 4)      0.61-0.78     0.18-0.23     0.11-0.12     180-195 Hz
#   AI      (5, 2)      0.37-0.41     0.09-0.11     0.08-0.11     110-140 Hz (weak)
#   SI-slow (4.5, 0.9)  0.24-0.39*    0.12-0.15     0.24-0.36     15-35 Hz
# (* biased low: ~2 spikes per neuron in 200 ms, so CV alone must not decide SR)
REGIME_THRESHOLDS = {
    "regular_cv_max": 0.2,  # SR: mean CV(ISI) below this...
    "sr_chi_min": 0.3,  # ...and chi (1 ms) at least this: synchronous regular
    "slow_chi_10ms_min": 0.17,  # chi on 10 ms bins at least this: SI-slow
    "fast_chi_1ms_min": 0.15,  # else chi on 1 ms bins at least this: SI-fast; else AI
    "silent_rate_hz": 0.1,  # mean rate below this: "silent" (no drive; none of Brunel's four states)
}
REGIMES = ("SR", "SI-fast", "AI", "SI-slow", "silent")


def firing_rates_hz(ids: np.ndarray, n_neurons: int, duration_ms: float) -> np.ndarray:
    """Per-neuron firing rate [Hz] for all n_neurons (silent ones included)."""
    counts = np.bincount(ids, minlength=n_neurons)[:n_neurons]
    return counts / (duration_ms / 1000.0)


def isi_cv(ids: np.ndarray, times_ms: np.ndarray, min_spikes: int = 3) -> np.ndarray:
    """CV of the inter-spike intervals of every neuron with >= min_spikes spikes."""
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
    n_bins = int(round((t_stop_ms - t_start_ms) / bin_ms))
    edges = t_start_ms + bin_ms * np.arange(n_bins + 1)
    counts, _ = np.histogram(times_ms, bins=edges)
    return counts


def fano_factor(counts: np.ndarray) -> float:
    m = counts.mean() if len(counts) else 0.0
    return float(counts.var() / m) if m > 0 else float("nan")


def synchrony_chi(ids: np.ndarray, times_ms: np.ndarray, n_neurons: int, t_start_ms: float, t_stop_ms: float,
                  bin_ms: float = 1.0) -> float:
    """Golomb's synchrony measure chi (Golomb & Rinzel 1993; Golomb 2007, Scholarpedia
    "Neuronal synchrony measures"), on binned spike counts:

        chi^2 = Var_t[ mean_i c_i(t) ] / mean_i Var_t[ c_i(t) ]

    chi is 1 for identical trains and ~1/sqrt(N) for independent ones; Brunel &
    Hakim (1999) use the same normalised variance of the population activity."""
    n_bins = int(round((t_stop_ms - t_start_ms) / bin_ms))
    if n_bins < 2 or len(ids) == 0:
        return float("nan")
    b = np.floor((times_ms - t_start_ms) / bin_ms).astype(np.int64)
    ok = (b >= 0) & (b < n_bins)
    b, i = b[ok], ids[ok].astype(np.int64)
    pop = np.bincount(b, minlength=n_bins) / n_neurons
    var_pop = pop.var()
    # Per-neuron variance without a dense neuron x bin matrix.
    _, c = np.unique(i * n_bins + b, return_counts=True)
    key_neuron = np.unique(i * n_bins + b) // n_bins
    sum_c = np.bincount(i, minlength=n_neurons)[:n_neurons].astype(float)
    sum_c2 = np.bincount(key_neuron, weights=c.astype(float) ** 2, minlength=n_neurons)[:n_neurons]
    var_i = sum_c2 / n_bins - (sum_c / n_bins) ** 2
    mean_var_i = var_i.mean()
    return float(np.sqrt(var_pop / mean_var_i)) if mean_var_i > 0 else float("nan")


@dataclass
class Spectrum:
    freq_hz: np.ndarray
    power: np.ndarray  # PSD of the population rate, (spikes/s)^2/Hz per neuron^2
    peak_hz: float
    peak_ratio: float  # PSD at the peak / mean PSD over the band


def rate_spectrum(times_ms: np.ndarray, n_neurons: int, t_start_ms: float, t_stop_ms: float, bin_ms: float = 1.0,
                  segment_ms: float = 256.0, f_min_hz: float = 5.0) -> Spectrum:
    """Welch power spectrum of the population rate (mean removed), its peak above
    f_min_hz, and the peak's power relative to the mean power over that band."""
    counts = population_counts(times_ms, t_start_ms, t_stop_ms, bin_ms)
    return spectrum_from_counts(counts, n_neurons, bin_ms, segment_ms, f_min_hz)


def spectrum_from_counts(counts: np.ndarray, n_neurons: int, bin_ms: float = 1.0, segment_ms: float = 256.0,
                         f_min_hz: float = 5.0) -> Spectrum:
    """Welch spectrum of the population rate from its counts per bin (what
    `rate_spectrum` computes after binning the spike times; the streaming
    statistics keep the counts)."""
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
    """All statistics of one population in the window [t_start, t_stop)."""
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
        "synchrony_chi": synchrony_chi(ids, times_ms, n_neurons, t_start_ms, t_stop_ms, 1.0),
        "synchrony_chi_10ms": synchrony_chi(ids, times_ms, n_neurons, t_start_ms, t_stop_ms, 10.0),
        "psd_peak_hz": spec.peak_hz,
        "psd_peak_ratio": spec.peak_ratio,
        "_rates_hz": rates,
        "_duration_ms": duration,
        "_cv": cv,
        "_spectrum": spec,
    }


def classify_regime(cv_mean: float, chi_1ms: float, chi_10ms: float, rate_hz: float = float("inf"),
                    thresholds: dict = REGIME_THRESHOLDS) -> str:
    """Brunel's four states from measured quantities alone (never from parameters)."""
    t = thresholds
    if not rate_hz >= t["silent_rate_hz"]:
        return "silent"
    if cv_mean < t["regular_cv_max"] and chi_1ms >= t["sr_chi_min"]:
        return "SR"
    if chi_10ms >= t["slow_chi_10ms_min"]:
        return "SI-slow"
    if chi_1ms >= t["fast_chi_1ms_min"]:
        return "SI-fast"
    return "AI"
