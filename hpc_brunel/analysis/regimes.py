"""Brunel's (2000) four states from the spikes alone: the thresholds, the rule that
applies them, and "undetermined" when the data cannot support a label.

Pure functions on the statistics of `hpc_brunel.analysis.stats` /
`hpc_brunel.analysis.stream_stats` (the network's: both populations together). No NEST,
no MPI, no files.

The rule (every number is in REGIME_THRESHOLDS or MIN_DATA, and only there):

1. Enough data?  Fewer than MIN_DATA["neurons"] recorded neurons or an analysis
   window shorter than MIN_DATA["window_ms"]: "undetermined".
2. Silent: the mean rate is below silent_rate_hz, and so is its 95 % upper
   bound (the one-sided Poisson limit on the spike count, chi2.ppf(0.95, 2k + 2)/2:
   3.0 for no spikes) / (neurons x window): "silent" (none of Brunel's four
   states: no drive, or the quiescent state). Below the threshold but not sure:
   "undetermined".
3. Synchrony is Golomb's chi corrected for the finite-size floor (chi^2 of N
   independent trains is 1/N: see `stats.Synchrony`), so that 50 recorded
   neurons and 12,500 give the same number; each comparison with a threshold
   uses chi_inf at rho -+ margin_se standard errors of rho (margin_se = 0.5)
   and is "yes", "no" or "cannot tell"
   (the band contains the threshold, or rho or its error could not be computed):
   - SR      mean CV(ISI) < regular_cv_max (from >= MIN_DATA["cv_neurons"]
             neurons with >= 3 spikes) and chi_inf(1 ms) >= sr_chi_min;
   - otherwise the time scale of the population rate's fluctuations decides
     which synchrony is tested, as in the theory (`hpc_brunel.constants.fast_slow_cut_hz`):
     the peak of its power spectrum (psd_peak_hz, >= 5 Hz) below
     fast_slow_cut_hz: SI-slow if chi_inf(10 ms) >= slow_chi_10ms_min, else AI;
     at or above it: SI-fast if chi_inf(1 ms) >= fast_chi_1ms_min and the peak is
     in the fast mode's band (>= fast_peak_min_hz), else AI. Synchrony whose peak
     lies between the two bands (AI's damped ~120 Hz resonance seen through a short
     window, or a finite network's synchrony where the theory has none) is neither
     of Brunel's oscillations: "undetermined".
     (The peak chooses the measure because a fast oscillation also correlates 10 ms
     bins, chi_inf(10 ms) ~ 0.5-1 x chi_inf(1 ms), while a slow one correlates 10 ms
     bins more than 1 ms bins, 1.5-3 x.)
   A "yes" gives the label, a "no" AI; a "cannot tell" makes the label
   "undetermined", with the measure, its band and the threshold as the reason,
   and the label from the point estimates alone as `best_guess` ("undetermined"
   too when a measure could not be computed).

How the thresholds were found and how often the labels are right: docs/regimes.md
("How the thresholds were found", and the holdout table above it).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from hpc_brunel.constants import FAST_SLOW_CUT_HZ, REFERENCE_DELAY_MS, SILENT_RATE_HZ
from hpc_brunel.labels import REGIMES, UNDETERMINED  # noqa: F401 - REGIMES: the labels this rule gives

# The thresholds of the rule above, for the network (E + I). Each CV and chi_inf threshold
# lies halfway in the widest gap between the states' point estimates on a calibration set of
# runs; the fast/slow cut is the theory's, not fitted; fast_peak_min_hz is for Brunel's
# D = 1.5 ms (the fast mode's frequency scales as ~0.26 / D). How each value was found:
# docs/regimes.md, "How the thresholds were found".
REGIME_THRESHOLDS = {
    "regular_cv_max": 0.066,  # SR: mean CV(ISI) below this...
    "sr_chi_min": 0.359,  # ...and chi_inf (1 ms) at least this: synchronous regular
    "fast_slow_cut_hz": FAST_SLOW_CUT_HZ,  # spectral peak below this: test for SI-slow, else for SI-fast
    "slow_chi_10ms_min": 0.113,  # slow peak and chi_inf on 10 ms bins at least this: SI-slow; else AI
    "fast_chi_1ms_min": 0.111,  # fast peak and chi_inf on 1 ms bins at least this: SI-fast; else AI
    "fast_peak_min_hz": 150.0,  # SI-fast's oscillation peaks at least here (D = 1.5 ms); lower: undetermined
    "silent_rate_hz": SILENT_RATE_HZ,  # mean rate below this: "silent" (none of Brunel's four states)
    # a chi_inf is above (below) a threshold when rho - k SE (rho + k SE) is, k = margin_se;
    # otherwise the label is "undetermined"
    "margin_se": 0.5,
}
#: The thresholds that are frequencies, given for D = REFERENCE_DELAY_MS; `thresholds_for` scales them as 1/D.
FREQUENCY_THRESHOLDS = ("fast_slow_cut_hz", "fast_peak_min_hz")


def thresholds_for(delay_ms: float, thresholds: dict = REGIME_THRESHOLDS) -> dict:
    """The rule's thresholds for a network with synaptic delay D.

    The fast oscillation's frequency scales as ~1/(4D), so the two frequency cuts
    (FREQUENCY_THRESHOLDS) are scaled by REFERENCE_DELAY_MS / D (the cut between the
    branches is then the theory's, `constants.fast_slow_cut_hz`); the synchrony and CV
    thresholds are dimensionless and stay. Validated on held-out points at D = 1 and
    3 ms (docs/regimes.md, "Other delays").

    Parameters
    ----------
    delay_ms : float
        The network's synaptic delay D [ms].
    thresholds : dict
        The thresholds for D = REFERENCE_DELAY_MS (default REGIME_THRESHOLDS).

    Returns
    -------
    dict
        A copy of `thresholds` with the frequencies for D.
    """
    out = dict(thresholds)
    for k in FREQUENCY_THRESHOLDS:
        out[k] = thresholds[k] * REFERENCE_DELAY_MS / delay_ms
    return out


MIN_DATA = {
    "neurons": 10,  # recorded neurons (both populations together)
    "window_ms": 200.0,  # analysis window: twenty 10 ms bins (two per block of the standard error)
    "cv_neurons": 10,  # neurons with >= 3 spikes for the mean CV(ISI) to count
}


@dataclass(frozen=True)
class RegimeLabel:
    """The label of a run (one of REGIMES or "undetermined"), why, and the label
    the point estimates alone would give."""

    label: str
    reason: str
    best_guess: str

    def to_dict(self) -> dict:
        """{"label", "reason", "best_guess"} as a plain dict."""
        return asdict(self)


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _at_least(low: float, high: float, threshold: float) -> bool | None:
    """Is the measure >= threshold? True / False / None (its band contains the threshold)."""
    if low >= threshold:
        return True
    if high < threshold:
        return False
    return None


def poisson_upper_95(k: int) -> float:
    """One-sided 95 % upper limit of a Poisson mean after observing k counts (3.0 for k = 0)."""
    from scipy.stats import chi2

    return float(chi2.ppf(0.95, 2 * k + 2) / 2)


def classify(net: dict, window_ms: float, thresholds: dict = REGIME_THRESHOLDS,
             min_data: dict = MIN_DATA) -> RegimeLabel:
    """Brunel's state from the network's statistics (never from parameters).

    Applies the rule of the module docstring with the given thresholds.

    Parameters
    ----------
    net : dict
        Statistics of all recorded neurons (keys of `stream_stats.PopulationStats.to_dict`
        or analysis.json's "network"): n_neurons, n_spikes, rate_mean_hz, cv_isi_mean,
        cv_isi_n_neurons, synchrony_rho, synchrony_rho_se, synchrony_rho_10ms, synchrony_rho_10ms_se
        (rho = chi_inf^2, see `stats.Synchrony`), psd_peak_hz.
    window_ms : float
        Length of the analysis window, ms.
    thresholds, min_data : dict
        REGIME_THRESHOLDS and MIN_DATA (other values for calibration).

    Returns
    -------
    RegimeLabel
        label: one of "SR", "SI-fast", "AI", "SI-slow", "silent" or "undetermined";
        reason: one line naming the measure, its band and the threshold that decided;
        best_guess: the label from the point estimates alone.

    Raises
    ------
    KeyError
        If `net` lacks one of the keys above (psd_peak_hz may be missing: "undetermined").
    """
    t = thresholds
    n = int(net["n_neurons"])
    if n < min_data["neurons"]:
        return RegimeLabel(UNDETERMINED, f"{n} neurons recorded: at least {min_data['neurons']} needed", UNDETERMINED)
    if not window_ms >= min_data["window_ms"]:
        return RegimeLabel(UNDETERMINED, f"analysis window {window_ms:g} ms: at least {min_data['window_ms']:g} ms "
                                         "needed", UNDETERMINED)
    rate = _f(net["rate_mean_hz"])
    if not rate >= t["silent_rate_hz"]:
        upper = poisson_upper_95(int(net["n_spikes"])) / (n * window_ms / 1000.0)
        if upper < t["silent_rate_hz"]:
            return RegimeLabel("silent", f"mean rate {rate:.3g} Hz (< {upper:.2g} Hz at ~95 %)", "silent")
        return RegimeLabel(UNDETERMINED, f"too few spikes: {int(net['n_spikes'])} from {n} neurons in "
                                         f"{window_ms:g} ms cannot tell a silent network (< {t['silent_rate_hz']} Hz) "
                                         f"from a slow state", "silent")

    def measure(rho_key):
        """(chi_inf, band low, band high); NaN where rho or its error is not finite."""
        rho, se = _f(net[rho_key]), _f(net[rho_key + "_se"])
        if not (math.isfinite(rho) and math.isfinite(se)):
            return float("nan"), float("nan"), float("nan")
        k = t["margin_se"]
        return math.sqrt(max(rho, 0.0)), math.sqrt(max(rho - k * se, 0.0)), math.sqrt(max(rho + k * se, 0.0))

    chi1, chi10 = measure("synchrony_rho"), measure("synchrony_rho_10ms")
    for name, m in (("chi_inf(1 ms)", chi1), ("chi_inf(10 ms)", chi10)):
        if not math.isfinite(m[0]):
            return RegimeLabel(UNDETERMINED, f"{name} or its standard error could not be computed ({n} neurons, "
                                             f"{int(net['n_spikes'])} spikes, {window_ms:g} ms)", UNDETERMINED)
    peak_hz = _f(net.get("psd_peak_hz"))
    if not math.isfinite(peak_hz):
        return RegimeLabel(UNDETERMINED, f"the population rate's spectral peak could not be computed ({n} neurons, "
                                         f"{window_ms:g} ms)", UNDETERMINED)
    cv, n_cv = _f(net["cv_isi_mean"]), int(net["cv_isi_n_neurons"])
    regular = n_cv >= min_data["cv_neurons"] and cv < t["regular_cv_max"]
    slow = peak_hz < t["fast_slow_cut_hz"]
    scale = f"spectral peak {peak_hz:.0f} Hz {'<' if slow else '>='} {t['fast_slow_cut_hz']:g} Hz"
    sync = (("SI-slow", "chi_inf(10 ms)", chi10, t["slow_chi_10ms_min"]) if slow
            else ("SI-fast", "chi_inf(1 ms)", chi1, t["fast_chi_1ms_min"]))
    tests = [("SR", "chi_inf(1 ms)", chi1, t["sr_chi_min"])] if regular else []
    tests.append(sync)
    between_bands = not slow and peak_hz < t["fast_peak_min_hz"]
    best = next((lab for lab, _, m, thr in tests if m[0] >= thr), "AI")
    for label, name, (value, low, high), threshold in tests:
        verdict = _at_least(low, high, threshold)
        if verdict is None:
            return RegimeLabel(UNDETERMINED, f"{name} = {value:.3f} ({low:.3f}-{high:.3f}) is too close to "
                                             f"the {label} threshold {threshold} for {n} neurons and "
                                             f"{window_ms:g} ms ({scale})", best)
        if verdict and label == "SI-fast" and between_bands:
            return RegimeLabel(UNDETERMINED, f"{name} = {value:.3f} ({low:.3f}-{high:.3f}) >= {threshold}, but the "
                                             f"spectral peak {peak_hz:.0f} Hz is below the fast oscillation's band "
                                             f"(>= {t['fast_peak_min_hz']:g} Hz) and above the slow one's", label)
        if verdict:
            why = f", CV(ISI) {cv:.3f} < {t['regular_cv_max']}" if label == "SR" else f", {scale}"
            return RegimeLabel(label, f"{name} = {value:.3f} ({low:.3f}-{high:.3f}) >= {threshold}{why}", label)
    label, name, (value, low, high), threshold = sync
    return RegimeLabel("AI", f"{name} = {value:.3f} (up to {high:.3f}) < {threshold} ({label} threshold), {scale}",
                       "AI")
