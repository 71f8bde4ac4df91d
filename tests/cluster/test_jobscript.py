"""jobscripts/ at the top level: rendered from the package's sbatch templates (the same
ones `jobscript`, `scale --slurm` and `sweep --slurm` use) and kept in sync with them."""
import subprocess
import sys

import pytest
from conftest import ROOT

from hpc_brunel.cluster import jobscript as J

REGENERATE = "python -m hpc_brunel jobscript examples --out jobscripts"


def test_jobscripts_directory_is_in_sync_with_the_templates():
    want = J.render_examples()
    have = {p.name: p.read_text() for p in (ROOT / "jobscripts").glob("*.sbatch")}
    assert sorted(have) == sorted(want), f"jobscripts/ holds other files than the templates give: {REGENERATE}"
    for name, text in want.items():
        assert have[name] == text, f"jobscripts/{name} is out of date with hpc_brunel/cluster/templates: {REGENERATE}"


def test_examples_cover_the_workflows_and_are_valid_bash(tmp_path):
    ex = J.render_examples()
    assert {"run.sbatch", "chain-run.sbatch", "chain-analyze.sbatch", "scale-strong-point.sbatch",
            "scale-weak-point.sbatch", "scale-plot.sbatch", "sweep-array.sbatch", "sweep-collect.sbatch"} <= set(ex)
    for name, text in ex.items():
        p = tmp_path / name
        p.write_text(text)
        assert subprocess.run(["bash", "-n", str(p)]).returncode == 0, name
        assert text.startswith("#!/bin/bash\n# ") and "#SBATCH --hint=nomultithread" in text
        # SLURM does not expand variables in #SBATCH lines
        assert not any(line.startswith("#SBATCH") and "$" in line for line in text.splitlines()), name
    assert "--no-analyze" not in ex["run.sbatch"] and "--no-analyze" in ex["chain-run.sbatch"]
    assert "#SBATCH --array=0-71" in ex["sweep-array.sbatch"]
    assert 'cd "$SLURM_SUBMIT_DIR"' in ex["run.sbatch"]


def test_templates_are_files_not_python_strings():
    tdir = ROOT / "hpc_brunel" / "cluster" / "templates"
    names = {p.name for p in tdir.glob("*.sbatch.in")}
    assert {"header.sbatch.in", "environment.sbatch.in", "run.sbatch.in", "analyze.sbatch.in",
            "scale-plot.sbatch.in", "sweep-array.sbatch.in", "sweep-collect.sbatch.in"} <= names
    src = (ROOT / "hpc_brunel" / "cluster" / "jobscript.py").read_text()
    for text in ("--hint=nomultithread", "OMP_PROC_BIND", "set -euo pipefail", "mapfile"):
        assert text not in src, f"{text!r} belongs in a template file"


def test_render_template_drops_empty_optional_lines_and_refuses_missing_values():
    c = J.Cluster(venv="", workdir="/w", partition="", account="")
    text = J.render_run(c, "/r", [])
    assert "--partition" not in text and "source " not in text and "module" not in text
    assert "\n\n\n" not in text
    with_opts = J.render_run(J.Cluster(venv="/v", workdir="/w", partition="p", modules=["NEST"]), "/r", [])
    assert "#SBATCH --partition=p" in with_opts and "module load NEST" in with_opts and "source /v/bin/activate" \
        in with_opts
    with pytest.raises(KeyError, match="no value for"):
        J.render_template("run", header="x", environment="y")


def test_jobscript_examples_command_writes_them(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hpc_brunel", "jobscript", "examples", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.glob("*.sbatch")) == sorted(J.render_examples())


def test_rendered_scripts_follow_nest_hpc_guidance(tmp_path):
    c = J.Cluster(partition="batch", account="p1", ntasks_per_node=4, cpus_per_task=8, modules=["NEST/3.10"])
    text = J.render_run(c, tmp_path / "r", ["--t-sim-ms", "500"])
    for line in ("#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=8", "#SBATCH --hint=nomultithread",
                 "#SBATCH --exclusive", "#SBATCH --partition=batch", "#SBATCH --account=p1", "module load NEST/3.10",
                 "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}", "export OMP_PROC_BIND=true",
                 "srun ${SRUN_MPI:+--mpi=$SRUN_MPI} --cpus-per-task=$SLURM_CPUS_PER_TASK --kill-on-bad-exit=1 "
                 "python -m hpc_brunel run",
                 '*"Open MPI"*|*OpenRTE*|*PRRTE*) SRUN_MPI=${SRUN_MPI:-pmix};;',
                 '*HYDRA*|*Hydra*|*"Intel(R) MPI"*|*MVAPICH*) SRUN_MPI=${SRUN_MPI:-pmi2};;'):
        assert line in text, line
    # an explicit plugin is written as it is
    forced = J.render_run(J.Cluster(srun_mpi="pmi2"), tmp_path / "r", ["--t-sim-ms", "500"])
    assert "srun --mpi=pmi2 --cpus-per-task=$SLURM_CPUS_PER_TASK" in forced
    assert "--no-analyze" in text
    assert "python -m hpc_brunel analyze" in J.render_analyze(c, tmp_path / "r")


def test_chain_of_segments_runs_then_continues_then_analyzes(tmp_path, monkeypatch):
    """jobscript chain --segments 3: run -> continue -> continue -> analyze, each after
    the one before with afterany (a fake sbatch records the submissions)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    (bin_dir / "sbatch").write_text(f"""#!/bin/bash
echo "$@" >> {log}
echo $((100 + $(wc -l < {log})))
""")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "hpc_brunel", "jobscript", "chain", "--segments", "3", "--time",
                           "00:10:00", "--run-dir", str(tmp_path / "long"), "--venv", "", "--run-args",
                           "--t-sim-ms 100000 --grace-s 5"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "continue job 102 (afterany:101); continue job 103 (afterany:102); analyze job 104 (afterany:103)" \
        in proc.stdout
    calls = log.read_text().splitlines()
    jobs = tmp_path / "long.jobs"
    assert calls == [f"--parsable {jobs}/run.sbatch",
                     f"--parsable --dependency=afterany:101 {jobs}/continue-2.sbatch",
                     f"--parsable --dependency=afterany:102 {jobs}/continue-3.sbatch",
                     f"--parsable --dependency=afterany:103 {jobs}/analyze.sbatch"]
    cont = (jobs / "continue-3.sbatch").read_text()
    assert f"python -m hpc_brunel run --continue {tmp_path / 'long'} --until-ms 100000 --no-analyze --grace-s 5" \
        in cont
    assert "--until-ms 66666.7 " in (jobs / "continue-2.sbatch").read_text()  # 2/3 of the way, on the 0.1 ms grid
    assert (jobs / "run.sbatch").read_text().rstrip().endswith("--t-sim-ms 100000 --grace-s 5 --t-sim-ms 33333.3")
    assert "segments (model time each job reaches" in proc.stderr
    assert "#SBATCH --time=00:10:00" in cont
    assert subprocess.run(["bash", "-n", str(jobs / "continue-2.sbatch")]).returncode == 0
    bad = subprocess.run([sys.executable, "-m", "hpc_brunel", "jobscript", "chain", "--segments", "2", "--run-args",
                          "--continue x --t-sim-ms 500"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("error:") == 1 and "--segments" in bad.stderr


def test_printed_run_script_works_from_any_directory_and_twice(tmp_path):
    """`jobscript run` prints a script that runs where it is submitted from, logs there,
    makes its own run directory per job (submitting it twice makes two runs) and loads
    only the modules asked for (no silent `module purge`)."""
    def render(*extra):
        p = subprocess.run([sys.executable, "-m", "hpc_brunel", "jobscript", "run", "--venv", "", *extra],
                           capture_output=True, text=True, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        return p.stdout

    text = render("--module", "NEST/3.9")
    assert "#SBATCH --output=%x-%j.out" in text and 'cd "$SLURM_SUBMIT_DIR"' in text
    assert '--run-dir "${RUN_DIR:-runs/brunel-$SLURM_JOB_ID}"' in text
    assert "module load NEST/3.9" in text and "module purge" not in text
    assert "module purge\nmodule load NEST/3.9" in render("--module", "NEST/3.9", "--module-purge")
    assert 'echo "python: $(command -v python)' in text
    analyze = subprocess.run([sys.executable, "-m", "hpc_brunel", "jobscript", "analyze", "--venv", ""],
                             capture_output=True, text=True, cwd=tmp_path).stdout
    assert 'analyze "${RUN_DIR:?export RUN_DIR=<the run directory>}"' in analyze
    assert not (tmp_path / "runs").exists()  # printing creates nothing
