#!/usr/bin/env bash
# `make test-compat`: hpc_brunel on NEST releases we did not build with our set-up, installed
# the way cluster admins install a NEST module (tools/build-nest-release.sh: CMake + make
# install, NEST's default options, no patch of ours, no detailed timers) and used as a module
# is (nest_vars.sh + the module's Python). For each release:
#   1. build it once (cached), 2. `tools/setup-env.sh` takes the module's NEST (no NEST build)
#   into .venv-nest<release>, 3. the MPI test subset, 4. a full-size 1 s run on 2 ranks, its
#   statistics against the same run on our NEST 3.10 (.venv) in standard errors of 100-ms
#   blocks, 5. a row of scaling/results/compat/compat.md (release x MPI x launcher, what ran, date).
#
# Variables: NEST_COMPAT_RELEASES [3.9 3.8], MPI [openmpi], NEST_MODELS (the releases' model set)
# [3.9: full; others: the models hpc_brunel uses], COMPAT_PYTEST_ARGS.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
MPI=${MPI:-openmpi}
# The releases' model sets: NEST's full set for 3.9 (what admins install; 35 min on 2 cores), the
# models hpc_brunel uses for the others (9 min); NEST_MODELS=... for all. Our own build keeps its own.
TRIMMED="iaf_psc_delta;iaf_psc_alpha;iaf_psc_exp;poisson_generator;spike_recorder;spike_generator;multimeter;static_synapse;static_synapse_hom_w;parrot_neuron;dc_generator"
models_for() { if [ -n "${COMPAT_MODELS:-}" ]; then echo "$COMPAT_MODELS"; elif [ "$1" = 3.9 ]; then echo full; else echo "$TRIMMED"; fi; }
COMPAT_MODELS=${NEST_MODELS:-}
unset NEST_MODELS
RELEASES=${NEST_COMPAT_RELEASES:-3.9 3.8}
out=scaling/results/compat
mkdir -p "$out" runs
say() { echo "[compat] $*"; }

# the reference: our own NEST (make setup), same seed, same 2 x 1
ref=runs/compat-reference-$MPI
if [ ! -f "$ref/analysis.json" ]; then
    MPI=$MPI make -s setup
    venv_ref=.venv; [ "$MPI" = mpich ] && venv_ref=.venv-mpich
    say "reference: full size, 1 s, 2 ranks, NEST of $venv_ref"
    "$venv_ref/bin/python" -m hpc_brunel launch -n 2 -- run --t-sim-ms 1000 --run-dir "$ref" --overwrite
fi

for rel in $RELEASES; do
    t0=$(date +%s)
    prefix=$(MPI=$MPI NEST_MODELS="$(models_for "$rel")" bash tools/build-nest-release.sh "$rel" | tail -n1)
    build_s=$(sed -n 's/.* build_s=\([0-9]*\).*/\1/p' "$prefix/build-options.txt")
    venv=$here/.venv-nest$rel-$MPI
    log=$out/nest-$rel-$MPI.log
    : > "$log"
    status=ok
    (
        # what `module load NEST/<rel>` does on a cluster
        # shellcheck disable=SC1091
        source "$prefix/bin/nest_vars.sh"
        export PATH="$prefix/python/bin:$PATH"
        MPI=$MPI PYTHON="$prefix/python/bin/python" VENV="$venv" bash tools/setup-env.sh
        say "NEST $rel: MPI test subset"
        "$venv/bin/python" -m pytest -q -ra -p no:cacheprovider -m "mpi and not slow" \
            tests/simulation tests/system tests/studies ${COMPAT_PYTEST_ARGS:-} || true  # counted below
        say "NEST $rel: full size, 1 s, 2 ranks"
        "$venv/bin/python" -m hpc_brunel launch -n 2 -- \
            run --t-sim-ms 1000 --run-dir "runs/compat-nest$rel-$MPI" --overwrite
    ) 2>&1 | tee -a "$log" || status=failed
    summary=$(grep -E "[0-9]+ (passed|failed)" "$log" | tail -n1 || true)
    case "$summary" in *failed*|*error*|"") status=failed;; esac
    source_env="source $prefix/bin/nest_vars.sh; PATH=$prefix/python/bin:\$PATH"
    "$here/.venv/bin/python" tools/compat_compare.py --release "$rel" --mpi "$MPI" --status "$status" \
        --reference "$ref" --run "runs/compat-nest$rel-$MPI" --log "$log" --build-s "${build_s:-0}" \
        --total-s "$(( $(date +%s) - t0 ))" --prefix "$prefix" --table "$out/compat.md" \
        --json "$out/compat.json" || status=failed
    say "NEST $rel: $status (environment: $source_env; $venv)"
done
cat "$out/compat.md"
