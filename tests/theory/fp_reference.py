"""An independent linear-stability solver for Brunel's (2000) model A, for the tests: nothing of
hpc_brunel is used. The LIF neuron's stationary rate and its linear response are computed by
threshold integration of the (linearised) Fokker-Planck equation (Richardson 2007, Phys Rev E
76:021919) on a voltage grid, not from the parabolic-cylinder formulas of
hpc_brunel.theory.stability; the network's mean and variance are Brunel's eqs. (4)-(5) written
out here again. Units: mV, Hz, s."""
import math

import numpy as np
from scipy import optimize

TAU_MS, TREF_MS, THETA, VR = 20.0, 2.0, 20.0, 10.0
C_E, GAMMA, J_MV = 1000, 0.25, 0.1


def _grid(mu, sigma, n):
    """About n steps from threshold down to min(V_r, mu) - 8 sigma, with V_r on a grid node, so that
    the result is a smooth function of mu and sigma (a reset moving between nodes made it jump)."""
    low = min(VR, mu) - 8 * sigma
    k_r = max(1, round(n * (THETA - VR) / (THETA - low)))
    d = (THETA - VR) / k_r
    m = int(math.ceil((THETA - low) / d))
    return THETA - d * np.arange(m + 1), d


def stationary_density(mu, sigma, n=6000):
    """(v, P0 for unit flux, nu0): P0 integrated from threshold down, nu0 from its normalisation."""
    tau, tref = TAU_MS / 1000, TREF_MS / 1000
    s2 = sigma * sigma
    v, d = _grid(mu, sigma, n)
    p0 = np.zeros(len(v))
    for k in range(len(v) - 1):
        vm = 0.5 * (v[k] + v[k + 1])
        g = 2 * (mu - vm) / s2
        h = 2 * tau * float(vm > VR) / s2
        e = math.exp(-g * d)
        p0[k + 1] = e * p0[k] + h / g * (1 - e)
    nu0 = 1.0 / (np.trapezoid(p0[::-1], v[::-1]) + tref)
    return v, p0, nu0


def susceptibility(lam, mu, sigma, n=6000):
    """(nu0, A_mu, A_var) at complex frequency lam [1/s]: the rate's response to mean (Hz/mV)
    and variance (Hz/mV^2) modulations e^{lam t}, by threshold integration of the linearised
    equation for the three sources (rate, mean, variance) and J1 -> 0 far below."""
    tau, tref = TAU_MS / 1000, TREF_MS / 1000
    s2 = sigma * sigma
    v, p0, nu0 = stationary_density(mu, sigma, n)
    d = v[0] - v[1]
    n = len(v) - 1
    p0 = p0 * nu0
    j0 = (v > VR).astype(float)
    dp0 = 2 * (mu - v) * p0 / s2 - 2 * tau * nu0 * j0 / s2
    res = []
    for comp in range(3):
        pp, jj = 0j, (1.0 + 0j if comp == 0 else 0j)
        mu1, s1 = float(comp == 1), float(comp == 2)
        src = 2 / s2 * (mu1 * p0 - 0.5 * s1 * dp0)
        for k in range(n):
            g = 2 * (mu - 0.5 * (v[k] + v[k + 1])) / s2
            hm = 2 * tau * jj / s2 - 0.5 * (src[k] + src[k + 1])
            e = math.exp(-g * d)
            pn = e * pp + hm / g * (1 - e)
            jn = jj + lam * d * 0.5 * (pp + pn)
            if comp == 0 and v[k] > VR >= v[k + 1]:
                jn -= np.exp(-lam * tref)
            pp, jj = pn, jn
        res.append(jj)
    return nu0, -res[1] / res[0], -res[2] / res[0]


def moments(nu, g, eta):
    """Brunel (2000) eqs. (4)-(5): mean and sd [mV] of the input at rate nu [Hz]."""
    tau = TAU_MS / 1000
    nu_thr = THETA / (J_MV * C_E * tau)
    mu = C_E * J_MV * tau * (eta * nu_thr + nu * (1 - g * GAMMA))
    var = C_E * J_MV**2 * tau * (eta * nu_thr + nu * (1 + g * g * GAMMA))
    return mu, math.sqrt(var)


def rate(g, eta, n=6000, hi=499.0):
    """The highest self-consistent stationary rate nu = phi(mu(nu), sigma(nu)) [Hz]."""
    def f(nu):
        return stationary_density(*moments(nu, g, eta), n)[2] - nu
    return optimize.brentq(f, 1e-6, hi, xtol=1e-10)


def loop_gain(lam, g, eta, delay_ms=1.5, n=6000):
    """e^{-lam D} (dmu/dnu A_mu + dsigma^2/dnu A_var) at the stationary state: 1 at an eigenvalue."""
    tau = TAU_MS / 1000
    nu = rate(g, eta, n)
    mu, sigma = moments(nu, g, eta)
    _, a_mu, a_var = susceptibility(lam, mu, sigma, n)
    return np.exp(-lam * delay_ms / 1000) * (C_E * J_MV * tau * (1 - g * GAMMA) * a_mu
                                             + C_E * J_MV**2 * tau * (1 + g * g * GAMMA) * a_var)


def critical_point(g, eta, freq_hz, vary, n=6000):
    """Solve loop_gain(2 pi i f) = 1 for (vary, f) from the given start; vary is "eta" or "g".
    Returns (g, eta, f)."""
    scale = 100.0  # solve for f / 100 Hz: both unknowns of order 1

    def resid(x):
        gg, ee = (x[0], eta) if vary == "g" else (g, x[0])
        z = loop_gain(2j * math.pi * scale * x[1], gg, ee, n=n) - 1
        return [z.real, z.imag]

    x0 = [g if vary == "g" else eta, freq_hz / scale]
    sol, info, ier, msg = optimize.fsolve(resid, x0, full_output=True, xtol=1e-10)
    assert ier == 1 or max(abs(v) for v in info["fvec"]) < 1e-9, msg
    f = scale * sol[1]
    return (sol[0], eta, f) if vary == "g" else (g, sol[0], f)
