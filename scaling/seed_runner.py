"""Run scaling/seed_script.py (the hand-written NEST script) and collect its per-rank JSON
lines: shared by the benchmarks that compare hpc_brunel with it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hpc_brunel.simulation.parallel import mpirun_argv  # noqa: E402


def run_seed_script(ranks: int, threads: int, t_sim_ms: float = 1000.0, python: str = sys.executable) -> list[dict]:
    """seed_script.py on ranks x threads (under mpirun when ranks > 1) with `python`;
    one dict per rank (its JSON line)."""
    cmd = [str(python), str(ROOT / "scaling" / "seed_script.py"), "--threads", str(threads),
           "--t-sim-ms", str(t_sim_ms)]
    env = {**os.environ, "PYNEST_QUIET": "1"}
    if ranks > 1:
        cmd, extra = mpirun_argv(ranks, threads, cmd)
        env.update(extra)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    rows, dec, i = [], json.JSONDecoder(), out.find("{")
    while i >= 0:  # one JSON object per rank; mpirun may put two on one line
        obj, end = dec.raw_decode(out, i)
        rows.append(obj)
        i = out.find("{", end)
    if len(rows) != ranks:
        raise RuntimeError(f"seed_script.py on {ranks} rank(s) printed {len(rows)} result(s):\n{out}")
    return rows
