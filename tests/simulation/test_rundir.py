"""The run directory on cluster file systems: no POSIX locks, the lock release
race, failure records, the disk-space estimate. Pure Python: no NEST, no MPI."""
import errno
import fcntl
import json
import os

import pytest

from hpc_brunel.config import RunConfig, apply_regime, resolve
from hpc_brunel.constants import LOCK_FILE
from hpc_brunel.errors import RunDirError
from hpc_brunel.simulation import rundir
from hpc_brunel.simulation.rundir import RunLock


def no_locks(monkeypatch, err=errno.ENOLCK):
    def lockf(fd, op):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(fcntl, "lockf", lockf)


@pytest.mark.parametrize("err", [errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP])
def test_file_system_without_locks_neither_crashes_nor_hangs(tmp_path, monkeypatch, caplog, err):
    no_locks(monkeypatch, err)
    run_dir = tmp_path / "run"
    lock = rundir.prepare(run_dir, overwrite=False)
    assert lock.mode.startswith("none (") and errno.errorcode[err] in lock.mode
    assert "file locks are unavailable" in caplog.text
    rundir.write_run_json(run_dir, {"layout_version": rundir.RUN_LAYOUT_VERSION, "status": "running"})
    # a second run into it is still refused: the holder (this process) is alive on this host
    assert RunLock.is_held(run_dir) is True
    with pytest.raises(RunDirError, match="in use by another run.*its pid was checked"):
        rundir.prepare(run_dir, overwrite=True)
    lock.release()
    assert not (run_dir / LOCK_FILE).exists() and RunLock.is_held(run_dir) is False


def test_without_locks_a_dead_holder_is_stale_and_another_host_cannot_be_checked(tmp_path, monkeypatch):
    no_locks(monkeypatch)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rundir.write_run_json(run_dir, {"layout_version": rundir.RUN_LAYOUT_VERSION, "status": "running"})
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    import socket

    (run_dir / LOCK_FILE).write_text(f"host={socket.gethostname()} pid={dead} since=x\n")
    assert RunLock.is_held(run_dir) is False
    rundir.prepare(run_dir, overwrite=True).release()  # stale: taken over
    rundir.write_run_json(run_dir, {"layout_version": rundir.RUN_LAYOUT_VERSION, "status": "running"})
    (run_dir / LOCK_FILE).write_text("host=some-other-node pid=1 since=x\n")
    assert RunLock.is_held(run_dir) is None
    with pytest.raises(RunDirError, match="cannot check.*delete"):
        rundir.prepare(run_dir, overwrite=True)


def test_lock_taken_on_a_file_that_was_unlinked_meanwhile_is_retaken(tmp_path, monkeypatch):
    """The release race: B opens run.lock, A unlinks it and lets go, C creates a new
    run.lock; B's lock on the old file must not count."""
    run_dir = tmp_path
    real_lockf = fcntl.lockf
    calls = {"n": 0}

    def lockf(fd, op):
        calls["n"] += 1
        if calls["n"] == 1:  # between B's open and B's lock: the old holder went away, a new file appeared
            os.unlink(run_dir / LOCK_FILE)
            (run_dir / LOCK_FILE).write_text("")
        return real_lockf(fd, op)

    monkeypatch.setattr(fcntl, "lockf", lockf)
    b = RunLock(run_dir)
    b.acquire()
    assert calls["n"] == 2  # it noticed and locked again, on the file that exists
    assert os.fstat(b._fd).st_ino == os.stat(run_dir / LOCK_FILE).st_ino
    b.release()


def test_release_unlinks_before_it_lets_go(tmp_path, monkeypatch):
    lock = RunLock(tmp_path)
    lock.acquire()
    seen = {}
    real_close = os.close

    def close(fd):
        if fd == lock._fd:
            seen["exists_at_close"] = (tmp_path / LOCK_FILE).exists()
        real_close(fd)

    monkeypatch.setattr(os, "close", close)
    lock.release()
    assert seen == {"exists_at_close": False}


def test_failure_record(tmp_path):
    rundir.write_run_json(tmp_path, {"layout_version": 1, "status": "running"})
    try:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    except OSError as e:
        rundir.record_failure(tmp_path, rank=3, num_ranks=8, phase="write_spikes", exc=e, t_model_reached_ms=700.0)
    rec = rundir.read_run_json(tmp_path)
    assert rec["status"] == "failed" and rec["failure"]["rank"] == 3 and "traceback" not in rec["failure"]
    (f,) = rundir.read_failures(tmp_path)
    assert f["phase"] == "write_spikes" and f["t_model_reached_ms"] == 700.0 and "Traceback" in f["traceback"]
    assert rundir.describe_failure(f).startswith("rank 3 failed in phase 'write_spikes' at model time 700.0 ms")
    # after a complete run, an analysis error does not turn the run into a failed one
    rundir.write_run_json(tmp_path, {"layout_version": 1, "status": "complete"})
    rundir.record_failure(tmp_path, rank=0, num_ranks=8, phase="analyze", exc=ValueError("x"),
                          t_model_reached_ms=1000.0)
    rec = rundir.read_run_json(tmp_path)
    assert rec["status"] == "complete" and rec["analysis_failure"]["exception"] == "ValueError"
    assert not list(tmp_path.glob(".*.tmp"))


def test_disk_estimate_follows_the_expected_rate():
    """Bounds from measured rates (README regime table, full size): AI 37.4-37.8 Hz,
    SR 332 Hz; 16 B per spike in the rank files and 16 B in spikes.h5."""
    from hpc_brunel.simulation.run import estimated_output_bytes, needed_disk_bytes

    ai = estimated_output_bytes(RunConfig())
    sr = estimated_output_bytes(apply_regime(RunConfig(), "sr"))
    spikes_1s = {"ai": 12500 * 37.8, "sr": 12500 * 332.0}
    assert ai >= spikes_1s["ai"] * 32 and sr >= spikes_1s["sr"] * 32  # never too little
    assert ai < 3 * spikes_1s["ai"] * 32 + (1 << 20)  # not the old fixed 200 Hz for an AI run
    assert sr > 5 * ai
    rec = estimated_output_bytes(resolve(overrides=[{"recording": {"n_record_per_population": 100}}]))
    assert rec - (1 << 20) < (ai - (1 << 20)) / 50  # only recorded neurons write spikes (+ 1 MiB metadata)
    # the mean field (scipy) is consulted only when the cheap bound (1/t_ref) does not fit on the disk
    bound = estimated_output_bytes(RunConfig(), upper_bound=True)
    assert bound >= sr and needed_disk_bytes(RunConfig(), bound) == bound
    assert needed_disk_bytes(RunConfig(), bound - 1) == ai


@pytest.mark.parametrize("overrides, name", [
    ({"neuron": {"e_l_mv": -70.0, "v_threshold_mv": -75.0, "v_reset_mv": -80.0, "v_init_mv": -70.0}},
     "neuron.v_threshold_mv"),
    ({"neuron": {"v_init_distribution": "gaussian"}}, "neuron.v_init_distribution"),
    ({"network": {"n_excitatory": 1000, "indegree_excitatory": 1000, "allow_autapses": False,
                  "allow_multapses": False}}, "network.indegree_excitatory"),
    ({"network": {"n_inhibitory": 250, "indegree_inhibitory": 251, "allow_multapses": False}},
     "network.indegree_inhibitory"),
    ({"network": {"n_inhibitory": 1, "indegree_inhibitory": 1, "allow_autapses": False}}, "network.n_inhibitory"),
])
def test_validation_catches_what_nest_would_raise(overrides, name):
    from hpc_brunel.config import ConfigError

    with pytest.raises(ConfigError, match=name.replace(".", r"\.")) as e:
        resolve(overrides=[overrides])
    assert "\n" not in str(e.value) and "allowed" in str(e.value)


def test_validation_keeps_what_nest_accepts():
    resolve(overrides=[{"network": {"n_excitatory": 1000, "indegree_excitatory": 999, "allow_autapses": False,
                                    "allow_multapses": False}}])
    resolve(overrides=[{"network": {"n_excitatory": 1000, "indegree_excitatory": 1000, "allow_autapses": False}}])
    resolve(overrides=[{"network": {"eta": 0.0}}])
    json.dumps(RunConfig().to_dict())


def test_lock_of_a_run_we_may_not_write(tmp_path, monkeypatch):
    """Another user's run, or a read-only mount: is_held still answers (read-only open,
    shared lock) and prepare refuses with one line instead of a traceback."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rundir.write_run_json(run_dir, {"layout_version": rundir.RUN_LAYOUT_VERSION, "status": "running"})
    (run_dir / LOCK_FILE).write_text("host=x pid=1 since=x\n")
    real_open = os.open

    def no_write_open(path, flags, *a):
        if str(path).endswith(LOCK_FILE) and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *a)

    monkeypatch.setattr(os, "open", no_write_open)
    assert RunLock.is_held(run_dir) is False  # nobody holds it: the run was killed
    with pytest.raises(RunDirError, match="cannot open run.lock for writing"):
        rundir.prepare(run_dir, overwrite=True)
