"""Configuration: defaults, TOML round trip, overrides, presets and validation (pure Python)."""
import dataclasses

import pytest
from conftest import ROOT

from hpc_brunel import config as C
from hpc_brunel.errors import ConfigError


def test_defaults_are_the_papers_full_network():
    cfg = C.RunConfig()
    n = cfg.network
    assert (n.n_excitatory, n.n_inhibitory, n.indegree_excitatory, n.indegree_inhibitory) == (10000, 2500, 1000, 250)
    assert (n.weight_mv, n.relative_inhibition, n.delay_ms, n.eta) == (0.1, 5.0, 1.5, 2.0)
    nu = cfg.neuron
    assert (nu.v_threshold_mv, nu.v_reset_mv, nu.t_ref_ms, nu.tau_m_ms, nu.c_m_pf, nu.e_l_mv, nu.v_init_mv) == (
        20.0, 10.0, 2.0, 20.0, 1.0, 0.0, 0.0)
    assert cfg.simulation.resolution_ms == 0.1 and cfg.simulation.t_sim_ms == 1000.0
    # eta * V_th / (J tau_m) per ms = 2 * 20 / (0.1 * 20) = 20 per ms = 20 kHz
    assert cfg.poisson_rate_hz == pytest.approx(20000.0)
    assert cfg.nu_threshold_hz == pytest.approx(10.0)


def test_toml_round_trip(tmp_path):
    cfg = C.resolve(overrides=[{"network": {"relative_inhibition": 4.5}}, {"simulation": {"rng_seed": 7}}])
    p = tmp_path / "c.toml"
    p.write_text(cfg.to_toml())
    assert C.load_toml(p) == cfg


def test_override_parsing_and_precedence(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[network]\neta = 3.0\nrelative_inhibition = 6\n")
    cfg = C.resolve(str(p), [C.parse_override("network.eta=1.5")], regime="sr")
    assert cfg.network.eta == 1.5  # CLI beats preset and file
    assert cfg.network.relative_inhibition == 3.0  # an explicit preset beats the file
    assert C.resolve(str(p)).network.relative_inhibition == 6.0  # file beats defaults
    assert isinstance(cfg.network.relative_inhibition, float)


@pytest.mark.parametrize("regime,g,eta", [("sr", 3, 2), ("si-fast", 6, 4), ("ai", 5, 2), ("si-slow", 4.5, 0.9)])
def test_regime_presets(regime, g, eta):
    cfg = C.resolve(regime=regime)
    assert (cfg.network.relative_inhibition, cfg.network.eta) == (g, eta)
    assert cfg.network.n_excitatory == 10000


def test_config_files_match_the_presets():
    """configs/regime-<name>.toml (used by the full-size runs, tests/system) is the preset of that name."""
    files = sorted((ROOT / "configs").glob("regime-*.toml"))
    assert sorted(p.stem.removeprefix("regime-") for p in files) == sorted(C.PRESETS)
    for p in files:
        assert C.resolve(str(p)) == C.resolve(regime=p.stem.removeprefix("regime-")), p.name


BAD = [
    ("network.n_excitatory=0", "network.n_excitatory"),
    ("network.n_inhibitory=-5", "network.n_inhibitory"),
    ("network.indegree_excitatory=20000", "network.indegree_excitatory"),
    ("network.indegree_inhibitory=3000", "network.indegree_inhibitory"),
    ("network.delay_ms=0.05", "network.delay_ms"),
    ("network.delay_ms=1.55", "network.delay_ms"),
    ("simulation.chunk_ms=33.33", "simulation.chunk_ms"),
    ("simulation.t_sim_ms=-1", "simulation.t_sim_ms"),
    ("simulation.resolution_ms=0", "simulation.resolution_ms"),
    ("simulation.threads_per_rank=-1", "simulation.threads_per_rank"),
    ("network.weight_mv=nan", "network.weight_mv"),
    ("network.eta=inf", "network.eta"),
    ('network.eta="two"', "network.eta"),
    ("network.n_excitatory=1.5", "network.n_excitatory"),
    ("network.relative_inhibition=-1", "network.relative_inhibition"),
    ("neuron.v_reset_mv=25", "neuron.v_reset_mv"),
    ("neuron.tau_m_ms=0", "neuron.tau_m_ms"),
    ("network.indegre_excitatory=5", "indegre_excitatory"),
    ("networks.eta=2", "networks"),
    ("simulation.rng_seed=0", "simulation.rng_seed"),
    ("recording.n_record_per_population=5000", "recording.n_record_per_population"),
    ("analysis.t_transient_ms=5000", "analysis.t_transient_ms"),
    ('network.synapse_model="stdp_synapse"', "network.synapse_model"),
]


@pytest.mark.parametrize("assignment,name", BAD)
def test_bad_values_name_the_parameter(assignment, name):
    with pytest.raises(ConfigError) as e:
        C.resolve(overrides=[C.parse_override(assignment)])
    msg = str(e.value)
    assert name in msg and "\n" not in msg


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match="did you mean 'indegree_excitatory'"):
        C.resolve(overrides=[C.parse_override("network.indegre_excitatory=5")])


def test_malformed_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[network\neta = 2\n")
    with pytest.raises(ConfigError, match="malformed TOML"):
        C.load_toml(p)


def test_unknown_regime():
    with pytest.raises(ConfigError, match="allowed: sr, si-fast, ai, si-slow"):
        C.resolve(regime="chaos")


def test_config_is_immutable():
    cfg = C.RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.network.eta = 3.0


def test_kernel_section_round_trip_and_override(tmp_path):
    p = tmp_path / "k.toml"
    p.write_text("[kernel]\nkeep_source_table = false\nupdate_time_limit = 120\nbuffer_size_spike_data = 4096\n")
    cfg = C.resolve(str(p), [C.parse_override("kernel.use_compressed_spikes=false")])
    assert cfg.kernel == {"keep_source_table": False, "update_time_limit": 120.0, "buffer_size_spike_data": 4096,
                          "use_compressed_spikes": False}
    assert isinstance(cfg.kernel["update_time_limit"], float)
    q = tmp_path / "resolved.toml"
    q.write_text(cfg.to_toml())
    assert C.load_toml(q) == cfg
    assert C.resolve().kernel == {}  # nothing set: NEST's defaults
    assert C.from_dict(cfg.to_dict()).kernel == cfg.kernel  # run.json's config reads back


@pytest.mark.parametrize("toml,needle", [
    ("[kernel]\nkeep_source_tabel = false\n", "unknown NEST kernel setting 'kernel.keep_source_tabel' (did you mean "
                                             "'keep_source_table'?)"),
    ("[kernel]\nresolution = 0.05\n", "kernel.resolution: set by hpc_brunel, not in [kernel]; use "
                                      "simulation.resolution_ms"),
    ("[kernel]\nlocal_num_threads = 4\n", "use --threads"),
    ("[kernel]\nkeep_source_table = 0\n", "kernel.keep_source_table = 0: must be true or false"),
    ("[kernel]\nbuffer_size_spike_data = 2.5\n", "must be an integer"),
    ("[kernel]\nupdate_time_limit = -1\n", "kernel.update_time_limit = -1.0 is out of range"),
    ("[kernel]\nnum_connections = 5\n", "unknown NEST kernel setting"),  # read-only in NEST
])
def test_bad_kernel_settings_one_line(tmp_path, toml, needle):
    p = tmp_path / "k.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError) as e:
        C.resolve(str(p))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_threshold_rate_is_relative_to_rest():
    """nu_thr = (V_th - E_L) / (J C_E tau_m): the same network written with a resting
    potential of -70 mV has the same drive (and the same mean field) as with E_L = 0."""
    from hpc_brunel.theory import meanfield

    shifted = C.resolve(overrides=[{"neuron": {"e_l_mv": -70.0, "v_threshold_mv": -50.0, "v_reset_mv": -60.0,
                                               "v_init_mv": -70.0}}])
    base = C.RunConfig()
    assert shifted.nu_threshold_hz == pytest.approx(10.0) == base.nu_threshold_hz
    assert shifted.poisson_rate_hz == pytest.approx(20000.0)
    assert meanfield.stationary_rate_for_config(shifted) == pytest.approx(
        meanfield.stationary_rate_for_config(base), rel=1e-9)
    # a threshold only 10 mV above rest halves the threshold rate
    half = C.resolve(overrides=[{"neuron": {"e_l_mv": 10.0, "v_reset_mv": 15.0, "v_init_mv": 10.0}}])
    assert half.nu_threshold_hz == pytest.approx(5.0)


def test_initial_state_options():
    assert C.RunConfig().neuron.v_init_distribution == "fixed"
    cfg = C.resolve(overrides=[C.parse_override("neuron.v_init_distribution=uniform")])
    assert cfg.neuron.v_init_distribution == "uniform"
    with pytest.raises(ConfigError, match=r"neuron\.v_init_distribution.*fixed.*uniform"):
        C.resolve(overrides=[C.parse_override("neuron.v_init_distribution=normal")])


def test_schema_version_1_is_read_where_it_means_the_same():
    v1 = {"schema_version": 1, "network": {"eta": 3.0}}
    assert C.from_dict(v1).network.eta == 3.0  # E_L = 0: the drive is the same in both versions
    with pytest.raises(ConfigError, match=r"schema_version = 1 with neuron\.e_l_mv = -70"):
        C.from_dict({"schema_version": 1, "neuron": {"e_l_mv": -70.0, "v_threshold_mv": -50.0}})
    with pytest.raises(ConfigError, match="schema_version = 7"):
        C.from_dict({"schema_version": 7})


def test_uniform_start_ignores_the_fixed_value():
    cfg = C.resolve(overrides=[{"neuron": {"e_l_mv": -70.0, "v_threshold_mv": -50.0, "v_reset_mv": -60.0,
                                           "v_init_distribution": "uniform"}}])
    assert cfg.neuron.v_init_mv == 0.0  # not used: V_m(0) ~ U(E_L, V_th)


def test_every_static_synapse_is_a_network_synapse_model_and_lean_is_one_of_them():
    for model in C.SYNAPSE_MODELS:
        assert C.resolve(overrides=[{"network": {"synapse_model": model}}]).network.synapse_model == model
    assert C.RunConfig().network.synapse_model == C.DEFAULT_SYNAPSE_MODEL
    assert {C.DEFAULT_SYNAPSE_MODEL, C.LEAN_SYNAPSE_MODEL} <= set(C.SYNAPSE_MODELS)
    assert C.DEFAULT_SYNAPSE_MODEL != C.LEAN_SYNAPSE_MODEL
    with pytest.raises(ConfigError) as e:
        C.resolve(overrides=[{"network": {"synapse_model": "static_synapse_lbl"}}])
    assert all(m in str(e.value) for m in C.SYNAPSE_MODELS)
