"""The MPICH environment (`make setup MPI=mpich`, .venv-mpich) on the two-node SLURM
(slurm_cluster.py), launched by `srun --mpi=pmi2`, which the rendered jobs choose
themselves for an MPICH-family MPI: the run -> analyze chain across both nodes, and a
one-rank fault that ends the job as fast as under PMIx (test_slurm_multinode.py).

Skipped with a reason where SLURM cannot be started or the MPICH environment is not
set up; in CI a skip is a failure."""
import datetime as dt
import json

import pytest
from conftest import ROOT, SMALL, fault_env, needs_nest, venv_python
from slurm_cluster import chain_logs, running_cluster

pytestmark = [pytest.mark.slurm, needs_nest]


@pytest.fixture(scope="module")
def cluster2(tmp_path_factory):
    yield from running_cluster(tmp_path_factory.mktemp("slurm-pmi2"), nodes=2)


@pytest.fixture(scope="module")
def mpich_venv():
    return str(venv_python("mpich").parents[1])


def chain(cluster, monkeypatch, venv, run_dir, run_args, **kw):
    return cluster.chain_on_all_nodes(monkeypatch, venv, str(ROOT), run_dir, run_args, **kw)


def test_mpich_chain_under_srun_pmi2_spans_two_nodes(cluster2, mpich_venv, tmp_path, monkeypatch):
    run_dir = tmp_path / "pmi2"
    run_id, ana_id = chain(cluster2, monkeypatch, mpich_venv, run_dir, [*SMALL, "--t-sim-ms", "300"])
    states = cluster2.wait_for_jobs([run_id, ana_id])
    text = chain_logs(run_dir)
    assert states == {run_id: "COMPLETED", ana_id: "COMPLETED"}, text
    assert "srun --mpi=pmi2" in text  # the job chose PMI-2 for its MPICH (it echoes its choice)
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "complete" and rec["rank_nodes"] == ["n1", "n2"]
    assert "MPICH" in rec["versions"]["mpi_library"], rec["versions"]
    assert rec["versions"]["python_executable"].startswith(mpich_venv)
    assert rec["decomposition"]["ranks"] == 2
    assert (run_dir / "analysis.json").exists()
    print(f"\n[pmi2] {rec['versions']['mpi_library']}: chain completed on {rec['rank_nodes']}")


def test_mpich_fault_on_the_second_node_ends_the_job(cluster2, mpich_venv, tmp_path, monkeypatch):
    run_dir = tmp_path / "fault"
    for k, v in fault_env("append_chunk:1:3").items():  # sbatch hands the environment to the job
        monkeypatch.setenv(k, v)
    run_id, ana_id = chain(cluster2, monkeypatch, mpich_venv, run_dir, [*SMALL, "--t-sim-ms", "60000"])
    states = cluster2.wait_for_jobs([run_id, ana_id], timeout_s=300)
    text = chain_logs(run_dir)
    assert states == {run_id: "FAILED", ana_id: "FAILED"}, text
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "failed" and rec["rank_nodes"] == ["n1", "n2"]
    f = rec["failure"]
    assert (f["rank"], f["phase"], f["node"], f["t_model_reached_ms"]) == (1, "write_spikes", "n2", 200.0)
    end = dt.datetime.fromisoformat(cluster2.job_field(run_id, "EndTime")).timestamp()
    print(f"\n[failfast] srun --mpi=pmi2 + MPICH, 2 nodes: run job ended {end - f['unix_time']:.1f} s after the "
          "fault (1 s resolution)")
    assert end - f["unix_time"] < 60
