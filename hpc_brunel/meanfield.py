"""Amit-Brunel / Brunel (2000) mean-field theory: the stationary rate of the
sparse E-I network of LIF neurons with delta synapses (Siegert formula).

    mu      = C_E J tau (nu_ext + nu (1 - g gamma))
    sigma^2 = C_E J^2 tau (nu_ext + nu (1 + g^2 gamma)),   gamma = C_I / C_E
    1/nu    = tau_ref + tau sqrt(pi) int_{(V_r-mu)/sigma}^{(theta-mu)/sigma} e^{u^2} (1 + erf u) du

nu_ext is the external rate per excitatory synapse (eta * nu_thr). Pure
functions: numbers in, numbers out.
"""
from __future__ import annotations

import math

from scipy import integrate, optimize, special


def _integrand(u: float) -> float:
    # e^{u^2} (1 + erf u) = erfcx(-u), numerically stable for u << 0.
    return float(special.erfcx(-u))


def siegert_rate_hz(mu_mv: float, sigma_mv: float, *, tau_m_ms: float, t_ref_ms: float, v_th_mv: float,
                    v_reset_mv: float) -> float:
    """Output rate of a LIF neuron under white-noise input with mean mu, sd sigma."""
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
    gamma = c_i / c_e
    tau_s = tau_m_ms / 1000.0
    mu = c_e * j_mv * tau_s * (nu_ext_hz + nu_hz * (1.0 - g * gamma))
    var = c_e * j_mv**2 * tau_s * (nu_ext_hz + nu_hz * (1.0 + g * g * gamma))
    return mu, math.sqrt(max(var, 0.0))


def stationary_rate_hz(*, c_e: int, c_i: int, j_mv: float, g: float, eta: float, tau_m_ms: float,
                       t_ref_ms: float, v_th_mv: float, v_reset_mv: float) -> float:
    """Self-consistent stationary rate nu = phi(mu(nu), sigma(nu)), by a bracketing root finder."""
    nu_thr_hz = 1000.0 * v_th_mv / (c_e * j_mv * tau_m_ms)
    nu_ext_hz = eta * nu_thr_hz
    kw = dict(tau_m_ms=tau_m_ms, t_ref_ms=t_ref_ms, v_th_mv=v_th_mv, v_reset_mv=v_reset_mv)

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
    n, nu = cfg.network, cfg.neuron
    return stationary_rate_hz(c_e=n.indegree_excitatory, c_i=n.indegree_inhibitory, j_mv=n.weight_mv,
                              g=n.relative_inhibition, eta=n.eta, tau_m_ms=nu.tau_m_ms, t_ref_ms=nu.t_ref_ms,
                              v_th_mv=nu.v_threshold_mv - nu.e_l_mv, v_reset_mv=nu.v_reset_mv - nu.e_l_mv)
