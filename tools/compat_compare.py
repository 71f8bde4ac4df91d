"""One row of the NEST-release compatibility table (tools/test-compat.sh, `make test-compat`).

Compares a full-size run on a NEST release with the same run (same seed, same 2 x 1) on our
own NEST build: mean rate, CV(ISI) and chi_inf (1-ms bins) per population in 100-ms blocks
after the transient, the difference in standard errors of the block means. Identical spikes
are not expected (NEST's connection algorithms may change between releases); statistics
within about 2 SE are. Writes the row into a JSON file (one row per release x MPI x launcher)
and renders the Markdown table from it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from pathlib import Path

import hpc_brunel
from hpc_brunel.analysis import seams

BLOCK_MS = 100.0


def block_stats(run_dir: Path, t_transient_ms: float) -> tuple[dict, dict]:
    run = hpc_brunel.load_run(run_dir)
    out = {}
    for pop, s in run.spikes.items():
        n_blocks = int((run.t_stop_ms - t_transient_ms) // BLOCK_MS)
        stop = t_transient_ms + n_blocks * BLOCK_MS
        out[pop] = seams.block_statistics(s.node_ids, s.times_ms, s.n_neurons, t_transient_ms, stop, n_blocks)
    return out, run.provenance


def identical_spikes(a: Path, b: Path) -> bool:
    """Whether two runs hold the same spikes (every node id and time)."""
    import numpy as np

    ra, rb = hpc_brunel.load_run(a), hpc_brunel.load_run(b)
    return all(np.array_equal(np.sort(ra.spikes[p].node_ids * 10**9 + np.rint(ra.spikes[p].times_ms * 1000)),
                              np.sort(rb.spikes[p].node_ids * 10**9 + np.rint(rb.spikes[p].times_ms * 1000)))
               for p in ra.spikes)


def pytest_summary(log: str) -> str:
    lines = [ln for ln in log.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    if not lines:
        return "no tests ran"
    return re.sub(r", \d+ warnings?", "", re.sub(r"[= ]{2,}", " ", lines[-1])).strip(" =")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for a in ("--release", "--mpi", "--status", "--reference", "--run", "--log", "--prefix", "--table", "--json"):
        ap.add_argument(a, required=True)
    ap.add_argument("--build-s", type=float, default=0.0)
    ap.add_argument("--total-s", type=float, default=0.0)
    args = ap.parse_args()

    log = Path(args.log).read_text(errors="replace") if Path(args.log).exists() else ""
    row = {"release": args.release, "mpi": args.mpi, "status": args.status, "date": dt.date.today().isoformat(),
           "pytest": pytest_summary(log), "build_s": args.build_s, "total_s": args.total_s,
           "install": "CMake + make install, NEST defaults (no patch, no detailed timers)", "prefix": args.prefix}
    run_dir = Path(args.run)
    if (run_dir / "analysis.json").exists():
        t_tr = json.loads((run_dir / "analysis.json").read_text())["window_ms"][0]
        mine, prov = block_stats(run_dir, t_tr)
        ref, ref_prov = block_stats(Path(args.reference), t_tr)
        rec = json.loads((run_dir / "run.json").read_text())
        ref_rec = json.loads((Path(args.reference) / "run.json").read_text())
        row.update(nest=prov["versions"].get("nest"), mpi_library=prov["versions"].get("mpi_library"),
                   launcher=rec.get("launcher", {}).get("flavour") if isinstance(rec.get("launcher"), dict) else None,
                   limitations=rec.get("nest_limitations", []), wall_s=rec.get("wall_time_s"),
                   time_simulate_s=(rec.get("nest_timers_max_s") or {}).get("time_simulate"),
                   reference_nest=ref_prov["versions"].get("nest"), comparison={},
                   reference_time_simulate_s=(ref_rec.get("nest_timers_max_s") or {}).get("time_simulate"),
                   identical_spikes=identical_spikes(run_dir, Path(args.reference)))
        for pop in mine:
            for stat in ("rate_hz", "cv_isi", "chi_inf"):
                diff, se, _ = seams.within_standard_errors(mine[pop][stat], ref[pop][stat])
                row["comparison"][f"{pop} {stat}"] = {"release": float(mine[pop][stat].mean()),
                                                      "reference": float(ref[pop][stat].mean()),
                                                      "se": se, "z": diff / se if se > 0 else 0.0}
        worst = max(abs(c["z"]) for c in row["comparison"].values())
        row["max_abs_z"] = worst
        if worst > 3.0 and row["status"] == "ok":
            row["status"] = "statistics differ"
    else:
        row["status"] = "failed" if args.status == "ok" else args.status

    table = Path(args.json)
    rows = json.loads(table.read_text()) if table.exists() else []
    rows = [r for r in rows if (r["release"], r["mpi"]) != (row["release"], row["mpi"])] + [row]
    rows.sort(key=lambda r: (r["release"], r["mpi"]))
    table.write_text(json.dumps(rows, indent=1) + "\n")

    lines = ["| NEST | MPI | launcher | installed as | MPI tests (pytest -m 'mpi and not slow') | "
             "full size 1 s, 2 ranks, vs our 3.10 (z: rate, CV, chi_inf of E and I in 100-ms blocks) | "
             "NEST simulate | result | date |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cmp_ = r.get("comparison") or {}
        ce = cmp_.get("excitatory rate_hz")
        same = "identical spikes; " if r.get("identical_spikes") else ""
        vs = (f"{same}E rate {ce['release']:.2f} vs {ce['reference']:.2f} Hz; max abs z {r['max_abs_z']:.1f}"
              if ce else "not run")
        sim = (f"{r['time_simulate_s']:.1f} s (ours {r['reference_time_simulate_s']:.1f} s)"
               if r.get("time_simulate_s") and r.get("reference_time_simulate_s") else "-")
        mpi = (r.get("mpi_library") or r["mpi"]).split(",")[0]
        lines.append(f"| {r.get('nest') or r['release']} | {mpi} | mpirun (2 ranks) | "
                     f"CMake, defaults, build {r['build_s'] / 60:.0f} min | {r['pytest']} | {vs} | {sim} | "
                     f"{r['status']} | {r['date']} |")
    lines.append("\nNEST simulate: time_simulate of that one run (max over ranks); neither repeated nor alternated "
                 "with the reference, and the machine may have been busy: not a speed comparison (BENCHMARKS.md).")
    Path(args.table).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if row["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
