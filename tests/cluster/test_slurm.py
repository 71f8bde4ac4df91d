"""Jobscripts run for real on a single-node SLURM (slurmctld + slurmd on localhost).

Skipped with a reason where SLURM cannot be started (not root, no packages);
CI sets HPC_BRUNEL_REQUIRE_SLURM=1, which turns that skip into a failure."""
import json
import sys

import pytest
from conftest import ROOT, SMALL, needs_nest
from slurm_cluster import running_cluster

from hpc_brunel.cluster.jobscript import (
    Cluster,
    render_run,
    sbatch,
    submit_chain,
    write,
)

pytestmark = [pytest.mark.slurm, needs_nest]

VENV = sys.prefix  # the venv running the tests: jobs activate the same one


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    yield from running_cluster(tmp_path_factory.mktemp("slurm"))


def submit_and_wait(slurm, monkeypatch, run_dir, run_args, **cluster):
    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    c = Cluster(venv=VENV, workdir=str(ROOT), time_limit="00:10:00", **cluster)
    run_id, ana_id = submit_chain(c, run_dir, run_args)
    states = slurm.wait_for_jobs([run_id, ana_id], timeout_s=600)
    logs = "\n".join(p.read_text() for p in sorted((run_dir.parent / f"{run_dir.name}.jobs").glob("*.out")))
    assert states == {run_id: "COMPLETED", ana_id: "COMPLETED"}, logs
    return run_id, ana_id


def test_run_then_analyze_chain_small_network(slurm, tmp_path, monkeypatch):
    run_dir = tmp_path / "small"
    run_id, _ = submit_and_wait(slurm, monkeypatch, run_dir, [*SMALL, "--t-sim-ms", "300"],
                                ntasks_per_node=2, cpus_per_task=1)
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "complete"
    assert rec["decomposition"] == {"ranks": 2, "threads_per_rank": 1, "virtual_processes": 2}
    assert rec["slurm"]["SLURM_JOB_ID"] == run_id and rec["slurm"]["SLURM_JOB_NODELIST"] == "localhost"
    assert (run_dir / "analysis.json").exists() and (run_dir / "report.md").exists()


def test_threads_per_rank_from_slurm_cpus_per_task(slurm, tmp_path, monkeypatch):
    run_dir = tmp_path / "threads"
    submit_and_wait(slurm, monkeypatch, run_dir, [*SMALL, "--t-sim-ms", "200"], ntasks_per_node=1, cpus_per_task=2)
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["decomposition"] == {"ranks": 1, "threads_per_rank": 2, "virtual_processes": 2}


@pytest.mark.slow
def test_full_network_chain_short(slurm, tmp_path, monkeypatch):
    run_dir = tmp_path / "full"
    submit_and_wait(slurm, monkeypatch, run_dir, ["--t-sim-ms", "300"], ntasks_per_node=2, cpus_per_task=1)
    a = json.loads((run_dir / "analysis.json").read_text())
    assert a["decomposition"]["ranks"] == 2 and a["parameters"]["N_E"] == 10000
    assert 30 < a["populations"]["network"]["rate_mean_hz"] < 45


def test_scaling_series_ends_in_its_plot(slurm, tmp_path):
    out = tmp_path / "series"
    proc = slurm.run(sys.executable, "-m", "hpc_brunel", "scale", "strong", "--slurm", "--decompositions", "1x1,2x1",
                     "--repetitions", "1", "--t-sim-ms", "100", "--presim-ms", "20", "--neurons", "1250",
                     "--out", str(out), "--time", "00:10:00",
                     "--run-args", "--set network.indegree_excitatory=100 --set network.indegree_inhibitory=25",
                     cwd=ROOT)
    ids = [ln.split("job ")[1].split()[0] for ln in proc.stdout.splitlines() if "job " in ln]
    assert len(ids) == 3, proc.stdout
    states = slurm.wait_for_jobs(ids)
    logs = "\n".join(p.read_text() for p in sorted((out / "jobs").glob("*.out")))
    assert set(states.values()) == {"COMPLETED"}, logs
    assert (out / "scaling_strong.png").exists()
    rows = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()[1:]]
    assert sorted((r["ranks"], r["threads_per_rank"]) for r in rows) == [(1, 1), (2, 1)]
    assert all(r["slurm_job_id"] for r in rows)


def test_nest_without_mpi_is_refused_under_srun(slurm, tmp_path, monkeypatch, wheel_venv):
    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    run_dir = tmp_path / "wheel"
    c = Cluster(venv=str(wheel_venv), workdir=str(ROOT), time_limit="00:05:00", ntasks_per_node=2)
    script = write(tmp_path / "run.sbatch", render_run(c, run_dir, [], log_dir=tmp_path))
    job = sbatch(script)
    states = slurm.wait_for_jobs([job], timeout_s=300)
    log = (tmp_path / f"brunel-run-{job}.out").read_text()
    assert states[job] == "FAILED", log
    assert "built without MPI" in log and "duplicate simulations" in log
    assert not run_dir.exists()


def test_sweep_as_a_job_array(slurm, tmp_path):
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "hpc_brunel", "sweep", "--slurm", "--g-range", "4:6:2", "--eta-range", "2:2:1", "--scale", "0.1",
            "--t-sim-ms", "150", "--out", str(out), "--time", "00:10:00"]
    proc = slurm.run(*args, cwd=ROOT)
    first = proc.stdout.split("array job ")[1].split()[0]
    collect = proc.stdout.split("collect job ")[1].split()[0]
    states = slurm.wait_for_jobs([collect, first], timeout_s=600)
    logs = "\n".join(p.read_text() for p in sorted((out / "jobs").glob("*.out")))
    assert states[collect] == "COMPLETED", logs
    rows = (out / "sweep.csv").read_text().splitlines()
    assert len(rows) == 3 and (out / "phase_diagram.png").exists(), logs
    # resumable: nothing left to submit
    again = slurm.run(*args, cwd=ROOT)
    assert "all points done already" in again.stdout


def test_printed_run_script_copied_to_an_empty_directory_runs_twice(slurm, tmp_path):
    """The cluster path from an empty directory: `jobscript run` printed, copied into a
    directory with nothing in it, submitted twice from there: both jobs run, each logs
    where the script says (the submission directory) and writes its own run directory,
    and the log names the Python, NEST and MPI library the job used."""
    import subprocess

    text = subprocess.run([sys.executable, "-m", "hpc_brunel", "jobscript", "run", "--venv", VENV,
                           "--run-args", " ".join([*SMALL, "--t-sim-ms", "200"])],
                          capture_output=True, text=True, cwd=ROOT, check=True).stdout
    empty = tmp_path / "fresh"
    empty.mkdir()
    script = empty / "brunel.sbatch"
    script.write_text(text)
    ids = [slurm.run("sbatch", "--parsable", str(script), cwd=empty).stdout.strip().split(";")[0] for _ in range(2)]
    states = slurm.wait_for_jobs(ids, timeout_s=300)
    logs = {j: (empty / f"brunel-run-{j}.out") for j in ids}
    assert all(p.exists() for p in logs.values()), sorted(p.name for p in empty.iterdir())
    assert states == dict.fromkeys(ids, "COMPLETED"), "\n".join(p.read_text() for p in logs.values())
    for j, log in logs.items():
        rec = json.loads((empty / "runs" / f"brunel-{j}" / "run.json").read_text())
        assert rec["status"] == "complete" and rec["slurm"]["SLURM_JOB_ID"] == j
        out = log.read_text()
        assert f"python: {VENV}/bin/python" in out and "stack: Python" in out and "MPI library:" in out, out
        assert rec["versions"]["python_executable"].startswith(VENV)


@pytest.mark.slow
def test_time_limit_then_continue_matches_an_uninterrupted_run(slurm, tmp_path, monkeypatch):
    """The long-simulation case: `jobscript chain --segments 2` with 1-minute jobs and a
    run that needs longer; job 1 is stopped by SLURM's time limit (checkpoint at the
    stop), job 2 continues it and is stopped in turn, the analysis job takes the whole.
    Against an uninterrupted run of the same length and seed: the statistics after the
    seam (printed in standard errors; 3 at most), no transient at the seam, the
    per-neuron rate heterogeneity carried across it, and the same connections on every
    rank."""
    import numpy as np

    from conftest import hpc_brunel

    import hpc_brunel as api
    from hpc_brunel.analysis import seams

    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    run_dir = tmp_path / "long"
    c = Cluster(venv=VENV, workdir=str(ROOT), time_limit="00:01:00", ntasks_per_node=2, cpus_per_task=1)
    ids = submit_chain(c, run_dir, [*SMALL, "--t-sim-ms", "600000", "--hash-connections"],
                       continue_until_ms=[600000.0], continue_args=["--hash-connections"])
    states = slurm.wait_for_jobs(list(ids), timeout_s=600)
    logs = "\n".join(p.read_text() for p in sorted((run_dir.parent / f"{run_dir.name}.jobs").glob("*.out")))
    assert states == {ids[0]: "TIMEOUT", ids[1]: "TIMEOUT", ids[2]: "COMPLETED"}, logs
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "terminated" and len(rec["segments"]) == 2, logs
    seam = rec["seams_ms"][0]
    s0, s1 = rec["segments"]
    assert s0["status"] == "terminated" and s0["t_end_ms"] == seam and s1["t_start_ms"] == seam
    assert s0["checkpoints"][-1]["t_model_ms"] == seam  # saved at the stop, inside SLURM's KillWait
    assert s0["slurm_job_id"] == ids[0] and s1["slurm_job_id"] == ids[1]
    assert s0["connections_sha256"] == s1["connections_sha256"] and len(s0["connections_sha256"]) == 2
    end = rec["t_model_reached_ms"]
    window = min(20000.0, end - seam, seam - 1000.0)
    assert window >= 5000.0, (seam, end)
    a = json.loads((run_dir / "analysis.json").read_text())
    assert a["run_status"] == "terminated" and not a["partial"]

    ref = tmp_path / "uninterrupted"  # the same length and seed, without a stop (~2 min on 2 cores)
    hpc_brunel("run", *SMALL, "--t-sim-ms", end, "--run-dir", ref, "--no-analyze", "--checkpoint-every-ms", "0",
               ranks=2, check=True, timeout=1200)
    n = 1000
    n_blocks = int((end - seam) // 2000.0)  # 2-s blocks over everything after the seam
    t_stop = seam + 2000.0 * n_blocks
    data, pops = {}, {}
    for name, path in (("continued", run_dir), ("uninterrupted", ref)):
        run = api.load_run(path, t_start_ms=seam - window, t_stop_ms=t_stop)
        e, i = run.spikes["excitatory"], run.spikes["inhibitory"]
        data[name] = (np.concatenate([e.node_ids, i.node_ids + e.n_neurons]), np.concatenate([e.times_ms, i.times_ms]))
        pops[name] = {p: (s.node_ids, s.times_ms, s.n_neurons) for p, s in run.spikes.items()}
    lines = []
    for name, (nid, t) in data.items():
        tr = seams.seam_transient(t, n, seam, reference=(seam - window, seam - 100.0), k_sd=4.0)
        lines.append(f"{name}: {tr.bins_outside} bins outside the band after {seam} ms")
        if name == "continued":
            assert tr.bins_outside == 0, (tr.rate_after_hz, tr.band_mean_hz, tr.band_sd_hz)
    # Per population: rate, CV(ISI), chi_inf over everything after the seam in both runs, batch
    # means of 2-s blocks. The target is 2 standard errors: two statistically identical runs exceed
    # it in 5 % of the comparisons by chance (one of these six in a quarter of the CI runs), and
    # 20-s windows were not enough (chi_inf has rare high-synchrony epochs: -3.1 SE once, +1.6 SE
    # the other time, none over the whole 120 s), so each is printed and the test fails beyond 3 SE.
    for pop in ("excitatory", "inhibitory"):
        blocks = {k: seams.block_statistics(v[pop][0], v[pop][1], v[pop][2], seam, t_stop, n_blocks=n_blocks)
                  for k, v in pops.items()}
        for stat in ("rate_hz", "cv_isi", "chi_inf"):
            diff, se, _ = seams.within_standard_errors(blocks["continued"][stat], blocks["uninterrupted"][stat])
            lines.append(f"{pop} {stat}: {blocks['continued'][stat].mean():.4f} vs "
                         f"{blocks['uninterrupted'][stat].mean():.4f} ({diff / se:+.2f} SE, {n_blocks} blocks)")
            assert abs(diff) <= 3 * se, lines
    corr = {k: seams.rate_correlation(*v, n, seam - window, seam, seam + window) for k, v in data.items()}
    lines.append(f"rate correlation across the seam: {corr}")
    assert corr["continued"] >= corr["uninterrupted"] - 2 * np.sqrt(2.0 / (n - 3)), lines
    print(f"\n[continue] seam {seam:.0f} ms, end {end:.0f} ms, window {window:.0f} ms: " + "; ".join(lines))
