"""Gather for many ranks (no NEST, no MPI): bounded open files, batched merge
(a merge tree through temporary files) identical to the one-level merge, SONATA
attributes on the file root, the (time, id) order with and without grid times."""
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from hpc_brunel.analysis import gather
from hpc_brunel.simulation import recording, synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def expected(truth):
    """population -> (ids, times) sorted by time, then id."""
    out = {}
    for p, (ids, t) in truth.items():
        o = np.lexsort((ids, t))
        out[p] = (ids[o], t[o])
    return out


def read_all(path):
    with h5py.File(path) as f:
        return {p: (g["node_ids"][:].astype(np.int64), g["timestamps"][:]) for p, g in f["spikes"].items()}


def assert_exact(got, exp):
    for p in exp:
        np.testing.assert_array_equal(got[p][1], exp[p][1])
        np.testing.assert_array_equal(got[p][0], exp[p][0])


def test_sonata_magic_and_version_on_the_file_root(tmp_path):
    synthetic.write_run(tmp_path, n_ranks=2, n_excitatory=40, n_inhibitory=10, n_chunks=2)
    gather.gather(tmp_path)
    with h5py.File(tmp_path / gather.SPIKES_FILE) as f:
        for obj in (f, f["spikes"]):
            assert obj.attrs["magic"] == 0x0A7A and obj.attrs["magic"].dtype == np.uint32
            assert list(obj.attrs["version"]) == [0, 1] and obj.attrs["version"].dtype == np.uint32


@pytest.mark.parametrize("max_open,block", [(2, 50), (3, 10**9), (4, 1), (64, 200)])
def test_batched_merge_is_exactly_sorted_and_complete(tmp_path, max_open, block):
    """9 ranks through batches of 2-4 files (two or three merge levels), blocks of
    one chunk to all chunks: every spike once, sorted by time then id, no
    temporary file left."""
    truth = synthetic.write_run(tmp_path, n_ranks=9, n_excitatory=300, n_inhibitory=75, n_chunks=6,
                                chunk_ms=20.0, rate_hz=40.0)
    s = gather.gather(tmp_path, max_open_files=max_open, block_spikes=block)
    assert s["n_chunks"] == 6 and s["max_open_files"] == max_open
    assert_exact(read_all(tmp_path / gather.SPIKES_FILE), expected(truth))
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(
        ["run.json", gather.SPIKES_FILE] + [f"rank_{r:05d}.h5" for r in range(9)])


def test_max_open_files_from_the_environment(tmp_path, monkeypatch):
    synthetic.write_run(tmp_path, n_ranks=5, n_excitatory=50, n_inhibitory=10, n_chunks=2)
    monkeypatch.setenv(gather.GATHER_MAX_OPEN_ENV, "3")
    assert gather.gather(tmp_path)["max_open_files"] == 3


def test_time_id_order_off_grid_falls_back_to_lexsort():
    rng = np.random.default_rng(1)
    for t in (np.round(rng.uniform(0, 50, 5000), 1),  # on the 0.1 ms grid
              rng.uniform(0, 50, 5000),  # off the grid: several times per step
              np.repeat(np.round(rng.uniform(0, 50, 100), 1), 50)):  # many ties
        ids = rng.integers(1, 200, len(t))
        o, t_o = gather._time_id_order(t, ids, 0.1, 202)
        np.testing.assert_array_equal(t_o, t[o])
        ref = np.lexsort((ids, t))
        np.testing.assert_array_equal(t[o], t[ref])
        np.testing.assert_array_equal(ids[o], ids[ref])


def test_2048_ranks_under_a_low_open_file_limit(tmp_path, monkeypatch):
    """2,048 rank files merged while the process may open at most 256 files
    (an all-at-once merge fails there with 'Too many open files')."""
    monkeypatch.setattr(recording, "_CHUNK_ROWS", 256)  # small HDF5 chunks: 2,048 files of ~20 kB, not 2 MB
    truth = synthetic.write_run(tmp_path, n_ranks=2048, n_excitatory=4096, n_inhibitory=1024, n_chunks=2,
                                chunk_ms=50.0, rate_hz=4.0)
    code = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        from hpc_brunel.analysis import gather
        s = gather.gather(sys.argv[1], max_open_files=64)
        print(s["spikes"]["excitatory"], s["spikes"]["inhibitory"], s["n_chunks"])
    """)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    exp = expected(truth)
    assert proc.stdout.split() == [str(len(exp["excitatory"][0])), str(len(exp["inhibitory"][0])), "2"]
    assert_exact(read_all(tmp_path / gather.SPIKES_FILE), exp)


def test_the_default_batch_follows_the_limit_on_open_files():
    """Under `ulimit -n 64`, 64 rank files cannot all be open beside Python's own (measured
    on 64 real rank files: errno 24 at the 61st); the default batch leaves room."""
    code = textwrap.dedent("""
        import resource
        from hpc_brunel.analysis import gather
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        print(gather._max_open_files(None))
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        print(gather._max_open_files(None), gather._max_open_files(8))
    """)
    env = {k: v for k, v in os.environ.items() if k != gather.GATHER_MAX_OPEN_ENV}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(64 - gather.RESERVED_FILE_DESCRIPTORS), "64", "8"]
