"""Run configuration: typed dataclasses with a unit in every name, TOML in and out,
CLI overrides, regime presets, and validation.

Everything here is pure Python (no NEST, no MPI), so every rank makes the same
decision on the same input and bad input is rejected before anything is built.

Defaults reproduce the seed notebook's model at Brunel's (2000) full size
(model A: delta synapses, NE=10000, NI=2500, CE=1000, CI=250, J=0.1 mV, g=5,
D=1.5 ms, eta=2).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import tomllib

from hpc_brunel.errors import ConfigError

# 2: nu_thr = (V_th - E_L) / (J C_E tau_m) (version 1 used V_th: the same for E_L = 0);
#    neuron.v_init_distribution
CONFIG_SCHEMA_VERSION = 2

NEURON_MODELS = ("iaf_psc_delta",)
V_INIT_DISTRIBUTIONS = ("fixed", "uniform")
# NEST's static synapses for the network's connections (weight and delay set per sign on a
# CopyModel): "_hom_w" keeps one weight per model instead of per connection, "_hpc" a compact
# target index instead of a pointer. All four give identical spikes; their speed and memory are
# measured in BENCHMARKS.md ("The network's synapse model").
SYNAPSE_MODELS = ("static_synapse", "static_synapse_hpc", "static_synapse_hom_w", "static_synapse_hom_w_hpc")
# The default is the fastest of them, the lean mode (`run --lean`) the one with the least memory,
# both chosen by that measurement (same NEST build, 1x2 and 2x1, 12,500 and 50,000 neurons).
DEFAULT_SYNAPSE_MODEL = "static_synapse"
LEAN_SYNAPSE_MODEL = "static_synapse_hom_w_hpc"

# Brunel (2000), Fig. 8: (g, eta) of the four example states. Everything else is
# the default network.
PRESETS: dict[str, tuple[float, float]] = {
    "sr": (3.0, 2.0),
    "si-fast": (6.0, 4.0),
    "ai": (5.0, 2.0),
    "si-slow": (4.5, 0.9),
}


@dataclass(frozen=True)
class NetworkConfig:
    """[network]: population sizes, in-degrees, weights, delay and drive (Brunel's model A)."""

    n_excitatory: int = 10000
    n_inhibitory: int = 2500
    indegree_excitatory: int = 1000  # C_E
    indegree_inhibitory: int = 250  # C_I
    weight_mv: float = 0.1  # J, PSP amplitude of an excitatory spike
    relative_inhibition: float = 5.0  # g, inhibitory weight = -g J
    delay_ms: float = 1.5  # D
    eta: float = 2.0  # nu_ext / nu_thr
    synapse_model: str = DEFAULT_SYNAPSE_MODEL  # LEAN_SYNAPSE_MODEL with run --lean
    allow_autapses: bool = True
    allow_multapses: bool = True

    @property
    def n_neurons(self) -> int:
        """N = N_E + N_I."""
        return self.n_excitatory + self.n_inhibitory


@dataclass(frozen=True)
class NeuronConfig:
    """[neuron]: the leaky integrate-and-fire neuron with delta synapses and its initial state."""

    model: str = "iaf_psc_delta"
    v_threshold_mv: float = 20.0
    v_reset_mv: float = 10.0
    t_ref_ms: float = 2.0
    tau_m_ms: float = 20.0
    c_m_pf: float = 1.0
    e_l_mv: float = 0.0
    i_e_pa: float = 0.0  # constant input current I_e (0 in Brunel 2000; a DC drive with network.eta = 0)
    v_init_mv: float = 0.0  # V_m at t = 0 with v_init_distribution = "fixed"
    # "fixed": every neuron starts at v_init_mv; "uniform": V_m(0) drawn per neuron
    # uniformly between e_l_mv and v_threshold_mv (NEST's RNG: the same seed and
    # number of virtual processes give the same values whatever the rank split)
    v_init_distribution: str = "fixed"


@dataclass(frozen=True)
class SimulationConfig:
    """[simulation]: model time, resolution, chunking, warm-up, seed and threads per rank."""

    t_sim_ms: float = 1000.0
    resolution_ms: float = 0.1
    chunk_ms: float = 100.0  # spikes are written to disk after every chunk
    presim_ms: float = 0.0  # warm-up before the measured, recorded phase
    rng_seed: int = 12345
    threads_per_rank: int = 0  # 0: from --threads / SLURM_CPUS_PER_TASK / OMP_NUM_THREADS / 1


@dataclass(frozen=True)
class RecordingConfig:
    """[recording]: which neurons write their spikes to the rank files."""

    # Record the first N neurons of each population; 0 means all of them.
    n_record_per_population: int = 0


@dataclass(frozen=True)
class AnalysisConfig:
    """[analysis]: the transient discarded by the analysis, and whether `run` analyzes at its end."""

    t_transient_ms: float = 100.0
    run_after_simulation: bool = True


# NEST 3.10 kernel settings a user may set in the [kernel] section, with their
# types: the kernel attributes of NEST 3.10 that are not read-only
# (nest.NestModule._kernel_attr_names - _readonly_kernel_attrs; a test checks
# this list against the NEST that is installed), less the dict-valued
# structural_plasticity_synapses and those hpc_brunel sets itself (below).
NEST_KERNEL_SETTABLE: dict[str, str] = {
    "adaptive_target_buffers": "bool",
    "buffer_size_spike_data": "int",
    "buffer_size_target_data": "int",
    "growth_factor_buffer_target_data": "float",
    "max_buffer_size_target_data": "int",
    "spike_buffer_grow_extra": "float",
    "spike_buffer_shrink_limit": "float",
    "spike_buffer_shrink_spare": "float",
    "use_compressed_spikes": "bool",
    "keep_source_table": "bool",
    "update_time_limit": "float",
    "min_delay": "float",
    "max_delay": "float",
    "rng_type": "str",
    "use_wfr": "bool",
    "wfr_comm_interval": "float",
    "wfr_tol": "float",
    "wfr_max_iterations": "int",
    "wfr_interpolation_order": "int",
    "structural_plasticity_update_interval": "int",
    "dict_miss_is_error": "bool",
    "print_time": "bool",
    "data_path": "str",
    "data_prefix": "str",
    "overwrite_files": "bool",
    "eprop_update_interval": "float",
    "eprop_learning_window": "float",
    "eprop_reset_neurons_on_update": "bool",
}
# Settable in NEST, but set by hpc_brunel from other options.
NEST_KERNEL_MANAGED: dict[str, str] = {
    "resolution": "simulation.resolution_ms",
    "rng_seed": "simulation.rng_seed (or --seed)",
    "local_num_threads": "--threads or simulation.threads_per_rank",
    "total_num_virtual_procs": "--threads and the number of MPI ranks",
    "tics_per_ms": "nothing (hpc_brunel keeps NEST's 1000 tics per ms)",
    "biological_time": "nothing (the run sets the model time)",
    "structural_plasticity_synapses": "nothing (the Brunel network has no structural plasticity)",
    "verbosity": "nothing (hpc_brunel sets NEST's verbosity to WARNING; use run -v for its own log)",
}

#: Kernel attributes above that older NEST releases do not have yet: the first (major, minor) with them.
NEST_KERNEL_SINCE: dict[str, tuple[int, int]] = {"verbosity": (3, 10)}


@dataclass(frozen=True)
class RunConfig:
    """The whole resolved configuration of a run: one frozen dataclass per TOML section."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    # NEST kernel settings passed to SetKernelStatus (keys of NEST_KERNEL_SETTABLE)
    kernel: dict = field(default_factory=dict)

    # ---- derived quantities -------------------------------------------------
    @property
    def nu_threshold_hz(self) -> float:
        """External rate per synapse that brings the free membrane to threshold:
        nu_thr = (V_th - E_L) / (J C_E tau_m) (Brunel 2000, with voltages relative to rest)."""
        n, nu = self.network, self.neuron
        return 1000.0 * (nu.v_threshold_mv - nu.e_l_mv) / (n.weight_mv * n.indegree_excitatory * nu.tau_m_ms)

    @property
    def poisson_rate_hz(self) -> float:
        """Rate of the one Poisson generator that drives each neuron: eta * nu_thr * C_E."""
        return self.network.eta * self.nu_threshold_hz * self.network.indegree_excitatory

    def to_dict(self) -> dict:
        """The configuration as plain data (run.json "config"), with its schema version."""
        return {"schema_version": CONFIG_SCHEMA_VERSION, **dataclasses.asdict(self)}

    def to_toml(self) -> str:
        """The configuration as TOML (config.toml; `--config` reads it back)."""
        lines = [f"# hpc_brunel resolved run configuration\nschema_version = {CONFIG_SCHEMA_VERSION}"]
        for sec in fields(self):
            lines.append(f"\n[{sec.name}]")
            if sec.name == "kernel":
                lines += [f"{k} = {_toml_value(v)}" for k, v in sorted(self.kernel.items())]
                continue
            for f in fields(getattr(self, sec.name)):
                lines.append(f"{f.name} = {_toml_value(getattr(getattr(self, sec.name), f.name))}")
        return "\n".join(lines) + "\n"


_SECTION_TYPES = {
    "network": NetworkConfig,
    "neuron": NeuronConfig,
    "simulation": SimulationConfig,
    "recording": RecordingConfig,
    "analysis": AnalysisConfig,
    "kernel": dict,
}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _allowed_keys(section: str) -> str:
    if section == "kernel":
        return ", ".join(NEST_KERNEL_SETTABLE)
    return ", ".join(f.name for f in fields(_SECTION_TYPES[section]))


def _suggest(name: str, options) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(section: str, key: str, value, annotation: str):
    """Check one value against its field's type; ints are accepted for floats."""
    where = f"{section}.{key}"
    if annotation == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r}: must be true or false")
        return value
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {value!r}: must be an integer")
        return value
    if annotation in ("float", "float_or_inf"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r}: must be a number")
        value = float(value)
        if annotation == "float_or_inf" and value == math.inf:
            return value
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r}: must be a finite number")
        return value
    if annotation == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r}: must be a string")
        return value
    raise AssertionError(annotation)


def from_dict(data: dict, base: RunConfig | None = None) -> RunConfig:
    """Merge a nested {section: {key: value}} mapping onto `base` (default: defaults)."""
    cfg = base or RunConfig()
    data = dict(data)
    version = data.pop("schema_version", CONFIG_SCHEMA_VERSION)
    if version == 1 and float(data.get("neuron", {}).get("e_l_mv", 0.0)) != 0.0:
        raise ConfigError(f"schema_version = 1 with neuron.e_l_mv = {data['neuron']['e_l_mv']}: version 1 drove the "
                          "network with eta * V_th / (J tau_m), this hpc_brunel with eta * (V_th - E_L) / (J tau_m); "
                          "set schema_version = 2 if that is what you want")
    if version not in (1, CONFIG_SCHEMA_VERSION):
        raise ConfigError(f"schema_version = {version!r}: this hpc_brunel reads schema_version {CONFIG_SCHEMA_VERSION} "
                          "(and 1 with neuron.e_l_mv = 0, which means the same)")
    updates = {}
    for section, values in data.items():
        if section not in _SECTION_TYPES:
            raise ConfigError(
                f"unknown config section '{section}'{_suggest(section, _SECTION_TYPES)}: "
                f"allowed sections are {', '.join(_SECTION_TYPES)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"config section '{section}' must be a table of key = value pairs")
        if section == "kernel":
            updates["kernel"] = {**cfg.kernel, **_kernel_settings(values)}
            continue
        sec_obj = getattr(cfg, section)
        hints = {f.name: f.type for f in fields(sec_obj)}
        changes = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(
                    f"unknown key '{section}.{key}'{_suggest(key, hints)}: allowed keys are {_allowed_keys(section)}"
                )
            changes[key] = _coerce(section, key, value, hints[key])
        updates[section] = dataclasses.replace(sec_obj, **changes)
    return dataclasses.replace(cfg, **updates)


def _kernel_settings(values: dict) -> dict:
    """Check [kernel] keys against NEST 3.10's settable kernel attributes and
    their types (NEST checks the values again when the run starts)."""
    out = {}
    for key, value in values.items():
        if key in NEST_KERNEL_MANAGED:
            raise ConfigError(f"kernel.{key}: set by hpc_brunel, not in [kernel]; use {NEST_KERNEL_MANAGED[key]}")
        if key not in NEST_KERNEL_SETTABLE:
            raise ConfigError(f"unknown NEST kernel setting 'kernel.{key}'{_suggest(key, NEST_KERNEL_SETTABLE)}: "
                              f"allowed keys are {_allowed_keys('kernel')}")
        kind = NEST_KERNEL_SETTABLE[key]
        out[key] = _coerce("kernel", key, value, "float_or_inf" if key == "update_time_limit" else kind)
    return out


def load_toml(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    """Read a TOML config file over `base` (default: the defaults); ConfigError on bad input."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read the file ({e.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path}: malformed TOML ({e})") from None
    return from_dict(data, base)


def parse_override(assignment: str) -> dict:
    """'network.relative_inhibition=4.5' -> {'network': {'relative_inhibition': 4.5}}.
    The value is read as a TOML value; a bare word is taken as a string."""
    if "=" not in assignment or "." not in assignment.split("=", 1)[0]:
        raise ConfigError(f"--set {assignment!r}: must look like section.key=value, e.g. network.relative_inhibition=4.5")
    lhs, rhs = assignment.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    rhs = rhs.strip()
    try:
        value = tomllib.loads(f"v = {rhs}")["v"]
    except tomllib.TOMLDecodeError:
        value = rhs
    return {section: {key: value}}


def apply_regime(cfg: RunConfig, regime: str) -> RunConfig:
    """`cfg` with g and eta of the Fig. 8 preset `regime` (a key of PRESETS)."""
    if regime not in PRESETS:
        raise ConfigError(f"--regime {regime!r}: unknown regime{_suggest(regime, PRESETS)}; allowed: {', '.join(PRESETS)}")
    g, eta = PRESETS[regime]
    return dataclasses.replace(cfg, network=dataclasses.replace(cfg.network, relative_inhibition=g, eta=eta))


def _multiple_of(x: float, step: float) -> bool:
    k = round(x / step)
    return k >= 1 and abs(k * step - x) <= 1e-9 * max(1.0, abs(x))


def validate(cfg: RunConfig) -> RunConfig:
    """Raise ConfigError for the first value out of its allowed range."""
    n, nu, s, r, a = cfg.network, cfg.neuron, cfg.simulation, cfg.recording, cfg.analysis

    def need(cond: bool, name: str, value, allowed: str) -> None:
        if not cond:
            raise ConfigError(f"{name} = {value!r} is out of range: allowed {allowed}")

    need(n.n_excitatory >= 1, "network.n_excitatory", n.n_excitatory, "an integer >= 1")
    need(n.n_inhibitory >= 1, "network.n_inhibitory", n.n_inhibitory, "an integer >= 1")
    need(
        0 <= n.indegree_excitatory <= n.n_excitatory,
        "network.indegree_excitatory", n.indegree_excitatory,
        f"0 <= C_E <= network.n_excitatory ({n.n_excitatory})",
    )
    need(
        0 <= n.indegree_inhibitory <= n.n_inhibitory,
        "network.indegree_inhibitory", n.indegree_inhibitory,
        f"0 <= C_I <= network.n_inhibitory ({n.n_inhibitory})",
    )
    need(n.indegree_excitatory >= 1, "network.indegree_excitatory", n.indegree_excitatory,
         "C_E >= 1 (it sets the threshold rate)")
    # fixed_indegree draws each neuron's C sources from its source population: without
    # autapses a neuron may not pick itself, without multapses no source twice.
    for pop, c, n_src in (("excitatory", n.indegree_excitatory, n.n_excitatory),
                          ("inhibitory", n.indegree_inhibitory, n.n_inhibitory)):
        available = n_src - (0 if n.allow_autapses else 1)
        if not n.allow_multapses:
            need(c <= available, f"network.indegree_{pop}", c,
                 f"0..{available} with allow_multapses = false" + ("" if n.allow_autapses else
                 f" and allow_autapses = false (network.n_{pop} - 1: a neuron may not be its own source)"))
        elif c > 0:
            need(available >= 1, f"network.n_{pop}", n_src,
                 "at least 2 neurons with allow_autapses = false (a neuron may not be its own source)")
    need(n.weight_mv > 0, "network.weight_mv", n.weight_mv, "J > 0 mV")
    need(n.relative_inhibition >= 0, "network.relative_inhibition", n.relative_inhibition, "g >= 0")
    need(n.eta >= 0, "network.eta", n.eta, "eta >= 0")
    need(n.synapse_model in SYNAPSE_MODELS, "network.synapse_model", n.synapse_model, " or ".join(SYNAPSE_MODELS))
    need(nu.model in NEURON_MODELS, "neuron.model", nu.model, " or ".join(NEURON_MODELS))
    need(nu.tau_m_ms > 0, "neuron.tau_m_ms", nu.tau_m_ms, "tau_m > 0 ms")
    need(nu.c_m_pf > 0, "neuron.c_m_pf", nu.c_m_pf, "C_m > 0 pF")
    need(nu.t_ref_ms >= 0, "neuron.t_ref_ms", nu.t_ref_ms, "t_ref >= 0 ms")
    need(math.isfinite(nu.i_e_pa), "neuron.i_e_pa", nu.i_e_pa, "a finite current in pA")
    need(nu.v_reset_mv < nu.v_threshold_mv, "neuron.v_reset_mv", nu.v_reset_mv,
         f"V_reset < neuron.v_threshold_mv ({nu.v_threshold_mv})")
    need(nu.v_threshold_mv > nu.e_l_mv, "neuron.v_threshold_mv", nu.v_threshold_mv,
         f"V_th > neuron.e_l_mv ({nu.e_l_mv})")
    need(nu.v_init_distribution != "fixed" or nu.v_init_mv < nu.v_threshold_mv, "neuron.v_init_mv", nu.v_init_mv,
         f"V_m(0) < neuron.v_threshold_mv ({nu.v_threshold_mv})")
    need(nu.v_init_distribution in V_INIT_DISTRIBUTIONS, "neuron.v_init_distribution", nu.v_init_distribution,
         " or ".join(f'"{d}"' for d in V_INIT_DISTRIBUTIONS) + " (uniform: between neuron.e_l_mv and neuron.v_threshold_mv)")

    need(0.001 <= s.resolution_ms <= 10.0, "simulation.resolution_ms", s.resolution_ms, "0.001 ms <= dt <= 10 ms")
    # NEST's time base is 0.001 ms (tics): dt must be a whole number of tics.
    need(_multiple_of(s.resolution_ms, 0.001), "simulation.resolution_ms", s.resolution_ms, "a multiple of 0.001 ms")
    need(n.delay_ms >= s.resolution_ms, "network.delay_ms", n.delay_ms,
         f"D >= simulation.resolution_ms ({s.resolution_ms})")
    need(_multiple_of(n.delay_ms, s.resolution_ms), "network.delay_ms", n.delay_ms,
         f"a multiple of simulation.resolution_ms ({s.resolution_ms})")
    need(s.t_sim_ms > 0, "simulation.t_sim_ms", s.t_sim_ms, "T > 0 ms")
    need(s.chunk_ms > 0, "simulation.chunk_ms", s.chunk_ms, "chunk > 0 ms")
    need(_multiple_of(s.chunk_ms, s.resolution_ms), "simulation.chunk_ms", s.chunk_ms,
         f"a multiple of simulation.resolution_ms ({s.resolution_ms})")
    need(_multiple_of(s.t_sim_ms, s.resolution_ms), "simulation.t_sim_ms", s.t_sim_ms,
         f"a multiple of simulation.resolution_ms ({s.resolution_ms})")
    need(s.presim_ms >= 0, "simulation.presim_ms", s.presim_ms, "presim >= 0 ms")
    need(s.presim_ms == 0 or _multiple_of(s.presim_ms, s.resolution_ms), "simulation.presim_ms", s.presim_ms,
         f"0 or a multiple of simulation.resolution_ms ({s.resolution_ms})")
    need(1 <= s.rng_seed <= 2**31 - 1, "simulation.rng_seed", s.rng_seed, "1 <= seed <= 2147483647")
    need(0 <= s.threads_per_rank <= 1024, "simulation.threads_per_rank", s.threads_per_rank,
         "0 (automatic) or 1..1024")
    need(
        0 <= r.n_record_per_population <= min(n.n_excitatory, n.n_inhibitory),
        "recording.n_record_per_population", r.n_record_per_population,
        f"0 (all) or 1..{min(n.n_excitatory, n.n_inhibitory)}",
    )
    for key, value in cfg.kernel.items():  # NEST checks the finer limits at start-up
        if NEST_KERNEL_SETTABLE.get(key) in ("int", "float"):
            zero_ok = key.startswith("spike_buffer_") or key == "wfr_interpolation_order"
            need(value >= 0 if zero_ok else value > 0, f"kernel.{key}", value, ">= 0" if zero_ok else "> 0")
    need(a.t_transient_ms >= 0, "analysis.t_transient_ms", a.t_transient_ms, "transient >= 0 ms")
    # The analysis at the end of the run needs something left after the transient.
    need(not a.run_after_simulation or a.t_transient_ms + 10.0 <= s.t_sim_ms, "analysis.t_transient_ms",
         a.t_transient_ms, f"transient <= simulation.t_sim_ms - 10 ms ({s.t_sim_ms - 10.0}) "
         "(or run with --no-analyze)")
    return cfg


def resolve(config_path: str | None = None, overrides: typing.Iterable[dict] = (), regime: str | None = None) -> RunConfig:
    """Defaults <- TOML file <- regime preset <- CLI overrides, then validated.
    An explicit regime wins over g and eta from the file (a run's own
    config.toml sets them all)."""
    cfg = RunConfig()
    if config_path:
        cfg = load_toml(config_path, cfg)
    if regime:
        cfg = apply_regime(cfg, regime)
    for ov in overrides:
        cfg = from_dict(ov, cfg)
    return validate(cfg)
