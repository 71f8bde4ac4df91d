"""The sub-commands' error path (hpc_brunel.commands + hpc_brunel.errors): every
error hpc_brunel raises on purpose becomes one `hpc_brunel: error:` line and its
exit status; the run's bad input is decided together by every rank."""
import subprocess
import sys

import pytest

from conftest import ROOT
from hpc_brunel import commands, errors
from hpc_brunel.cli import parse_args


@pytest.mark.parametrize("exc, status", [(errors.ConfigError("--x = 1: allowed 2"), 2),
                                         (errors.RunDirError("--run-dir d: in use"), 2),
                                         (errors.NestSetupError("no MPI"), 2),
                                         (errors.IncompleteRunError("incomplete"), 2),
                                         (errors.JobError("sbatch failed"), 1)])
def test_dispatch_turns_an_error_into_one_line_and_its_status(monkeypatch, capsys, exc, status):
    def boom(args):
        raise exc

    monkeypatch.setitem(commands.COMMANDS, "config", boom)
    assert commands.dispatch(parse_args(["config"])) == status
    err = capsys.readouterr().err
    assert err == f"hpc_brunel: error: {exc}\n"


class FakeRanks:
    """What `Parallel.first_error` gives when each rank passes its own error."""

    def __init__(self, rank, errors_by_rank):
        self.rank, self.errors, self.phase = rank, errors_by_rank, None

    @property
    def is_root(self):
        return self.rank == 0

    def first_error(self, message):
        assert message == self.errors[self.rank]
        return next((e for e in self.errors if e), None)


@pytest.mark.parametrize("rank", [0, 1])
def test_bad_input_on_one_rank_is_bad_input_on_every_rank(capsys, rank):
    errors_by_rank = [None, "--threads = 9: allowed 1..2"]

    def step():
        if errors_by_rank[rank]:
            raise errors.ConfigError(errors_by_rank[rank])
        return "ok"

    bad, result = commands._collective_bad_input(FakeRanks(rank, errors_by_rank), "config", step)
    assert bad and result is None
    assert capsys.readouterr().err == ("hpc_brunel: error: --threads = 9: allowed 1..2\n" if rank == 0 else "")


def test_an_unexpected_error_is_not_bad_input():
    def step():
        raise KeyError("bug")

    with pytest.raises(KeyError):  # goes to Parallel.run_guarded: the job is aborted with a failure record
        commands._collective_bad_input(FakeRanks(0, [None]), "config", step)


@pytest.mark.parametrize("argv, text", [
    (["plan", "--table", "missing.csv"], "--table missing.csv: no such file"),
    (["plan", "--latency-us", "-1"], "--latency-us = -1: allowed a finite number > 0"),
    (["plan", "--mem-per-node-gib", "0"], "--mem-per-node-gib = 0: allowed"),
    (["config", "--lean", "--set", "network.synapse_model=static_synapse_hpc"], "--lean sets network.synapse_model"),
    (["scale", "strong", "--run-args", "'x"], "--run-args \"'x\""),
    (["jobscript", "analyze", "--run-args", "'x"], "--run-args \"'x\""),
    (["jobscript", "run", "--ntasks-per-node", "0"], "--ntasks-per-node = 0: allowed integers >= 1"),
    (["sweep", "--t-sim-ms", "10"], "--t-sim-ms = 10: allowed a finite number of ms >= 20"),
    (["analyze", "/nonexistent/run"], "is not an hpc_brunel run directory"),
])
def test_bad_input_of_a_single_process_command_is_one_line_and_exit_2(tmp_path, argv, text):
    proc = subprocess.run([sys.executable, "-m", "hpc_brunel", *argv], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpc_brunel: error: ") and text in lines[0], proc.stderr


def test_lean_selects_the_lean_synapse_model_and_plan_shows_both():
    from hpc_brunel.cli import parse_args
    from hpc_brunel.config import DEFAULT_SYNAPSE_MODEL, LEAN_SYNAPSE_MODEL

    assert commands.config_from_args(parse_args(["config"])).network.synapse_model == DEFAULT_SYNAPSE_MODEL
    assert commands.config_from_args(parse_args(["config", "--lean"])).network.synapse_model == LEAN_SYNAPSE_MODEL
    same = parse_args(["config", "--lean", "--set", f"network.synapse_model={LEAN_SYNAPSE_MODEL}"])
    assert commands.config_from_args(same).network.synapse_model == LEAN_SYNAPSE_MODEL
    ns = parse_args(["jobscript", "run", "--run-args", "--lean --t-sim-ms 500"])
    assert commands.config_from_args(ns.run_namespace).network.synapse_model == LEAN_SYNAPSE_MODEL
    proc = subprocess.run([sys.executable, "-m", "hpc_brunel", "plan", "--neurons", "125000", "--ranks", "2", "--lean"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    first, rest = proc.stdout.splitlines()[0], proc.stdout
    assert LEAN_SYNAPSE_MODEL in first and "lean" in first and f"{DEFAULT_SYNAPSE_MODEL} = default" in rest
