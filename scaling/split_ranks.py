#!/usr/bin/env python3
"""Rewrite a 1-rank run directory as an R-rank one with the same spikes (neurons
dealt round-robin to ranks, as NEST does), to benchmark gather's merge on a long
run without simulating it again:  scaling/split_ranks.py RUN_1RANK OUT_DIR --ranks 2"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hpc_brunel.analysis.rankfiles import open_rank_file, read_meta  # noqa: E402
from hpc_brunel.simulation import rundir  # noqa: E402
from hpc_brunel.simulation.recording import RankSpikeWriter, rank_file_name  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--ranks", type=int, default=2)
    args = ap.parse_args(argv)
    rec = rundir.read_run_json(args.src)
    assert rec["decomposition"]["ranks"] == 1, "source must be a 1-rank run"
    args.out.mkdir(parents=True, exist_ok=True)
    rec["decomposition"] = {**rec["decomposition"], "ranks": args.ranks,
                            "virtual_processes": args.ranks * rec["decomposition"]["threads_per_rank"]}
    rec["ranks"] = [rec["ranks"][0]] * args.ranks
    rundir.write_run_json(args.out, rec)
    shutil.copy(args.src / "config.toml", args.out / "config.toml")
    with open_rank_file(args.src / rank_file_name(0)) as f:
        pops = json.loads(f.attrs["populations"])
        meta = read_meta(f)
        t_end = f["chunks/t_end_ms"][:]
        off = f["chunks/offsets"][:]
        ws = [RankSpikeWriter(args.out / rank_file_name(r), populations=pops, rank=r, num_ranks=args.ranks,
                              threads_per_rank=int(f.attrs["threads_per_rank"]), run_id=rec["run_id"],
                              t_start_ms=float(f.attrs["t_start_ms"])) for r in range(args.ranks)]
        for k in range(len(t_end)):
            parts = [dict() for _ in ws]
            for j, p in enumerate(pops):
                a = int(off[k - 1, j]) if k else 0
                b = int(off[k, j])
                ids = f[f"spikes/{p}/node_ids"][a:b]
                t = f[f"spikes/{p}/times_ms"][a:b]
                for r in range(args.ranks):
                    m = ids % args.ranks == (r + 1) % args.ranks  # node ids start at 1
                    parts[r][p] = (ids[m], t[m])
            for w, part in zip(ws, parts):
                w.append_chunk(float(t_end[k]), part)
        for w in ws:
            w.close(meta=meta)
    print(f"wrote {args.ranks} rank files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
