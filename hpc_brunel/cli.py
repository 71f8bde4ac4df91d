"""Command line: `python -m hpc_brunel {run,analyze,...}` -- argument parsing only.

`main` parses the arguments and hands them to `hpc_brunel.commands.dispatch`,
which runs the command and returns its exit status (hpc_brunel.errors: 0 success,
1 unexpected failure, 2 bad input, 3 run stopped early by SIGTERM/SIGINT with
its data flushed).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from hpc_brunel._version import __version__
from hpc_brunel.config import DEFAULT_SYNAPSE_MODEL, LEAN_SYNAPSE_MODEL, PRESETS
from hpc_brunel.constants import DEFAULT_CHECKPOINT_EVERY_MS
from hpc_brunel.errors import EXIT_BAD_INPUT, print_error


class _Parser(argparse.ArgumentParser):
    """argparse, but under a multi-rank launch only rank 0 prints the error;
    every rank exits with status 2. No abbreviated options: each option name
    means one thing (e.g. sweep's --g-range is not reachable as --g)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        from hpc_brunel.simulation.parallel import launcher_rank

        if launcher_rank() == 0:
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_INPUT)


PRECEDENCE = """\
configuration, later wins:
  1. defaults (hpc_brunel/config.py; 'python -m hpc_brunel config' prints them)
  2. --config FILE.toml (a run's own config.toml included)
  3. --regime NAME: sets g and eta, over the values from --config
  4. --set SECTION.KEY=VALUE and the shortcuts --t-sim-ms --seed --g --eta --record --lean
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
    """The options that resolve a run configuration (run, config)."""
    p.add_argument("--config", metavar="TOML", help="TOML config file (see configs/; a run's own config.toml "
                                                    "reruns it)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value, e.g. --set network.relative_inhibition=4.5 (repeatable)")
    p.add_argument("--regime", metavar="NAME",
                   help=f"Brunel (2000) Fig. 8 preset for (g, eta): {', '.join(PRESETS)}; wins over g and eta "
                        "from --config; an error together with --g/--eta or --set of those")
    p.add_argument("--t-sim-ms", type=float, help="model time to simulate [ms] (simulation.t_sim_ms)")
    p.add_argument("--seed", type=int, help="NEST rng_seed (simulation.rng_seed)")
    p.add_argument("--g", type=float, metavar="G", help="relative inhibition g, one value "
                                                        "(network.relative_inhibition)")
    p.add_argument("--eta", type=float, metavar="ETA", help="external drive nu_ext/nu_thr, one value (network.eta)")
    p.add_argument("--record", type=int, metavar="N",
                   help="record only the first N neurons of each population (default: all)")
    p.add_argument("--lean", action="store_true",
                   help=f"lean mode for networks whose memory is the limit: the network's connections use "
                        f"{LEAN_SYNAPSE_MODEL} (network.synapse_model; default {DEFAULT_SYNAPSE_MODEL}, the fastest; "
                        "BENCHMARKS.md)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m hpc_brunel` with every sub-command and option."""
    p = _Parser(prog="python -m hpc_brunel",
                description="The Brunel (2000) balanced network on NEST, across MPI ranks x threads.")
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
    c = r.add_argument_group("checkpoints and continuing a run (README: long simulations across time limits)")
    c.add_argument("--checkpoint-every-ms", type=float, default=DEFAULT_CHECKPOINT_EVERY_MS, metavar="MS",
                   help="save every neuron's state every MS of model time (default %(default)g; 0: only when the "
                        "run stops or ends, which it always does)")
    c.add_argument("--continue", dest="continue_dir", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its checkpoint by --t-sim-ms more, or up to --until-ms "
                        "(same ranks x threads; the config is the run's own)")
    c.add_argument("--until-ms", type=float, metavar="MS", help="with --continue: the model time to reach")
    c.add_argument("--after-failure", action="store_true",
                   help="with --continue: continue a failed run from its last complete checkpoint")
    c.add_argument("--hash-connections", action="store_true",
                   help="record a SHA-256 of each rank's connections in run.json (slow at full size)")

    an = sub.add_parser("analyze", help="gather the rank files into one SONATA spike file, compute statistics, "
                                        "write analysis.json, report.md and figures")
    an.add_argument("run_dir", type=Path, help="the run directory (holds run.json and the rank files)")
    an.add_argument("--partial", action="store_true",
                    help="analyze an incomplete run up to the last model time that all ranks flushed")
    an.add_argument("--transient-ms", type=float, help="initial transient to discard [ms] (default: config, 100)")
    an.add_argument("--no-plots", action="store_true",
                    help="skip the figures (raster, distributions, spectrum): statistics and report only")

    sc = sub.add_parser("scale", help="strong- or weak-scaling series (beNNch-style timers, table and plots)",
                        description="Strong- or weak-scaling series: one run per decomposition and repetition, "
                                    "NEST's timers per phase, a results.csv in beNNch's columns and plots. What the "
                                    "defaults cost on 2 cores (scaling/README.md, 2026-11-25): strong = 8 runs of the "
                                    "full 12,500-neuron network (1x1, 1x2, 2x1, 4x1 oversubscribed; 2 repetitions; "
                                    "100 + 500 ms), about 1 min 15 s; weak = 8 runs of 3,125 neurons per VP, about "
                                    "40 s; plot: seconds.")
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

    sw = sub.add_parser("sweep", help="g x eta grid of short runs: Brunel's Fig. 8 phase diagram (resumable)",
                        description="g x eta grid of short runs labelled from their spikes, compared cell by cell "
                                    "with linear stability: Brunel's Fig. 8 phase diagram. Resumable: analyzed "
                                    "points are kept. What the defaults cost: 9 x 8 = 72 full-size runs of 300 ms, "
                                    "11-25 min on 2 cores (2 concurrent 1-rank jobs), plus ~15 min for the "
                                    "theory lines and labels from the eigenvalues (cached in the sweep directory); "
                                    "--scale 0.2 runs a smaller network.")
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
                    help="the full network's neurons times this, 0.1..10: the in-degrees C_E = 1000, C_I = 250 stay "
                         "(the mean field is unchanged, the connection probability C/N changes); < 1 prints a "
                         "warning")
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

    add_jobscript_parser(sub)

    la = sub.add_parser("launch", help="run an hpc_brunel command under the MPI launcher with ranks x threads, "
                                      "in that launcher's syntax (oversubscription / binding only where needed)")
    la.add_argument("-n", "--ranks", type=_positive_int, default=None, help="MPI ranks (default 4)")
    la.add_argument("--threads", type=_positive_int, default=None, help="threads per rank (default 1)")
    la.add_argument("--cores", type=_positive_int, help="give only the number of cores: hpc_brunel chooses "
                                                       "ranks x threads (one rank per core; see BENCHMARKS.md)")
    la.add_argument("--mpirun", default=None, metavar="COMMAND",
                    help="the MPI launcher to run (default: the mpiexec that 'make setup' linked beside this "
                         "Python, i.e. its MPI's launcher; else mpirun on PATH): Open MPI's mpirun, MPICH's Hydra "
                         "mpiexec or srun, each given ranks, threads and core binding in its own syntax")
    la.add_argument("rest", nargs=argparse.REMAINDER,
                    help="hpc_brunel command and its options, e.g. run --t-sim-ms 500")

    pl = sub.add_parser("plan", help="predict peak memory per rank and simulate time per model second of a "
                                     "network size on ranks x threads, from measured runs",
                        description="Predict peak memory per rank and simulate time per model second of a network "
                                    "on ranks x threads from a fit to measured runs (hpc_brunel/data/"
                                    "network_size.csv, or --table). Simulates nothing: well under a second.")
    pl.add_argument("--neurons", type=_positive_int, default=12500, help="network size N (80 %% excitatory)")
    pl.add_argument("--ranks", type=_positive_int, default=1, help="MPI ranks")
    pl.add_argument("--threads", type=_positive_int, default=1, help="threads per rank")
    pl.add_argument("--rate-hz", type=float, default=38.0,
                    help="mean firing rate [Hz] (default 38, the AI state; SR fires at ~330)")
    pl.add_argument("--indegree", type=_positive_int, default=1250, help="C_E + C_I (default 1250)")
    pl.add_argument("--table", type=Path, action="append", default=None,
                    help="measured runs to fit: a network_size.csv (default: the one measured with this package, "
                         "hpc_brunel/data/network_size.csv; scaling/bench_network_size.py makes one) or a scaling "
                         "series (its directory or results.csv: 'hpc_brunel scale strong|weak' run on your "
                         "cluster); repeat to fit several together")
    pl.add_argument("--lean", action="store_true",
                    help=f"predict lean mode ({LEAN_SYNAPSE_MODEL}) first (default: {DEFAULT_SYNAPSE_MODEL}); "
                         "every synapse model of the table is shown")
    pl.add_argument("--mem-per-node-gib", type=float, default=None, metavar="GIB",
                    help="memory per node of your allocation: say which synapse models fit in it")
    pl.add_argument("--ranks-per-node", type=_positive_int, default=None,
                    help="ranks on one node (default: all --ranks on one node), with --mem-per-node-gib")
    pl.add_argument("--delay-ms", type=float, default=1.5,
                    help="min delay [ms]: one spike exchange per delay (communication term; default 1.5)")
    pl.add_argument("--latency-us", type=float, default=1.5,
                    help="assumed MPI latency per message [us] (communication term; default 1.5, InfiniBand class)")
    pl.add_argument("--bandwidth-gbs", type=float, default=10.0,
                    help="assumed bandwidth per rank [GB/s] (communication term; default 10)")

    c = sub.add_parser("config", help="print the resolved configuration as TOML", epilog=PRECEDENCE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(c)
    return p


def add_jobscript_parser(sub) -> None:
    """The `jobscript` sub-command's options."""
    j = sub.add_parser("jobscript", help="render (and submit) SLURM jobscripts for a run and its analysis")
    j.add_argument("what", choices=["run", "analyze", "chain", "examples"],
                   help="run/analyze: print the jobscript; chain: write both and submit run -> analyze; "
                        "examples: (re)write the ready-to-edit scripts of jobscripts/ (or --out DIR)")
    j.add_argument("--out", type=Path, default=Path("jobscripts"), help="with 'examples': where to write them")
    j.add_argument("--run-dir", type=Path, help="run directory (default: chain: runs/brunel-<date>-<time>; run: "
                                                "runs/brunel-<job id> under the directory the job is submitted "
                                                "from, or $RUN_DIR)")
    j.add_argument("--partition", default="", help="#SBATCH --partition (default: none, the site's default)")
    j.add_argument("--account", default="", help="#SBATCH --account to charge (default: none)")
    j.add_argument("--time", dest="time_limit", default="00:30:00", metavar="[D-]HH:MM:SS",
                   help="#SBATCH --time of the run job (default 00:30:00; the analysis job gets 00:20:00)")
    j.add_argument("--nodes", type=int, default=1, help="#SBATCH --nodes of the run job (default 1)")
    j.add_argument("--ntasks-per-node", type=int, default=2,
                   help="MPI ranks per node (default 2); ranks x --cpus-per-task = cores per node")
    j.add_argument("--cpus-per-task", type=int, default=1,
                   help="threads per rank (default 1): OMP_NUM_THREADS and hpc_brunel's threads follow it")
    j.add_argument("--module", dest="modules", action="append", default=[], help="module to load (repeatable)")
    j.add_argument("--module-purge", action="store_true",
                   help="'module purge' before loading the --module list (default: keep the site's defaults)")
    j.add_argument("--venv", default=None, help="virtual environment the jobs activate (default: the active one, "
                                                "$VIRTUAL_ENV or this Python's venv; '' for none)")
    j.add_argument("--workdir", default=None, help="directory the jobs cd into (default: chain: the current "
                                                   "directory; run/analyze: the one the job is submitted from)")
    j.add_argument("--srun-mpi", default="auto",
                   help="srun --mpi plugin (pmix, pmi2, ...); default auto: by the venv's MPI (pmix for Open MPI, "
                        "pmi2 for MPICH and derivatives), else the site's MpiDefault")
    j.add_argument("--no-exclusive", action="store_true",
                   help="do not ask for whole nodes (#SBATCH --exclusive is the default for the run job)")
    j.add_argument("--sbatch", dest="extra_sbatch", action="append", default=[],
                   help="extra #SBATCH line, e.g. --sbatch=--mem=0 (repeatable)")
    j.add_argument("--run-args", default="", help="options for 'hpc_brunel run', e.g. '--t-sim-ms 500'")
    j.add_argument("--segments", type=_positive_int, default=1, metavar="K",
                   help="chain: K jobs of --time each, the first runs, the others continue the run from its "
                        "checkpoint (run --continue) until it reaches --t-sim-ms; then the analysis (default 1)")
    j.add_argument("--plan-table", type=Path, action="append", default=None, metavar="TABLE",
                   help="measured runs for the printed plan (as 'plan --table'; default: the shipped table)")


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line; `jobscript run|chain` also parses its --run-args as
    `run` options (args.run_namespace), so that the run's own config is known."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "jobscript":
        args.run_namespace = None
        if args.what in ("run", "chain"):
            try:
                run_argv = ["run", *shlex.split(args.run_args)]
            except ValueError as e:
                print_error(f"--run-args {args.run_args!r}: {e}")
                sys.exit(EXIT_BAD_INPUT)
            args.run_namespace = parser.parse_args(run_argv)
    return args


def main(argv=None) -> int:
    """`python -m hpc_brunel ...`: parse, run the command, return its exit status."""
    from hpc_brunel.commands import dispatch

    return dispatch(parse_args(argv))
