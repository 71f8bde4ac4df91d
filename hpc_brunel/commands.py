"""The sub-commands of `python -m hpc_brunel`, one function each.

`hpc_brunel.cli` parses the arguments and calls `dispatch`; each function here
checks what only it can check, calls the layer that does the work and returns
the exit status (hpc_brunel.errors). An `HpcBrunelError` that escapes a
single-process command becomes its one-line error and exit status in
`dispatch`. The run command is the one that runs on every rank: its bad input is
decided collectively and anything unexpected aborts the job
(`Parallel.run_guarded`). This module is also where a run's two halves meet:
the simulation on every rank, then the analysis on rank 0 in the same process.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import shlex
import sys
from pathlib import Path
from typing import Callable

from hpc_brunel.config import LEAN_SYNAPSE_MODEL, parse_override, resolve
from hpc_brunel.constants import CONFIG_TOML, DEFAULT_CHECKPOINT_EVERY_MS
from hpc_brunel.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    ConfigError,
    HpcBrunelError,
    NestSetupError,
    RunDirError,
    print_error,
)


# --- helpers shared by several commands ---------------------------------------------
class _RankFilter(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record):
        record.rank = self.rank
        return True


def setup_logging(rank: int, verbose: bool = False) -> None:
    """Log to stderr with the rank in every line: progress from rank 0, warnings
    from every rank (everything from every rank with `verbose`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RankFilter(rank))
    handler.setFormatter(logging.Formatter("%(asctime)s [rank %(rank)d] %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("hpc_brunel")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO if rank == 0 else logging.WARNING)
    root.propagate = False


def config_from_args(args):
    """The RunConfig of `run`/`config` arguments: defaults <- --config <- --regime
    <- --set and the shortcuts (see cli.PRECEDENCE). Raises ConfigError."""
    overrides = [parse_override(s) for s in args.overrides]
    short = {
        ("simulation", "t_sim_ms"): args.t_sim_ms,
        ("simulation", "rng_seed"): args.seed,
        ("network", "relative_inhibition"): args.g,
        ("network", "eta"): args.eta,
        ("recording", "n_record_per_population"): args.record,
    }
    if getattr(args, "no_analyze", False):
        short[("analysis", "run_after_simulation")] = False
    if getattr(args, "lean", False):
        named = [ov["network"]["synapse_model"] for ov in overrides if "synapse_model" in ov.get("network", {})]
        if named and named[-1] != LEAN_SYNAPSE_MODEL:
            raise ConfigError(f"--lean sets network.synapse_model = {LEAN_SYNAPSE_MODEL}; --set "
                              f"network.synapse_model={named[-1]} conflicts with it: give one or the other")
        short[("network", "synapse_model")] = LEAN_SYNAPSE_MODEL
    if args.regime:
        given = [flag for flag, v in (("--g", args.g), ("--eta", args.eta)) if v is not None]
        given += [f"--set network.{k}" for ov in overrides for k in ov.get("network", {})
                  if k in ("relative_inhibition", "eta")]
        if given:
            raise ConfigError(f"--regime {args.regime} sets g and eta; {' and '.join(given)} conflicts with it: "
                              "give --regime or the values, not both")
    overrides += [{sec: {key: val}} for (sec, key), val in short.items() if val is not None]
    return resolve(args.config, overrides, args.regime)


# `run` options that resolve a new run's config or name its directory: a continued
# run keeps its own (config.toml and directory), so they are refused with --continue.
_NEW_RUN_ONLY = (("config", "--config"), ("overrides", "--set"), ("regime", "--regime"), ("seed", "--seed"),
                 ("g", "--g"), ("eta", "--eta"), ("record", "--record"), ("lean", "--lean"),
                 ("run_dir", "--run-dir"), ("overwrite", "--overwrite"))


def config_for_run(args):
    """The RunConfig of `run`: from the arguments, or with --continue the run's own
    config.toml. Raises ConfigError (one line) for options that do not go together."""
    _check_ms("--checkpoint-every-ms", args.checkpoint_every_ms)
    if args.continue_dir is None:
        for name, flag in (("until_ms", "--until-ms"), ("after_failure", "--after-failure")):
            if getattr(args, name):
                raise ConfigError(f"{flag} goes with --continue RUN_DIR")
        return config_from_args(args)
    given = [flag for name, flag in _NEW_RUN_ONLY if getattr(args, name)]
    if given:
        raise ConfigError(f"--continue {args.continue_dir}: {', '.join(given)} cannot be given: a continued run keeps "
                          "its own config.toml and run directory")
    if (args.t_sim_ms is None) == (args.until_ms is None):
        raise ConfigError("--continue: give --t-sim-ms MORE (model time to add) or --until-ms TOTAL, one of them")
    if args.t_sim_ms is not None:
        _check_ms("--t-sim-ms", args.t_sim_ms, strict=True)
    else:
        _check_ms("--until-ms", args.until_ms, strict=True)
    toml = Path(args.continue_dir) / CONFIG_TOML
    if not toml.is_file():
        raise ConfigError(f"--continue {args.continue_dir}: no config.toml: not an hpc_brunel run directory")
    from hpc_brunel.config import load_toml

    return load_toml(toml)


def _split_options(name: str, text: str) -> list[str]:
    """Split a quoted options string as the shell would; ConfigError if it cannot."""
    try:
        return shlex.split(text)
    except ValueError as e:
        raise ConfigError(f"{name} {text!r}: {e}") from None


def _check_ms(name: str, value: float, *, minimum: float = 0.0, strict: bool = False) -> None:
    if not (math.isfinite(value) and (value > minimum if strict else value >= minimum)):
        raise ConfigError(f"{name} = {value:g}: allowed a finite number of ms {'>' if strict else '>='} {minimum:g}")


# --- run: every rank -------------------------------------------------------------------
def cmd_run(args) -> int:
    """`run`: simulate on every rank of the launch, then analyze on rank 0."""
    from hpc_brunel.simulation.parallel import Parallel

    par = Parallel.from_environment()
    setup_logging(par.rank, args.verbose)
    # Any unexpected error on any rank ends the whole job (MPI_Abort) with a failure record.
    return par.run_guarded(lambda: _run_on_every_rank(args, par))


def _collective_bad_input(par, phase: str, step: Callable[[], object]):
    """Run `step` on every rank; if it raises ConfigError/NestSetupError on any
    rank, every rank gets (True, None) and rank 0 prints the lowest rank's error
    (one line, exit status 2 everywhere); else (False, step's result)."""
    par.phase = phase
    err, result = None, None
    try:
        result = step()
    except (ConfigError, NestSetupError) as e:
        err = str(e)
    err = par.first_error(err)
    if err and par.is_root:
        print_error(err)
    return (True, None) if err else (False, result)


def _run_on_every_rank(args, par) -> int:
    from hpc_brunel.simulation import kernel, rundir
    from hpc_brunel.simulation import run as simulation

    cfg = None

    def check_config():
        nonlocal cfg
        cfg = config_for_run(args)
        return simulation.check_run_options(cfg, par, cli_threads=args.threads, grace_s=args.grace_s,
                                            allow_oversubscribe=args.allow_oversubscribe)

    bad, threads = _collective_bad_input(par, "config", check_config)
    if bad:
        return EXIT_BAD_INPUT
    # NEST: each rank checks its own (ldd, rank numbers) before and after the import;
    # the kernel settings are tried on a fresh kernel before anything is written.
    bad, _ = _collective_bad_input(par, "import_nest", lambda: kernel.precheck_mpi(par))
    if bad:
        return EXIT_BAD_INPUT

    def import_and_check():
        nest = kernel.import_nest()
        kernel.check_nest(nest, par)
        return nest

    bad, nest = _collective_bad_input(par, "import_nest", import_and_check)
    if bad:
        return EXIT_BAD_INPUT
    bad, _ = _collective_bad_input(par, "check_kernel_settings",
                                   lambda: simulation.check_kernel_settings(cfg, nest))
    if bad:
        return EXIT_BAD_INPUT

    cont = None
    if args.continue_dir is not None:
        run_dir = args.continue_dir
        cont = simulation.Continuation(more_ms=args.t_sim_ms, until_ms=args.until_ms,
                                       after_failure=args.after_failure)
    else:
        run_dir = Path(args.run_dir or par.bcast(rundir.default_run_dir(args.runs_root) if par.is_root else None))
    try:  # rank 0 decides about the run directory and broadcasts: every rank raises the same RunDirError
        status = simulation.execute(cfg, run_dir, par, nest, threads=threads, overwrite=args.overwrite,
                                    argv=sys.argv, grace_s=args.grace_s,
                                    checkpoint_every_ms=args.checkpoint_every_ms,
                                    hash_connections=args.hash_connections, cont=cont)
    except RunDirError as e:  # raised on every rank alike (anything else aborts the job)
        if par.is_root:
            print_error(e)
        return EXIT_BAD_INPUT
    if status == EXIT_OK and cfg.analysis.run_after_simulation and not args.no_analyze:
        par.phase = "reset_kernel"
        simulation.free_network(nest)
        if par.is_root:
            from hpc_brunel.analysis.analyze import analyze_run

            par.phase = "analyze"
            analyze_run(run_dir, print_table=True)
    return status


# --- single-process commands -----------------------------------------------------------
def cmd_config(args) -> int:
    """`config`: print the resolved configuration as TOML."""
    sys.stdout.write(config_from_args(args).to_toml())
    return EXIT_OK


def cmd_launch(args) -> int:
    """`launch`: run an hpc_brunel command under mpirun with ranks x threads."""
    import os
    import shutil
    import subprocess

    from hpc_brunel.simulation.parallel import (LAUNCHERS, choose_split, default_launcher, launcher_flavour,
                                                library_family, mpi_library, mpirun_argv)

    if args.cores is not None:
        if args.ranks or args.threads:
            raise ConfigError("--cores chooses ranks and threads: give --cores or -n/--threads, not both")
        args.ranks, args.threads = choose_split(args.cores)
        print(f"--cores {args.cores}: {args.ranks} rank(s) x {args.threads} thread(s)", file=sys.stderr)
    args.ranks, args.threads = args.ranks or 4, args.threads or 1
    rest = [a for a in args.rest if a != "--"] or ["run"]
    args.mpirun = args.mpirun or default_launcher()
    if shutil.which(args.mpirun) is None:
        raise ConfigError(f"--mpirun {args.mpirun}: not found on PATH (run 'make setup' or load an MPI module)")
    flavour, library = launcher_flavour(args.mpirun), mpi_library()
    if {flavour, library_family(library)} in ({"openmpi", "mpich"}, {"hydra", "openmpi"}):
        raise ConfigError(f"--mpirun {args.mpirun}: {LAUNCHERS[flavour]}, but this Python's mpi4py uses {library}: "
                          f"its ranks would not see each other; use {default_launcher()} (this Python's MPI)")
    if rest[0] == "run" and "--threads" not in rest:
        rest += ["--threads", str(args.threads)]
    argv, env = mpirun_argv(args.ranks, args.threads, [sys.executable, "-m", "hpc_brunel", *rest], args.mpirun)
    if flavour == "unknown":
        print(f"hpc_brunel: note: --mpirun {args.mpirun}: not Open MPI, Hydra or srun by its --version; passing only "
              "-n (threads via OMP_NUM_THREADS, the binding is the launcher's default)", file=sys.stderr)
    print("+ " + " ".join(shlex.quote(a) for a in [*(f"{k}={v}" for k, v in env.items()), *argv]), file=sys.stderr,
          flush=True)
    return subprocess.run(argv, env={**os.environ, **env}).returncode


def cmd_analyze(args) -> int:
    """`analyze`: gather, statistics, report and figures of a run directory."""
    from hpc_brunel.analysis.analyze import analyze_run

    if args.transient_ms is not None:
        _check_ms("--transient-ms", args.transient_ms)
    analyze_run(args.run_dir, partial=args.partial, t_transient_ms=args.transient_ms, plots=not args.no_plots,
                print_table=True)
    return EXIT_OK


def cmd_scale(args) -> int:
    """`scale strong|weak|plot`: a scaling series here or on SLURM, or redraw a table."""
    import datetime as dt

    from hpc_brunel.studies import scaling
    from hpc_brunel.studies.scaling_plots import format_table, plot_table

    if args.kind == "plot":
        if not args.out:
            raise ConfigError("scale plot needs --out TABLE_OR_SERIES_DIR")
        scaling.collect_if_series(args.out)
        header, rows = scaling.read_table(args.out)
        print(format_table(scaling.aggregate(rows, header.get("series", "strong"))))
        print("\n".join(str(p) for p in plot_table(args.out)))
        return EXIT_OK
    decomps = scaling.parse_decompositions(args.decompositions)
    _check_ms("--t-sim-ms", args.t_sim_ms, strict=True)
    _check_ms("--presim-ms", args.presim_ms)
    extra = _split_options("--run-args", args.run_args)
    series = scaling.plan(args.kind, decomps, repetitions=args.repetitions, t_sim_ms=args.t_sim_ms,
                          presim_ms=args.presim_ms, neurons=args.neurons, neurons_per_vp=args.neurons_per_vp,
                          seed=args.seed, extra_args=extra)
    series.check_sizes()
    out = args.out or Path("runs") / f"scaling-{args.kind}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if args.slurm:
        from hpc_brunel.cluster.jobscript import Cluster, submit_series

        submit_series(series, out, Cluster(partition=args.partition, account=args.account,
                                           time_limit=args.time_limit).validate())
        return EXIT_OK
    scaling.run_local(series, out)  # JobError (exit 1) when a point fails
    rows = scaling.collect(out)
    print(format_table(scaling.aggregate(rows, args.kind)))
    for p in plot_table(out):
        print(f"plot: {p}")
    print(f"table: {out / scaling.RESULTS_CSV}")
    return EXIT_OK


def cmd_sweep(args) -> int:
    """`sweep`: the g x eta grid (resumable), then table, theory and phase diagram."""
    from hpc_brunel.studies import sweep as S

    if args.collect_only or args.relabel:
        if not (args.out / S.SWEEP_JSON).exists():
            raise ConfigError(f"--out {args.out}: not a sweep directory (no {S.SWEEP_JSON})")
        return _finish_sweep(S, args.out, S.relabel(args.out) if args.relabel else [])
    for flag, value in (("--g", args.g_single), ("--eta", args.eta_single)):
        if value is not None:
            raise ConfigError(f"sweep {flag} {value}: {flag} is one value (for run/config); the sweep's range is "
                              f"{flag}-range MIN:MAX:STEP")
    points = S.grid(S.parse_range(args.g_range, "g"), S.parse_range(args.eta_range, "eta"))
    S.scaled_sizes(args.scale)  # checks the range
    _check_ms("--t-sim-ms", args.t_sim_ms, minimum=20.0)
    sweep = S.Sweep(points, t_sim_ms=args.t_sim_ms, seed=args.seed, ranks=args.ranks, threads=args.threads,
                    scale=args.scale, v_init=args.v_init)
    if args.scale < 1:
        print(f"WARNING: {S.scale_note(args.scale)}", file=sys.stderr)
    sweep.check_resume(args.out)
    if args.slurm:
        from hpc_brunel.cluster.jobscript import Cluster, submit_sweep

        submit_sweep(sweep, args.out, Cluster(partition=args.partition, account=args.account,
                                              time_limit=args.time_limit).validate())
        return EXIT_OK
    return _finish_sweep(S, args.out, S.run_local(sweep, args.out, jobs=args.jobs))


def _finish_sweep(S, out: Path, failures: list[str]) -> int:
    """Table, theory and figure of what finished; then one error line per failed point."""
    S.finish(out)
    for f in failures:
        print_error(f)
    return EXIT_FAILURE if failures else EXIT_OK


def cmd_jobscript(args) -> int:
    """`jobscript run|analyze|chain|examples`: render (and submit) SLURM jobscripts."""
    from hpc_brunel.cluster import jobscript as J

    c = J.Cluster(partition=args.partition, account=args.account, time_limit=args.time_limit, nodes=args.nodes,
                  ntasks_per_node=args.ntasks_per_node, cpus_per_task=args.cpus_per_task, modules=args.modules,
                  module_purge=args.module_purge,
                  venv=J.active_venv() if args.venv is None else args.venv,
                  workdir=args.workdir or (J.default_workdir() if args.what == "chain" else "$SLURM_SUBMIT_DIR"),
                  srun_mpi=args.srun_mpi,
                  exclusive=not args.no_exclusive, extra_sbatch=args.extra_sbatch).validate()
    if args.segments > 1 and args.what != "chain":
        raise ConfigError(f"--segments {args.segments} goes with 'jobscript chain' (which writes and submits the "
                          "segments)")
    if args.run_namespace is not None:  # run/chain: what the allocation must hold, from the run's own config
        from hpc_brunel.studies.plan import allocation_warnings, table_path

        try:
            cfg = config_from_args(args.run_namespace)
        except ConfigError as e:
            raise ConfigError(f"--run-args: {e}") from None
        tables = args.plan_table
        for t in tables or []:
            if not table_path(t).is_file():
                raise ConfigError(f"--plan-table {t}: no such file (a network_size.csv or a scaling series)")
        # a chain of segments: each job must hold its share of the model time (plus the network's build)
        plan_cfg = cfg if args.segments == 1 else dataclasses.replace(cfg, simulation=dataclasses.replace(
            cfg.simulation, t_sim_ms=cfg.simulation.t_sim_ms / args.segments))
        for line in allocation_warnings(plan_cfg, nodes=args.nodes, ntasks_per_node=args.ntasks_per_node,
                                        cpus_per_task=args.cpus_per_task, extra_sbatch=args.extra_sbatch,
                                        table=[table_path(t) for t in tables] if tables else None):
            print(line, file=sys.stderr)
    if not c.venv and args.venv is None:
        print("hpc_brunel: note: no virtual environment is active: the jobs use the python found on PATH "
              "(after --module); pass --venv DIR to activate one", file=sys.stderr)
    if args.what == "examples":
        for path in J.write_examples(args.out):
            print(path)
        return EXIT_OK
    run_args = _split_options("--run-args", args.run_args)
    if args.what in ("run", "analyze"):
        # A printed script works copied anywhere and submitted any number of times: it runs
        # in the directory it is submitted from, logs there, and (run) makes its own run
        # directory per job unless told one.
        if args.what == "run":
            run_dir = args.run_dir or "${RUN_DIR:-runs/brunel-$SLURM_JOB_ID}"
            sys.stdout.write(J.render_run(c, run_dir, run_args, log_dir=""))
        else:
            run_dir = args.run_dir or "${RUN_DIR:?export RUN_DIR=<the run directory>}"
            sys.stdout.write(J.render_analyze(c, run_dir, log_dir=""))
        return EXIT_OK
    run_dir = (args.run_dir or J.default_run_dir()).resolve()
    ns = args.run_namespace
    if args.segments > 1 and ns.continue_dir is not None:
        raise ConfigError("--segments: the chain starts the run; --run-args cannot hold --continue")
    targets = J.segment_targets_ms(cfg.simulation.presim_ms, cfg.simulation.t_sim_ms, args.segments,
                                   cfg.simulation.resolution_ms)
    if args.segments > 1:  # the run job simulates the first segment; argparse: the last --t-sim-ms wins
        run_args = [*run_args, "--t-sim-ms", f"{targets[0] - cfg.simulation.presim_ms:g}"]
        print("segments (model time each job reaches; a job stopped by its time limit is caught up by the "
              "next): " + ", ".join(f"{t:g} ms" for t in targets), file=sys.stderr)
    cont_args = [*(["--grace-s", f"{ns.grace_s:g}"] if ns.grace_s else []),
                 *(["--checkpoint-every-ms", f"{ns.checkpoint_every_ms:g}"]
                   if ns.checkpoint_every_ms != DEFAULT_CHECKPOINT_EVERY_MS else []),
                 *(["--hash-connections"] if ns.hash_connections else [])]
    ids = J.submit_chain(c, run_dir, run_args, continue_until_ms=targets[1:],
                         continue_args=cont_args)  # JobError (exit 1) when sbatch fails
    conts = "".join(f"; continue job {j} (afterany:{p})" for p, j in zip(ids[:-2], ids[1:-1]))
    print(f"run job {ids[0]}{conts}; analyze job {ids[-1]} (afterany:{ids[-2]}); run directory {run_dir}")
    return EXIT_OK


def cmd_plan(args) -> int:
    """`plan`: predicted peak memory and simulate time of a network on ranks x threads, per synapse model."""
    from hpc_brunel.config import DEFAULT_SYNAPSE_MODEL
    from hpc_brunel.studies import plan

    tables = [plan.table_path(t) for t in (args.table or [plan.DEFAULT_TABLE])]
    for given, table in zip(args.table or [plan.DEFAULT_TABLE], tables):
        if not table.is_file():
            raise ConfigError(f"--table {given}: no such file (a network_size.csv written by "
                              "scaling/bench_network_size.py, or a scaling series with a results.csv)")
    for name, value in (("--rate-hz", args.rate_hz), ("--delay-ms", args.delay_ms), ("--latency-us", args.latency_us),
                        ("--bandwidth-gbs", args.bandwidth_gbs)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} = {value:g}: allowed a finite number > 0")
    if args.mem_per_node_gib is not None and not (math.isfinite(args.mem_per_node_gib) and args.mem_per_node_gib > 0):
        raise ConfigError(f"--mem-per-node-gib = {args.mem_per_node_gib:g}: allowed a finite number of GiB > 0")
    comm = plan.Communication(latency_s=args.latency_us * 1e-6, bandwidth_b_per_s=args.bandwidth_gbs * 1e9,
                              delay_ms=args.delay_ms)
    try:
        models = plan.load_models(tables if args.table else None, communication=comm)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"--table {' '.join(map(str, tables))}: not a table of measured runs ({e})") from None
    table = ", ".join(map(str, tables)) + ("" if args.table else f"; memory: {plan.RANKS_TABLE}")
    wanted = LEAN_SYNAPSE_MODEL if args.lean else DEFAULT_SYNAPSE_MODEL
    first = wanted if wanted in models else next(iter(models))
    if wanted not in models:
        print(f"hpc_brunel: note: {table} has no runs with {wanted}; predicting {first}", file=sys.stderr)

    def predict(model):
        return plan.predict(model, neurons=args.neurons, ranks=args.ranks, threads=args.threads,
                            rate_hz=args.rate_hz, indegree=args.indegree)

    model, errors = models[first]
    others = {name: predict(m) for name, (m, _) in models.items() if name != first}
    mem = args.mem_per_node_gib * 1024 if args.mem_per_node_gib is not None else None
    print("\n".join(plan.report(predict(model), model, errors, table, others, mem, args.ranks_per_node)))
    return EXIT_OK


COMMANDS = {"run": cmd_run, "config": cmd_config, "launch": cmd_launch, "analyze": cmd_analyze,
            "scale": cmd_scale, "jobscript": cmd_jobscript, "sweep": cmd_sweep, "plan": cmd_plan}


def dispatch(args) -> int:
    """Run the parsed command; an HpcBrunelError becomes its one-line error and exit status."""
    try:
        return COMMANDS[args.command](args)
    except HpcBrunelError as e:
        print_error(e)
        return e.exit_status
