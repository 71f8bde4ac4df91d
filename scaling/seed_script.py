"""Baseline A of the side-by-side benchmark: the seed notebook's Brunel network,
written by hand with the NEST 3 API the way users do (NEST's
examples/brunel_delta_nest.py), run on the PyPI wheel of nest-simulator.
Records 50 + 50 neurons to memory, as the seed does. Prints one JSON line (one
per rank under mpirun, with an MPI NEST), with VmRSS after create, after
connect, after the first 100 ms and the peak (VmHWM).

    python scaling/seed_script.py --threads 2 --t-sim-ms 1000
    mpirun -n 2 .venv/bin/python scaling/seed_script.py --threads 1    # our MPI build
"""
import argparse
import json
import os
import resource
import time

T_PROCESS_START = time.time()
os.environ.setdefault("PYNEST_QUIET", "1")

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--t-sim-ms", type=float, default=1000.0)
p.add_argument("--seed", type=int, default=12345)
args = p.parse_args()

import nest  # noqa: E402


def vm_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024.0


nest.ResetKernel()
nest.verbosity = nest.VerbosityLevel.WARNING
nest.SetKernelStatus({"resolution": 0.1, "print_time": False, "local_num_threads": args.threads,
                      "rng_seed": args.seed})

order = 2500
NE, NI = 4 * order, order
CE, CI = int(0.1 * NE), int(0.1 * NI)
J, g, D, eta = 0.1, 5.0, 1.5, 2.0
tauMem, theta = 20.0, 20.0
nu_th = theta / (J * CE * tauMem)
p_rate = 1000.0 * eta * nu_th * CE
neuron_params = {"C_m": 1.0, "tau_m": tauMem, "t_ref": 2.0, "E_L": 0.0, "V_reset": 10.0, "V_m": 0.0, "V_th": theta}

t0 = time.perf_counter()
nest.SetDefaults("iaf_psc_delta", neuron_params)
nodes_ex = nest.Create("iaf_psc_delta", NE)
nodes_in = nest.Create("iaf_psc_delta", NI)
noise = nest.Create("poisson_generator", params={"rate": p_rate})
espikes = nest.Create("spike_recorder")
ispikes = nest.Create("spike_recorder")
t_create = time.perf_counter() - t0
rss_create = vm_mib("VmRSS")

t0 = time.perf_counter()
nest.CopyModel("static_synapse", "excitatory", {"weight": J, "delay": D})
nest.CopyModel("static_synapse", "inhibitory", {"weight": -g * J, "delay": D})
nest.Connect(noise, nodes_ex, syn_spec="excitatory")
nest.Connect(noise, nodes_in, syn_spec="excitatory")
nest.Connect(nodes_ex[:50], espikes, syn_spec="excitatory")
nest.Connect(nodes_in[:50], ispikes, syn_spec="excitatory")
nest.Connect(nodes_ex, nodes_ex + nodes_in, {"rule": "fixed_indegree", "indegree": CE}, "excitatory")
nest.Connect(nodes_in, nodes_ex + nodes_in, {"rule": "fixed_indegree", "indegree": CI}, "inhibitory")
t_connect = time.perf_counter() - t0
rss_connect = vm_mib("VmRSS")

t0 = time.perf_counter()
first_ms = min(100.0, args.t_sim_ms)  # the same spikes as one Simulate(t_sim_ms)
nest.Simulate(first_ms)
rss_first = vm_mib("VmRSS")


def nest_timer(name: str) -> float:
    """A NEST kernel timer in seconds (per-thread timers: their max); NaN where this NEST lacks
    it (the PyPI wheel is built without detailed timers: no time_deliver_spike_data)."""
    try:
        v = nest.GetKernelStatus(name)
    except KeyError:
        return float("nan")
    return float(max(v)) if hasattr(v, "__len__") else float(v)


# NEST resets these at every Simulate; time_communicate_prepare is the first Prepare's
nest_time_simulate = nest_timer("time_simulate")
nest_time_deliver = nest_timer("time_deliver_spike_data")
if args.t_sim_ms > first_ms:
    nest.Simulate(args.t_sim_ms - first_ms)
    nest_time_simulate += nest_timer("time_simulate")
    nest_time_deliver += nest_timer("time_deliver_spike_data")
t_simulate = time.perf_counter() - t0

rate_ex = espikes.n_events / args.t_sim_ms * 1000.0 / 50
rate_in = ispikes.n_events / args.t_sim_ms * 1000.0 / 50
print(json.dumps({
    "variant": "A: hand-written script",
    "rank": nest.Rank(), "num_processes": nest.NumProcesses(),
    "rss_after_create_mib": rss_create, "rss_after_connect_mib": rss_connect,
    "rss_after_first_chunk_mib": rss_first, "vm_hwm_mib": vm_mib("VmHWM"),
    "create_s": t_create, "connect_s": t_connect, "simulate_s": t_simulate,
    "nest_time_simulate_s": nest_time_simulate, "nest_time_deliver_spike_data_s": nest_time_deliver,
    "nest_time_communicate_prepare_s": nest_timer("time_communicate_prepare"),
    "nest_time_connect_s": nest_timer("time_construction_connect"),
    "n_events_e": espikes.n_events, "n_events_i": ispikes.n_events,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    "rate_e_hz": rate_ex, "rate_i_hz": rate_in,
    "synapses": nest.GetKernelStatus("num_connections"),
    "wall_in_process_s": time.time() - T_PROCESS_START,
}))
