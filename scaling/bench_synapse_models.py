#!/usr/bin/env python3
"""The network's synapse model, measured: `hpc_brunel run --no-analyze` with each of
NEST's four static synapses for the network's connections (static_synapse,
static_synapse_hpc, static_synapse_hom_w, static_synapse_hom_w_hpc), at 1x2 and 2x1,
at 12,500 and 50,000 neurons (fixed in-degrees), and the hand-written script
(scaling/seed_script.py, static_synapse, 50 + 50 neurons recorded) on the same NEST
build at 12,500. One alternating series: every repetition runs every variant once, in
an order that rotates from one repetition to the next.

Per run: NEST's own time_simulate and time_deliver_spike_data (summed over the
Simulate calls; max over ranks), the wall time of the simulate phase, NEST's connect
time, and the peak memory (VmHWM) summed over ranks. The spikes of the package's runs
are hashed (every (node id, time) of every rank file): the variants of one size and
one number of virtual processes must give the same hash. A benchmark that prints
numbers, not a test.

    make bench-synapse     # = scaling/bench_synapse_models.py (about 35 min on 2 cores)
    scaling/bench_synapse_models.py --sizes 12500 --reps 12500:3 --decompositions 2x1

Every repetition goes to <out>/runs.csv as it is measured (an interrupted series keeps
what it measured); the table of medians and ranges to <out>/synapse_models.md.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpc_brunel.analysis.rankfiles import SpikeSource, rank_paths  # noqa: E402
from hpc_brunel.config import SYNAPSE_MODELS  # noqa: E402
from hpc_brunel.simulation import provenance  # noqa: E402
from seed_runner import run_seed_script  # noqa: E402

SCRIPT = "script (static_synapse)"
COLUMNS = ("rep", "neurons", "decomposition", "variant", "t_sim_ms", "time_simulate_s", "time_deliver_spike_data_s",
           "time_communicate_prepare_s", "time_connect_s", "simulate_phase_wall_s", "peak_rss_total_mib",
           "spikes", "spike_hash", "when")


def spike_hash(run_dir: Path, n_ranks: int) -> tuple[str, int]:
    """sha256 over every population's spikes sorted by (time, node id), and their number."""
    h, n = hashlib.sha256(), 0
    sources = [SpikeSource(p) for p in rank_paths(run_dir, n_ranks)]
    try:
        for pop in sources[0].populations:
            ids = np.concatenate([s.node_ids(pop)[:] for s in sources]).astype(np.int64)
            t = np.concatenate([s.times_ms(pop)[:] for s in sources])
            order = np.lexsort((ids, t))
            h.update(ids[order].tobytes())
            h.update(t[order].tobytes())
            n += len(ids)
    finally:
        for s in sources:
            s.close()
    return h.hexdigest()[:16], n


def run_package(neurons: int, ranks: int, threads: int, model: str, t_sim_ms: float, run_dir: Path) -> dict:
    ne = int(round(0.8 * neurons))
    cmd = [sys.executable, "-m", "hpc_brunel", "launch", "-n", str(ranks), "--threads", str(threads), "--", "run",
           "--no-analyze", "--set", f"network.synapse_model={model}", "--set", f"network.n_excitatory={ne}",
           "--set", f"network.n_inhibitory={neurons - ne}", "--t-sim-ms", str(t_sim_ms), "--run-dir", str(run_dir),
           "--overwrite"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    rec = json.loads((run_dir / "run.json").read_text())
    timers = rec["nest_timers_max_s"]
    digest, n = spike_hash(run_dir, ranks)
    return {
        "time_simulate_s": timers["time_simulate"],
        "time_deliver_spike_data_s": timers.get("time_deliver_spike_data", float("nan")),
        "time_communicate_prepare_s": timers.get("time_communicate_prepare", float("nan")),
        "time_connect_s": timers.get("time_construction_connect", float("nan")),
        "simulate_phase_wall_s": max(r["python_phases_s"]["simulate"] for r in rec["ranks"]),
        "peak_rss_total_mib": sum(r["memory_kib"]["VmHWM"] for r in rec["ranks"]) / 1024,
        "spikes": n, "spike_hash": digest,
    }


def run_script(ranks: int, threads: int, t_sim_ms: float) -> dict:
    rows = run_seed_script(ranks, threads, t_sim_ms)
    return {
        "time_simulate_s": max(r["nest_time_simulate_s"] for r in rows),
        "time_deliver_spike_data_s": max(r["nest_time_deliver_spike_data_s"] for r in rows),
        "time_communicate_prepare_s": max(r["nest_time_communicate_prepare_s"] for r in rows),
        "time_connect_s": max(r["nest_time_connect_s"] for r in rows),
        "simulate_phase_wall_s": max(r["simulate_s"] for r in rows),
        "peak_rss_total_mib": sum(r["vm_hwm_mib"] for r in rows),
        "spikes": sum(r["n_events_e"] + r["n_events_i"] for r in rows), "spike_hash": "(50+50 recorded)",
    }


def parse_per_size(text: str, sizes: list[int], cast) -> dict[int, object]:
    """'12500:5,50000:3' -> {12500: 5, 50000: 3}; a bare value applies to every size."""
    if ":" not in text:
        return dict.fromkeys(sizes, cast(text))
    out = {int(k): cast(v) for k, v in (part.split(":") for part in text.split(","))}
    missing = [n for n in sizes if n not in out]
    if missing:
        raise SystemExit(f"no value for size(s) {missing} in {text!r}")
    return out


def fmt(values: list[float], digits: int = 2) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def table(rows: list[dict], header: str) -> str:
    """Medians [ranges] per size, decomposition and variant; the last two columns divide the
    medians of time_simulate and of memory by those of the script (same size and decomposition)."""
    lines = [header, "",
             "| neurons | ranks × threads | variant | n | NEST time_simulate s | NEST time_deliver_spike_data s | "
             "simulate phase wall s | NEST connect s | peak memory, sum over ranks MiB | spikes | spike hash | "
             "time_simulate ÷ script | memory ÷ script |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["neurons"], r["decomposition"], r["variant"]) for r in rows},
                  key=lambda k: (k[0], k[1], (SCRIPT, *SYNAPSE_MODELS).index(k[2])))

    def select(n, d, v):
        return [r for r in rows if (r["neurons"], r["decomposition"], r["variant"]) == (n, d, v)]

    for n, d, v in keys:
        sel = select(n, d, v)
        col = lambda k, sel=sel: [float(r[k]) for r in sel]  # noqa: E731
        hashes = sorted({r["spike_hash"] for r in sel})
        script = select(n, d, SCRIPT)
        if script:
            med = lambda k, xs: statistics.median(float(r[k]) for r in xs)  # noqa: E731
            ratios = (f"{med('time_simulate_s', sel) / med('time_simulate_s', script):.3f} | "
                      f"{med('peak_rss_total_mib', sel) / med('peak_rss_total_mib', script):.3f}")
        else:
            ratios = "– | –"
        lines.append(f"| {n:,} | {d.replace('x', ' × ')} | {v} | {len(sel)} | {fmt(col('time_simulate_s'))} | "
                     f"{fmt(col('time_deliver_spike_data_s'))} | {fmt(col('simulate_phase_wall_s'))} | "
                     f"{fmt(col('time_connect_s'))} | {fmt(col('peak_rss_total_mib'), 0)} | "
                     f"{int(sel[0]['spikes']):,} | {', '.join(hashes)} | {ratios} |")
    return "\n".join(lines)


def identical_spikes(rows: list[dict]) -> list[str]:
    """One line per size: whether every package run of that size (every model, every
    2-VP decomposition, every repetition) gave the same spike hash."""
    out = []
    for n in sorted({r["neurons"] for r in rows}):
        hashes = {r["spike_hash"] for r in rows if r["neurons"] == n and r["variant"] != SCRIPT}
        runs = sum(1 for r in rows if r["neurons"] == n and r["variant"] != SCRIPT)
        out.append(f"{n:,} neurons: {runs} package runs, " + (
            f"identical spikes (hash {hashes.pop()})" if len(hashes) == 1 else f"DIFFERENT spikes: {sorted(hashes)}"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12500,50000", help="neuron counts (in-degrees fixed)")
    ap.add_argument("--decompositions", default="1x2,2x1", help="RANKSxTHREADS, comma-separated")
    ap.add_argument("--models", default=",".join(SYNAPSE_MODELS))
    ap.add_argument("--reps", default="12500:5,50000:3", help="repetitions per size, e.g. 12500:5,50000:3")
    ap.add_argument("--t-sim-ms", default="12500:1000,50000:300", help="model time per size [ms]")
    ap.add_argument("--script-sizes", default="12500", help="sizes at which the hand-written script runs too")
    ap.add_argument("--out", type=Path, default=ROOT / "scaling" / "results" / "synapse_models")
    ap.add_argument("--table-only", action="store_true", help="only remake the table from <out>/runs.csv")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    reps = parse_per_size(args.reps, sizes, int)
    t_sim = parse_per_size(args.t_sim_ms, sizes, float)
    decomps = args.decompositions.split(",")
    models = args.models.split(",")
    script_sizes = {int(x) for x in args.script_sizes.split(",") if x}
    args.out.mkdir(parents=True, exist_ok=True)
    runs_csv = args.out / "runs.csv"
    m = provenance.machine()
    if not args.table_only:
        with open(runs_csv, "w", newline="") as f:
            csv.DictWriter(f, fieldnames=COLUMNS).writeheader()
        tmp = Path(tempfile.mkdtemp(prefix="bench-synapse-"))
        for n in sizes:
            variants = ([SCRIPT] if n in script_sizes else []) + models
            for rep in range(reps[n]):
                for d in decomps:
                    ranks, threads = (int(x) for x in d.split("x"))
                    k = rep % len(variants)
                    for v in variants[k:] + variants[:k]:  # the order rotates from one repetition to the next
                        if v == SCRIPT:
                            res = run_script(ranks, threads, t_sim[n])
                        else:
                            res = run_package(n, ranks, threads, v, t_sim[n], tmp / "run")
                        row = {"rep": rep, "neurons": n, "decomposition": d, "variant": v, "t_sim_ms": t_sim[n],
                               **{k2: (round(x, 4) if isinstance(x, float) else x) for k2, x in res.items()},
                               "when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
                        with open(runs_csv, "a", newline="") as f:
                            csv.DictWriter(f, fieldnames=COLUMNS).writerow(row)
                        print(json.dumps(row), flush=True)
    with open(runs_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["neurons"] = int(r["neurons"])
    when = sorted(r["when"] for r in rows)
    header = (f"Machine: {m['cpu_model']}, {m['cpus_online']} CPUs; {when[0]} – {when[-1]}; model time per size: "
              + ", ".join(f"{n:,}: {t_sim[n]:g} ms" for n in sizes)
              + "; medians [min–max] over alternating repetitions; times are the max over ranks, memory the sum")
    text = table(rows, header) + "\n\n" + "\n".join(identical_spikes(rows)) + "\n"
    (args.out / "synapse_models.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
