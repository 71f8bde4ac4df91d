"""Linear stability of the stationary states of Brunel's (2000) model A, and the
phase diagram it implies.

A stationary state nu0 (a fixed point of the Siegert transfer function,
:func:`hpc_brunel.theory.meanfield.fixed_points_hz`) is perturbed,
nu(t) = nu0 + nu1 e^{lambda t}. All synapses have the delay D, so the mean and
the variance of the input are modulated by

    mu1      = C_E J tau (1 - g gamma)     nu1 e^{-lambda D}
    sigma2_1 = C_E J^2 tau (1 + g^2 gamma) nu1 e^{-lambda D}

and the rate answers with the white-noise LIF susceptibilities,
nu1 = A_mu(lambda) mu1 + A_var(lambda) sigma2_1. Hence the characteristic equation

    e^{-lambda D} tau C_E J [ (1 - g gamma) A_mu(lambda) + J (1 + g^2 gamma) A_var(lambda) ] = 1.   (*)

With s = lambda tau, x_th = sqrt(2) (mu0 - theta) / sigma0, x_r = sqrt(2) (mu0 - V_r) / sigma0,
Delta = (x_r^2 - x_th^2) / 4 and D_a the parabolic cylinder function,

    den(s)       = D_{-s}(x_th) - e^{Delta} e^{-lambda t_ref} D_{-s}(x_r)
    A_mu(lambda)  = sqrt(2) nu0 / sigma0   * s / (1 + s)           * [D_{-s-1}(x_th) - e^{Delta} D_{-s-1}(x_r)] / den(s)
    A_var(lambda) = nu0 / sigma0^2         * s (1 + s) / (2 + s)   * [D_{-s-2}(x_th) - e^{Delta} D_{-s-2}(x_r)] / den(s)

This is the linearisation that Brunel & Hakim (1999, Neural Comput 11:1621)
and Brunel (2000, J Comput Neurosci 8:183, Sec. 4 and Appendix A) solve with
Kummer functions, U(y, s) ~ e^{y^2/2} D_{-s}(-sqrt(2) y), mean (G) and
variance (H) terms and refractory period included. The susceptibilities are
written as in Lindner & Schimansky-Geier (2001, Phys Rev Lett 86:2934),
continued from lambda = i omega into the complex plane (their e^{-i omega t}
convention is ours with i omega -> -lambda); they were re-derived from the
Fokker-Planck equation rather than transcribed, and the tests check both
against the omega -> 0 limits d phi / d mu and d phi / d sigma^2 of the
Siegert formula and against a direct numerical (threshold-integration)
solution of the linearised Fokker-Planck equation at complex lambda.

(*) is solved here rather than with INM-6's nnmt, whose transfer function has the
mean term A_mu only and whose linear stability is a rate-model approximation
(docs/regimes.md, "How the thresholds were found").

Units: rates in Hz, eigenvalues lambda in 1/s (growth_rate_per_s = Re lambda,
freq_hz = Im lambda / 2 pi), voltages in mV relative to rest.
"""
from __future__ import annotations

import cmath
import dataclasses
import functools
import math
import threading
import time

import mpmath
import numpy as np

from hpc_brunel.constants import FAST_SLOW_CUT_HZ, REFERENCE_DELAY_MS, SILENT_RATE_HZ, fast_slow_cut_hz  # noqa: F401
from hpc_brunel.theory import meanfield
from hpc_brunel.theory.meanfield import MeanFieldParams

# FAST_SLOW_CUT_HZ (hpc_brunel.constants, 60 Hz) separates Brunel's fast from slow
# oscillations: it lies in the gap between the critical frequencies of model A's fast
# branch (~1/(4 D) ~ 170 Hz) and its slow band (~1/tau, 7-32 Hz); see theory_label and
# docs/regimes.md, "How the thresholds were found".
# Rate below which a stationary state counts as quiescent ("Q").
QUIESCENT_RATE_HZ = SILENT_RATE_HZ
# An unstable state at more than this fraction of the saturation rate 1/t_ref is
# Brunel's synchronous regular state (SR): neurons fire almost regularly, near
# saturation, as in the excitation-dominated region g < 4 of his Fig. 8.
SR_SATURATION_FRACTION = 0.5
# A fixed point whose mean input exceeds threshold by more than this many sigma is
# mean-driven: neurons fire nearly periodically at ~1/(t_ref + tau ln((mu - V_r)/(mu - theta))),
# and the susceptibility has weakly damped resonances at multiples of the rate and of 1/D.
# Its eigenvalues are searched from more starting frequencies (_scan_freqs_hz), up to
# 2.2/D. An unstable mean-driven state is Brunel's SR (synchronous, regular firing); a
# stable one is asynchronous (AI).
MEAN_DRIVEN_SIGMAS = 5.0
# Beyond this many sigma above threshold (x_th = sqrt(2) (mu - theta) / sigma > 20) one
# evaluation of (*) costs > 1 s in mpmath (0.04 s at 7 sigma, 0.4 s at 11, 2.6 s at 21,
# 9 s at 31): such states are not searched but continued from the state of the same eta
# and D that is exactly this deep (one eigenvalue search per eta, cached): unstable there
# (the SR edge lies at 6-13 sigma at D = 1.5 ms) -> not stable (SR), stable there (D = 1 ms:
# the mean-driven states are stable up to at least 14 sigma) -> stable. Reported with
# growth_rate_per_s = nan and mean_driven = True.
DEEP_MEAN_DRIVEN_SIGMAS = 14.0


@dataclasses.dataclass(frozen=True)
class Susceptibility:
    """Linear response of the rate of one LIF neuron to e^{lambda t} modulations of its input.

    mean_hz_per_mv: nu1 / mu1; variance_hz_per_mv2: nu1 / sigma^2_1.
    """

    mean_hz_per_mv: complex
    variance_hz_per_mv2: complex


@dataclasses.dataclass(frozen=True)
class Mode:
    """One root lambda of the characteristic equation: lambda = growth_rate_per_s + 2 pi i freq_hz."""

    growth_rate_per_s: float
    freq_hz: float

    @property
    def lambda_per_s(self) -> complex:
        """The eigenvalue, 1/s."""
        return complex(self.growth_rate_per_s, 2 * math.pi * self.freq_hz)


@dataclasses.dataclass(frozen=True)
class StationaryState:
    """The stationary state(s) of a network and their linear stability.

    Attributes
    ----------
    rate_hz : float or None
        The stable stationary rate (the lowest one if several are stable), None if no
        fixed point is linearly stable.
    stable : bool
        Whether a linearly stable stationary state exists.
    fixed_points_hz : tuple of float
        All fixed points nu = phi(nu), ascending.
    state_rate_hz : float
        The fixed point whose leading mode is reported: rate_hz when stable, else the
        least unstable fixed point.
    growth_rate_per_s, freq_hz : float
        Leading (largest real part) eigenvalue of state_rate_hz: Re lambda in 1/s and
        Im lambda / 2 pi in Hz (freq_hz >= 0).
    """

    rate_hz: float | None
    stable: bool
    fixed_points_hz: tuple[float, ...]
    state_rate_hz: float
    growth_rate_per_s: float
    freq_hz: float
    mean_driven: bool = False  # state_rate_hz is deep mean-driven (DEEP_MEAN_DRIVEN_SIGMAS): continued, not searched

    def describe(self) -> str:
        """One line, e.g. '37.95 Hz (stable)'."""
        mode = f"leading mode {self.freq_hz:.0f} Hz"
        if self.stable and self.rate_hz == 0.0:
            return "0 Hz (quiescent, stable)"
        if self.stable and self.mean_driven:
            return (f"{self.rate_hz:.3g} Hz (stable: deep mean-driven, > {DEEP_MEAN_DRIVEN_SIGMAS:g} sigma above "
                    f"threshold, continued from a stable state {DEEP_MEAN_DRIVEN_SIGMAS:g} sigma above)")
        if self.stable and math.isnan(self.growth_rate_per_s):
            return f"{self.rate_hz:.3g} Hz (stable: loop gain below 1 at all frequencies)"
        if self.stable:
            extra = "" if len(self.fixed_points_hz) == 1 else \
                f"; fixed points {', '.join(f'{r:.3g}' for r in self.fixed_points_hz)} Hz"
            return f"{self.rate_hz:.2f} Hz (stable; {mode} decays at {-self.growth_rate_per_s:.3g} /s{extra})"
        if self.mean_driven:
            return (f"no stable stationary state ({self.state_rate_hz:.2f} Hz state is deep mean-driven: the mean "
                    f"input is > {DEEP_MEAN_DRIVEN_SIGMAS:g} sigma above threshold, continued from an unstable "
                    f"state {DEEP_MEAN_DRIVEN_SIGMAS:g} sigma above)")
        if math.isnan(self.growth_rate_per_s):
            return f"no stable stationary state found ({self.state_rate_hz:.2f} Hz state: no eigenvalue found)"
        return (f"no stable stationary state ({self.state_rate_hz:.2f} Hz state: {mode} grows at "
                f"{self.growth_rate_per_s:.3g} /s)")


# --------------------------------------------------------------------------------------------------
# susceptibilities and the characteristic function

_THREAD = threading.local()


def _mp() -> mpmath.ctx_mp.MPContext:
    """This thread's own mpmath context at double precision. mpmath's global context is
    not thread-safe: its functions raise and restore the shared working precision, so two
    threads evaluating (*) at once (the sweep analyzes its points in a thread pool) left it at
    246 bits and made everything after them ~10x slower."""
    ctx = getattr(_THREAD, "mp", None)
    if ctx is None:
        ctx = _THREAD.mp = mpmath.MPContext()
    return ctx


def susceptibility(lambda_per_s: complex, *, mu_mv: float, sigma_mv: float, rate_hz: float, tau_m_ms: float,
                   t_ref_ms: float, theta_mv: float, v_reset_mv: float) -> Susceptibility:
    """White-noise LIF susceptibilities to mean and variance modulations (Brunel & Hakim 1999).

    Parameters
    ----------
    lambda_per_s : complex
        Complex frequency of the modulation e^{lambda t}, 1/s (lambda = 2 pi i f for a sine at f Hz).
    mu_mv, sigma_mv : float
        Stationary mean and standard deviation of the input, mV (relative to rest).
    rate_hz : float
        Stationary rate phi(mu, sigma), Hz.
    tau_m_ms, t_ref_ms : float
        Membrane time constant and refractory period, ms.
    theta_mv, v_reset_mv : float
        Threshold and reset relative to rest, mV.

    Returns
    -------
    Susceptibility
        nu1/mu1 in Hz/mV and nu1/sigma^2_1 in Hz/mV^2 (formulas in the module docstring).
    """
    mp = _mp()
    tau = tau_m_ms / 1000.0
    s = mp.mpc(lambda_per_s * tau)
    x_th = math.sqrt(2.0) * (mu_mv - theta_mv) / sigma_mv
    x_r = math.sqrt(2.0) * (mu_mv - v_reset_mv) / sigma_mv
    e_delta = mp.exp((x_r * x_r - x_th * x_th) / 4.0)
    d = mp.pcfd
    # D_{-s-1}, D_{-s-2} at both ends; D_{-s}(x) = x D_{-s-1}(x) + (s + 1) D_{-s-2}(x) (DLMF 12.8.1)
    d1_th, d1_r = d(-s - 1, x_th), d(-s - 1, x_r)
    d2_th, d2_r = d(-s - 2, x_th), d(-s - 2, x_r)
    d0_th, d0_r = x_th * d1_th + (s + 1) * d2_th, x_r * d1_r + (s + 1) * d2_r
    den = d0_th - e_delta * mp.exp(-lambda_per_s * t_ref_ms / 1000.0) * d0_r
    a_mu = math.sqrt(2.0) * rate_hz / sigma_mv * s / (1 + s) * (d1_th - e_delta * d1_r) / den
    a_var = rate_hz / sigma_mv**2 * s * (1 + s) / (2 + s) * (d2_th - e_delta * d2_r) / den
    return Susceptibility(complex(a_mu), complex(a_var))


@dataclasses.dataclass(frozen=True)
class _Linearisation:
    """Everything (*) needs about one fixed point."""

    p: MeanFieldParams
    rate_hz: float
    mu_mv: float
    sigma_mv: float

    @property
    def gain_mean_mv_per_hz(self) -> float:  # d mu / d nu
        return self.p.c_e * self.p.j_mv * self.p.tau_m_ms / 1000.0 * (1.0 - self.p.g * self.p.gamma)

    @property
    def gain_var_mv2_per_hz(self) -> float:  # d sigma^2 / d nu
        return self.p.c_e * self.p.j_mv**2 * self.p.tau_m_ms / 1000.0 * (1.0 + self.p.g**2 * self.p.gamma)

    def chi(self, lam: complex) -> Susceptibility:
        p = self.p
        return susceptibility(lam, mu_mv=self.mu_mv, sigma_mv=self.sigma_mv, rate_hz=self.rate_hz,
                              tau_m_ms=p.tau_m_ms, t_ref_ms=p.t_ref_ms, theta_mv=p.theta_mv,
                              v_reset_mv=p.v_reset_mv)

    def open_loop(self, lam: complex) -> complex:
        """e^{-lambda D} (dmu/dnu A_mu + dsigma2/dnu A_var): the loop gain; (*) is open_loop = 1."""
        c = self.chi(lam)
        return cmath.exp(-lam * self.p.delay_ms / 1000.0) * (
            self.gain_mean_mv_per_hz * c.mean_hz_per_mv + self.gain_var_mv2_per_hz * c.variance_hz_per_mv2)


def _linearise(p: MeanFieldParams, rate_hz: float) -> _Linearisation:
    mu, sigma = meanfield.moments_for(p, rate_hz)
    return _Linearisation(p, float(rate_hz), mu, sigma)


def characteristic_function(p: MeanFieldParams, rate_hz: float, lambda_per_s: complex) -> complex:
    """Left side minus right side of the characteristic equation (*) at the fixed point rate_hz.

    Parameters
    ----------
    p : MeanFieldParams
    rate_hz : float
        A fixed point of phi (see :func:`hpc_brunel.theory.meanfield.fixed_points_hz`).
    lambda_per_s : complex
        Trial eigenvalue, 1/s.

    Returns
    -------
    complex
        e^{-lambda D} tau C_E J [(1 - g gamma) A_mu + J (1 + g^2 gamma) A_var] - 1; zero at an eigenvalue.
    """
    return _linearise(p, rate_hz).open_loop(complex(lambda_per_s)) - 1.0


# --------------------------------------------------------------------------------------------------
# eigenvalues

# Imaginary-axis frequencies (Hz) from which roots are searched. Roots of (*) come in
# families spaced by ~1/D (667 Hz) in frequency: in model A the least stable root of the
# first family lies between ~10 and ~300 Hz, the second family near 650-800 Hz.
_SCAN_FREQS_HZ = (8.0, 25.0, 50.0, 90.0, 140.0, 200.0, 280.0, 400.0, 650.0)
# The frequencies above 50 Hz belong to the delay's families: they are given for
# REFERENCE_DELAY_MS and scaled by REFERENCE_DELAY_MS / D.


def _scan_freqs_hz(p: MeanFieldParams, rate_hz: float) -> tuple[float, ...]:
    """Starting frequencies for the root search at the fixed point rate_hz: _SCAN_FREQS_HZ
    (the delay families' scaled to D) and, for a mean-driven or near-saturated state, the
    neighbourhoods of the firing rate's first two harmonics and of 1/D, 2/D (its weakly
    damped resonances: an SR state's unstable mode is at ~1/D, 663 Hz at g = 3, eta = 2)."""
    k = REFERENCE_DELAY_MS / p.delay_ms
    fs = {f if f <= 50.0 else f * k for f in _SCAN_FREQS_HZ}
    if is_mean_driven(p, rate_hz) or rate_hz >= SR_SATURATION_FRACTION * p.rate_max_hz:
        f_d = 1000.0 / p.delay_ms
        fs |= {f_d * m for m in (0.5, 0.75, 0.9, 1.0, 1.1, 1.3, 1.6, 1.9, 2.0, 2.2)} | {rate_hz, 2.0 * rate_hz}
        fs = {f for f in fs if f <= 2.2 * f_d}
    return tuple(sorted(fs))


def _secant(f, z0: complex, z1: complex, *, tol: float = 1e-9, max_iter: int = 30) -> complex | None:
    """A root of f by the complex secant method, None if it wanders off or does not converge."""
    try:
        f0, f1 = f(z0), f(z1)
    except (ValueError, ZeroDivisionError):  # mpmath gives up far from the relevant region
        return None
    for _ in range(max_iter):
        if f1 == f0:
            return None
        z2 = z1 - f1 * (z1 - z0) / (f1 - f0)
        # roots far beyond 1/t_ref in frequency, or decaying much faster than 1/tau, are irrelevant here
        if not cmath.isfinite(z2) or abs(z2) > 2e4 or z2.real < -2e3:
            return None
        z0, f0, z1 = z1, f1, z2
        try:
            f1 = f(z1)
        except (ValueError, ZeroDivisionError):
            return None
        if abs(z1 - z0) < tol * max(1.0, abs(z1)):
            return z1 if abs(f1) < 1e-6 else None
    return None


def slope_of_transfer(p: MeanFieldParams, rate_hz: float) -> float:
    """d phi / d nu at rate_hz, by a central difference of the Siegert formula.

    This is also the loop gain of (*) at lambda = 0; a slope > 1 at a fixed point means a
    real positive eigenvalue (the rate instability of a saddle-node's middle branch).

    Parameters
    ----------
    p : MeanFieldParams
    rate_hz : float

    Returns
    -------
    float
    """
    h = max(1e-6, 1e-5 * rate_hz)
    lo = max(0.0, rate_hz - h)
    return (meanfield.transfer_rate_hz(p, rate_hz + h) - meanfield.transfer_rate_hz(p, lo)) / (rate_hz + h - lo)


def modes(p: MeanFieldParams, rate_hz: float, *, scan_freqs_hz=None, max_starts: int | None = None) -> tuple[Mode, ...]:
    """Roots of the characteristic equation near the imaginary axis, least stable first.

    |open_loop - 1| is evaluated on the imaginary axis at scan_freqs_hz; from the
    max_starts deepest local minima a complex secant iteration looks for a root. If
    d phi / d nu > 1 at the fixed point (the middle branch of a saddle-node), (*) has a
    real positive root, searched from the positive real axis. Only roots with
    freq_hz >= 0 are returned (the others are their conjugates).

    Parameters
    ----------
    p : MeanFieldParams
    rate_hz : float
        A fixed point of phi.
    scan_freqs_hz : sequence of float, optional
        Starting frequencies (default: the delay's families and, for a mean-driven state,
        its resonances; see _scan_freqs_hz).
    max_starts : int, optional
        At most this many secant searches from the imaginary axis (default 3; 6 for a
        mean-driven state).

    Returns
    -------
    tuple of Mode
        Distinct roots found, sorted by decreasing growth rate.
    """
    return _search(p, rate_hz, scan_freqs_hz, max_starts)[0]


def _search(p: MeanFieldParams, rate_hz: float, scan_freqs_hz=None,
            max_starts: int | None = None) -> tuple[tuple[Mode, ...], float]:
    """Scan, secant searches, and max |loop gain| on the scan (inf if an evaluation failed).
    Default scan: _scan_freqs_hz; default starts: 3, or 6 for a mean-driven state."""
    if scan_freqs_hz is None:
        scan_freqs_hz = _scan_freqs_hz(p, rate_hz)
    if max_starts is None:
        max_starts = 6 if is_mean_driven(p, rate_hz) else 3
    lin = _linearise(p, rate_hz)
    def f(lam):
        return lin.open_loop(lam) - 1.0
    w = [2 * math.pi * fr for fr in scan_freqs_hz]
    vals, gains = [], []
    for x in w:
        try:
            z = f(1j * x)
        except (ValueError, ZeroDivisionError):
            z = complex(math.inf)
        vals.append(abs(z))
        gains.append(abs(z + 1.0))
    minima = []
    for k in range(len(w)):
        left = vals[k - 1] if k > 0 else math.inf
        right = vals[k + 1] if k + 1 < len(w) else math.inf
        if vals[k] <= left and vals[k] <= right and math.isfinite(vals[k]):
            minima.append((vals[k], w[k]))
    roots: list[complex] = []
    for _, x in sorted(minima)[:max_starts]:
        r = _secant(f, complex(0.0, x), complex(5.0, 1.03 * x))
        if r is not None:
            roots.append(r)
    if slope_of_transfer(p, rate_hz) > 1.0:
        for x in (20.0, 300.0):
            r = _secant(f, complex(x, 0.0), complex(1.1 * x, 0.0))
            if r is not None:
                roots.append(complex(r.real, 0.0) if abs(r.imag) < 1e-6 else r)
    out: list[Mode] = []
    for r in roots:
        m = Mode(float(r.real), abs(float(r.imag)) / (2 * math.pi))
        if not any(abs(m.lambda_per_s - o.lambda_per_s) < 1e-5 * max(1.0, abs(o.lambda_per_s)) for o in out):
            out.append(m)
    return tuple(sorted(out, key=lambda m: -m.growth_rate_per_s)), max(gains)


def _leading(p: MeanFieldParams, rate_hz: float) -> tuple[Mode, bool]:
    """(leading mode, stable). With no root found, the state is stable if the loop gain stays
    below 1 at the scanned frequencies of the imaginary axis and at zero (a small-gain argument:
    were |gain| < 1 on the whole axis, the maximum principle would exclude roots of (*) in the
    right half plane; here it is checked at the scan points only, an approximation); this
    covers the near-silent states, whose gain is proportional to the rate."""
    ms, max_gain = _search(p, rate_hz)
    slope = slope_of_transfer(p, rate_hz)
    if not ms:
        return Mode(math.nan, math.nan), bool(max_gain < 1.0 and abs(slope) < 1.0)
    return ms[0], ms[0].growth_rate_per_s < 0


# --------------------------------------------------------------------------------------------------
# stationary states and labels


def is_mean_driven(p: MeanFieldParams, rate_hz: float) -> bool:
    """Whether the mean input at rate_hz exceeds threshold by more than MEAN_DRIVEN_SIGMAS sigma.

    Parameters
    ----------
    p : MeanFieldParams
    rate_hz : float

    Returns
    -------
    bool
    """
    return sigmas_above_threshold(p, rate_hz) > MEAN_DRIVEN_SIGMAS


def sigmas_above_threshold(p: MeanFieldParams, rate_hz: float) -> float:
    """(mu - theta) / sigma of the input at rate_hz: > MEAN_DRIVEN_SIGMAS is mean-driven.

    Parameters
    ----------
    p : MeanFieldParams
    rate_hz : float

    Returns
    -------
    float
    """
    mu, sigma = meanfield.moments_for(p, rate_hz)
    return (mu - p.theta_mv) / sigma


@functools.lru_cache(maxsize=4096)
def stationary_state(p: MeanFieldParams, *, resolve_deep: bool = False) -> StationaryState:
    """All fixed points of the network `p` and whether one of them is linearly stable.

    Fixed points are tried in ascending order; the first with a leading eigenvalue of
    negative real part is the stable state. Every fixed point's eigenvalues are searched,
    mean-driven ones included, except (unless resolve_deep) those more than
    DEEP_MEAN_DRIVEN_SIGMAS above threshold: they count as not stable (continued from the
    SR edge, see DEEP_MEAN_DRIVEN_SIGMAS) with growth_rate_per_s = nan.

    Parameters
    ----------
    p : MeanFieldParams
    resolve_deep : bool
        Search eigenvalues of the deep mean-driven fixed points too (1-10 s per evaluation
        of the characteristic function: minutes per state).

    Returns
    -------
    StationaryState
    """
    fps = meanfield.fixed_points_hz(p)
    best: tuple[float, Mode] | None = None
    for r in fps:
        if r <= 0.0:  # a fixed point at 0 Hz (the root rounds to 0): silence is stable; the decay rate
            # reported (1/tau_m, the membrane's) is an assumption, not an eigenvalue
            m = Mode(-1000.0 / p.tau_m_ms, 0.0)
            stable = True
        elif not resolve_deep and sigmas_above_threshold(p, r) > DEEP_MEAN_DRIVEN_SIGMAS:
            m, stable = Mode(math.nan, math.nan), _stable_at_deep_limit(p.with_(g=0.0))
        else:
            m, stable = _leading(p, r)
        if stable:
            deep = r > 0 and math.isnan(m.growth_rate_per_s) and sigmas_above_threshold(p, r) > DEEP_MEAN_DRIVEN_SIGMAS
            return StationaryState(r, True, fps, r, m.growth_rate_per_s, m.freq_hz, deep)
        if best is None or math.isnan(best[1].growth_rate_per_s) or m.growth_rate_per_s < best[1].growth_rate_per_s:
            best = (r, m)
    assert best is not None
    deep = not resolve_deep and best[0] > 0 and sigmas_above_threshold(p, best[0]) > DEEP_MEAN_DRIVEN_SIGMAS
    return StationaryState(None, False, fps, best[0], best[1].growth_rate_per_s, best[1].freq_hz, deep)


@functools.lru_cache(maxsize=256)
def _stable_at_deep_limit(base: MeanFieldParams) -> bool:
    """Whether the state of base's eta that is DEEP_MEAN_DRIVEN_SIGMAS above threshold is stable
    (g solved between 0, where the state is deepest, and 12; base has g = 0: one cache entry per
    eta and model)."""
    from scipy import optimize

    def excess(g):
        pe = base.with_(g=float(g))
        return sigmas_above_threshold(pe, max(meanfield.fixed_points_hz(pe))) - DEEP_MEAN_DRIVEN_SIGMAS

    if excess(12.0) > 0:
        return False
    g_c = optimize.brentq(excess, 0.0, 12.0, xtol=1e-6)
    pe = base.with_(g=g_c)
    return _leading(pe, max(meanfield.fixed_points_hz(pe)))[1]


def stationary_state_for_config(cfg) -> StationaryState:
    """:func:`stationary_state` of a run configuration.

    Parameters
    ----------
    cfg : hpc_brunel.config.RunConfig

    Returns
    -------
    StationaryState
    """
    return stationary_state(MeanFieldParams.from_config(cfg))


def label_of(p: MeanFieldParams, st: StationaryState, *, margin_per_s: float = 0.0) -> str:
    """The Brunel (2000) label of an already computed state; see :func:`theory_label`.

    Parameters
    ----------
    p : MeanFieldParams
    st : StationaryState
        ``stationary_state(p)``.
    margin_per_s : float
        A stable state whose leading mode decays slower than this (Re lambda > -margin)
        is labelled by that mode as if unstable (SI-fast/SI-slow): in a finite network such
        a weakly damped mode is driven by the finite-size noise into visible oscillations.
        0 (default): strict linear stability.

    Returns
    -------
    str
    """
    weakly_damped = (margin_per_s > 0 and st.stable and not math.isnan(st.growth_rate_per_s)
                     and st.growth_rate_per_s > -margin_per_s and st.rate_hz >= QUIESCENT_RATE_HZ)
    if st.stable and not weakly_damped:
        return "Q" if st.rate_hz < QUIESCENT_RATE_HZ else "AI"
    if st.state_rate_hz >= SR_SATURATION_FRACTION * p.rate_max_hz or is_mean_driven(p, st.state_rate_hz):
        return "SR"
    return "SI-fast" if st.freq_hz >= fast_slow_cut_hz(p.delay_ms) else "SI-slow"


def theory_label(p: MeanFieldParams, *, margin_per_s: float = 0.0) -> str:
    """Brunel's (2000) regime predicted by the mean field and its linear stability.

    * "Q": the stable stationary rate is below QUIESCENT_RATE_HZ (0.1 Hz): no activity.
    * "AI": a linearly stable stationary state with a nonzero rate (asynchronous irregular).
    * "SR": no stable state, and the unstable state fires at more than
      SR_SATURATION_FRACTION (1/2) of the saturation rate 1/t_ref or is mean-driven
      (mean input > theta + MEAN_DRIVEN_SIGMAS sigma). Brunel's SR state
      (excitation-dominated, g < 4) is near saturation: neurons fire almost
      regularly, limited by the refractory period, and the network synchronises.
    * "SI-fast": unstable through a mode faster than fast_slow_cut_hz(D) (60 Hz at D = 1.5 ms): the
      oscillation with a period of a few delays (frequency of order 1/(4D) ~ 170 Hz
      at D = 1.5 ms) that destabilises the inhibition-dominated high-rate state.
    * "SI-slow": unstable through a slower mode (tens of Hz, of order 1/tau), the
      instability at low external drive (eta < ~1) for strong inhibition.

    The 60 Hz cut lies between the two Hopf branches of model A: the critical
    frequency along the fast line is 161-193 Hz for g = 5..8 (249 Hz at g = 4.5,
    eta = 7.75), along the slow band 7-32 Hz (see :func:`phase_boundaries`).

    Parameters
    ----------
    p : MeanFieldParams
    margin_per_s : float
        See :func:`label_of` (default 0: strict linear stability).

    Returns
    -------
    str
        One of "SR", "SI-fast", "SI-slow", "AI", "Q".
    """
    return label_of(p, stationary_state(p), margin_per_s=margin_per_s)


@dataclasses.dataclass(frozen=True)
class TheoryGrid:
    """theory_label on a (g, eta) grid: labels[i][j] belongs to g_values[i], eta_values[j]."""

    g_values: tuple[float, ...]
    eta_values: tuple[float, ...]
    labels: tuple[tuple[str, ...], ...]
    states: tuple[tuple[StationaryState, ...], ...]
    seconds_per_cell: float

    def label(self, g: float, eta: float) -> str:
        """The label of the grid cell (g, eta) (nearest grid values)."""
        i = int(np.argmin(np.abs(np.asarray(self.g_values) - g)))
        j = int(np.argmin(np.abs(np.asarray(self.eta_values) - eta)))
        return self.labels[i][j]

    def table(self) -> str:
        """Plain-text table: one row per eta (top: largest), one column per g."""
        w = max(7, *(len(lab) for row in self.labels for lab in row))
        head = "eta \\ g".rjust(8) + "".join(f"{g:>{w + 1}g}" for g in self.g_values)
        rows = [head]
        for j in reversed(range(len(self.eta_values))):
            rows.append(f"{self.eta_values[j]:>8g}" + "".join(f"{self.labels[i][j]:>{w + 1}}"
                                                            for i in range(len(self.g_values))))
        return "\n".join(rows)


def theory_grid(g_values, eta_values, base: MeanFieldParams | None = None, *,
                margin_per_s: float = 0.0) -> TheoryGrid:
    """theory_label for every (g, eta) of a grid, for a cell-by-cell comparison with simulations.

    Parameters
    ----------
    g_values, eta_values : sequence of float
        The grid: relative strengths of inhibition g and external drives eta.
    base : MeanFieldParams, optional
        Everything but g and eta (default: Brunel's model A).
    margin_per_s : float
        See :func:`label_of`.

    Returns
    -------
    TheoryGrid
        Labels and stationary states per cell. Computing one cell takes ~0.1 s (mpmath;
        results are cached per parameter set).
    """
    base = base or MeanFieldParams()
    t0 = time.perf_counter()
    states = tuple(tuple(stationary_state(base.with_(g=float(g), eta=float(e))) for e in eta_values)
                   for g in g_values)
    labels = tuple(tuple(label_of(base.with_(g=float(g), eta=float(e)), st, margin_per_s=margin_per_s)
                         for e, st in zip(eta_values, row))
                   for g, row in zip(g_values, states))
    n = max(1, len(g_values) * len(eta_values))
    return TheoryGrid(tuple(float(g) for g in g_values), tuple(float(e) for e in eta_values), labels, states,
                      (time.perf_counter() - t0) / n)


# --------------------------------------------------------------------------------------------------
# phase boundaries


@dataclasses.dataclass(frozen=True)
class StabilityBoundary:
    """A point where the stationary state changes stability as eta grows at fixed g.

    becomes_stable: True if the state is unstable below eta_boundary and stable above.
    freq_hz is the frequency of the critical mode there, rate_hz the stationary rate.
    """

    g: float
    eta: float
    freq_hz: float
    rate_hz: float
    becomes_stable: bool


def _refine_critical(g: float, eta0: float, freq0_hz: float, base: MeanFieldParams) -> tuple[float, float, float]:
    """Solve (*) on the imaginary axis for (eta, omega): F(i omega; eta) = 0, two real equations.

    Returns (eta, freq_hz, rate_hz); raises RuntimeError if it does not converge nearby.
    """
    from scipy import optimize

    def state(eta):
        pe = base.with_(g=g, eta=float(eta))
        fps = meanfield.fixed_points_hz(pe)
        return pe, fps

    # follow the fixed point closest to the one at eta0
    _, fps0 = state(eta0)
    target = [r for r in fps0 if r > 0]

    def rate_at(eta):
        pe, fps = state(eta)
        rr = [r for r in fps if r > 0] or [0.0]
        return pe, min(rr, key=lambda r: abs(r - target[0])) if target else rr[0]

    def resid(v):
        eta, w = v
        pe, r = rate_at(eta)
        z = characteristic_function(pe, r, complex(0.0, w))
        return [z.real, z.imag]

    try:
        sol, _info, ier, msg = optimize.fsolve(resid, [eta0, 2 * math.pi * freq0_hz], full_output=True, xtol=1e-10)
    except (ValueError, ZeroDivisionError, ArithmeticError) as e:  # wandered off to a state without input
        raise RuntimeError(f"critical point near g={g}, eta={eta0}: {e}") from e
    eta_c, w_c = float(sol[0]), float(sol[1])
    if ier != 1 or abs(eta_c - eta0) > 0.05 or not (0.5 * freq0_hz <= w_c / (2 * math.pi) <= 2.0 * freq0_hz):
        raise RuntimeError(f"critical point near g={g}, eta={eta0}, {freq0_hz} Hz did not converge: {msg}")
    return eta_c, w_c / (2 * math.pi), rate_at(eta_c)[1]


def hopf_boundary(g: float, eta_lo: float, eta_hi: float, base: MeanFieldParams | None = None, *,
                  tol: float = 1e-3, refine: bool = True) -> StabilityBoundary:
    """The eta in [eta_lo, eta_hi] where the stationary state changes stability.

    The bracket is bisected on StationaryState.stable down to `tol`; with `refine` the
    critical point is then solved exactly as a root (eta_c, omega_c) of
    F(i omega; eta) = 0 (Re lambda = 0), which is what freq_hz and eta report.

    Parameters
    ----------
    g : float
    eta_lo, eta_hi : float
        A bracket of the boundary (the state is stable at one end only).
    base : MeanFieldParams, optional
        Everything but g and eta.
    tol : float
        Absolute tolerance of the bisection in eta.
    refine : bool
        Solve for the exact critical point after bisection (falls back to the bisection
        estimate if that fails).

    Returns
    -------
    StabilityBoundary

    Raises
    ------
    ValueError
        If the state is stable at both ends of the bracket or at neither.
    """
    base = base or MeanFieldParams()
    s_lo = stationary_state(base.with_(g=g, eta=eta_lo)).stable
    s_hi = stationary_state(base.with_(g=g, eta=eta_hi)).stable
    if s_lo == s_hi:
        raise ValueError(f"g={g}: no change of stability between eta={eta_lo} and eta={eta_hi}")
    lo, hi = eta_lo, eta_hi
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if stationary_state(base.with_(g=g, eta=mid)).stable == s_lo:
            lo = mid
        else:
            hi = mid
    st_lo = stationary_state(base.with_(g=g, eta=lo))
    st_hi = stationary_state(base.with_(g=g, eta=hi))
    st_s, st_u = (st_lo, st_hi) if s_lo else (st_hi, st_lo)
    eta_c = 0.5 * (lo + hi)
    freq = 0.5 * (st_u.freq_hz + st_s.freq_hz)
    rate = st_s.rate_hz
    if refine and st_s.rate_hz is not None and st_s.rate_hz > 0 and math.isfinite(freq):
        try:
            eta_c, freq, rate = _refine_critical(float(g), eta_c, freq, base)
        except RuntimeError:
            pass
    return StabilityBoundary(float(g), float(eta_c), float(freq), float(rate), becomes_stable=not s_lo)


def phase_boundaries(g_values, eta_min: float, eta_max: float, base: MeanFieldParams | None = None, *,
                     n_eta: int = 15, tol: float = 1e-3) -> tuple[StabilityBoundary, ...]:
    """Per g, every eta in [eta_min, eta_max] where the stationary state changes stability.

    eta is scanned on n_eta points (linear) and each change of stability refined by
    :func:`hopf_boundary`. A band narrower than the scan step is missed: the slow
    instability of model A (eta ~ 0.85-0.9) is < 0.05 wide and needs a step of ~0.01.

    Parameters
    ----------
    g_values : sequence of float
        Relative strengths of inhibition g, one column of the phase diagram each.
    eta_min, eta_max : float
        The range of external drive eta scanned.
    base : MeanFieldParams, optional
        Everything but g and eta (default: Brunel's model A).
    n_eta : int
        Scan points in eta (each a stationary-state computation per g).
    tol : float
        Absolute tolerance in eta.

    Returns
    -------
    tuple of StabilityBoundary
        Sorted by g, then eta; empty where the stability does not change on the scan.
    """
    base = base or MeanFieldParams()
    out = []
    etas = np.linspace(eta_min, eta_max, n_eta)
    for g in g_values:
        stab = [stationary_state(base.with_(g=float(g), eta=float(e))).stable for e in etas]
        for k in range(len(etas) - 1):
            if stab[k] != stab[k + 1]:
                out.append(hopf_boundary(float(g), float(etas[k]), float(etas[k + 1]), base, tol=tol))
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# the SR edge and the slow band, from the eigenvalues


def _refine_critical_g(eta: float, g0: float, freq0_hz: float, base: MeanFieldParams) -> tuple[float, float, float]:
    """Solve (*) on the imaginary axis for (g, omega) at fixed eta: F(i omega; g) = 0.

    Returns (g, freq_hz, rate_hz); raises RuntimeError if it does not converge nearby.
    """
    from scipy import optimize

    def rate_at(g):
        pe = base.with_(g=float(g), eta=eta)
        return pe, max(meanfield.fixed_points_hz(pe))

    def resid(v):
        pe, r = rate_at(v[0])
        z = characteristic_function(pe, r, complex(0.0, v[1]))
        return [z.real, z.imag]

    try:
        sol, _info, ier, msg = optimize.fsolve(resid, [g0, 2 * math.pi * freq0_hz], full_output=True, xtol=1e-10)
    except (ValueError, ZeroDivisionError, ArithmeticError) as e:
        raise RuntimeError(f"SR edge near g={g0}, eta={eta}: {e}") from e
    g_c, w_c = float(sol[0]), float(sol[1])
    if ier != 1 or abs(g_c - g0) > 0.05 or not (0.7 * freq0_hz <= w_c / (2 * math.pi) <= 1.4 * freq0_hz):
        raise RuntimeError(f"SR edge near g={g0}, eta={eta}, {freq0_hz} Hz did not converge: {msg}")
    return g_c, w_c / (2 * math.pi), rate_at(g_c)[1]


def sr_edge(eta: float, base: MeanFieldParams | None = None, *, g_min: float = 2.0, g_max: float = 5.0,
            tol: float = 0.01) -> StabilityBoundary | None:
    """The SR edge at drive eta: the g above which the high-rate, mean-driven state is stable.

    A first guess from the mean field alone brackets it: the g where the state is
    DEEP_MEAN_DRIVEN_SIGMAS above threshold (always taken as SR) and the g where it is
    MEAN_DRIVEN_SIGMAS above (below that no SR); the eigenvalues then decide: bisection on
    StationaryState.stable to `tol`, and the critical point solved exactly as a root
    (g_c, omega_c) of F(i omega; g) = 0 at this eta.

    Parameters
    ----------
    eta : float
        The external drive.
    base : MeanFieldParams, optional
        Everything but g and eta (default: Brunel's model A).
    g_min, g_max : float
        Where to look.
    tol : float
        Bisection tolerance in g before the exact solve.

    Returns
    -------
    StabilityBoundary or None
        g, eta, the critical mode's frequency and the rate there (becomes_stable: True, as g
        grows); None if the state changes stability nowhere in the bracket.
    """
    from scipy import optimize

    base = base or MeanFieldParams()

    def sig(g):
        pe = base.with_(g=float(g), eta=float(eta))
        return sigmas_above_threshold(pe, max(meanfield.fixed_points_hz(pe)))

    def g_at(target):
        def f(g):
            return sig(g) - target
        if f(g_min) < 0 or f(g_max) > 0:
            return None
        return optimize.brentq(f, g_min, g_max, xtol=1e-4)

    lo, hi = g_at(DEEP_MEAN_DRIVEN_SIGMAS - 1e-6), g_at(MEAN_DRIVEN_SIGMAS)
    if hi is None:
        return None
    lo = g_min if lo is None else lo

    def stable(g):
        return stationary_state(base.with_(g=float(g), eta=float(eta))).stable

    if stable(lo) or not stable(hi):
        return None
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if stable(mid) else (mid, hi)
    st_u = stationary_state(base.with_(g=lo, eta=float(eta)))
    st_s = stationary_state(base.with_(g=hi, eta=float(eta)))
    g_c, freq, rate = 0.5 * (lo + hi), 0.5 * (st_u.freq_hz + st_s.freq_hz), st_s.rate_hz
    try:
        g_c, freq, rate = _refine_critical_g(float(eta), g_c, freq, base)
    except RuntimeError:
        pass
    return StabilityBoundary(float(g_c), float(eta), float(freq), float(rate), becomes_stable=True)


@dataclasses.dataclass(frozen=True)
class SlowBand:
    """Where the slow mode (~1/tau_m) is unstable at fixed g, and how close it comes elsewhere.

    boundaries: the eta where it loses / regains stability (pairs, ascending; empty if the
    mode stays stable); max_growth_per_s and eta_of_max: the largest Re lambda of the slow
    mode found and its eta; evaluations: eta values at which the mode was computed.
    """

    g: float
    boundaries: tuple[StabilityBoundary, ...]
    max_growth_per_s: float
    eta_of_max: float
    evaluations: int

    @property
    def exists(self) -> bool:
        """Whether the slow mode is unstable somewhere."""
        return bool(self.boundaries)


def _slow_root(p: MeanFieldParams, guess: complex | None) -> complex | None:
    """The slow mode's eigenvalue (freq < fast_slow_cut_hz) at p's positive fixed point,
    by a secant search from `guess` (else from the slow scan frequencies)."""
    fps = [r for r in meanfield.fixed_points_hz(p) if r > 0]
    if not fps:
        return None
    lin = _linearise(p, min(fps))
    def f(lam):
        return lin.open_loop(lam) - 1.0
    cut = 2 * math.pi * fast_slow_cut_hz(p.delay_ms)
    starts = [(guess, guess * 1.02 + 0.5)] if guess is not None else []
    starts += [(complex(0.0, 2 * math.pi * fr), complex(5.0, 2 * math.pi * fr * 1.03)) for fr in (20.0, 10.0, 35.0)]
    for z0, z1 in starts:
        try:
            r = _secant(f, z0, z1)
        except (ValueError, ZeroDivisionError):
            r = None
        if r is not None and 0.5 < abs(r.imag) < cut:
            return complex(r.real, abs(r.imag))
    return None


def slow_band(g: float, eta_lo: float = 0.75, eta_hi: float = 1.1, base: MeanFieldParams | None = None, *,
              step: float = 0.01, tol: float = 1e-5) -> SlowBand:
    """The slow instability at g, found with an adaptive step in eta.

    The slow mode's growth rate Re lambda(eta) is followed on a grid of `step`; around
    every local maximum of the samples its maximum is located (bounded scalar search to
    `tol`), so that a band much narrower than the step (Re lambda > 0 on 0.001 or less)
    is found; where the maximum is positive, its edges are solved with brentq on
    Re lambda = 0 (and reported with the mode's frequency there).

    Parameters
    ----------
    g : float
    eta_lo, eta_hi : float
        The range of eta searched.
    base : MeanFieldParams, optional
        Everything but g and eta.
    step : float
        The sampling step in eta.
    tol : float
        Tolerance in eta of the maximum and of the edges.

    Returns
    -------
    SlowBand
    """
    from scipy import optimize

    base = base or MeanFieldParams()
    count = [0]
    cache: dict = {}

    def root(eta, guess=None):
        key = round(float(eta), 12)
        if key not in cache:
            count[0] += 1
            cache[key] = _slow_root(base.with_(g=float(g), eta=float(eta)), guess)
        return cache[key]

    etas = np.arange(eta_lo, eta_hi + 1e-12, step)
    roots, guess = [], None
    for e in etas:  # followed upwards in eta, each search starting from the last root found ...
        r = root(e, guess)
        roots.append(r)
        guess = r if r is not None else guess
    def follow(e_to, e_from, r_from, depth=0):
        """The root at e_to, continued from r_from at e_from, halving the step where it is lost."""
        cache.pop(round(float(e_to), 12), None)
        r = root(e_to, r_from)
        if r is None and depth < 5:
            mid = 0.5 * (e_to + e_from)
            r_mid = follow(mid, e_from, r_from, depth + 1)
            if r_mid is not None:
                r = follow(e_to, mid, r_mid, depth + 1)
        return r

    for k in range(len(etas) - 2, -1, -1):  # ... and downwards where that found none (low rates:
        # the root moves fast into the left half plane as the rate drops)
        if roots[k] is None and roots[k + 1] is not None and roots[k + 1].real > -200.0:
            roots[k] = follow(etas[k], etas[k + 1], roots[k + 1])
    grow = np.array([r.real if r is not None else -np.inf for r in roots])
    # the samples plus the located maximum near every local maximum of the samples
    pts = [(float(e), float(x), r) for e, x, r in zip(etas, grow, roots)]
    best = (-math.inf, float("nan"))
    for k in range(len(etas)):
        left = grow[k - 1] if k > 0 else -np.inf
        right = grow[k + 1] if k + 1 < len(etas) else -np.inf
        if not (np.isfinite(grow[k]) and grow[k] >= left and grow[k] >= right):
            continue
        a, b = etas[max(k - 1, 0)], etas[min(k + 1, len(etas) - 1)]

        def neg(e, k=k):
            r = root(e, roots[k])
            return -r.real if r is not None else math.inf
        m = optimize.minimize_scalar(neg, bounds=(a, b), method="bounded", options={"xatol": tol})
        if -m.fun > grow[k]:
            pts.append((float(m.x), -float(m.fun), root(float(m.x), roots[k])))
    pts.sort(key=lambda t: t[0])
    for e, x, _ in pts:
        if x > best[0]:
            best = (x, e)
    bounds = []
    for (e0, x0, r0), (e1, x1, r1) in zip(pts, pts[1:]):
        # no slow root found (a near-silent state: the mode is far in the left half plane) counts as stable
        if (x0 > 0) == (x1 > 0):
            continue
        guess = r0 if x0 > 0 else r1  # follow the unstable side's root
        def fr(e, guess=guess):
            return root(e, guess).real if root(e, guess) is not None else -1.0
        e_c = optimize.brentq(fr, e0, e1, xtol=tol)
        r = root(e_c, guess)
        pe = base.with_(g=float(g), eta=float(e_c))
        bounds.append(StabilityBoundary(float(g), float(e_c), abs(r.imag) / (2 * math.pi) if r else math.nan,
                                        float(min(v for v in meanfield.fixed_points_hz(pe) if v > 0)),
                                        becomes_stable=x1 < 0))
    uniq = bounds
    return SlowBand(float(g), tuple(uniq), float(best[0]), float(best[1]), count[0])
