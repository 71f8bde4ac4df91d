"""hpc_brunel.theory.meanfield (pure Python, no NEST): the stationary rates of Brunel's (2000)
model A checked against an independent implementation, the Neuronal Network Meanfield Toolbox
(nnmt.lif.delta, via conftest.nnmt_rate_hz), instead of pinned numbers."""
import pytest
from conftest import nnmt_rate_hz

from hpc_brunel import config
from hpc_brunel.theory import meanfield, stability
from hpc_brunel.theory.meanfield import MeanFieldParams

REL = 1e-6  # both solve nu = phi(nu) to better than this (brentq here, an ODE to 1e-12 Hz steps in nnmt)

SHIFTED_REST = {"e_l_mv": -70.0, "v_threshold_mv": -50.0, "v_reset_mv": -60.0, "v_init_mv": -70.0}


def cfg_at(g=None, eta=None, regime=None, neuron=None, network=None):
    """A RunConfig: the defaults, a preset, and/or (g, eta) and other neuron/network values."""
    net = dict(network or {})
    if g is not None:
        net["relative_inhibition"] = g
    if eta is not None:
        net["eta"] = eta
    overrides = [o for o in ({"network": net} if net else None, {"neuron": neuron} if neuron else None) if o]
    return config.resolve(overrides=overrides, regime=regime)


# The four presets of Brunel's Fig. 8, the held-out validation points (analysis/regime_validation.py),
# a low-rate point near the slow band, E_L != 0, another reset, and other neuron and network constants.
POINTS = {
    **{f"preset-{r}": cfg_at(regime=r) for r in config.PRESETS},
    "g6-eta2": cfg_at(6.0, 2.0),
    "g8-eta3.5": cfg_at(8.0, 3.5),
    "g6-eta0.87": cfg_at(6.0, 0.87),
    "g4-eta1.5": cfg_at(4.0, 1.5),
    "ai-rest-70": cfg_at(neuron=SHIFTED_REST),
    "si-slow-rest-70": cfg_at(regime="si-slow", neuron=SHIFTED_REST),
    "ai-reset0": cfg_at(neuron={"v_reset_mv": 0.0}),
    "other-constants": cfg_at(5.5, 1.5, neuron={"tau_m_ms": 10.0, "t_ref_ms": 1.0, "v_reset_mv": 5.0},
                              network={"weight_mv": 0.2, "indegree_excitatory": 400, "indegree_inhibitory": 100}),
}


def test_the_points_cover_the_presets_and_a_shifted_rest():
    assert set(config.PRESETS) <= {k.removeprefix("preset-") for k in POINTS}
    assert POINTS["ai-rest-70"].neuron.e_l_mv == -70.0 and POINTS["ai-rest-70"].neuron.v_threshold_mv == -50.0


@pytest.mark.parametrize("name", list(POINTS))
def test_stationary_rate_matches_nnmt(name):
    cfg = POINTS[name]
    ref = nnmt_rate_hz(cfg)
    assert ref > 1.0  # a rate of 1e-6 Hz could agree with anything
    assert meanfield.stationary_rate_for_config(cfg) == pytest.approx(ref, rel=REL)
    # the one self-consistent state (nnmt's ODE finds a stable one; with one root both are the same)
    (nu,) = meanfield.fixed_points_hz(MeanFieldParams.from_config(cfg))
    assert nu == pytest.approx(ref, rel=REL)


@pytest.mark.parametrize("name", list(POINTS))
def test_stationary_state_rate_matches_nnmt(name):
    cfg = POINTS[name]
    st = stability.stationary_state_for_config(cfg)
    if st.stable:
        assert st.rate_hz == pytest.approx(nnmt_rate_hz(cfg), rel=REL)
    else:
        assert st.rate_hz is None
    assert st.state_rate_hz == pytest.approx(nnmt_rate_hz(cfg), rel=REL)


def test_stable_and_unstable_points_are_both_compared():
    stable = {n: stability.stationary_state_for_config(c).stable for n, c in POINTS.items()}
    assert stable["preset-ai"] and stable["ai-rest-70"] and not stable["preset-si-fast"], stable


@pytest.mark.parametrize("mu_mv, sigma_mv", [(25.0, 2.0), (30.0, 5.0), (15.0, 5.0), (19.0, 1.0), (12.0, 4.0),
                                             (5.0, 3.0), (22.0, 0.3)])
def test_siegert_formula_matches_nnmt(mu_mv, sigma_mv):
    """The transfer function itself, in nnmt's three domains (threshold below, around, above mu)."""
    delta = pytest.importorskip("nnmt.lif.delta")
    ref = delta._firing_rates_for_given_input(mu_mv * 1e-3, sigma_mv * 1e-3, 10e-3, 20e-3, 20e-3, 2e-3)
    ours = meanfield.siegert_rate_hz(mu_mv, sigma_mv, tau_m_ms=20.0, t_ref_ms=2.0, v_th_mv=20.0, v_reset_mv=10.0)
    assert ours == pytest.approx(ref, rel=1e-9)


def test_fixed_points_all_roots_and_no_drive():
    p = MeanFieldParams(g=0.0, eta=0.5)  # pure excitation: low, middle (unstable) and saturated states
    fps = meanfield.fixed_points_hz(p)
    assert len(fps) == 3 and fps == tuple(sorted(fps))
    for nu in fps:
        assert meanfield.transfer_rate_hz(p, nu) == pytest.approx(nu, rel=1e-6, abs=1e-9)
    # the lowest (0 Hz to 1e-9) is the one nnmt's rate dynamics, started at 0 Hz, settles in
    assert fps[0] == pytest.approx(nnmt_rate_hz(cfg_at(0.0, 0.5)), abs=1e-9)
    assert meanfield.fixed_points_hz(MeanFieldParams(eta=0.0))[0] == 0.0


def test_stationary_rate_is_a_fixed_point_and_zero_without_drive():
    kw = {"tau_m_ms": 20.0, "t_ref_ms": 2.0, "v_th_mv": 20.0, "v_reset_mv": 10.0}
    nu = meanfield.stationary_rate_hz(c_e=1000, c_i=250, j_mv=0.1, g=5.0, eta=2.0, **kw)
    mu, sigma = meanfield.input_moments(nu, nu_ext_hz=20.0, c_e=1000, c_i=250, j_mv=0.1, g=5.0, tau_m_ms=20.0)
    assert meanfield.siegert_rate_hz(mu, sigma, **kw) == pytest.approx(nu, rel=1e-6)
    assert meanfield.stationary_rate_hz(c_e=1000, c_i=250, j_mv=0.1, g=5.0, eta=0.0, **kw) == 0.0


def test_nu_thr_relative_to_rest_and_from_config():
    base = config.RunConfig()
    shifted = config.RunConfig(neuron=config.NeuronConfig(**SHIFTED_REST))
    p0, p1 = MeanFieldParams.from_config(base), MeanFieldParams.from_config(shifted)
    assert p0 == p1 == MeanFieldParams()
    assert p1.nu_thr_hz == pytest.approx(10.0)  # 20 mV / (0.1 mV * 1000 * 20 ms)
    assert meanfield.stationary_rate_for_config(shifted) == pytest.approx(meanfield.stationary_rate_for_config(base))
    assert stability.stationary_state_for_config(shifted) == stability.stationary_state_for_config(base)


def test_from_config_takes_every_constant():
    cfg = POINTS["other-constants"]
    p = MeanFieldParams.from_config(cfg)
    assert (p.c_e, p.c_i, p.j_mv, p.g, p.eta, p.tau_m_ms, p.t_ref_ms, p.theta_mv, p.v_reset_mv) == (
        400, 100, 0.2, 5.5, 1.5, 10.0, 1.0, 20.0, 5.0)
    assert p.nu_thr_hz == pytest.approx(cfg.nu_threshold_hz)
