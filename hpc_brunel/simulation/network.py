"""The Brunel (2000) network (model A: delta synapses), built with NEST 3 the way
NEST's own examples/brunel_delta_nest.py does, distributed by NEST over all
virtual processes (MPI ranks x threads)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from hpc_brunel.config import RunConfig
from hpc_brunel.constants import POPULATIONS

log = logging.getLogger("hpc_brunel")


# Neuron -> spike_recorder connections: NEST stores a neuron -> device connection
# per source neuron, each in its own Connector whose BlockVector allocates a first
# block of 1,024 connections, so the synapse type's size times 1,024 is paid once
# per recorded neuron. static_synapse_hom_w_hpc is the smallest of NEST's static
# synapses (no weight, compact target index): measured on the full network (12,500
# recorded neurons) 392 MiB with static_synapse, 295 with static_synapse_hom_w and
# 99 with static_synapse_hom_w_hpc; the recorded spikes are identical.
RECORDER_SYNAPSE_MODELS = ("static_synapse_hom_w_hpc", "static_synapse_hom_w")


@dataclass
class Network:
    """Handles of what was built (NodeCollections are global; each rank owns a part)."""

    neurons: dict  # population name -> NodeCollection
    recorders: dict  # population name -> spike_recorder
    recorded: dict  # population name -> NodeCollection of recorded neurons
    noise: object


def neuron_params(cfg: RunConfig) -> dict:
    """NEST parameters of the neuron model (cfg.neuron.model) from cfg.neuron (C_m, tau_m, t_ref, E_L,
    V_reset, V_m, V_th, I_e; pF, ms, mV, pA)."""
    nu = cfg.neuron
    return {
        "C_m": nu.c_m_pf,
        "tau_m": nu.tau_m_ms,
        "t_ref": nu.t_ref_ms,
        "E_L": nu.e_l_mv,
        "V_reset": nu.v_reset_mv,
        "V_m": nu.v_init_mv,
        "V_th": nu.v_threshold_mv,
        "I_e": nu.i_e_pa,
    }


def initial_state(nest, cfg: RunConfig) -> dict | None:
    """V_m at t = 0: neuron.v_init_mv for every neuron (in the defaults), or drawn
    per neuron uniformly in [E_L, V_th) by NEST's per-VP random streams."""
    nu = cfg.neuron
    if nu.v_init_distribution == "uniform":
        return {"V_m": nest.random.uniform(min=nu.e_l_mv, max=nu.v_threshold_mv)}
    return None


def build(nest, cfg: RunConfig, timer=None) -> Network:
    """Create, then connect. `timer(name)`, if given, is a context manager that
    times the "create" and "connect" parts (beNNch's py_time_create/_connect)."""
    import contextlib

    timer = timer or (lambda name: contextlib.nullcontext())
    with timer("create"):
        net = _create(nest, cfg)
    with timer("connect"):
        _connect(nest, cfg, net)
    return net


def _create(nest, cfg: RunConfig) -> Network:
    n = cfg.network
    nest.SetDefaults(cfg.neuron.model, neuron_params(cfg))
    exc = nest.Create(cfg.neuron.model, n.n_excitatory, params=initial_state(nest, cfg))
    inh = nest.Create(cfg.neuron.model, n.n_inhibitory, params=initial_state(nest, cfg))
    noise = nest.Create("poisson_generator", params={"rate": cfg.poisson_rate_hz})
    neurons = {"excitatory": exc, "inhibitory": inh}

    n_rec = cfg.recording.n_record_per_population
    recorded = {name: (pop if n_rec == 0 else pop[:n_rec]) for name, pop in neurons.items()}
    recorders = {
        name: nest.Create("spike_recorder", params={"record_to": "memory", "label": f"brunel-{name}"})
        for name in POPULATIONS
    }

    # One synapse model per sign, weight and delay set on the copy. Which of NEST's
    # static synapses (network.synapse_model) was measured: all four give identical
    # spikes; static_synapse (the default) is the fastest, static_synapse_hom_w_hpc
    # (lean mode: no weight, compact target index per connection) needs 0.45-0.54x
    # the memory at 1.35-1.54x the simulate time (BENCHMARKS.md, 2026-11-30).
    j_exc, j_inh = n.weight_mv, -n.relative_inhibition * n.weight_mv
    base = n.synapse_model
    nest.CopyModel(base, "brunel_excitatory", {"weight": j_exc, "delay": n.delay_ms})
    nest.CopyModel(base, "brunel_inhibitory", {"weight": j_inh, "delay": n.delay_ms})

    return Network(neurons=neurons, recorders=recorders, recorded=recorded, noise=noise)


def _connect(nest, cfg: RunConfig, net: Network) -> None:
    n = cfg.network
    exc, inh = net.neurons["excitatory"], net.neurons["inhibitory"]
    recorded, recorders, noise = net.recorded, net.recorders, net.noise
    all_neurons = exc + inh
    nest.Connect(noise, all_neurons, syn_spec="brunel_excitatory")
    rec_syn = recorder_synapse_model(nest)
    for name in POPULATIONS:
        nest.Connect(recorded[name], recorders[name], syn_spec={"synapse_model": rec_syn})
    common = {"allow_autapses": n.allow_autapses, "allow_multapses": n.allow_multapses}
    if n.indegree_excitatory:
        nest.Connect(exc, all_neurons, {"rule": "fixed_indegree", "indegree": n.indegree_excitatory, **common},
                     "brunel_excitatory")
    if n.indegree_inhibitory:
        nest.Connect(inh, all_neurons, {"rule": "fixed_indegree", "indegree": n.indegree_inhibitory, **common},
                     "brunel_inhibitory")


def recorder_synapse_model(nest) -> str:
    """The synapse model for neuron -> spike_recorder connections: the first of
    RECORDER_SYNAPSE_MODELS that this NEST build has (a logged note otherwise)."""
    available = set(nest.synapse_models)
    for model in RECORDER_SYNAPSE_MODELS:
        if model in available:
            if model != RECORDER_SYNAPSE_MODELS[0]:
                log.info("NEST has no %s: recording through %s (more memory per recorded neuron)",
                         RECORDER_SYNAPSE_MODELS[0], model)
            return model
    log.info("NEST has none of %s: recording through static_synapse", ", ".join(RECORDER_SYNAPSE_MODELS))
    return "static_synapse"


def expected_connections(cfg: RunConfig) -> int:
    """Global connection count: recurrent + one drive per neuron + one per recorded neuron."""
    n = cfg.network
    n_rec = cfg.recording.n_record_per_population
    recorded = n.n_neurons if n_rec == 0 else 2 * n_rec
    return n.n_neurons * (n.indegree_excitatory + n.indegree_inhibitory) + n.n_neurons + recorded


def local_neuron_count(nest, net: Network) -> dict[str, int]:
    """Neurons owned by this rank, per population.

    From NEST's node distribution (nestkernel/vp_manager_impl.h, mpi_manager_impl.h:
    VP = node_id % VPs, rank = VP % ranks), not from nest.GetLocalNodeCollection: that
    reads every node's status into Python dicts, which at 12,500 neurons left 7 MiB
    behind and raised the run's peak memory by ~20 MiB (fragmentation before NEST's
    first Prepare). tests/test_run.py checks the counts against NEST's."""
    import numpy as np

    vps, ranks, rank = nest.total_num_virtual_procs, nest.NumProcesses(), nest.Rank()
    out = {}
    for name, pop in net.neurons.items():
        ids = np.arange(pop[0].global_id, pop[-1].global_id + 1, dtype=np.int64)
        assert len(ids) == len(pop), "populations are contiguous node ranges"
        out[name] = int(np.count_nonzero(ids % vps % ranks == rank))
    return out
