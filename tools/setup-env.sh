#!/usr/bin/env bash
# Idempotent set-up of the hpc_brunel environment: Debian packages, a virtual
# environment, mpi4py built against the system MPI, and NEST built from the
# PyPI sdist WITH MPI (the PyPI wheel has none). The NEST wheel is cached
# outside the repository, keyed by version + build options, so a second set-up
# takes seconds.
#
# Variables (all optional):
#   VENV               virtual environment to create/use        [.venv]
#   HPC_BRUNEL_CACHE   where built NEST wheels are kept          [~/.cache/hpc_brunel]
#   NEST_VERSION       NEST release to build from the sdist      [3.10.0]
#   NEST_MODELS        ';'-separated model list, or "full" for NEST's full model set
#   NEST_OPTIMIZE      compiler flags, ';'-separated             [-O3;-march=native]
#   NEST_DETAILED_TIMERS  ON/OFF                                 [ON]
#   NEST_CMAKE_EXTRA   extra "-C cmake.define.X=Y" arguments for the NEST build
#   NEST_PATCHES       patches applied to NEST's sdist before the build, or "none"
#                      [tools/nest-patches/*.patch]; their sha256 is part of the cache key
#   PYTHON             interpreter to create the venv from        [python3]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$here/.venv}
PYTHON=${PYTHON:-python3}
CACHE=${HPC_BRUNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpc_brunel}
NEST_VERSION=${NEST_VERSION:-3.10.0}
NEST_MODELS=${NEST_MODELS:-iaf_psc_delta;iaf_psc_alpha;iaf_psc_exp;poisson_generator;spike_recorder;spike_generator;multimeter;static_synapse;static_synapse_hom_w;parrot_neuron;dc_generator}
NEST_OPTIMIZE=${NEST_OPTIMIZE:--O3;-march=native}
NEST_DETAILED_TIMERS=${NEST_DETAILED_TIMERS:-ON}
NEST_CMAKE_EXTRA=${NEST_CMAKE_EXTRA:-}
# Patches to NEST (tools/nest-patches/README.md says what each does and why). Each is
# named in the build key with its sha256, so a changed patch means a new cached wheel,
# and provenance (nest-build-options.txt) records what this NEST was built with.
if [ "${NEST_PATCHES:-}" = none ]; then
    NEST_PATCHES=""
elif [ -z "${NEST_PATCHES:-}" ]; then
    NEST_PATCHES=$(ls "$here"/tools/nest-patches/*.patch 2>/dev/null | tr '\n' ' ')
fi
patch_ids=""
for p in $NEST_PATCHES; do
    [ -f "$p" ] || { echo "[setup] ERROR: NEST_PATCHES: no such patch file: $p" >&2; exit 1; }
    patch_ids="$patch_ids $(basename "$p" .patch):$(sha256sum "$p" | cut -c1-12)"
done
patch_ids=${patch_ids# }
# Runtime and test dependencies (pandas, neo via elephant: the Python API's to_pandas/to_neo;
# libsonata: the tests read spikes.h5 with it). They are part of the set-up key below, so an
# existing venv gets a dependency added here on the next `make setup`.
# Test-only: import-linter (the layers contract, tests/test_layers.py) and nnmt (the Neuronal
# Network Meanfield Toolbox: an independent mean field for tests/theory/test_meanfield.py).
PY_DEPS=(numpy scipy mpmath h5py matplotlib pytest elephant neo pandas libsonata import-linter nnmt)
PY_IMPORTS="numpy scipy mpmath h5py matplotlib pytest elephant neo pandas libsonata importlinter nnmt"
APT_PKGS=(g++ patch openmpi-bin libopenmpi-dev libgsl-dev libboost-dev libltdl-dev libjemalloc2)

say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# A NEST this venv can already use (a cluster module, or our own build)?
nest_ok() {  # $1 = python
    "$1" - "$NEST_VERSION" <<'PY' >/dev/null 2>&1
import os, sys
os.environ.setdefault("PYNEST_QUIET", "1")
import nest
want = tuple(int(x) for x in sys.argv[1].split(".")[:2])
have = tuple(int(x) for x in nest.__version__.split(".")[:2])
sys.exit(0 if have >= want and nest.build_info["have_mpi"] else 1)
PY
}

# --- 0. fast path: everything done before with the same options -------------
key_src="nest=$NEST_VERSION models=$NEST_MODELS opt=$NEST_OPTIMIZE timers=$NEST_DETAILED_TIMERS extra=$NEST_CMAKE_EXTRA patches=${patch_ids:-none} py=$($PYTHON -c 'import sys;print(sys.version.split()[0])') arch=$(uname -m)"
case "$NEST_OPTIMIZE" in *native*) key_src="$key_src cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs)";; esac
key=$(printf '%s' "$key_src" | sha256sum | cut -c1-16)  # the NEST build (wheel cache)
# the whole environment: the NEST build and the Python dependencies
env_key=$(printf '%s deps=%s' "$key_src" "${PY_DEPS[*]}" | sha256sum | cut -c1-16)
stamp="$VENV/.hpc_brunel-setup"
deps_ok() {  # $1 = python: every Python dependency imports
    "$1" -c "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]" $PY_IMPORTS >/dev/null 2>&1
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$env_key" ] && nest_ok "$VENV/bin/python" && deps_ok "$VENV/bin/python"; then
    echo "$key_src" > "$VENV/nest-build-options.txt"
    say "environment up to date ($VENV, key $env_key)"
    exit 0
fi

# --- 1. a NEST that is already there (module on a cluster) ------------------
if nest_ok "$PYTHON"; then
    say "using the MPI-enabled NEST that '$PYTHON' already imports; building nothing"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${PY_DEPS[@]}"
    python -c 'import mpi4py' 2>/dev/null || "$VENV/bin/python" -m pip install -q --no-binary mpi4py mpi4py
    "$VENV/bin/python" -m pip install -q --no-deps -e "$here"
    nest_ok "$VENV/bin/python" || die "the venv does not see the module's NEST"
    echo "$env_key" > "$stamp"
    exit 0
fi

# --- 2. system packages: MPI, GSL, Boost, ltdl --------------------------------
if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for p in "${APT_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            say "installing Debian packages: ${missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            die "missing system packages: ${missing[*]}. Ask an administrator for
    sudo apt-get install ${missing[*]}
or, on a cluster, load modules that provide MPI, GSL and Boost plus an MPI-enabled
NEST >= $NEST_VERSION (e.g. 'module load NEST') and run this again."
        fi
    fi
else
    for c in mpicc mpirun gsl-config; do
        command -v "$c" >/dev/null || die "'$c' not found: load modules for MPI and GSL (or an MPI-enabled NEST >= $NEST_VERSION) and run this again"
    done
fi

# --- 3. virtual environment and Python dependencies --------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
"$py" -m pip install -q --upgrade pip
# NEST's own runtime deps are numpy, matplotlib and cython; the build needs the rest.
"$py" -m pip install -q "${PY_DEPS[@]}" "cython>=3" scikit-build-core setuptools wheel
# mpi4py must talk to the same MPI library as NEST: build it against mpicc.
"$py" -c 'import mpi4py' 2>/dev/null || "$py" -m pip install -q --no-binary mpi4py mpi4py

# --- 4. NEST with MPI from the sdist, cached by build key --------------------
wheel_dir="$CACHE/wheels/nest-$NEST_VERSION-$key"
whl=$(ls "$wheel_dir"/nest_simulator-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$whl" ]; then
    models_def="cmake.define.with-models=$NEST_MODELS"
    [ "$NEST_MODELS" = full ] && models_def="cmake.define.with-modelset=full"
    say "building NEST $NEST_VERSION with MPI from the sdist (a few minutes; cached in $wheel_dir)"
    say "  models: $NEST_MODELS; flags: $NEST_OPTIMIZE; detailed timers: $NEST_DETAILED_TIMERS"
    case "$NEST_OPTIMIZE" in *march=native*)
        say "  NOTE: -march=native builds for this CPU ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs)):"
        say "  on a cluster, build on a compute node, or set NEST_OPTIMIZE='-O3;-march=<the compute nodes' CPU>'"
        say "  (e.g. x86-64-v3); elsewhere NEST may stop with 'Illegal instruction'";;
    esac
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/nest-build.XXXXXX")
    nest_src="nest-simulator==$NEST_VERSION"  # pip fetches the sdist itself when unpatched
    if [ -n "$NEST_PATCHES" ]; then
        say "  patches: $patch_ids"
        sdist=$("$py" "$here/tools/fetch-sdist.py" nest-simulator "$NEST_VERSION" "$CACHE/sdist")
        tar -xzf "$sdist" -C "$tmp"
        nest_src=$(ls -d "$tmp"/nest_simulator-"$NEST_VERSION")
        for p in $NEST_PATCHES; do
            patch -s -p1 -d "$nest_src" < "$p" || die "patch $p does not apply to NEST $NEST_VERSION"
        done
        # The patched BlockVector against std::vector (tools/nest-patches/test_block_vector.cpp),
        # with AddressSanitizer where the compiler has it: a broken patch stops here.
        san="-fsanitize=address,undefined"
        echo 'int main(){}' | g++ -x c++ $san -o "$tmp/san-probe" - 2>/dev/null || san=""
        g++ -std=c++17 -O1 -g $san -I"$here/tools/nest-patches" -I"$nest_src/libnestutil" \
            "$here/tools/nest-patches/test_block_vector.cpp" -o "$tmp/test_block_vector" \
            && ASAN_OPTIONS=detect_leaks=0 "$tmp/test_block_vector" \
            || die "the patched NEST BlockVector failed its check (tools/nest-patches/test_block_vector.cpp)"
    fi
    # shellcheck disable=SC2086
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$py" -m pip wheel --no-cache-dir --no-deps --no-build-isolation --no-binary nest-simulator \
        -w "$tmp" "$nest_src" \
        -C cmake.define.with-mpi=ON \
        -C "$models_def" \
        -C "cmake.define.with-optimize=$NEST_OPTIMIZE" \
        -C "cmake.define.with-detailed-timers=$NEST_DETAILED_TIMERS" \
        $NEST_CMAKE_EXTRA
    mkdir -p "$wheel_dir"
    echo "$key_src" > "$wheel_dir/build-options.txt"
    mv "$tmp"/nest_simulator-*.whl "$wheel_dir/"   # the wheel appears only once complete
    rm -rf "$tmp"
    whl=$(ls "$wheel_dir"/nest_simulator-*.whl | head -n1)
else
    say "using cached NEST wheel $whl"
fi
# --no-deps: never let pip resolve nest-simulator (or anything) from the index here.
"$py" -m pip install -q --no-deps --force-reinstall "$whl"
"$py" -m pip install -q --no-deps -e "$here"
nest_ok "$py" || die "NEST in $VENV does not import with MPI (have_mpi is False)"
echo "$key_src" > "$VENV/nest-build-options.txt"  # read by hpc_brunel.simulation.provenance
echo "$env_key" > "$stamp"
say "ready: $("$py" -c 'import os;os.environ["PYNEST_QUIET"]="1";import nest;print("NEST",nest.__version__,"have_mpi",nest.build_info["have_mpi"])')"
