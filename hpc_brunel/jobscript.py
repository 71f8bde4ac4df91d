"""SLURM jobscripts: render plain, editable sbatch scripts for a run, its analysis
(submitted with --dependency=afterany:<run>: analyze decides from the run
directory whether there is something to analyze), and scaling series (one job per
point, then a plotting job that depends on all of them).

Follows NEST's HPC guidance: OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK, OMP_PROC_BIND,
threads per rank from SLURM_CPUS_PER_TASK, srun with --cpus-per-task passed
explicitly (Slurm >= 22.05 no longer hands it down from sbatch), ranks x threads
= cores per node, --hint=nomultithread.
"""
from __future__ import annotations

import datetime as _dt
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Cluster:
    partition: str = ""
    account: str = ""
    time_limit: str = "00:30:00"
    nodes: int = 1
    ntasks_per_node: int = 2
    cpus_per_task: int = 1
    modules: list[str] = field(default_factory=list)
    venv: str = str(REPO / ".venv")
    srun_mpi: str = "pmix"
    exclusive: bool = True
    extra_sbatch: list[str] = field(default_factory=list)  # raw "--key=value" lines
    workdir: str = str(REPO)

    def validate(self) -> "Cluster":
        if not re.fullmatch(r"(\d+-)?\d{1,2}(:\d{2}){0,2}", self.time_limit):
            raise ConfigError(f"--time {self.time_limit!r}: allowed SLURM time formats, e.g. 00:30:00 or 1-00:00:00")
        for name in ("nodes", "ntasks_per_node", "cpus_per_task"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} = {getattr(self, name)}: allowed integers >= 1")
        return self


def _header(c: Cluster, job_name: str, log_dir: Path, *, nodes: int, ntasks_per_node: int, cpus_per_task: int,
            time_limit: str | None = None, exclusive: bool | None = None) -> list[str]:
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --nodes={nodes}",
        f"#SBATCH --ntasks-per-node={ntasks_per_node}",
        f"#SBATCH --cpus-per-task={cpus_per_task}",
        f"#SBATCH --time={time_limit or c.time_limit}",
        "#SBATCH --hint=nomultithread",
        f"#SBATCH --output={log_dir}/%x-%j.out",
    ]
    if c.exclusive if exclusive is None else exclusive:
        lines.append("#SBATCH --exclusive")
    if c.partition:
        lines.append(f"#SBATCH --partition={c.partition}")
    if c.account:
        lines.append(f"#SBATCH --account={c.account}")
    lines += [f"#SBATCH {x}" for x in c.extra_sbatch]
    return lines


def _environment(c: Cluster) -> list[str]:
    lines = ["", "set -euo pipefail"]
    if c.modules:
        lines.append("module purge")
        lines += [f"module load {m}" for m in c.modules]
    if c.venv:
        lines.append(f"source {shlex.quote(c.venv)}/bin/activate")
    lines += [
        f"cd {shlex.quote(c.workdir)}",
        "# NEST's HPC guidance: one thread per core, pinned; threads per rank from SLURM.",
        "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
        "export OMP_PROC_BIND=true",
        "export OMP_PLACES=cores",
        "export PYNEST_QUIET=1",
        "# HDF5 file locks: used where the file system has them, ignored where it has not (Lustre",
        "# without flock, some NFS); set FALSE to never lock. Each rank writes only its own file.",
        "export HDF5_USE_FILE_LOCKING=${HDF5_USE_FILE_LOCKING:-BEST_EFFORT}",
        '[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1',
        "",
        'echo "job $SLURM_JOB_ID on $SLURM_JOB_NODELIST: $SLURM_NTASKS task(s) x $SLURM_CPUS_PER_TASK cpu(s)"',
    ]
    return lines


def _srun(c: Cluster) -> str:
    # --cpus-per-task must be given to srun explicitly since Slurm 22.05.
    return f"srun --mpi={c.srun_mpi} --cpus-per-task=$SLURM_CPUS_PER_TASK --kill-on-bad-exit=1"


def render_run(c: Cluster, run_dir: Path, run_args: list[str], job_name: str = "brunel-run",
               log_dir: Path | None = None) -> str:
    log_dir = log_dir or run_dir.parent
    args = " ".join(shlex.quote(a) for a in ["--run-dir", str(run_dir), "--no-analyze", *run_args])
    return "\n".join([
        *_header(c, job_name, log_dir, nodes=c.nodes, ntasks_per_node=c.ntasks_per_node,
                 cpus_per_task=c.cpus_per_task),
        *_environment(c),
        f"{_srun(c)} python -m hpc_brunel run {args}",
        "",
    ])


def render_analyze(c: Cluster, run_dir: Path, job_name: str = "brunel-analyze", log_dir: Path | None = None,
                   extra: str = "") -> str:
    log_dir = log_dir or run_dir.parent
    return "\n".join([
        *_header(c, job_name, log_dir, nodes=1, ntasks_per_node=1, cpus_per_task=1, time_limit="00:20:00",
                 exclusive=False),
        *_environment(c),
        f"python -m hpc_brunel analyze {shlex.quote(str(run_dir))}{extra}",
        "",
    ])


def render_series_plot(c: Cluster, series_dir: Path) -> str:
    return "\n".join([
        *_header(c, "brunel-scale-plot", series_dir, nodes=1, ntasks_per_node=1, cpus_per_task=1,
                 time_limit="00:20:00", exclusive=False),
        *_environment(c),
        f"python -m hpc_brunel scale plot --out {shlex.quote(str(series_dir))}",
        "",
    ])


def sbatch(script: Path, dependency: list[str] | None = None, kind: str = "afterok") -> str:
    cmd = ["sbatch", "--parsable"]
    if dependency:
        cmd.append(f"--dependency={kind}:" + ":".join(dependency))
    cmd.append(str(script))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sbatch {script} failed: {proc.stderr.strip()}")
    return proc.stdout.strip().split(";")[0]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def submit_chain(c: Cluster, run_dir: Path, run_args: list[str]) -> tuple[str, str]:
    """Write run.sbatch and analyze.sbatch next to the run directory, submit the
    analysis with afterany on the run, return the two job ids.

    afterany, not afterok: a run stopped at the time limit (TIMEOUT, exit 3) is a
    clean shorter run that `analyze` analyzes, and a failed or killed run must not
    leave the analysis pending forever (DependencyNeverSatisfied): `analyze`
    reads the run directory and fails with the reason (failed rank and phase)."""
    run_dir = run_dir.resolve()
    jobs = run_dir.parent / f"{run_dir.name}.jobs"
    run_script = write(jobs / "run.sbatch", render_run(c, run_dir, run_args, log_dir=jobs))
    ana_script = write(jobs / "analyze.sbatch", render_analyze(c, run_dir, log_dir=jobs))
    run_id = sbatch(run_script)
    ana_id = sbatch(ana_script, [run_id], kind="afterany")
    return run_id, ana_id


def submit_series(series, out: Path, c: Cluster | None = None) -> int:
    """One job per scaling point (its own ranks x threads on one node), then the
    plotting job with afterany on all of them."""
    c = c or Cluster()
    out = Path(out).resolve()
    series.save(out)
    ids = []
    for p in series.points:
        pc = Cluster(**{**c.__dict__, "ntasks_per_node": p.ranks, "cpus_per_task": p.threads, "nodes": 1})
        run_dir = out / p.name
        script = write(out / "jobs" / f"{p.name}.sbatch",
                       render_run(pc, run_dir, p.options(series), job_name=f"brunel-{p.name}",
                                  log_dir=out / "jobs"))
        ids.append(sbatch(script))
        print(f"{p.name}: job {ids[-1]}")
    # afterany: a failed point must not leave the plot pending forever; it is listed as missing.
    plot_id = sbatch(write(out / "jobs" / "plot.sbatch", render_series_plot(c, out)), ids, kind="afterany")
    print(f"plot: job {plot_id} (afterany:{':'.join(ids)})")
    return 0


def default_run_dir() -> Path:
    return (REPO / "runs" / f"brunel-{_dt.datetime.now():%Y%m%d-%H%M%S}").resolve()


def main_args(sub) -> None:
    """Add the `jobscript` sub-command to the CLI parser."""
    j = sub.add_parser("jobscript", help="render (and submit) SLURM jobscripts for a run and its analysis")
    j.add_argument("what", choices=["run", "analyze", "chain"],
                   help="run/analyze: print the jobscript; chain: write both and submit run -> analyze")
    j.add_argument("--run-dir", type=Path, help="run directory (default: runs/brunel-<date>-<time>)")
    j.add_argument("--partition", default="")
    j.add_argument("--account", default="")
    j.add_argument("--time", dest="time_limit", default="00:30:00")
    j.add_argument("--nodes", type=int, default=1)
    j.add_argument("--ntasks-per-node", type=int, default=2)
    j.add_argument("--cpus-per-task", type=int, default=1)
    j.add_argument("--module", dest="modules", action="append", default=[], help="module to load (repeatable)")
    j.add_argument("--venv", default=str(REPO / ".venv"), help="virtual environment to activate ('' for none)")
    j.add_argument("--srun-mpi", default="pmix", help="srun --mpi plugin (pmix, pmi2, ...)")
    j.add_argument("--no-exclusive", action="store_true")
    j.add_argument("--sbatch", dest="extra_sbatch", action="append", default=[],
                   help="extra #SBATCH line, e.g. --sbatch=--mem=0 (repeatable)")
    j.add_argument("--run-args", default="", help="options for 'hpc_brunel run', e.g. '--t-sim-ms 500'")


def cmd_jobscript(args) -> int:
    try:
        c = Cluster(partition=args.partition, account=args.account, time_limit=args.time_limit, nodes=args.nodes,
                    ntasks_per_node=args.ntasks_per_node, cpus_per_task=args.cpus_per_task, modules=args.modules,
                    venv=args.venv, srun_mpi=args.srun_mpi, exclusive=not args.no_exclusive,
                    extra_sbatch=args.extra_sbatch).validate()
    except ConfigError as e:
        print(f"hpc_brunel: error: {e}", file=sys.stderr)
        return 2
    run_dir = (args.run_dir or default_run_dir()).resolve()
    run_args = shlex.split(args.run_args)
    if args.what == "run":
        sys.stdout.write(render_run(c, run_dir, run_args))
    elif args.what == "analyze":
        sys.stdout.write(render_analyze(c, run_dir))
    else:
        try:
            run_id, ana_id = submit_chain(c, run_dir, run_args)
        except (RuntimeError, FileNotFoundError) as e:
            print(f"hpc_brunel: error: {e}", file=sys.stderr)
            return 1
        print(f"run job {run_id}; analyze job {ana_id} (afterany:{run_id}); run directory {run_dir}")
    return 0


def submit_sweep(sweep, out: Path, c: Cluster) -> int:
    """The missing sweep points as one SLURM job array (each task one point,
    `ranks x threads` of its own), then a collect job (afterany) that draws the
    phase diagram from whatever finished."""
    from .sweep import point_done

    out = Path(out).resolve()
    sweep.save(out)
    jobs = out / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    todo = [p for p in sweep.points if not point_done(out / p.name)]
    if not todo:
        print("all points done already")
        return 0
    for i, p in enumerate(todo):
        (jobs / f"point-{i}.args").write_text("\n".join(sweep.run_args(p, out / p.name)) + "\n")
        (jobs / f"point-{i}.dir").write_text(str(out / p.name) + "\n")
    pc = Cluster(**{**c.__dict__, "ntasks_per_node": sweep.ranks, "cpus_per_task": sweep.threads, "nodes": 1,
                    "exclusive": False})
    transient = min(100.0, sweep.t_sim_ms / 3)
    array = "\n".join([
        *_header(pc, "brunel-sweep", jobs, nodes=1, ntasks_per_node=sweep.ranks, cpus_per_task=sweep.threads,
                 exclusive=False),
        f"#SBATCH --array=0-{len(todo) - 1}",
        *_environment(pc),
        'mapfile -t ARGS < "' + str(jobs) + '/point-${SLURM_ARRAY_TASK_ID}.args"',
        'RUN_DIR=$(cat "' + str(jobs) + '/point-${SLURM_ARRAY_TASK_ID}.dir")',
        f'{_srun(pc)} python -m hpc_brunel "${{ARGS[@]}}"',
        f'python -m hpc_brunel analyze "$RUN_DIR" --no-plots --transient-ms {transient:g}',
        "",
    ]).replace("%x-%j.out", "%x-%A_%a.out")
    array_id = sbatch(write(jobs / "sweep-array.sbatch", array))
    collect = "\n".join([
        *_header(c, "brunel-sweep-collect", jobs, nodes=1, ntasks_per_node=1, cpus_per_task=1,
                 time_limit="00:20:00", exclusive=False),
        *_environment(c),
        f"python -m hpc_brunel sweep --out {shlex.quote(str(out))} --collect-only",
        "",
    ])
    cmd = ["sbatch", "--parsable", f"--dependency=afterany:{array_id}", str(write(jobs / "collect.sbatch", collect))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sbatch collect failed: {proc.stderr.strip()}")
    print(f"array job {array_id} ({len(todo)} points); collect job {proc.stdout.strip()} (afterany:{array_id})")
    return 0
