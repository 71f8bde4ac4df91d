#!/usr/bin/env python3
"""Memory per phase, side by side on the SAME NEST build: the hand-written
script (scaling/seed_script.py: static_synapse, 50 + 50 neurons recorded to
memory) against `hpc_brunel run --no-analyze` (all 12,500 neurons recorded to
per-rank HDF5), full network, 1 s, at 1x2 and 2x1, alternating. VmRSS after
create, after connect, after the first 100 ms, and the peak (VmHWM), summed
over ranks. A benchmark that prints numbers, not a test.

    make bench-memory          # or: .venv/bin/python scaling/bench_memory_phases.py --reps 2
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.simulation import provenance  # noqa: E402
from seed_runner import run_seed_script  # noqa: E402

PHASES = ("after create", "after connect", "after first 100 ms", "peak (VmHWM)")


def script(ranks: int, threads: int) -> dict:
    rows = run_seed_script(ranks, threads)
    keys = ("rss_after_create_mib", "rss_after_connect_mib", "rss_after_first_chunk_mib", "vm_hwm_mib")
    return {ph: sum(r[k] for r in rows) for ph, k in zip(PHASES, keys)}


def package(ranks: int, threads: int, run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "hpc_brunel", "launch", "-n", str(ranks), "--threads", str(threads), "--", "run",
           "--no-analyze", "--run-dir", str(run_dir), "--overwrite"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    rec = json.loads((run_dir / "run.json").read_text())
    ph = [r["memory_phases_kib"] for r in rec["ranks"]]
    hwm = [r["memory_kib"]["VmHWM"] for r in rec["ranks"]]
    keys = ("create", "network", "first_chunk")
    out = {p: sum(x[k] for x in ph) / 1024 for p, k in zip(PHASES, keys)}
    out[PHASES[3]] = sum(hwm) / 1024
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--decompositions", default="1x2,2x1")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    res: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.reps):
        for d in args.decompositions.split(","):
            r, t = (int(x) for x in d.split("x"))
            res.setdefault(("script", d), []).append(script(r, t))
            res.setdefault(("hpc_brunel", d), []).append(package(r, t, tmp / f"run-{d}"))
            print(json.dumps({d: {k[0]: v[-1] for k, v in res.items() if k[1] == d}}), flush=True)
    m = provenance.machine()
    lines = [f"{m['cpu_model']} ({m['cpus_online']} CPUs), {dt.date.today().isoformat()}, full network, 1 s, "
             f"MiB summed over ranks, median of {args.reps}", "",
             "| decomposition | phase | hand-written script | hpc_brunel run | ratio |", "|---|---|---|---|---|"]
    for d in args.decompositions.split(","):
        for ph in PHASES:
            a = statistics.median(x[ph] for x in res[("script", d)])
            b = statistics.median(x[ph] for x in res[("hpc_brunel", d)])
            lines.append(f"| {d} | {ph} | {a:,.0f} | {b:,.0f} | {b / a:.3f} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
