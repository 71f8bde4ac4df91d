"""Gather on synthetic rank files (no NEST, no MPI): round trip, SONATA layout,
refusal on incomplete runs, partial mode, concurrent reading."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpc_brunel.analysis import gather
from hpc_brunel.config import RunConfig
from hpc_brunel.errors import IncompleteRunError
from hpc_brunel.simulation import rundir
from hpc_brunel.simulation.recording import RankSpikeWriter, rank_file_name

N_E, N_I = 40, 10


def make_run(tmp_path, n_ranks=3, n_chunks=4, chunk_ms=50.0, finish=True, status="complete", seed=0):
    """A run directory whose rank files hold random spikes; returns all spikes per population."""
    rng = np.random.default_rng(seed)
    cfg = RunConfig()
    d = cfg.to_dict()
    d["network"].update(n_excitatory=N_E, n_inhibitory=N_I)
    run_id = "test-run"
    rundir.write_run_json(tmp_path, {
        "layout_version": rundir.RUN_LAYOUT_VERSION, "run_id": run_id, "status": status,
        "decomposition": {"ranks": n_ranks, "threads_per_rank": 1, "virtual_processes": n_ranks},
        "config": d, "t_model_reached_ms": n_chunks * chunk_ms if status == "complete" else None,
    })
    first = {"excitatory": 1, "inhibitory": 1 + N_E}
    size = {"excitatory": N_E, "inhibitory": N_I}
    truth = {p: [] for p in first}
    writers = []
    for r in range(n_ranks):
        w = RankSpikeWriter(tmp_path / rank_file_name(r), populations=("excitatory", "inhibitory"), rank=r,
                            num_ranks=n_ranks, threads_per_rank=1, run_id=run_id, t_start_ms=0.0)
        writers.append(w)
    for k in range(n_chunks):
        for r, w in enumerate(writers):
            chunk = {}
            for p in first:
                own = np.arange(size[p])[np.arange(size[p]) % n_ranks == r] + first[p]  # round-robin like NEST
                n = rng.integers(0, 60)
                ids = rng.choice(own, size=n)
                t = np.round(rng.uniform(k * chunk_ms, (k + 1) * chunk_ms, size=n), 1)
                chunk[p] = (ids, t)
                truth[p].append((ids - first[p], t))
            w.append_chunk((k + 1) * chunk_ms, chunk)
    for w in writers:
        w.close(meta={"status": "complete"} if finish else None)
    return {p: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v])) for p, v in truth.items()}


def as_pairs(ids, t):
    return sorted(zip(ids.tolist(), t.tolist()))


def test_round_trip_every_spike_once_sorted_by_time(tmp_path):
    truth = make_run(tmp_path)
    summary = gather.gather(tmp_path)
    assert not summary["partial"]
    out = gather.read_sonata(tmp_path / gather.SPIKES_FILE)
    for p, (ids, t) in truth.items():
        got_ids, got_t, attrs = out[p]
        assert as_pairs(got_ids, got_t) == as_pairs(ids, t)
        assert np.all(np.diff(got_t) >= 0)
        assert summary["spikes"][p] == len(ids)


def test_sonata_layout(tmp_path):
    make_run(tmp_path)
    gather.gather(tmp_path)
    with h5py.File(tmp_path / gather.SPIKES_FILE) as f:
        for p, n in (("excitatory", N_E), ("inhibitory", N_I)):
            g = f[f"spikes/{p}"]
            assert g["timestamps"].dtype == np.float64 and g["timestamps"].attrs["units"] == "ms"
            assert g["node_ids"].dtype == np.uint64
            assert h5py.check_enum_dtype(g.attrs.get_id("sorting").dtype) == {"none": 0, "by_id": 1, "by_time": 2}
            assert g.attrs["sorting"] == 2
            assert g["node_ids"][:].max() < n
        assert f["spikes/inhibitory"].attrs["nest_first_node_id"] == 1 + N_E


def test_missing_rank_is_refused_and_named(tmp_path):
    make_run(tmp_path, n_ranks=3)
    (tmp_path / rank_file_name(1)).unlink()
    with pytest.raises(IncompleteRunError, match=r"missing for rank\(s\) \[1\]"):
        gather.gather(tmp_path)
    assert not (tmp_path / gather.SPIKES_FILE).exists()


def test_unfinished_run_refused_then_partial(tmp_path):
    truth = make_run(tmp_path, n_ranks=2, n_chunks=4, finish=False, status="running")
    # rank 1 lost its last two chunks: pretend it flushed only 2 chunks
    with h5py.File(tmp_path / rank_file_name(1), "r+", libver="latest") as f:
        f["chunks/t_end_ms"].resize((2,))
        f["chunks/offsets"].resize((2, 2))
    with pytest.raises(IncompleteRunError, match=r"did not finish.*up to 100\.0 ms.*--partial"):
        gather.gather(tmp_path)
    s = gather.gather(tmp_path, partial=True)
    assert s["t_stop_ms"] == 100.0 and s["partial"]
    out = gather.read_sonata(tmp_path / gather.SPIKES_FILE)
    for p, (ids, t) in truth.items():
        keep = t < 100.0
        assert as_pairs(*out[p][:2]) == as_pairs(ids[keep], t[keep])


def test_not_a_run_directory(tmp_path):
    with pytest.raises(IncompleteRunError, match="not an hpc_brunel run directory"):
        gather.gather(tmp_path)


def test_other_layout_version_refused(tmp_path):
    make_run(tmp_path)
    rec = json.loads((tmp_path / "run.json").read_text())
    rec["layout_version"] = 99
    (tmp_path / "run.json").write_text(json.dumps(rec))
    with pytest.raises(IncompleteRunError, match="layout_version 99"):
        gather.gather(tmp_path)


def test_rank_file_readable_by_another_process_while_open(tmp_path):
    w = RankSpikeWriter(tmp_path / "rank_00000.h5", populations=("excitatory", "inhibitory"), rank=0,
                        num_ranks=1, threads_per_rank=1, run_id="x", t_start_ms=0.0)
    w.append_chunk(10.0, {"excitatory": (np.array([1, 2]), np.array([1.0, 2.0])),
                          "inhibitory": (np.array([5]), np.array([3.0]))})
    code = ("import sys; from hpc_brunel.analysis.rankfiles import open_rank_file\n"
            "f = open_rank_file(sys.argv[1]); print(f['chunks/t_end_ms'][-1], len(f['spikes/excitatory/times_ms']))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "rank_00000.h5")], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["10.0", "2"]
    w.close()
