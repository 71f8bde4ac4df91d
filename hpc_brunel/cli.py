"""Command line: `python -m hpc_brunel {run,analyze,...}`.

Exit status: 0 success, 1 unexpected failure, 2 bad input (one line naming the
parameter and the allowed values, the same decision on every rank), 3 run
stopped early by SIGTERM/SIGINT with its data flushed.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .config import REGIMES, ConfigError

EXIT_BAD_INPUT = 2


class _RankFilter(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record):
        record.rank = self.rank
        return True


def setup_logging(rank: int, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RankFilter(rank))
    handler.setFormatter(logging.Formatter("%(asctime)s [rank %(rank)d] %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("hpc_brunel")
    root.handlers[:] = [handler]
    # Rank 0 reports progress; the others stay quiet unless something is wrong.
    root.setLevel(logging.DEBUG if verbose else logging.INFO if rank == 0 else logging.WARNING)
    root.propagate = False


class _Parser(argparse.ArgumentParser):
    """argparse, but under a multi-rank launch only rank 0 prints the error;
    every rank exits with status 2. No abbreviated options: each option name
    means one thing (e.g. sweep's --g-range is not reachable as --g)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        from .parallel import launcher_rank

        if launcher_rank() == 0:
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_INPUT)


PRECEDENCE = """\
configuration, later wins:
  1. defaults (hpc_brunel/config.py; 'python -m hpc_brunel config' prints them)
  2. --config FILE.toml (a run's own config.toml included)
  3. --regime NAME: sets g and eta, over the values from --config
  4. --set SECTION.KEY=VALUE and the shortcuts --t-sim-ms --seed --g --eta --record
--regime together with --g, --eta or --set network.relative_inhibition/eta is an error
(give one or the other). Threads per rank: --threads, else simulation.threads_per_rank,
else SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS, else 1."""


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {v}")
    return v


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="TOML", help="TOML config file (see configs/; a run's own config.toml "
                                                    "reruns it)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value, e.g. --set network.relative_inhibition=4.5 (repeatable)")
    p.add_argument("--regime", metavar="NAME",
                   help=f"Brunel (2000) Fig. 8 preset for (g, eta): {', '.join(REGIMES)}; wins over g and eta "
                        "from --config; an error together with --g/--eta or --set of those")
    p.add_argument("--t-sim-ms", type=float, help="model time to simulate [ms] (simulation.t_sim_ms)")
    p.add_argument("--seed", type=int, help="NEST rng_seed (simulation.rng_seed)")
    p.add_argument("--g", type=float, metavar="G", help="relative inhibition g, one value "
                                                        "(network.relative_inhibition)")
    p.add_argument("--eta", type=float, metavar="ETA", help="external drive nu_ext/nu_thr, one value (network.eta)")
    p.add_argument("--record", type=int, metavar="N",
                   help="record only the first N neurons of each population (default: all)")


def config_from_args(args):
    from .config import parse_override, resolve

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
    if args.regime:
        given = [flag for flag, v in (("--g", args.g), ("--eta", args.eta)) if v is not None]
        given += [f"--set network.{k}" for ov in overrides for k in ov.get("network", {})
                  if k in ("relative_inhibition", "eta")]
        if given:
            raise ConfigError(f"--regime {args.regime} sets g and eta; {' and '.join(given)} conflicts with it: "
                              "give --regime or the values, not both")
    overrides += [{sec: {key: val}} for (sec, key), val in short.items() if val is not None]
    return resolve(args.config, overrides, args.regime)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m hpc_brunel", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"hpc_brunel {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="simulate the Brunel network (launch with mpirun/srun for several ranks)",
                       description="Simulate the Brunel network on every rank of the launch.",
                       epilog=PRECEDENCE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(r)
    r.add_argument("--threads", type=_positive_int, help="threads per rank (default: SLURM_CPUS_PER_TASK, "
                                                          "OMP_NUM_THREADS, else 1)")
    r.add_argument("--run-dir", type=Path, help="run directory (default: runs/brunel-<date>-<time>)")
    r.add_argument("--runs-root", type=Path, default=Path("runs"), help="parent of the default run directory")
    r.add_argument("--overwrite", action="store_true", help="replace an existing run in --run-dir")
    r.add_argument("--no-analyze", action="store_true", help="do not run the analysis at the end "
                                                             "(e.g. when SLURM runs it as a dependent job)")
    r.add_argument("--grace-s", type=float, default=0.0,
                   help="after SIGTERM, keep simulating while the rest fits in this many seconds")
    r.add_argument("--allow-oversubscribe", action="store_true",
                   help="allow more threads per rank than CPUs this rank may use")
    r.add_argument("-v", "--verbose", action="store_true",
                   help="debug logging on every rank (default: progress from rank 0, warnings from all)")

    an = sub.add_parser("analyze", help="gather the rank files into one SONATA spike file, compute statistics, "
                                        "write analysis.json, report.md and figures")
    an.add_argument("run_dir", type=Path, help="the run directory (holds run.json and the rank files)")
    an.add_argument("--partial", action="store_true",
                    help="analyze an incomplete run up to the last model time that all ranks flushed")
    an.add_argument("--transient-ms", type=float, help="initial transient to discard [ms] (default: config, 100)")
    an.add_argument("--no-plots", action="store_true",
                    help="skip the figures (raster, distributions, spectrum): statistics and report only")

    sc = sub.add_parser("scale", help="strong- or weak-scaling series (beNNch-style timers, table and plots)")
    sc.add_argument("kind", choices=["strong", "weak", "plot"],
                    help="strong: fixed 12,500-neuron network; weak: neurons grow with the VPs; plot: redraw a table")
    sc.add_argument("--decompositions", default="1x1,1x2,2x1,4x1",
                    help="comma-separated RANKSxTHREADS points (default: 1x1,1x2,2x1,4x1)")
    sc.add_argument("--repetitions", type=_positive_int, default=2, help="runs per point, seeds seed, seed+1, ...")
    sc.add_argument("--t-sim-ms", type=float, default=500.0, help="measured model time per run [ms]")
    sc.add_argument("--presim-ms", type=float, default=100.0, help="warm-up excluded from the measurement [ms]")
    sc.add_argument("--neurons", type=_positive_int, default=12500, help="strong scaling: network size (80 %% E)")
    sc.add_argument("--neurons-per-vp", type=_positive_int, default=3125, help="weak scaling: neurons per VP")
    sc.add_argument("--seed", type=int, default=12345, help="NEST rng_seed of repetition 0 (then seed+1, ...)")
    sc.add_argument("--out", type=Path, help="series directory (default: runs/scaling-<kind>-<date>), or the "
                                             "table/directory to plot")
    sc.add_argument("--slurm", action="store_true", help="submit the series to SLURM instead of running it here")
    sc.add_argument("--run-args", default="", metavar="'OPTIONS'",
                    help="extra 'hpc_brunel run' options for every point, e.g. --run-args '--set network.eta=1.5'")

    sc.add_argument("--partition", default="", help="with --slurm: SLURM partition (default: the site's)")
    sc.add_argument("--account", default="", help="with --slurm: SLURM account to charge (default: none)")
    sc.add_argument("--time", dest="time_limit", default="00:30:00", help="with --slurm: time limit per point")

    sw = sub.add_parser("sweep", help="g x eta grid of short runs: Brunel's Fig. 8 phase diagram (resumable)")
    sw.add_argument("--g-range", default="0:8:1", metavar="MIN:MAX:STEP",
                    help="range of g, both ends included (default 0:8:1)")
    sw.add_argument("--eta-range", default="0.5:4:0.5", metavar="MIN:MAX:STEP",
                    help="range of eta, both ends included (default 0.5:4:0.5)")
    sw.add_argument("--g", dest="g_single", default=None, metavar="G", help=argparse.SUPPRESS)
    sw.add_argument("--eta", dest="eta_single", default=None, metavar="ETA", help=argparse.SUPPRESS)
    sw.add_argument("--t-sim-ms", type=float, default=300.0, help="model time per point (first 100 ms discarded)")
    sw.add_argument("--seed", type=int, default=12345, help="NEST rng_seed of every point (default 12345)")
    sw.add_argument("--jobs", type=_positive_int, default=2, help="concurrent points (local)")
    sw.add_argument("--ranks", type=_positive_int, default=1, help="ranks per point")
    sw.add_argument("--threads", type=_positive_int, default=1, help="threads per rank per point")
    sw.add_argument("--scale", type=float, default=1.0,
                    help="fraction of the full network's neurons, 0.1..1: the in-degrees C_E = 1000, C_I = 250 stay "
                         "(the mean field is unchanged, the connection probability grows); < 1 prints a warning")
    sw.add_argument("--v-init", choices=("uniform", "fixed"), default="uniform",
                    help="initial membrane potentials: uniform between E_L and V_th (default; reaches the low-eta "
                         "SI-slow states) or fixed at neuron.v_init_mv (0 mV)")
    sw.add_argument("--out", type=Path, default=Path("runs/sweep"), help="sweep directory (resumes if it exists)")
    sw.add_argument("--slurm", action="store_true", help="submit as a SLURM job array plus a collect job")
    sw.add_argument("--collect-only", action="store_true", help="only (re)draw the table and diagram from --out")
    sw.add_argument("--relabel", action="store_true",
                    help="label every finished point of --out again with the current rule, from its stored "
                         "statistics (no simulation), then redraw")
    sw.add_argument("--partition", default="", help="with --slurm: SLURM partition (default: the site's)")
    sw.add_argument("--account", default="", help="with --slurm: SLURM account to charge (default: none)")
    sw.add_argument("--time", dest="time_limit", default="00:30:00", help="with --slurm: per point")

    from .jobscript import main_args as jobscript_args

    jobscript_args(sub)

    la = sub.add_parser("launch", help="run an hpc_brunel command under mpirun with ranks x threads, adding "
                                      "--oversubscribe / binding / root variables only where needed")
    la.add_argument("-n", "--ranks", type=_positive_int, default=None, help="MPI ranks (default 4)")
    la.add_argument("--threads", type=_positive_int, default=None, help="threads per rank (default 1)")
    la.add_argument("--cores", type=_positive_int, help="give only the number of cores: hpc_brunel chooses "
                                                       "ranks x threads (one rank per core; see BENCHMARKS.md)")
    la.add_argument("--mpirun", default="mpirun", metavar="COMMAND",
                    help="the MPI launcher to run (default: mpirun on PATH; Open MPI's options are added)")
    la.add_argument("rest", nargs=argparse.REMAINDER, help="hpc_brunel command and its options, e.g. run --t-sim-ms 500")

    pl = sub.add_parser("plan", help="predict peak memory per rank and simulate time per model second of a "
                                     "network size on ranks x threads, from measured runs")
    pl.add_argument("--neurons", type=_positive_int, default=12500, help="network size N (80 %% excitatory)")
    pl.add_argument("--ranks", type=_positive_int, default=1, help="MPI ranks")
    pl.add_argument("--threads", type=_positive_int, default=1, help="threads per rank")
    pl.add_argument("--rate-hz", type=float, default=38.0,
                    help="mean firing rate [Hz] (default 38, the AI state; SR fires at ~330)")
    pl.add_argument("--indegree", type=_positive_int, default=1250, help="C_E + C_I (default 1250)")
    pl.add_argument("--table", type=Path, default=None,
                    help="network_size.csv of measured runs to fit (default: the one measured with this package, "
                         "hpc_brunel/data/network_size.csv; scaling/bench_network_size.py makes one)")

    c = sub.add_parser("config", help="print the resolved configuration as TOML", epilog=PRECEDENCE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(c)
    return p


def cmd_run(args) -> int:
    from .parallel import Parallel

    par = Parallel.from_environment()
    setup_logging(par.rank, args.verbose)

    def body() -> int:
        from .run import command

        return command(args, par, lambda: config_from_args(args))

    # Any unexpected error on any rank ends the whole job (MPI_Abort) with a failure record.
    return par.run_guarded(body)


def cmd_config(args) -> int:
    try:
        cfg = config_from_args(args)
    except ConfigError as e:
        print(f"hpc_brunel: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(cfg.to_toml())
    return 0


def cmd_launch(args) -> int:
    import os
    import shutil
    import subprocess

    from .parallel import mpirun_argv

    from .parallel import choose_split

    if args.cores is not None:
        if args.ranks or args.threads:
            print("hpc_brunel: error: --cores chooses ranks and threads: give --cores or -n/--threads, not both",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        args.ranks, args.threads = choose_split(args.cores)
        print(f"--cores {args.cores}: {args.ranks} rank(s) x {args.threads} thread(s)", file=sys.stderr)
    args.ranks, args.threads = args.ranks or 4, args.threads or 1
    rest = [a for a in args.rest if a != "--"] or ["run"]
    if shutil.which(args.mpirun) is None:
        print(f"hpc_brunel: error: --mpirun {args.mpirun}: not found on PATH (install Open MPI or load an MPI module)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if rest[0] == "run" and "--threads" not in rest:
        rest += ["--threads", str(args.threads)]
    argv, env = mpirun_argv(args.ranks, args.threads, [sys.executable, "-m", "hpc_brunel", *rest], args.mpirun)
    print("+ " + " ".join(argv), file=sys.stderr, flush=True)
    return subprocess.run(argv, env={**os.environ, **env}).returncode


def cmd_analyze(args) -> int:
    from .analyze import analyze_run
    from .gather import IncompleteRunError

    if args.transient_ms is not None and not (0 <= args.transient_ms < float("inf")):
        print(f"hpc_brunel: error: --transient-ms = {args.transient_ms}: allowed a finite number >= 0",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        analyze_run(args.run_dir, partial=args.partial, t_transient_ms=args.transient_ms, plots=not args.no_plots,
                    print_table=True)
    except IncompleteRunError as e:
        print(f"hpc_brunel: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def cmd_scale(args) -> int:
    import datetime as dt
    import shlex

    from . import scaling
    from .scaling_plots import format_table, plot_table

    if args.kind == "plot":
        if not args.out:
            print("hpc_brunel: error: scale plot needs --out TABLE_OR_SERIES_DIR", file=sys.stderr)
            return EXIT_BAD_INPUT
        series_dir = args.out / scaling.SERIES_JSON
        if series_dir.exists() and any((args.out / p.name / "run.json").exists()
                                       for p in scaling.Series.load(args.out).points):
            scaling.collect(args.out)  # a series directory with its runs: (re)collect its finished points
        header, rows = scaling.read_table(args.out)
        print(format_table(scaling.aggregate(rows, header.get("series", "strong"))))
        print("\n".join(str(p) for p in plot_table(args.out)))
        return 0
    try:
        decomps = scaling.parse_decompositions(args.decompositions)
        for name, v in (("--t-sim-ms", args.t_sim_ms), ("--presim-ms", args.presim_ms)):
            if not (0 <= v < float("inf")) or (name == "--t-sim-ms" and v == 0):
                raise ConfigError(f"{name} = {v}: allowed a finite number of ms > 0")
        series = scaling.plan(args.kind, decomps, repetitions=args.repetitions, t_sim_ms=args.t_sim_ms,
                              presim_ms=args.presim_ms, neurons=args.neurons, neurons_per_vp=args.neurons_per_vp, seed=args.seed,
                              extra_args=shlex.split(args.run_args))
        if min(p.n_excitatory for p in series.points) < 1000 and "indegree" not in args.run_args:
            what = "--neurons-per-vp" if args.kind == "weak" else "--neurons"
            raise ConfigError(f"{what}: the smallest point has fewer than C_E = 1000 excitatory neurons; allowed "
                              "--neurons >= 1250 (weak: --neurons-per-vp x VPs >= 1250), or lower the in-degrees "
                              "with --run-args")
    except ConfigError as e:
        print(f"hpc_brunel: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = args.out or Path("runs") / f"scaling-{args.kind}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if args.slurm:
        from .jobscript import Cluster, submit_series

        try:
            cluster = Cluster(partition=args.partition, account=args.account, time_limit=args.time_limit).validate()
        except ConfigError as e:
            print(f"hpc_brunel: error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return submit_series(series, out, cluster)
    try:
        scaling.run_local(series, out)
    except RuntimeError as e:
        print(f"hpc_brunel: error: {e}", file=sys.stderr)
        return 1
    rows = scaling.collect(out)
    print(format_table(scaling.aggregate(rows, args.kind)))
    for p in plot_table(out):
        print(f"plot: {p}")
    print(f"table: {out / scaling.RESULTS_CSV}")
    return 0


def cmd_sweep(args) -> int:
    from . import sweep as S

    if args.collect_only or args.relabel:
        if not (args.out / S.SWEEP_JSON).exists():
            print(f"hpc_brunel: error: --out {args.out}: not a sweep directory (no {S.SWEEP_JSON})", file=sys.stderr)
            return EXIT_BAD_INPUT
        return finish_sweep(args.out, S.relabel(args.out) if args.relabel else ())

    for flag, value in (("--g", args.g_single), ("--eta", args.eta_single)):
        if value is not None:
            print(f"hpc_brunel: error: sweep {flag} {value}: {flag} is one value (for run/config); the sweep's "
                  f"range is {flag}-range MIN:MAX:STEP", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        points = S.grid(S.parse_range(args.g_range, "g"), S.parse_range(args.eta_range, "eta"))
        S.scaled_sizes(args.scale)  # checks the range
        if not (20 <= args.t_sim_ms < float("inf")):
            raise ConfigError(f"--t-sim-ms {args.t_sim_ms}: allowed a finite number >= 20 ms")
    except ConfigError as e:
        print(f"hpc_brunel: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sweep = S.Sweep(points, t_sim_ms=args.t_sim_ms, seed=args.seed, ranks=args.ranks, threads=args.threads,
                    scale=args.scale, v_init=args.v_init)
    if args.scale < 1:
        print(f"WARNING: {S.scale_note(args.scale)}", file=sys.stderr)
    if args.out.exists() and (args.out / S.SWEEP_JSON).exists():
        old = S.Sweep.load(args.out)
        if old.format_version != sweep.format_version and old.scale != 1.0:
            print(f"hpc_brunel: error: --out {args.out} holds a sweep whose --scale {old.scale} shrank the in-degrees "
                  "too (older hpc_brunel); --scale now keeps them: choose another --out", file=sys.stderr)
            return EXIT_BAD_INPUT
        if (old.t_sim_ms, old.seed, old.scale, old.v_init) != (sweep.t_sim_ms, sweep.seed, sweep.scale, sweep.v_init):
            print(f"hpc_brunel: error: --out {args.out} holds a sweep with other settings (t_sim_ms, seed, scale, "
                  f"v_init = {old.t_sim_ms}, {old.seed}, {old.scale}, {old.v_init}); choose another --out",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.slurm:
        from .jobscript import Cluster, submit_sweep

        return submit_sweep(sweep, args.out, Cluster(partition=args.partition, account=args.account,
                                                     time_limit=args.time_limit).validate())
    failures = S.run_local(sweep, args.out, jobs=args.jobs)
    return finish_sweep(args.out, failures)


def finish_sweep(out: Path, failures=()) -> int:
    from . import sweep as S

    return S.finish(out, failures)


def cmd_jobscript(args) -> int:
    from .jobscript import cmd_jobscript as run_it

    if args.what in ("run", "chain"):  # what the allocation must hold, from the run's own config
        import shlex

        from .plan import allocation_warnings

        try:
            cfg = config_from_args(build_parser().parse_args(["run", *shlex.split(args.run_args)]))
        except ConfigError as e:
            print(f"hpc_brunel: error: --run-args: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        for line in allocation_warnings(cfg, nodes=args.nodes, ntasks_per_node=args.ntasks_per_node,
                                        cpus_per_task=args.cpus_per_task, extra_sbatch=args.extra_sbatch):
            print(line, file=sys.stderr)
    return run_it(args)


def cmd_plan(args) -> int:
    from .plan import command

    return command(args)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"run": cmd_run, "config": cmd_config, "launch": cmd_launch, "analyze": cmd_analyze,
                "scale": cmd_scale, "jobscript": cmd_jobscript, "sweep": cmd_sweep, "plan": cmd_plan}
    return commands[args.command](args)
