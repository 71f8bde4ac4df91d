"""SLURM jobscripts: render plain, editable sbatch scripts for a run, its analysis
(submitted with --dependency=afterany:<run>: analyze decides from the run
directory whether there is something to analyze), scaling series (one job per
point, then a plotting job that depends on all of them) and sweeps (a job array
and a collect job), and the ready-to-edit copies in the top-level jobscripts/
directory.

The script text lives in template files, hpc_brunel/cluster/templates/*.sbatch.in
(package data), with {{placeholders}}: header (the #SBATCH lines), environment
(modules, venv, NEST's HPC guidance for threads and pinning) and one body per job.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hpc_brunel.constants import default_transient_ms
from hpc_brunel.errors import ConfigError, JobError
from hpc_brunel.simulation import rundir


def active_venv() -> str:
    """The virtual environment this Python runs in ('' if none): what the jobs
    should activate. Never the package's own location, which after a plain
    `pip install .` is inside site-packages."""
    import os

    env = os.environ.get("VIRTUAL_ENV")
    if env:
        return env
    return sys.prefix if sys.prefix != getattr(sys, "base_prefix", sys.prefix) else ""


def default_workdir() -> str:
    """The jobs run from the directory `jobscript` was called in."""
    return str(Path.cwd().resolve())


@dataclass
class Cluster:
    """The SLURM allocation and environment of the rendered jobs: #SBATCH values
    (partition, account, time limit, nodes, ranks per node, threads per rank,
    --exclusive, extra lines), the modules and venv to load, srun's --mpi plugin,
    the directory the jobs run from and comment lines for the script's head."""

    partition: str = ""
    account: str = ""
    time_limit: str = "00:30:00"
    nodes: int = 1
    ntasks_per_node: int = 2
    cpus_per_task: int = 1
    modules: list[str] = field(default_factory=list)
    module_purge: bool = False  # `module purge` before the loads (only when asked: it unloads the site's defaults)
    venv: str = field(default_factory=active_venv)
    srun_mpi: str = "auto"  # srun --mpi plugin; "auto": the job picks it by its MPI (environment template)
    exclusive: bool = True
    extra_sbatch: list[str] = field(default_factory=list)  # raw "--key=value" lines
    workdir: str = field(default_factory=default_workdir)
    note: str = ""  # comment lines under the shebang

    def validate(self) -> "Cluster":
        """Return self, or raise ConfigError (one line) for a time limit SLURM does not
        accept or a count below 1."""
        if not re.fullmatch(r"(\d+-)?\d{1,2}(:\d{2}){0,2}", self.time_limit):
            raise ConfigError(f"--time {self.time_limit!r}: allowed SLURM time formats, e.g. 00:30:00 or 1-00:00:00")
        for name in ("nodes", "ntasks_per_node", "cpus_per_task"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} = {getattr(self, name)}: allowed integers >= 1")
        return self


TEMPLATE_DIR = "templates"  # package data: hpc_brunel/cluster/templates/*.sbatch.in
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def template_text(name: str) -> str:
    """The text of the package's template templates/<name>.sbatch.in."""
    from importlib import resources

    return resources.files("hpc_brunel.cluster").joinpath(TEMPLATE_DIR, f"{name}.sbatch.in").read_text()


def render_template(name: str, **values) -> str:
    """Fill a template's {{placeholders}}. A line that is only a placeholder and
    renders empty is dropped (optional #SBATCH lines, module loads, ...); a
    placeholder without a value is an error."""
    def value(m):
        if m.group(1) not in values:
            raise KeyError(f"template {name}.sbatch.in: no value for {{{{{m.group(1)}}}}}")
        return str(values[m.group(1)])

    out = []
    for line in template_text(name).splitlines():
        whole = _PLACEHOLDER.fullmatch(line.strip())
        if whole and value(whole) == "":
            continue
        out.append(_PLACEHOLDER.sub(value, line))
    return "\n".join(out) + "\n"


def shq(s) -> str:
    """Shell-quote a path or argument; a value that starts with '$' (a variable
    the job expands, e.g. "$SLURM_SUBMIT_DIR") goes in double quotes."""
    s = str(s)
    return f'"{s}"' if s.startswith("$") and '"' not in s else shlex.quote(s)


def _header(c: Cluster, job_name: str, log_dir, *, nodes: int, ntasks_per_node: int, cpus_per_task: int,
            time_limit: str | None = None, exclusive: bool | None = None, log_name: str = "%x-%j.out") -> str:
    return render_template(
        "header", note=c.note, job_name=job_name, nodes=nodes, ntasks_per_node=ntasks_per_node, cpus_per_task=cpus_per_task,
        time_limit=time_limit or c.time_limit, output=f"{log_dir}/{log_name}" if str(log_dir) else log_name,
        exclusive="#SBATCH --exclusive" if (c.exclusive if exclusive is None else exclusive) else "",
        partition=f"#SBATCH --partition={c.partition}" if c.partition else "",
        account=f"#SBATCH --account={c.account}" if c.account else "",
        extra_sbatch="\n".join(f"#SBATCH {x}" for x in c.extra_sbatch),
    ).rstrip("\n")


def _environment(c: Cluster) -> str:
    modules = (["module purge"] if c.module_purge else []) + [f"module load {m}" for m in c.modules]
    return render_template(
        "environment", modules="\n".join(modules),
        venv=f"source {shq(c.venv)}/bin/activate" if c.venv else "", workdir=shq(c.workdir),
    ).rstrip("\n")


def _srun(c: Cluster) -> str:
    # --cpus-per-task must be given to srun explicitly since Slurm 22.05. The --mpi plugin:
    # the one asked for, else the one the environment template chose for the job's MPI.
    mpi = "${SRUN_MPI:+--mpi=$SRUN_MPI}" if c.srun_mpi == "auto" else f"--mpi={c.srun_mpi}"
    return f"srun {mpi} --cpus-per-task=$SLURM_CPUS_PER_TASK --kill-on-bad-exit=1"


def render_run(c: Cluster, run_dir, run_args: list[str], job_name: str = "brunel-run",
               log_dir=None, analyze: bool = False) -> str:
    """The run job. analyze=False (a chain or a scaling point): --no-analyze,
    another job analyzes; True: rank 0 analyzes at the end of the same job."""
    log_dir = Path(run_dir).parent if log_dir is None else log_dir
    args = ["--run-dir", str(run_dir), *([] if analyze else ["--no-analyze"]), *run_args]
    return render_template("run", header=_header(c, job_name, log_dir, nodes=c.nodes,
                                                 ntasks_per_node=c.ntasks_per_node, cpus_per_task=c.cpus_per_task),
                           environment=_environment(c), srun=_srun(c), run_args=" ".join(shq(a) for a in args))


def render_continue(c: Cluster, run_dir, until_ms: float, segment: int, extra_args: list[str] = (),
                    job_name: str = "brunel-continue", log_dir=None) -> str:
    """A segment job of a chain: `run --continue RUN_DIR --until-ms UNTIL` (same
    allocation as the run job: the same ranks x threads)."""
    log_dir = Path(run_dir).parent if log_dir is None else log_dir
    return render_template("continue", header=_header(c, job_name, log_dir, nodes=c.nodes,
                                                      ntasks_per_node=c.ntasks_per_node,
                                                      cpus_per_task=c.cpus_per_task),
                           environment=_environment(c), srun=_srun(c), run_dir=shq(run_dir),
                           until_ms=f"{until_ms:g}", segment=segment,
                           extra="".join(" " + shq(a) for a in extra_args))


def render_analyze(c: Cluster, run_dir, job_name: str = "brunel-analyze", log_dir=None, extra: str = "") -> str:
    """The analysis job of a run (one task, one core, 20 min); `extra`: more `analyze` options."""
    log_dir = Path(run_dir).parent if log_dir is None else log_dir
    return render_template("analyze", header=_header(c, job_name, log_dir, nodes=1, ntasks_per_node=1,
                                                     cpus_per_task=1, time_limit="00:20:00", exclusive=False),
                           environment=_environment(c), run_dir=shq(run_dir), analyze_args=extra)


def render_series_plot(c: Cluster, series_dir, log_dir=None) -> str:
    """The job that collects a scaling series' finished points and draws its plots."""
    log_dir = series_dir if log_dir is None else log_dir
    return render_template("scale-plot", header=_header(c, "brunel-scale-plot", log_dir, nodes=1,
                                                        ntasks_per_node=1, cpus_per_task=1, time_limit="00:20:00",
                                                        exclusive=False),
                           environment=_environment(c), series_dir=shq(series_dir))


def render_sweep_array(c: Cluster, jobs_dir, n_points: int, ranks: int, threads: int, transient_ms: float,
                       log_dir=None) -> str:
    """The sweep's job array: task i runs point i (its options in jobs_dir/point-<i>.args)
    on `ranks` x `threads`, n_points tasks."""
    log_dir = jobs_dir if log_dir is None else log_dir
    pc = Cluster(**{**c.__dict__, "ntasks_per_node": ranks, "cpus_per_task": threads, "nodes": 1,
                    "exclusive": False})
    return render_template("sweep-array", header=_header(pc, "brunel-sweep", log_dir, nodes=1, ntasks_per_node=ranks,
                                                         cpus_per_task=threads, exclusive=False,
                                                         log_name="%x-%A_%a.out"),
                           last_index=n_points - 1, environment=_environment(pc), jobs_dir=shq(jobs_dir),
                           srun=_srun(pc), transient_ms=f"{transient_ms:g}")


def render_sweep_collect(c: Cluster, jobs_dir, sweep_dir, log_dir=None) -> str:
    """The job that writes a sweep's table and phase diagram from the points that finished."""
    log_dir = jobs_dir if log_dir is None else log_dir
    return render_template("sweep-collect", header=_header(c, "brunel-sweep-collect", log_dir, nodes=1,
                                                           ntasks_per_node=1, cpus_per_task=1, time_limit="00:20:00",
                                                           exclusive=False),
                           environment=_environment(c), sweep_dir=shq(sweep_dir))


EXAMPLES_NOTE = """\
# {what}
# Rendered by `python -m hpc_brunel jobscript examples` from hpc_brunel/cluster/templates/*.sbatch.in, the
# templates `jobscript`, `scale --slurm` and `sweep --slurm` use. Edit the #SBATCH lines (add
# --partition/--account as your site needs), the environment (module load NEST/3.10 ... or the
# .venv of `make setup`) and the options; ranks x threads per node = cores per node.
# {submit}"""


def render_examples() -> dict[str, str]:
    """The ready-to-edit scripts of the top-level jobscripts/ directory (a test keeps them in sync)."""
    from hpc_brunel.studies import scaling

    def cluster(what, submit, **kw):
        return Cluster(**{"time_limit": "01:00:00", "nodes": 1, "ntasks_per_node": 4, "cpus_per_task": 8,
                          "venv": ".venv", "workdir": "$SLURM_SUBMIT_DIR",
                          "note": EXAMPLES_NOTE.format(what=what, submit=submit), **kw})

    run_dir = "${RUN_DIR:?export RUN_DIR=runs/<name>: the run directory of the chain}"
    out = {
        "run.sbatch": render_run(cluster("One run of the full network, analyzed at the end of the same job.",
                                         "Submit: sbatch jobscripts/run.sbatch"),
                                 "${RUN_DIR:-runs/brunel-$SLURM_JOB_ID}", ["--t-sim-ms", "1000"], log_dir="",
                                 analyze=True),
        "chain-run.sbatch": render_run(cluster("Run -> analyze chain, part 1: the run (no analysis).",
                                               "Submit: export RUN_DIR=runs/long; j=$(sbatch --parsable "
                                               "jobscripts/chain-run.sbatch); sbatch --dependency=afterany:$j "
                                               "jobscripts/chain-analyze.sbatch"),
                                       run_dir, ["--t-sim-ms", "10000"], log_dir=""),
        "chain-analyze.sbatch": render_analyze(cluster("Run -> analyze chain, part 2: gather, statistics, report, "
                                                       "figures (one core).",
                                                       "Submitted after chain-run.sbatch with "
                                                       "--dependency=afterany:<run job> (see chain-run.sbatch)."),
                                               run_dir, log_dir=""),
        "chain-continue.sbatch": render_continue(
            cluster("Long runs across time limits: a segment job that continues the run in RUN_DIR from its newest "
                    "checkpoint up to 100 s of model time (or as far as this job's --time allows).",
                    "Submit after the run job, once per segment: j2=$(sbatch --parsable --dependency=afterany:$j "
                    "jobscripts/chain-continue.sbatch); ... then chain-analyze.sbatch after the last one. "
                    "`python -m hpc_brunel jobscript chain --segments K` writes and submits the whole chain."),
            run_dir, 100000.0, 2, log_dir=""),
    }
    for kind, decomp in (("strong", (4, 8)), ("weak", (4, 8))):
        series = scaling.plan(kind, [decomp], repetitions=1)
        p = series.points[0]
        series_dir = f"${{SERIES_DIR:-runs/scaling-{kind}}}"
        c = cluster(f"{kind.capitalize()} scaling: one point ({p.ranks} ranks x {p.threads} threads, "
                    f"{p.n_excitatory + p.n_inhibitory} neurons); one such job per point and repetition.",
                    f"`python -m hpc_brunel scale {kind} --slurm` writes and submits one per point, then "
                    "scale-plot.sbatch.", ntasks_per_node=p.ranks, cpus_per_task=p.threads)
        out[f"scale-{kind}-point.sbatch"] = render_run(c, f"{series_dir}/{p.name}", p.options(series),
                                                       job_name=f"brunel-{p.name}", log_dir="")
    out["scale-plot.sbatch"] = render_series_plot(
        cluster("Scaling: collect the finished points into results.csv and draw the plots.",
                "Submit with --dependency=afterany:<the point jobs>; SERIES_DIR = the series directory."),
        "${SERIES_DIR:-runs/scaling-strong}", log_dir="")
    sweep_dir = "${SWEEP_DIR:-runs/sweep}"
    out["sweep-array.sbatch"] = render_sweep_array(
        cluster("g x eta sweep as a job array: task i runs the point whose `run` options are in "
                "$SWEEP_DIR/jobs/point-<i>.args (one per line) into the directory in point-<i>.dir.",
                "`python -m hpc_brunel sweep --slurm --out DIR` writes those files for the missing points and "
                "submits this with --array=0-<n-1>, then sweep-collect.sbatch."),
        f"{sweep_dir}/jobs", 72, ranks=1, threads=1, transient_ms=100.0, log_dir="")
    out["sweep-collect.sbatch"] = render_sweep_collect(
        cluster("Sweep: table and phase diagram from whatever points finished.",
                "Submit with --dependency=afterany:<the array job>."), f"{sweep_dir}/jobs", sweep_dir, log_dir="")
    return out


def write_examples(directory: Path) -> list[Path]:
    """Write the scripts of `render_examples` into `directory`; returns their paths."""
    return [write(Path(directory) / name, text) for name, text in render_examples().items()]


def sbatch(script: Path, dependency: list[str] | None = None, kind: str = "afterok") -> str:
    """Submit `script` with sbatch (after the `dependency` jobs, --dependency=<kind>:...);
    returns the job id; raises JobError with sbatch's message if it fails."""
    cmd = ["sbatch", "--parsable"]
    if dependency:
        cmd.append(f"--dependency={kind}:" + ":".join(dependency))
    cmd.append(str(script))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise JobError("sbatch not found on PATH: submit from a SLURM login node (or use 'jobscript run' to "
                       "print the script)") from None
    if proc.returncode != 0:
        raise JobError(f"sbatch {script} failed: {proc.stderr.strip()}")
    return proc.stdout.strip().split(";")[0]


def write(path: Path, text: str) -> Path:
    """Write an executable script (mode 755), creating its directory; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def submit_chain(c: Cluster, run_dir: Path, run_args: list[str], *, continue_until_ms: list[float] = (),
                 continue_args: list[str] = ()) -> tuple[str, ...]:
    """Write run.sbatch, one continue-<k>.sbatch per entry of continue_until_ms
    (k = 2, 3, ...: `run --continue RUN_DIR --until-ms` that model time) and
    analyze.sbatch next to the run directory, submit each with afterany on the one
    before, and return the job ids (run, continues..., analyze).

    afterany, not afterok: a run stopped at the time limit (TIMEOUT, exit 3) is a
    clean shorter run that the next segment continues (catching up to its own
    target) and `analyze` analyzes, and a failed or killed run must not leave the
    rest pending forever (DependencyNeverSatisfied): a segment after a failure
    refuses in one line, and `analyze` reads the run directory and fails with the
    reason (failed rank and phase)."""
    run_dir = run_dir.resolve()
    jobs = run_dir.parent / f"{run_dir.name}.jobs"
    scripts = [write(jobs / "run.sbatch", render_run(c, run_dir, run_args, log_dir=jobs))]
    for k, until in enumerate(continue_until_ms, start=2):
        scripts.append(write(jobs / f"continue-{k}.sbatch",
                             render_continue(c, run_dir, until, k, continue_args, log_dir=jobs)))
    scripts.append(write(jobs / "analyze.sbatch", render_analyze(c, run_dir, log_dir=jobs)))
    ids = [sbatch(scripts[0])]
    for script in scripts[1:]:
        ids.append(sbatch(script, [ids[-1]], kind="afterany"))
    return tuple(ids)


def segment_targets_ms(presim_ms: float, t_sim_ms: float, segments: int, resolution_ms: float) -> list[float]:
    """Model time each of `segments` jobs simulates up to: presim + k t_sim / K on the
    resolution grid (k = 1..K), the last exactly presim + t_sim."""
    steps = round(t_sim_ms / resolution_ms)
    return [presim_ms + round(steps * k / segments) * resolution_ms for k in range(1, segments)] + [
        presim_ms + t_sim_ms]


def submit_series(series, out: Path, c: Cluster | None = None, log=print) -> None:
    """One job per scaling point (its own ranks x threads on one node), then the
    plotting job with afterany on all of them; `log` gets one line per job."""
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
        log(f"{p.name}: job {ids[-1]}")
    # afterany: a failed point must not leave the plot pending forever; it is listed as missing.
    plot_id = sbatch(write(out / "jobs" / "plot.sbatch", render_series_plot(c, out)), ids, kind="afterany")
    log(f"plot: job {plot_id} (afterany:{':'.join(ids)})")


def default_run_dir() -> Path:
    """The run directory a rendered job writes to when --run-dir is not given:
    runs/brunel-<date>-<time> under the current directory, as an absolute path."""
    return rundir.default_run_dir(Path.cwd() / "runs").resolve()


def submit_sweep(sweep, out: Path, c: Cluster, log=print) -> None:
    """The missing sweep points as one SLURM job array (each task one point,
    `ranks x threads` of its own), then a collect job (afterany) that draws the
    phase diagram from whatever finished; `log` gets what was submitted."""
    from hpc_brunel.studies.sweep import point_done

    out = Path(out).resolve()
    sweep.save(out)
    jobs = out / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    todo = [p for p in sweep.points if not point_done(out / p.name)]
    if not todo:
        log("all points done already")
        return
    for i, p in enumerate(todo):
        (jobs / f"point-{i}.args").write_text("\n".join(sweep.run_args(p, out / p.name)) + "\n")
        (jobs / f"point-{i}.dir").write_text(str(out / p.name) + "\n")
    transient = default_transient_ms(sweep.t_sim_ms)
    array = render_sweep_array(c, jobs, len(todo), sweep.ranks, sweep.threads, transient)
    array_id = sbatch(write(jobs / "sweep-array.sbatch", array))
    collect_id = sbatch(write(jobs / "collect.sbatch", render_sweep_collect(c, jobs, out)), [array_id],
                        kind="afterany")
    log(f"array job {array_id} ({len(todo)} points); collect job {collect_id} (afterany:{array_id})")
