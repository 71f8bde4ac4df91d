"""One simulation on every rank: the simulation half of `python -m hpc_brunel run`.

config -> kernel set-up -> network -> chunked simulation with per-rank spike
files -> run record -> summary. The run command (hpc_brunel.commands) calls these
on every rank and then, on rank 0, the analysis.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from hpc_brunel.config import RunConfig
from hpc_brunel.constants import CONFIG_TOML, POPULATIONS
from hpc_brunel.errors import EXIT_OK, EXIT_TERMINATED, ConfigError, RunDirError
from hpc_brunel.simulation import kernel, network, provenance, rundir
from hpc_brunel.simulation.parallel import (
    GRACE_MARGIN_S,
    Parallel,
    available_cpus,
    launcher_kill_window_s,
    threads_per_rank,
)

log = logging.getLogger("hpc_brunel")


@dataclass
class PhaseTimer:
    """Python-side wall time per phase, in seconds, and VmRSS at its end (KiB);
    entering a phase also tells `par` what this rank is doing (for the failure
    record)."""

    par: Parallel | None = None
    times_s: dict = field(default_factory=dict)
    rss_kib: dict = field(default_factory=dict)

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                if timer.par is not None:
                    timer.par.phase = name
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.times_s[name] = timer.times_s.get(name, 0.0) + time.perf_counter() - self.t0
                timer.rss_kib[name] = kernel.memory_kib().get("VmRSS", 0)

        return _Ctx()


class StopRequest:
    """SIGTERM (SLURM's time limit) or SIGINT: stop at the next chunk boundary.
    With a grace period, keep simulating while the remaining model time is
    expected to finish within it."""

    def __init__(self, grace_s: float = 0.0):
        self.grace_s = grace_s
        self.signal_time: float | None = None
        self.signum: int | None = None
        self._previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore(self) -> None:
        """Put back the handlers that were there before (after the simulation)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handler(self, signum, frame):
        if self.signal_time is None:
            self.signal_time = time.monotonic()
            self.signum = signum

    def wants_stop(self, est_remaining_s: float) -> bool:
        """Whether to stop at this chunk boundary: a signal came and the estimated
        remaining wall time (s) will not fit in what is left of the grace period."""
        if self.signal_time is None:
            return False
        left = self.grace_s - (time.monotonic() - self.signal_time)
        return est_remaining_s > left


# The simulate phase's wall time by part (run.json ranks[].simulate_parts_s): NEST's
# Simulate() calls (its time_simulate, plus Prepare/Cleanup around each call), then
# what hpc_brunel does after each chunk.
SIMULATE_PARTS = ("nest_simulate_calls", "read_nest_timers", "read_recorders", "write_spikes",
                  "progress_and_stop_check", "write_checkpoint")


def process_age_s() -> float | None:
    """Seconds since this process started (Linux: /proc/self/stat and /proc/uptime,
    10 ms resolution); None where that cannot be read."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime_s = float(f.read().split()[0])
        return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def overhead_outside_nest(summary: dict, nest_timers_s: dict) -> dict:
    """Where one rank's wall time went that is not NEST's own work, in seconds.

    NEST's own work: time_construction_create + time_construction_connect (the
    build), time_simulate (every Simulate call's update-deliver-communicate loop)
    and time_communicate_prepare (the first Prepare: NEST builds its connection
    infrastructure there; any script pays it once). Everything else is overhead:

    - startup_s: process start -> the run begins (Python, imports, MPI init, the NEST
      checks); a hand-written script pays most of it too, so it is shown apart;
    - build_s: the build's wall time minus NEST's create and connect;
    - prepare_cleanup_s: the Simulate calls' wall time minus time_simulate and the
      first Prepare: NEST's Prepare/Cleanup of every further chunk (the price of
      chunked recording);
    - read_nest_timers_s, read_recorders_s, write_spikes_s, progress_and_stop_check_s:
      hpc_brunel's work after each chunk (simulate_parts_s);
    - outside_nest_s: all of them but startup; share_of_simulate: that / time_simulate.
    """
    ph, parts = summary["python_phases_s"], summary.get("simulate_parts_s", {})
    t = nest_timers_s
    nest_build = t.get("time_construction_create", 0.0) + t.get("time_construction_connect", 0.0)
    first_prepare = t.get("time_communicate_prepare", 0.0)
    out = {
        "startup_s": summary.get("startup_s"),
        "build_s": max(0.0, ph.get("build_network", 0.0) - nest_build),
        "prepare_cleanup_s": max(0.0, parts.get("nest_simulate_calls", 0.0) - t.get("time_simulate", 0.0)
                                 - first_prepare),
        **{f"{k}_s": parts.get(k, 0.0) for k in SIMULATE_PARTS[1:]},
    }
    out["outside_nest_s"] = sum(v for k, v in out.items() if k != "startup_s" and v is not None)
    sim = t.get("time_simulate", 0.0)
    out["share_of_simulate"] = out["outside_nest_s"] / sim if sim > 0 else None
    return out


def chunk_ends_ms(t_sim_ms: float, chunk_ms: float, resolution_ms: float) -> list[float]:
    """Chunk boundaries on the resolution grid, the last one exactly at t_sim."""
    steps_total = round(t_sim_ms / resolution_ms)
    steps_chunk = max(1, round(chunk_ms / resolution_ms))
    ends = list(range(steps_chunk, steps_total, steps_chunk)) + [steps_total]
    return [k * resolution_ms for k in ends]


@dataclass
class Progress:
    """How far this rank got: reported in the failure record."""

    t_model_reached_ms: float = 0.0  # model time of the last chunk this rank flushed


def failure_hook(run_dir: Path, par: Parallel, progress: Progress):
    """The hook that records an unexpected error of this rank in the run directory."""

    def hook(exc: BaseException, phase: str) -> None:
        rundir.record_failure(run_dir, rank=par.rank, num_ranks=par.size, phase=phase, exc=exc,
                              t_model_reached_ms=progress.t_model_reached_ms)

    return hook


@dataclass
class Segment:
    """Which part of the run this job simulates: segment 0 starts the run (warm-up,
    new rank files); a continuation (segment >= 1) starts from `state` (a
    checkpoint) and appends. until_ms: the model time to reach (warm-up included)."""

    index: int
    until_ms: float
    state: object | None = None  # checkpoint.RankState of this rank
    checkpoint_every_ms: float = 0.0
    hash_connections: bool = False


def simulate(cfg: RunConfig, run_dir: Path, par: Parallel, nest, *, threads: int, run_id: str,
             stop: StopRequest, progress: Progress | None = None, startup_s: float | None = None,
             segment: Segment | None = None) -> dict:
    """Build and simulate on this rank; write this rank's file (a new one for
    segment 0, appended to for a continuation) and its checkpoints. Returns the
    rank's summary (collectives inside: call on every rank)."""
    from hpc_brunel.simulation import checkpoint
    from hpc_brunel.simulation.recording import (  # h5py: only once NEST is checked
        RankSpikeWriter,
        rank_file_name,
        read_recorder,
    )

    sim = cfg.simulation
    seg = segment or Segment(index=0, until_ms=sim.presim_ms + sim.t_sim_ms)
    progress = progress or Progress()
    timer = PhaseTimer(par)
    with timer("setup_kernel"):
        kernel_settings = kernel.setup_kernel(nest, threads_per_rank=threads, resolution_ms=sim.resolution_ms,
                                              rng_seed=sim.rng_seed, settings=cfg.kernel)
    with timer("build_network"):
        net = network.build(nest, cfg, timer=timer)
    # VmRSS after kernel set-up, create, connect (= the network), warm-up, first chunk
    mem_phases = {"base": timer.rss_kib["setup_kernel"], "create": timer.rss_kib["create"],
                  "network": timer.rss_kib["build_network"]}
    local_neurons = network.local_neuron_count(nest, net)
    local_synapses = int(nest.GetKernelStatus("num_connections"))
    all_neurons = net.neurons["excitatory"] + net.neurons["inhibitory"]
    p_ms = checkpoint.preroll_ms(cfg)
    recent = checkpoint.RecentSpikes(p_ms)
    nest_seed = checkpoint.segment_seed(sim.rng_seed, seg.index)

    if seg.state is None:
        if sim.presim_ms > 0:  # warm-up, excluded from recording and from the measured phase
            with timer("presimulate"):
                nest.Simulate(sim.presim_ms)
                for rec in net.recorders.values():
                    rec.set(n_events=0)
        t_begin_ms, offset_ms = sim.presim_ms, 0.0
    else:
        # The pre-roll; a new Poisson stream (NEST cannot restore the old one) from T - D.
        with timer("restore_checkpoint"):
            offset_ms = checkpoint.restore(nest, all_neurons, net.recorders, seg.state, p_ms=p_ms,
                                           resolution_ms=sim.resolution_ms, rng_seed=nest_seed,
                                           drive_delay_ms=cfg.network.delay_ms)
        t_begin_ms = seg.state.t_model_ms
        recent.add(seg.state.window_node_ids, seg.state.window_times_ms, t_begin_ms)
    mem_phases["init"] = kernel.memory_kib().get("VmRSS", 0)
    t_start_ms = sim.presim_ms
    checkpoints: list[dict] = []
    ckpt_meta = {"run_id": run_id, "threads_per_rank": threads, "virtual_processes": par.size * threads,
                 "segment": seg.index, "preroll_ms": p_ms, "rng_seed": sim.rng_seed}
    local_count = sum(local_neurons.values())

    all_recorded = cfg.recording.n_record_per_population == 0

    def save_checkpoint(t_model_ms: float) -> None:
        par.phase = "write_checkpoint"
        t0 = time.perf_counter()
        state = checkpoint.capture(nest, all_neurons, t_model_ms=t_model_ms, offset_ms=offset_ms, p_ms=p_ms,
                                   recent=recent, all_recorded=all_recorded)
        t1 = time.perf_counter()
        result = checkpoint.save(run_dir, par, state, ckpt_meta)
        # seconds: reading the state from NEST and writing it, slowest rank
        result.update(read_s=par.max(t1 - t0), write_s=result["seconds"])
        result["seconds"] = par.max(time.perf_counter() - t0)
        checkpoints.append(result)
        par.phase = "simulate"

    per_rank = par.gather_to_root({"neurons": local_neurons, "synapses": local_synapses})
    if par.is_root:
        vps = par.size * threads
        log.info("decomposition: %d rank(s) x %d thread(s) = %d virtual processes", par.size, threads, vps)
        for r, info in enumerate(per_rank):
            log.info("  rank %d: %d E + %d I neurons, %d synapses", r, info["neurons"]["excitatory"],
                     info["neurons"]["inhibitory"], info["synapses"])

    par.phase = "open_rank_file"
    if seg.state is None:
        writer = RankSpikeWriter(run_dir / rank_file_name(par.rank), populations=POPULATIONS,
                                 rank=par.rank, num_ranks=par.size, threads_per_rank=threads, run_id=run_id,
                                 t_start_ms=t_start_ms)
    else:
        writer = RankSpikeWriter.resume(run_dir / rank_file_name(par.rank), t_model_ms=t_begin_ms, run_id=run_id)
    seg_ms = seg.until_ms - t_begin_ms
    ends = chunk_ends_ms(seg_ms, sim.chunk_ms, sim.resolution_ms)
    last_ckpt_ms = t_begin_ms
    t_done_ms = 0.0
    status = "complete"
    timers: dict[str, float] = {}
    n_events = dict.fromkeys(net.recorders, 0)  # NEST's own count, to check the files against
    wall0 = time.perf_counter()
    # Wall time of the simulate phase by part (s): NEST's Simulate() calls, and what
    # happens between them (the overhead outside NEST; see overhead_outside_nest).
    parts = dict.fromkeys(SIMULATE_PARTS, 0.0)
    clock = time.perf_counter
    with timer("simulate"):
        # One Simulate() per chunk: NEST refuses to reset a recorder inside a
        # Prepare/Run/Cleanup context, and the recorder must be emptied after
        # every chunk to keep memory bounded. Prepare after the first is cheap.
        for t_end in ends:
            t0 = clock()
            nest.Simulate(t_end - t_done_ms)
            t1 = clock()
            kernel.accumulate_timers(timers, nest)
            t_done_ms = t_end
            t2 = clock()
            chunk = {p: read_recorder(r, offset_ms) for p, r in net.recorders.items()}
            for p, (ids, times, n) in chunk.items():
                n_events[p] += n
                recent.add(ids, times, t_begin_ms + t_end)
            par.phase = "write_spikes"
            t3 = clock()
            writer.append_chunk(t_begin_ms + t_end, {p: (ids, t) for p, (ids, t, _) in chunk.items()})
            t4 = clock()
            parts["nest_simulate_calls"] += t1 - t0
            parts["read_nest_timers"] += t2 - t1
            parts["read_recorders"] += t3 - t2
            parts["write_spikes"] += t4 - t3
            progress.t_model_reached_ms = t_begin_ms + t_end
            if "first_chunk" not in mem_phases:
                mem_phases["first_chunk"] = kernel.memory_kib().get("VmRSS", 0)
            par.phase = "simulate"
            wall = time.perf_counter() - wall0
            remaining = wall / t_done_ms * (seg_ms - t_done_ms)
            # The checkpoint at the stop must fit in the grace period too.
            save_s = checkpoints[-1]["seconds"] if checkpoints else checkpoint.estimated_save_s(local_count)
            # Collective: all ranks stop at the same boundary, whoever got the signal.
            stop_here = t_end < ends[-1] and par.max(int(stop.wants_stop(remaining + save_s)))
            if stop_here:
                status = "terminated"
                log.warning("stop requested: stopping at model time %.1f ms of %.1f ms (data flushed, "
                            "checkpoint follows)", t_begin_ms + t_done_ms, seg.until_ms)
            elif par.is_root:
                log.info("simulated %7.1f / %.1f ms  wall %6.1f s  real-time factor %.2f",
                         t_begin_ms + t_done_ms, seg.until_ms, wall, wall / (t_done_ms / 1000.0))
            t5 = clock()
            parts["progress_and_stop_check"] += t5 - t4
            t_model = t_begin_ms + t_end
            if stop_here or t_end == ends[-1] or (
                    seg.checkpoint_every_ms > 0 and t_model >= last_ckpt_ms + seg.checkpoint_every_ms - 1e-9):
                save_checkpoint(t_model)
                last_ckpt_ms = t_model
                parts["write_checkpoint"] += clock() - t5
            if stop_here:
                break

    connections_hash = None
    if seg.hash_connections:  # after the last Simulate (checkpoint.connections_sha256)
        with timer("hash_connections"):
            connections_hash = checkpoint.connections_sha256(nest, all_neurons)
    summary = {
        "status": status,
        "segment": seg.index,
        "t_segment_start_ms": t_begin_ms,
        "nest_rng_seed": nest_seed,
        "checkpoints": checkpoints,
        "connections_sha256": connections_hash,
        "t_model_reached_ms": t_begin_ms + t_done_ms,
        "neurons": local_neurons,
        "synapses": local_synapses,
        "spikes": writer.spike_counts,
        "n_events": n_events,
        "nest_timers_s": timers,
        "spike_exchange": kernel.spike_exchange_status(nest),
        "startup_s": startup_s,
        "python_phases_s": timer.times_s,
        "simulate_parts_s": parts,
        "memory_kib": kernel.memory_kib(),
        "memory_phases_kib": mem_phases,  # VmRSS after kernel set-up, network build, warm-up, first chunk
        "kernel_settings": kernel_settings,
        "threads_per_rank": threads,
    }
    par.phase = "close_rank_file"
    writer.close(meta=summary)
    return summary


def estimated_output_bytes(cfg: RunConfig, *, upper_bound: bool = False) -> int:
    """Disk space the run will need: 16 bytes per recorded spike in the rank files
    and as much again in the gathered SONATA file, plus 1 MiB of metadata. The
    rate is bounded from above: 1.5x the mean-field rate (at least 10 Hz), at
    most 1/t_ref (500 Hz, which covers SR at ~330 Hz); 1/t_ref when the mean
    field has no answer or when only an `upper_bound` is asked for. The warm-up
    (presim_ms) is not recorded.

    The mean field needs scipy's quad and brentq (~37 MB of memory on rank 0 for
    the rest of the run), so the caller asks for it only when the upper bound does
    not fit on the disk."""
    n_rec = cfg.recording.n_record_per_population
    recorded = 2 * n_rec if n_rec else cfg.network.n_neurons
    rate_hz = max_rate_hz = 1000.0 / cfg.neuron.t_ref_ms if cfg.neuron.t_ref_ms > 0 else 1000.0
    if not upper_bound:
        from hpc_brunel.theory.meanfield import stationary_rate_for_config

        try:
            mf = stationary_rate_for_config(cfg)
        except (ValueError, ArithmeticError):
            mf = float("nan")
        rate_hz = min(max_rate_hz, max(10.0, 1.5 * mf)) if mf == mf else max_rate_hz
    return int(recorded * rate_hz * cfg.simulation.t_sim_ms / 1000.0 * 32) + (1 << 20)


def needed_disk_bytes(cfg: RunConfig, free_bytes: int) -> int:
    """What the free-space check compares with: the cheap upper bound when it fits,
    else the estimate from the expected rate."""
    bound = estimated_output_bytes(cfg, upper_bound=True)
    return bound if free_bytes >= bound else estimated_output_bytes(cfg)


@dataclass
class Continuation:
    """`run --continue RUN_DIR`: simulate `more_ms` beyond the checkpoint, or up to
    model time `until_ms`; a failed run only with `after_failure`."""

    more_ms: float | None = None
    until_ms: float | None = None
    after_failure: bool = False


CONTINUABLE = ("complete", "terminated")


def prepare_continuation(run_dir: Path, cfg: RunConfig, *, ranks: int, threads: int,
                         cont: Continuation) -> tuple[object | None, dict, dict, float]:
    """Rank 0: whether the run in `run_dir` may be continued here, and from where.
    Returns (the run's lock, its record, the checkpoint manifest, the model time to
    reach); the lock is None when there is nothing left to simulate. Raises
    RunDirError (one line) when it may not be continued."""
    from hpc_brunel.simulation import checkpoint

    run_dir = Path(run_dir)
    try:
        record = rundir.read_run_json(run_dir)
    except (OSError, ValueError) as e:
        raise RunDirError(f"--continue {run_dir}: not an hpc_brunel run directory ({e})") from None
    if record.get("layout_version") != rundir.RUN_LAYOUT_VERSION:
        raise RunDirError(f"--continue {run_dir}: run directory layout_version {record.get('layout_version')!r}, "
                          f"this hpc_brunel writes {rundir.RUN_LAYOUT_VERSION}")
    lock = rundir.RunLock(run_dir)
    lock.acquire()  # raises when a process still runs it
    try:
        status = record.get("status")
        if status == "failed" and not cont.after_failure:
            why = f" ({rundir.describe_failure(record['failure'])})" if record.get("failure") else ""
            raise RunDirError(f"--continue {run_dir}: the run failed{why}; pass --after-failure to continue it from "
                              "its last complete checkpoint anyway")
        if status not in (*CONTINUABLE, "failed", "running"):
            raise RunDirError(f"--continue {run_dir}: run status {status!r}: allowed {', '.join(CONTINUABLE)}")
        manifest = checkpoint.read_manifest(run_dir)
        if manifest is None or manifest.get("run_id") != record.get("run_id"):
            raise RunDirError(f"--continue {run_dir}: the run has no complete checkpoint (it was stopped before its "
                              "first one, or written by an hpc_brunel without checkpoints); it cannot be continued")
        d = record["decomposition"]
        if ranks * threads != manifest["virtual_processes"]:
            raise RunDirError(
                f"--continue {run_dir}: {ranks} rank(s) x {threads} thread(s) = {ranks * threads} virtual processes, "
                f"the run has {manifest['virtual_processes']} ({d['ranks']} x {d['threads_per_rank']}): NEST's "
                "connectivity depends on the number of virtual processes; continue with the same one")
        if (ranks, threads) != (manifest["ranks"], manifest["threads_per_rank"]):
            raise RunDirError(
                f"--continue {run_dir}: {ranks} rank(s) x {threads} thread(s): the run's rank files and checkpoint are "
                f"per rank: continue with its {manifest['ranks']} rank(s) x {manifest['threads_per_rank']} thread(s)")
        t_ckpt = float(manifest["t_model_ms"])
        until = cont.until_ms if cont.until_ms is not None else t_ckpt + cont.more_ms
        h = cfg.simulation.resolution_ms
        until = round(until / h) * h
        if until <= t_ckpt:
            if cont.until_ms is not None and status == "complete" and float(record["t_model_reached_ms"]) >= until:
                lock.release()
                return None, record, manifest, until
            raise RunDirError(f"--until-ms = {until:g}: allowed a model time > {t_ckpt:g} ms (the checkpoint's)")
        more = dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation, t_sim_ms=until - t_ckpt))
        rundir.check_free_space(run_dir, lambda free: needed_disk_bytes(more, free), run_dir)
        return lock, record, manifest, until
    except BaseException:
        lock.release()
        raise


def execute(cfg: RunConfig, run_dir: Path, par: Parallel, nest, *, threads: int, overwrite: bool,
            argv: list[str], grace_s: float = 0.0, checkpoint_every_ms: float = 0.0,
            hash_connections: bool = False, cont: Continuation | None = None) -> int:
    """The whole run (or, with `cont`, its next segment) on every rank. Returns the exit status."""
    from hpc_brunel.simulation import checkpoint

    t0 = time.perf_counter()
    startup_s = process_age_s()
    progress = Progress(t_model_reached_ms=cfg.simulation.presim_ms)
    timers_at_start = kernel.kernel_timers(nest)  # on every rank: no nest.* call on rank 0 alone
    # --- run directory: rank 0 decides, everyone learns the outcome ---------
    par.phase = "prepare_run_dir"
    err, lock, run_id, manifest, until, seg_index = None, None, None, None, None, 0
    segment_record = {"started": rundir.now_iso(), "command": argv,
                      "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    if par.is_root:
        try:
            if cont is None:
                lock = rundir.prepare(run_dir, overwrite=overwrite,
                                      needed_bytes=lambda free: needed_disk_bytes(cfg, free))
            else:
                lock, old, manifest, until = prepare_continuation(run_dir, cfg, ranks=par.size, threads=threads,
                                                                  cont=cont)
        except RunDirError as e:
            err = str(e)
        else:
            if cont is None:
                run_id = uuid.uuid4().hex
                until = cfg.simulation.presim_ms + cfg.simulation.t_sim_ms
                # run.json first: from here on the directory is an hpc_brunel run, and a failure is recorded in it.
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
                })
                segment_record.update(index=0, t_start_ms=0.0, until_ms=until,
                                      nest_rng_seed=cfg.simulation.rng_seed,
                                      poisson_stream="the run's rng_seed")
                segments = [segment_record]
            elif lock is not None:
                run_id, seg_index = old["run_id"], len(old.get("segments", [{}]))
                t_ckpt = float(manifest["t_model_ms"])
                seed = checkpoint.segment_seed(cfg.simulation.rng_seed, seg_index)
                segment_record.update(
                    index=seg_index, t_start_ms=t_ckpt, until_ms=until, nest_rng_seed=seed, continued_from=manifest,
                    poisson_stream=(f"new from model time {t_ckpt - cfg.network.delay_ms:g} ms (the seam minus the "
                                    f"drive's delay): NEST reseeded with {seed} (from seed "
                                    f"{cfg.simulation.rng_seed} and segment {seg_index}) in the pre-roll; NEST "
                                    "cannot restore a Poisson generator's stream"),
                    previous_status=old.get("status"),
                    lost_ms=max(0.0, float(old.get("t_model_reached_ms") or t_ckpt) - t_ckpt))
                failures = rundir.read_failures(run_dir)
                if failures:  # --after-failure: the failure stays on record in its segment
                    segment_record["previous_failures"] = failures
                    for r in range(old["decomposition"]["ranks"]):
                        (run_dir / rundir.failure_file_name(r)).unlink(missing_ok=True)
                segments = old.get("segments", []) + [segment_record]
                cfg = dataclasses.replace(cfg, simulation=dataclasses.replace(
                    cfg.simulation, t_sim_ms=until - cfg.simulation.presim_ms))
                (run_dir / CONFIG_TOML).write_text(cfg.to_toml())
                rundir.update_run_json(run_dir, status="running", segments=segments,
                                       seams_ms=[s["t_start_ms"] for s in segments[1:]], config=cfg.to_dict(),
                                       failure=None)
            if lock is not None:
                par.failure_hooks.append(failure_hook(run_dir, par, progress))
                if cont is None:
                    (run_dir / CONFIG_TOML).write_text(cfg.to_toml())
                    rundir.update_run_json(run_dir, segments=segments, seams_ms=[])
                versions = provenance.versions(nest)
                log.info("stack: %s", provenance.stack_line(versions))
                mismatch = provenance.native_build_mismatch(versions)
                if mismatch:
                    log.warning("%s", mismatch)
                limitations = provenance.nest_limitations(versions, timers_at_start, cfg.network.synapse_model)
                for line in limitations:
                    log.warning("%s", line)
                rundir.update_run_json(run_dir, versions=versions, nest_limitations=limitations,
                                       nest_build_info=provenance.nest_build_info(nest),
                                       machine=provenance.machine(), slurm=provenance.slurm_context(),
                                       file_locking=lock.mode)
    err, run_id, manifest, until, seg_index, idle = par.bcast(
        (err, run_id, manifest, until, seg_index, par.is_root and cont is not None and lock is None))
    if err:
        raise RunDirError(err)
    if idle:
        if par.is_root:
            print(f"run {run_dir}: already complete at {until:g} ms of model time; nothing to simulate", flush=True)
        return EXIT_OK
    if not par.is_root:
        par.failure_hooks.append(failure_hook(run_dir, par, progress))
    if cont is not None:
        cfg = dataclasses.replace(cfg, simulation=dataclasses.replace(
            cfg.simulation, t_sim_ms=until - cfg.simulation.presim_ms))
        par.phase = "read_checkpoint"
        state, load_err = None, None
        try:
            state = checkpoint.load(run_dir, manifest, par.rank)
        except RunDirError as e:
            load_err = str(e)
        load_err = par.first_error(load_err)
        if load_err:
            if par.is_root:
                lock.release()
            raise RunDirError(load_err)
        progress.t_model_reached_ms = state.t_model_ms
    else:
        state = None

    par.phase = "prepare_run_dir"
    where = par.gather_to_root((provenance.machine()["hostname"], os.environ.get("SLURMD_NODENAME")))
    if par.is_root:
        hosts = [h for h, _ in where]
        extra = {"rank_nodes": [n for _, n in where]} if any(n for _, n in where) else {}
        rundir.update_run_json(run_dir, hosts=sorted(set(hosts)), rank_hosts=hosts, **extra)

    segment = Segment(index=seg_index, until_ms=until, state=state, checkpoint_every_ms=checkpoint_every_ms,
                      hash_connections=hash_connections)
    stop = StopRequest(grace_s)
    try:
        summary = simulate(cfg, run_dir, par, nest, threads=threads, run_id=run_id, stop=stop, progress=progress,
                           startup_s=startup_s, segment=segment)
    finally:
        stop.restore()
    par.phase = "finish_record"
    summaries = par.gather_to_root(summary)
    par.barrier()
    if not par.is_root:
        return EXIT_TERMINATED if summary["status"] == "terminated" else EXIT_OK

    status = summary["status"]
    spikes = {p: sum(s["spikes"][p] for s in summaries) for p in POPULATIONS}
    t_rec_s = (summary["t_model_reached_ms"] - cfg.simulation.presim_ms) / 1000.0
    n_rec = cfg.recording.n_record_per_population
    rates = {p: spikes[p] / (t_rec_s * (n_rec or getattr(cfg.network, f"n_{p}"))) if t_rec_s > 0 else 0.0
             for p in POPULATIONS}
    overheads = [overhead_outside_nest(s, s["nest_timers_s"]) for s in summaries]
    timers_max = {k: max(s["nest_timers_s"].get(k, 0.0) for s in summaries) for k in summary["nest_timers_s"]}
    segments = rundir.read_run_json(run_dir).get("segments", [])
    if segments:
        segments[-1].update(
            ended=rundir.now_iso(), status=status, t_end_ms=summary["t_model_reached_ms"],
            wall_time_s=time.perf_counter() - t0, time_simulate_s=timers_max.get("time_simulate"),
            restore_s=max(s["python_phases_s"].get("restore_checkpoint", 0.0) for s in summaries),
            checkpoints=summary["checkpoints"],
            connections_sha256=([s["connections_sha256"] for s in summaries]
                                if summary["connections_sha256"] else None))
    record = rundir.update_run_json(
        run_dir,
        status=status,
        ended=rundir.now_iso(),
        t_model_reached_ms=summary["t_model_reached_ms"],
        spikes=spikes,
        mean_rate_hz=rates,
        synapses_total=sum(s["synapses"] for s in summaries),
        wall_time_s=time.perf_counter() - t0,
        ranks=[{**{k: s[k] for k in ("neurons", "synapses", "spikes", "n_events", "memory_kib", "memory_phases_kib",
                                     "python_phases_s", "simulate_parts_s", "startup_s")},
                "overhead_outside_nest": o}
               for s, o in zip(summaries, overheads)],
        overhead_outside_nest=max(overheads, key=lambda o: o["outside_nest_s"]),
        nest_timers_max_s=timers_max,
        kernel_settings=summary["kernel_settings"],
        segments=segments,
        checkpoint=summary["checkpoints"][-1] if summary["checkpoints"] else None,
    )
    lock.release()
    print_summary(record, run_dir)
    return EXIT_TERMINATED if status == "terminated" else EXIT_OK


def print_summary(record: dict, run_dir: Path) -> None:
    """Print the end-of-run summary from run.json's `record`: status, decomposition,
    model time, synapses, spikes, mean rates (whole recording) and wall times."""
    d = record["decomposition"]
    timers = record["nest_timers_max_s"]
    ph = record["ranks"][0]["python_phases_s"]
    lines = [
        f"run {record['status']}: {run_dir}",
        f"  decomposition   {d['ranks']} rank(s) x {d['threads_per_rank']} thread(s) = {d['virtual_processes']} VPs",
        f"  model time      {record['t_model_reached_ms']:.1f} ms",
        f"  synapses        {record['synapses_total']:,}",
        "  spikes          " + ", ".join(f"{p} {n:,}" for p, n in record["spikes"].items()),
        "  mean rate       " + ", ".join(f"{p} {r:.2f} Hz" for p, r in record["mean_rate_hz"].items())
        + " (whole recording; analyze reports the rate after the transient)",
        f"  wall time       total {record['wall_time_s']:.2f} s; build {ph.get('build_network', 0):.2f} s "
        f"(NEST connect {timers.get('time_construction_connect', 0):.2f} s), "
        f"simulate {ph.get('simulate', 0):.2f} s (NEST {timers.get('time_simulate', 0):.2f} s)",
    ]
    over = record.get("overhead_outside_nest")
    if over and over.get("share_of_simulate") is not None:
        lines.append(f"  outside NEST    {over['outside_nest_s']:.2f} s = {over['share_of_simulate']:.1%} of NEST's "
                     f"simulate (build, chunk Prepare/Cleanup, recorders, HDF5, progress; run.json "
                     f"overhead_outside_nest), start-up {over['startup_s'] or 0:.2f} s")
    print("\n".join(lines), flush=True)


def check_run_options(cfg: RunConfig, par: Parallel, *, cli_threads: int | None, grace_s: float,
                      allow_oversubscribe: bool) -> int:
    """The launch-dependent checks of a run: threads per rank against the CPUs this
    rank may use, and --grace-s against the launcher's SIGTERM -> SIGKILL window.
    Returns the threads per rank; raises ConfigError (one line) otherwise. Rank 0
    alone asks the launcher (it may ask SLURM); the caller shares the decision."""
    threads, source = threads_per_rank(cli_threads, cfg.simulation.threads_per_rank)
    cpus = available_cpus()
    if threads > cpus and not allow_oversubscribe:
        raise ConfigError(
            f"threads per rank = {threads} (from {source}) exceeds the {cpus} CPU(s) this rank may use: "
            f"allowed 1..{cpus} (with Open MPI give each rank its cores: mpirun --map-by slot:PE={threads} "
            "or --bind-to none; or pass --allow-oversubscribe)"
        )
    if not (0 <= grace_s < float("inf")):
        raise ConfigError(f"--grace-s = {grace_s}: allowed a finite number of seconds >= 0")
    window = launcher_kill_window_s() if par.is_root else None  # may ask SLURM: once
    if par.is_root and window is None and grace_s > 0:
        who = ("MPICH's Hydra mpiexec" if "PMI_RANK" in os.environ or "PMI_FD" in os.environ
               else "this launcher")
        log.warning("--grace-s %g is not checked: %s does not say how long it waits between SIGTERM and SIGKILL "
                    "(Open MPI's mpirun and SLURM do)", grace_s, who)
    # After the grace period: finish the chunk, write the checkpoint, close the files.
    from hpc_brunel.simulation.checkpoint import estimated_save_s

    save_s = estimated_save_s(math.ceil(cfg.network.n_neurons / par.size))
    if window is not None and grace_s > max(0.0, window[0] - GRACE_MARGIN_S - save_s):
        allowed = max(0.0, math.floor((window[0] - GRACE_MARGIN_S - save_s) * 10) / 10)
        raise ConfigError(
            f"--grace-s = {grace_s:g}: allowed 0..{allowed:g} s here: {window[1]} sends SIGKILL "
            f"{window[0]:g} s after SIGTERM, and the run needs ~{GRACE_MARGIN_S:g} s after the grace "
            f"period to finish its chunk and close its files and ~{save_s:.1f} s to write its checkpoint")
    return threads


def check_kernel_settings(cfg: RunConfig, nest) -> None:
    """Raise ConfigError when NEST refuses the config's [kernel] settings."""
    err = kernel.check_kernel_settings(nest, cfg.kernel)
    if err:
        raise ConfigError(err)


def free_network(nest) -> None:
    """Free NEST's network and give the memory back to the system, on every rank:
    the in-process analysis that follows then reuses that memory instead of adding
    to it (full network, 1 x 2: the process peaked at 723 MiB with the network kept,
    see BENCHMARKS.md)."""
    nest.ResetKernel()
    kernel.release_freed_memory()
