"""Amit-Brunel / Brunel (2000) mean-field theory: the stationary rate of the
sparse E-I network of LIF neurons with delta synapses (Siegert formula).

    mu      = C_E J tau (nu_ext + nu (1 - g gamma))
    sigma^2 = C_E J^2 tau (nu_ext + nu (1 + g^2 gamma)),   gamma = C_I / C_E
    1/nu    = tau_ref + tau sqrt(pi) int_{(V_r-mu)/sigma}^{(theta-mu)/sigma} e^{u^2} (1 + erf u) du

nu_ext is the external rate per excitatory synapse (eta * nu_thr), with
nu_thr = (V_th - E_L) / (J C_E tau). All voltages here are relative to rest
(theta_mv = V_th - E_L, v_reset_mv = V_reset - E_L). Pure functions: numbers
in, numbers out. The linear stability of these stationary states (and the
phase diagram) is in hpc_brunel.theory.stability.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import integrate, optimize, special


@dataclasses.dataclass(frozen=True)
class MeanFieldParams:
    """Parameters of Brunel's (2000) model A in the diffusion approximation.

    Voltages are relative to the resting potential E_L.
    """

    c_e: int = 1000
    c_i: int = 250
    j_mv: float = 0.1
    g: float = 5.0
    eta: float = 2.0
    tau_m_ms: float = 20.0
    t_ref_ms: float = 2.0
    theta_mv: float = 20.0  # V_th - E_L
    v_reset_mv: float = 10.0  # V_reset - E_L
    delay_ms: float = 1.5

    @classmethod
    def from_config(cls, cfg) -> MeanFieldParams:
        """Mean-field parameters of a :class:`hpc_brunel.config.RunConfig`.

        Parameters
        ----------
        cfg : hpc_brunel.config.RunConfig
            The run configuration; thresholds are taken relative to ``neuron.e_l_mv``.

        Returns
        -------
        MeanFieldParams
        """
        n, nu = cfg.network, cfg.neuron
        return cls(c_e=int(n.indegree_excitatory), c_i=int(n.indegree_inhibitory), j_mv=float(n.weight_mv),
                   g=float(n.relative_inhibition), eta=float(n.eta), tau_m_ms=float(nu.tau_m_ms),
                   t_ref_ms=float(nu.t_ref_ms), theta_mv=float(nu.v_threshold_mv - nu.e_l_mv),
                   v_reset_mv=float(nu.v_reset_mv - nu.e_l_mv), delay_ms=float(n.delay_ms))

    @property
    def gamma(self) -> float:
        """C_I / C_E."""
        return self.c_i / self.c_e

    @property
    def nu_thr_hz(self) -> float:
        """External rate per synapse that brings the mean input to threshold: theta / (J C_E tau_m)."""
        return 1000.0 * self.theta_mv / (self.j_mv * self.c_e * self.tau_m_ms)

    @property
    def nu_ext_hz(self) -> float:
        """External Poisson rate per excitatory-like synapse, eta * nu_thr."""
        return self.eta * self.nu_thr_hz

    @property
    def rate_max_hz(self) -> float:
        """Saturation rate 1 / t_ref (inf without a refractory period)."""
        return 1000.0 / self.t_ref_ms if self.t_ref_ms > 0 else math.inf

    def with_(self, **changes) -> MeanFieldParams:
        """A copy with some fields changed (``p.with_(g=6, eta=4)``)."""
        return dataclasses.replace(self, **changes)


def _integrand(u: float) -> float:
    # e^{u^2} (1 + erf u) = erfcx(-u), numerically stable for u << 0.
    return float(special.erfcx(-u))


def siegert_rate_hz(mu_mv: float, sigma_mv: float, *, tau_m_ms: float, t_ref_ms: float, v_th_mv: float,
                    v_reset_mv: float) -> float:
    """Output rate [Hz] of a LIF neuron under white-noise input with mean mu, sd sigma (voltages rel. to rest).

    The Siegert formula (module docstring); with sigma_mv <= 0 the deterministic limit
    (regular firing when mu_mv > v_th_mv, else 0).

    Parameters
    ----------
    mu_mv, sigma_mv : float
        Mean and standard deviation of the input, mV relative to rest.
    tau_m_ms, t_ref_ms : float
        Membrane time constant and refractory period, ms.
    v_th_mv, v_reset_mv : float
        Threshold and reset, mV relative to rest.

    Returns
    -------
    float
        The stationary rate in Hz (0.0 far below threshold, where it underflows).
    """
    if sigma_mv <= 0:
        # Deterministic limit: regular firing when mu > theta, else silence.
        if mu_mv <= v_th_mv:
            return 0.0
        t_ms = t_ref_ms + tau_m_ms * math.log((mu_mv - v_reset_mv) / (mu_mv - v_th_mv))
        return 1000.0 / t_ms
    y_th = (v_th_mv - mu_mv) / sigma_mv
    y_r = (v_reset_mv - mu_mv) / sigma_mv
    if y_th > 30:  # far below threshold: rate underflows
        return 0.0
    val, _ = integrate.quad(_integrand, y_r, y_th, limit=200)
    t_ms = t_ref_ms + tau_m_ms * math.sqrt(math.pi) * val
    return 1000.0 / t_ms


def input_moments(nu_hz: float, *, nu_ext_hz: float, c_e: int, c_i: int, j_mv: float, g: float,
                  tau_m_ms: float) -> tuple[float, float]:
    """Mean mu [mV] and standard deviation sigma [mV] of the input at network rate nu_hz.

    Parameters
    ----------
    nu_hz : float
        Rate of every neuron of the network, Hz.
    nu_ext_hz : float
        External Poisson rate per excitatory synapse, Hz.
    c_e, c_i : int
        Excitatory and inhibitory in-degrees.
    j_mv : float
        Excitatory weight, mV (inhibitory: -g j_mv).
    g : float
        Relative strength of inhibition.
    tau_m_ms : float
        Membrane time constant, ms.

    Returns
    -------
    (mu_mv, sigma_mv) : tuple of float
    """
    gamma = c_i / c_e
    tau_s = tau_m_ms / 1000.0
    mu = c_e * j_mv * tau_s * (nu_ext_hz + nu_hz * (1.0 - g * gamma))
    var = c_e * j_mv**2 * tau_s * (nu_ext_hz + nu_hz * (1.0 + g * g * gamma))
    return mu, math.sqrt(max(var, 0.0))


def moments_for(p: MeanFieldParams, nu_hz: float) -> tuple[float, float]:
    """Mean and standard deviation [mV] of the input of a neuron of the network `p` at rate nu_hz.

    Parameters
    ----------
    p : MeanFieldParams
    nu_hz : float
        Network rate (all neurons alike).

    Returns
    -------
    (mu_mv, sigma_mv) : tuple of float
    """
    return input_moments(nu_hz, nu_ext_hz=p.nu_ext_hz, c_e=p.c_e, c_i=p.c_i, j_mv=p.j_mv, g=p.g,
                         tau_m_ms=p.tau_m_ms)


def transfer_rate_hz(p: MeanFieldParams, nu_hz: float) -> float:
    """phi(nu): the output rate of one neuron when all its inputs fire at nu_hz.

    Parameters
    ----------
    p : MeanFieldParams
    nu_hz : float

    Returns
    -------
    float
        Siegert rate in Hz.
    """
    mu, sigma = moments_for(p, nu_hz)
    return siegert_rate_hz(mu, sigma, tau_m_ms=p.tau_m_ms, t_ref_ms=p.t_ref_ms, v_th_mv=p.theta_mv,
                           v_reset_mv=p.v_reset_mv)


def fixed_points_hz(p: MeanFieldParams, *, n_scan: int = 400) -> tuple[float, ...]:
    """All self-consistent stationary rates nu = phi(nu) on [0, 1/t_ref), ascending.

    The interval is scanned on a grid that is dense at low rates (geometric from
    1e-6 Hz) and linear up to 1/t_ref, and each sign change of phi(nu) - nu is
    refined with brentq (to 1e-9 Hz: a rate that small comes back as 0.0). nu = 0 is
    an exact fixed point only without external drive.

    Parameters
    ----------
    p : MeanFieldParams
    n_scan : int
        Number of scan points (each a Siegert evaluation).

    Returns
    -------
    tuple of float
        The fixed points in Hz.
    """
    nu_max = p.rate_max_hz if math.isfinite(p.rate_max_hz) else 1e4
    f = lambda nu: transfer_rate_hz(p, nu) - nu
    f0 = f(0.0)
    if f0 <= 0.0:
        out = [0.0]
    else:
        out = []
    grid = np.unique(np.concatenate([np.geomspace(1e-6, 1.0, n_scan // 4),
                                     np.linspace(1.0, nu_max * (1 - 1e-9), n_scan - n_scan // 4)]))
    prev_nu, prev_f = 0.0, f0
    for nu in grid:
        fv = f(nu)
        if fv == 0.0:
            out.append(float(nu))
        elif prev_f != 0.0 and (fv > 0) != (prev_f > 0) and not (prev_nu == 0.0 and f0 <= 0.0):
            out.append(float(optimize.brentq(f, prev_nu, nu, xtol=1e-9, rtol=1e-12)))
        prev_nu, prev_f = nu, fv
    return tuple(sorted(set(out)))


def stationary_rate_hz(*, c_e: int, c_i: int, j_mv: float, g: float, eta: float, tau_m_ms: float,
                       t_ref_ms: float, v_th_mv: float, v_reset_mv: float) -> float:
    """Self-consistent stationary rate nu = phi(mu(nu), sigma(nu)), by a bracketing root finder.

    One root (the one brentq finds on [0, 1/t_ref)), without a word on its stability:
    see :func:`fixed_points_hz` for all of them and :mod:`hpc_brunel.theory.stability`
    for which is stable. v_th_mv and v_reset_mv are relative to rest (V_th - E_L,
    V_reset - E_L), and nu_thr = v_th_mv / (J C_E tau_m) uses that relative threshold.

    Parameters
    ----------
    c_e, c_i : int
        Excitatory and inhibitory in-degrees C_E, C_I.
    j_mv : float
        Excitatory weight J, mV.
    g : float
        Relative strength of inhibition.
    eta : float
        External drive nu_ext / nu_thr.
    tau_m_ms, t_ref_ms : float
        Membrane time constant and refractory period, ms.
    v_th_mv, v_reset_mv : float
        Threshold and reset, mV relative to rest.

    Returns
    -------
    float
        The rate in Hz: 0.0 when phi(0) <= 0 (no drive), just below 1/t_ref when
        phi stays above nu up to saturation.
    """
    nu_thr_hz = 1000.0 * v_th_mv / (c_e * j_mv * tau_m_ms)
    nu_ext_hz = eta * nu_thr_hz
    kw = {"tau_m_ms": tau_m_ms, "t_ref_ms": t_ref_ms, "v_th_mv": v_th_mv, "v_reset_mv": v_reset_mv}

    def f(nu):
        mu, sigma = input_moments(nu, nu_ext_hz=nu_ext_hz, c_e=c_e, c_i=c_i, j_mv=j_mv, g=g, tau_m_ms=tau_m_ms)
        return siegert_rate_hz(mu, sigma, **kw) - nu

    nu_max = 1000.0 / t_ref_ms if t_ref_ms > 0 else 1e4
    lo, hi = 0.0, nu_max * (1 - 1e-9)
    if f(lo) <= 0:
        return 0.0
    if f(hi) >= 0:
        return hi
    return float(optimize.brentq(f, lo, hi, xtol=1e-6, rtol=1e-10))


def stationary_rate_for_config(cfg) -> float:
    """:func:`stationary_rate_hz` for a RunConfig (thresholds relative to neuron.e_l_mv).

    Parameters
    ----------
    cfg : hpc_brunel.config.RunConfig

    Returns
    -------
    float
        The stationary rate in Hz.
    """
    n, nu = cfg.network, cfg.neuron
    # A constant current I_e adds I_e tau_m / C_m to the mean input: the same as
    # lowering threshold and reset by that much.
    dc_mv = getattr(nu, "i_e_pa", 0.0) * nu.tau_m_ms / nu.c_m_pf
    return stationary_rate_hz(c_e=n.indegree_excitatory, c_i=n.indegree_inhibitory, j_mv=n.weight_mv,
                              g=n.relative_inhibition, eta=n.eta, tau_m_ms=nu.tau_m_ms, t_ref_ms=nu.t_ref_ms,
                              v_th_mv=nu.v_threshold_mv - nu.e_l_mv - dc_mv,
                              v_reset_mv=nu.v_reset_mv - nu.e_l_mv - dc_mv)
