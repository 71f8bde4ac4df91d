"""The one rank-file reader (hpc_brunel.analysis.rankfiles) on synthetic rank files:
chunk offsets, the model time every rank flushed, the partial-run rule, and
first node ids, against what the synthetic writer put there."""
import numpy as np
import pytest

from hpc_brunel.analysis import rankfiles
from hpc_brunel.errors import IncompleteRunError
from hpc_brunel.simulation import rundir, synthetic
from hpc_brunel.simulation.recording import RankSpikeWriter, rank_file_name


def test_spike_source_offsets_and_times(tmp_path):
    truth = synthetic.write_run(tmp_path, n_ranks=2, n_excitatory=40, n_inhibitory=10, n_chunks=4, rate_hz=20.0)
    first = rankfiles.first_node_ids(40)
    assert first == {"excitatory": 1, "inhibitory": 41}
    got = {p: ([], []) for p in truth}
    for path in rankfiles.rank_paths(tmp_path, 2):
        with rankfiles.SpikeSource(path) as src:
            assert list(src.t_end_ms) == [100.0, 200.0, 300.0, 400.0] and src.t_flushed_ms == 400.0
            assert src.chunks_until(250.0) == 2 and src.chunks_until(200.0) == 2 and src.chunks_until(50.0) == 0
            for p in truth:
                end = src.end_offset(p, 200.0)
                t = src.times_ms(p)[:]
                assert end == int(np.sum(t <= 200.0))  # chunk k holds (100 k, 100 (k + 1)] ms
                assert src.end_offset(p, 50.0) == 0
                got[p][0].append(src.node_ids(p)[:] - first[p])
                got[p][1].append(t)
    for p, (ids, t) in truth.items():
        a = np.lexsort((ids, t))
        b_ids, b_t = np.concatenate(got[p][0]), np.concatenate(got[p][1])
        b = np.lexsort((b_ids, b_t))
        assert np.array_equal(ids[a], b_ids[b]) and np.array_equal(t[a], b_t[b])


@pytest.mark.parametrize("status, reached, t_until, partial", [
    ("complete", 400.0, 400.0, False),
    ("terminated", 300.0, 300.0, False),  # stopped at a chunk boundary every rank closed
    ("complete", 400.0, 300.0, True),  # less on disk than the run reached
    ("running", 400.0, 400.0, True),
    ("failed", 400.0, 400.0, True),
    ("complete", None, 400.0, True),
])
def test_partial_run_rule(status, reached, t_until, partial):
    assert rankfiles.is_partial({"status": status, "t_model_reached_ms": reached}, t_until) is partial


def test_check_complete_names_an_unfinished_rank_and_offers_partial(tmp_path):
    synthetic.write_run(tmp_path, n_ranks=2, n_excitatory=40, n_inhibitory=10, n_chunks=3)
    record = rundir.read_run_json(tmp_path)
    # rank 1 rewritten: two chunks flushed, never finished (a killed rank)
    w = RankSpikeWriter(tmp_path / rank_file_name(1), populations=("excitatory", "inhibitory"), rank=1,
                        num_ranks=2, threads_per_rank=1, run_id=record["run_id"], t_start_ms=0.0)
    for k in (1, 2):
        w.append_chunk(100.0 * k, {"excitatory": (np.array([2]), np.array([100.0 * k - 1])),
                                   "inhibitory": (np.array([], dtype=np.int64), np.array([]))})
    w.close()
    rundir.update_run_json(tmp_path, status="running")
    states = rankfiles.inspect_ranks(tmp_path, record)
    assert [(s.finished, s.t_flushed_ms) for s in states] == [(True, 300.0), (False, 200.0)]
    with pytest.raises(IncompleteRunError, match=r"rank\(s\) \[1\] did not finish.*up to 200\.0 ms"):
        rankfiles.check_complete(tmp_path)
    _, _, t_until = rankfiles.check_complete(tmp_path, partial=True)
    assert t_until == 200.0
