"""A job that spans two SLURM nodes (two slurmd on localhost, see slurm_cluster.py):
the run -> analyze chain, a fault on the rank of the second node, scancel and
the time limit. Both fake nodes share one core: no timings are taken here.

Skipped with a reason where SLURM cannot be started; in CI a skip is a failure."""
import datetime as dt
import json
import time

import pytest
from conftest import ROOT, SMALL, fault_env, needs_nest, wait_for_chunks
from slurm_cluster import chain_logs, running_cluster

pytestmark = [pytest.mark.slurm, needs_nest]



@pytest.fixture(scope="module")
def cluster2(tmp_path_factory):
    yield from running_cluster(tmp_path_factory.mktemp("slurm2"), nodes=2)


def chain(cluster, monkeypatch, run_dir, run_args, **kw):
    import sys

    return cluster.chain_on_all_nodes(monkeypatch, sys.prefix, str(ROOT), run_dir, run_args, **kw)


def test_chain_spans_two_nodes(cluster2, tmp_path, monkeypatch):
    run_dir = tmp_path / "two"
    run_id, ana_id = chain(cluster2, monkeypatch, run_dir, [*SMALL, "--t-sim-ms", "300"])
    states = cluster2.wait_for_jobs([run_id, ana_id])
    assert states == {run_id: "COMPLETED", ana_id: "COMPLETED"}, chain_logs(run_dir)
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "complete" and rec["rank_nodes"] == ["n1", "n2"]
    assert (run_dir / "analysis.json").exists()


def test_fault_on_the_second_node_ends_the_job_on_both(cluster2, tmp_path, monkeypatch):
    run_dir = tmp_path / "fault"
    for k, v in fault_env("append_chunk:1:3").items():  # sbatch hands the environment to the job
        monkeypatch.setenv(k, v)
    run_id, ana_id = chain(cluster2, monkeypatch, run_dir, [*SMALL, "--t-sim-ms", "60000"])
    states = cluster2.wait_for_jobs([run_id, ana_id], timeout_s=300)
    text = chain_logs(run_dir)
    # the run failed on both nodes, and the analysis ran (afterany) and said why instead of pending forever
    assert states == {run_id: "FAILED", ana_id: "FAILED"}, text
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "failed" and rec["rank_nodes"] == ["n1", "n2"]
    f = rec["failure"]
    assert (f["rank"], f["phase"], f["node"], f["t_model_reached_ms"]) == (1, "write_spikes", "n2", 200.0)
    assert "rank 1 failed in phase 'write_spikes' at model time 200.0 ms" in text  # analyze's message
    end = dt.datetime.fromisoformat(cluster2.job_field(run_id, "EndTime")).timestamp()
    print(f"\n[failfast] srun, 2 nodes: run job ended {end - f['unix_time']:.1f} s after the fault (1 s resolution)")
    assert end - f["unix_time"] < 60


def test_scancel_stops_the_run_cleanly_and_the_chain_analyzes_it(cluster2, tmp_path, monkeypatch):
    run_dir = tmp_path / "cancel"
    run_id, ana_id = chain(cluster2, monkeypatch, run_dir, [*SMALL, "--t-sim-ms", "600000"])
    wait_for_chunks(run_dir, 3, 2, timeout=300)
    t0 = time.monotonic()
    cluster2.run("scancel", run_id)
    states = cluster2.wait_for_jobs([run_id, ana_id], timeout_s=300)
    text = chain_logs(run_dir)
    rec = json.loads((run_dir / "run.json").read_text())
    print(f"\n[signals] scancel: run {states[run_id]}, stopped at {rec.get('t_model_reached_ms')} ms, "
          f"analysis {states[ana_id]} {time.monotonic() - t0:.1f} s after scancel (KillWait {cluster2.kill_wait_s()} s)")
    assert rec["status"] == "terminated", text
    assert states[ana_id] == "COMPLETED", text
    assert json.loads((run_dir / "analysis.json").read_text())["run_status"] == "terminated"


@pytest.mark.slow
def test_time_limit_stops_the_run_cleanly_and_the_chain_analyzes_it(cluster2, tmp_path, monkeypatch):
    """The user's case: jobscript chain --time 00:01:00 with a run that needs longer."""
    run_dir = tmp_path / "timeout"
    run_id, ana_id = chain(cluster2, monkeypatch, run_dir, [*SMALL, "--t-sim-ms", "600000"], time_limit="00:01:00")
    states = cluster2.wait_for_jobs([run_id, ana_id], timeout_s=400)
    text = chain_logs(run_dir)
    assert states == {run_id: "TIMEOUT", ana_id: "COMPLETED"}, text
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "terminated" and 0 < rec["t_model_reached_ms"] < 600000
    a = json.loads((run_dir / "analysis.json").read_text())
    assert a["run_status"] == "terminated" and not a["partial"]
    print(f"\n[signals] time limit 1 min: stopped cleanly at {rec['t_model_reached_ms']:.0f} ms; analysis completed")


def test_grace_period_longer_than_killwait_is_refused(cluster2, tmp_path, monkeypatch):
    run_dir = tmp_path / "grace"
    run_id, ana_id = chain(cluster2, monkeypatch, run_dir, [*SMALL, "--t-sim-ms", "200", "--grace-s", "600"])
    states = cluster2.wait_for_jobs([run_id, ana_id])
    text = chain_logs(run_dir)
    assert states[run_id] == "FAILED", text
    lines = [ln for ln in text.splitlines() if "hpc_brunel: error: --grace-s" in ln]
    assert len(lines) == 1 and "KillWait" in lines[0], text  # rank 0 says it, once, and nothing was created
    assert not run_dir.exists()
