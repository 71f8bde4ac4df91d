"""`python -m hpc_brunel run`: one simulation, every rank.

config -> kernel set-up -> network -> chunked simulation with per-rank spike
files -> run record -> summary (-> analyze on rank 0).
"""
from __future__ import annotations

import logging
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import kernel, network, provenance, rundir
from .config import RunConfig
from .parallel import Parallel
from .recording import RankSpikeWriter, rank_file_name, read_recorder

log = logging.getLogger("hpc_brunel")

EXIT_TERMINATED = 3  # stopped by SIGTERM/SIGINT at a chunk boundary; data flushed


@dataclass
class PhaseTimer:
    """Python-side wall time per phase, in seconds."""

    times_s: dict = field(default_factory=dict)

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.times_s[name] = timer.times_s.get(name, 0.0) + time.perf_counter() - self.t0

        return _Ctx()


class StopRequest:
    """SIGTERM (SLURM's time limit) or SIGINT: stop at the next chunk boundary.
    With a grace period, keep simulating while the remaining model time is
    expected to finish within it."""

    def __init__(self, grace_s: float = 0.0):
        self.grace_s = grace_s
        self.signal_time: float | None = None
        self.signum: int | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, signum, frame):
        if self.signal_time is None:
            self.signal_time = time.monotonic()
            self.signum = signum

    def wants_stop(self, est_remaining_s: float) -> bool:
        if self.signal_time is None:
            return False
        left = self.grace_s - (time.monotonic() - self.signal_time)
        return est_remaining_s > left


def chunk_ends_ms(t_sim_ms: float, chunk_ms: float, resolution_ms: float) -> list[float]:
    """Chunk boundaries on the resolution grid, the last one exactly at t_sim."""
    steps_total = round(t_sim_ms / resolution_ms)
    steps_chunk = max(1, round(chunk_ms / resolution_ms))
    ends = list(range(steps_chunk, steps_total, steps_chunk)) + [steps_total]
    return [k * resolution_ms for k in ends]


def simulate(cfg: RunConfig, run_dir: Path, par: Parallel, nest, *, threads: int, run_id: str,
             stop: StopRequest) -> dict:
    """Build and simulate on this rank; write this rank's file. Returns the
    rank's summary (collectives inside: call on every rank)."""
    sim = cfg.simulation
    timer = PhaseTimer()
    with timer("setup_kernel"):
        kernel_settings = kernel.setup_kernel(nest, threads_per_rank=threads, resolution_ms=sim.resolution_ms,
                                              rng_seed=sim.rng_seed, settings=cfg.kernel)
    mem_phases = {"base": kernel.memory_kib().get("VmRSS", 0)}
    with timer("build_network"):
        net = network.build(nest, cfg, timer=timer)
    mem_phases["network"] = kernel.memory_kib().get("VmRSS", 0)
    local_neurons = network.local_neuron_count(nest, net)
    local_synapses = int(nest.GetKernelStatus("num_connections"))

    if sim.presim_ms > 0:  # warm-up, excluded from recording and from the measured phase
        with timer("presimulate"):
            nest.Simulate(sim.presim_ms)
            for rec in net.recorders.values():
                rec.set(n_events=0)
    mem_phases["init"] = kernel.memory_kib().get("VmRSS", 0)
    t_start_ms = sim.presim_ms

    per_rank = par.gather({"neurons": local_neurons, "synapses": local_synapses})
    if par.is_root:
        vps = par.size * threads
        log.info("decomposition: %d rank(s) x %d thread(s) = %d virtual processes", par.size, threads, vps)
        for r, info in enumerate(per_rank):
            log.info("  rank %d: %d E + %d I neurons, %d synapses", r, info["neurons"]["excitatory"],
                     info["neurons"]["inhibitory"], info["synapses"])

    writer = RankSpikeWriter(run_dir / rank_file_name(par.rank), populations=network.POPULATIONS,
                             rank=par.rank, num_ranks=par.size, threads_per_rank=threads, run_id=run_id,
                             t_start_ms=t_start_ms)
    ends = chunk_ends_ms(sim.t_sim_ms, sim.chunk_ms, sim.resolution_ms)
    t_done_ms = 0.0
    status = "complete"
    timers: dict[str, float] = {}
    n_events = dict.fromkeys(net.recorders, 0)  # NEST's own count, to check the files against
    wall0 = time.perf_counter()
    with timer("simulate"):
        # One Simulate() per chunk: NEST refuses to reset a recorder inside a
        # Prepare/Run/Cleanup context, and the recorder must be emptied after
        # every chunk to keep memory bounded. Prepare after the first is cheap.
        for t_end in ends:
            nest.Simulate(t_end - t_done_ms)
            kernel.accumulate_timers(timers, nest)
            t_done_ms = t_end
            chunk = {p: read_recorder(r) for p, r in net.recorders.items()}
            for p, (_, _, n) in chunk.items():
                n_events[p] += n
            writer.append_chunk(t_start_ms + t_end, {p: (ids, t) for p, (ids, t, _) in chunk.items()})
            wall = time.perf_counter() - wall0
            remaining = wall / t_done_ms * (sim.t_sim_ms - t_done_ms)
            # Collective: all ranks stop at the same boundary, whoever got the signal.
            if t_end < ends[-1] and par.max(int(stop.wants_stop(remaining))):
                status = "terminated"
                log.warning("stop requested: stopping at model time %.1f ms of %.1f ms (data flushed)",
                            t_done_ms, sim.t_sim_ms)
                break
            if par.is_root:
                log.info("simulated %7.1f / %.1f ms  wall %6.1f s  real-time factor %.2f",
                         t_done_ms, sim.t_sim_ms, wall, wall / (t_done_ms / 1000.0))

    summary = {
        "status": status,
        "t_model_reached_ms": t_start_ms + t_done_ms,
        "neurons": local_neurons,
        "synapses": local_synapses,
        "spikes": writer.spike_counts,
        "n_events": n_events,
        "nest_timers_s": timers,
        "python_phases_s": timer.times_s,
        "memory_kib": kernel.memory_kib(),
        "memory_phases_kib": mem_phases,  # VmRSS after kernel set-up, network build, warm-up (beNNch's phases)
        "kernel_settings": kernel_settings,
        "threads_per_rank": threads,
    }
    writer.close(meta=summary)
    return summary


def execute(cfg: RunConfig, run_dir: Path, par: Parallel, nest, *, threads: int, overwrite: bool,
            argv: list[str], grace_s: float = 0.0) -> int:
    """The whole run on every rank. Returns the exit status."""
    t0 = time.perf_counter()
    # --- run directory: rank 0 decides, everyone learns the outcome ---------
    err, lock, run_id = None, None, None
    if par.is_root:
        try:
            # 16 bytes per spike at up to 200 Hz, plus 1 MB of metadata
            est_bytes = int(cfg.network.n_neurons * 200.0 * (cfg.simulation.t_sim_ms / 1000.0) * 16) + (1 << 20)
            lock = rundir.prepare(run_dir, overwrite=overwrite, needed_bytes=est_bytes)
            run_id = uuid.uuid4().hex
            (run_dir / rundir.CONFIG_TOML).write_text(cfg.to_toml())
            rundir.write_run_json(run_dir, {
                "layout_version": rundir.RUN_LAYOUT_VERSION,
                "run_id": run_id,
                "status": "running",
                "started": rundir.now_iso(),
                "command": argv,
                "decomposition": {"ranks": par.size, "threads_per_rank": threads,
                                  "virtual_processes": par.size * threads},
                "rng_seed": cfg.simulation.rng_seed,
                "config": cfg.to_dict(),
                "versions": provenance.versions(nest),
                "nest_build_info": provenance.nest_build_info(nest),
                "machine": provenance.machine(),
                "slurm": provenance.slurm_context(),
            })
        except rundir.RunDirError as e:
            if lock:
                lock.release()
            err = str(e)
    err, run_id = par.bcast((err, run_id))
    if err:
        raise rundir.RunDirError(err)

    hosts = par.gather(provenance.machine()["hostname"])
    if par.is_root:
        rundir.update_run_json(run_dir, hosts=sorted(set(hosts)), rank_hosts=hosts)

    stop = StopRequest(grace_s)
    try:
        summary = simulate(cfg, run_dir, par, nest, threads=threads, run_id=run_id, stop=stop)
    except Exception:
        if par.is_root:
            rundir.update_run_json(run_dir, status="failed", ended=rundir.now_iso())
        raise
    summaries = par.gather(summary)
    par.barrier()
    if not par.is_root:
        return EXIT_TERMINATED if summary["status"] == "terminated" else 0

    status = summary["status"]
    spikes = {p: sum(s["spikes"][p] for s in summaries) for p in network.POPULATIONS}
    t_rec_s = (summary["t_model_reached_ms"] - cfg.simulation.presim_ms) / 1000.0
    n_rec = cfg.recording.n_record_per_population
    rates = {p: spikes[p] / (t_rec_s * (n_rec or getattr(cfg.network, f"n_{p}"))) if t_rec_s > 0 else 0.0
             for p in network.POPULATIONS}
    record = rundir.update_run_json(
        run_dir,
        status=status,
        ended=rundir.now_iso(),
        t_model_reached_ms=summary["t_model_reached_ms"],
        spikes=spikes,
        mean_rate_hz=rates,
        synapses_total=sum(s["synapses"] for s in summaries),
        wall_time_s=time.perf_counter() - t0,
        ranks=[{k: s[k] for k in ("neurons", "synapses", "spikes", "n_events", "memory_kib", "memory_phases_kib",
                                  "python_phases_s")}
               for s in summaries],
        nest_timers_max_s={k: max(s["nest_timers_s"].get(k, 0.0) for s in summaries)
                           for k in summary["nest_timers_s"]},
        kernel_settings=summary["kernel_settings"],
    )
    lock.release()
    print_summary(record, run_dir)
    return EXIT_TERMINATED if status == "terminated" else 0


def print_summary(record: dict, run_dir: Path) -> None:
    d = record["decomposition"]
    timers = record["nest_timers_max_s"]
    ph = record["ranks"][0]["python_phases_s"]
    lines = [
        f"run {record['status']}: {run_dir}",
        f"  decomposition   {d['ranks']} rank(s) x {d['threads_per_rank']} thread(s) = {d['virtual_processes']} VPs",
        f"  model time      {record['t_model_reached_ms']:.1f} ms",
        f"  synapses        {record['synapses_total']:,}",
        "  spikes          " + ", ".join(f"{p} {n:,}" for p, n in record["spikes"].items()),
        "  mean rate       " + ", ".join(f"{p} {r:.2f} Hz" for p, r in record["mean_rate_hz"].items()),
        f"  wall time       total {record['wall_time_s']:.2f} s; build {ph.get('build_network', 0):.2f} s "
        f"(NEST connect {timers.get('time_construction_connect', 0):.2f} s), "
        f"simulate {ph.get('simulate', 0):.2f} s (NEST {timers.get('time_simulate', 0):.2f} s)",
    ]
    print("\n".join(lines), flush=True)
