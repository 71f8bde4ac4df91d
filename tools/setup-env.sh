#!/usr/bin/env bash
# Idempotent set-up of the hpc_brunel environment: Debian packages, a virtual
# environment, mpi4py built against the system MPI, and NEST built from the
# PyPI sdist WITH MPI (the PyPI wheel has none). The NEST wheel is cached
# outside the repository, keyed by version + build options, so a second set-up
# takes seconds.
#
# Variables (all optional):
#   MPI                MPI family: openmpi or mpich (MPICH and its derivatives:
#                      Intel MPI, Cray MPICH, MVAPICH, ParaStation)  [openmpi]
#   VENV               virtual environment to create/use        [.venv; .venv-mpich for MPI=mpich]
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
MPI=${MPI:-openmpi}
case "$MPI" in
    openmpi) VENV=${VENV:-$here/.venv};;
    mpich) VENV=${VENV:-$here/.venv-mpich};;
    *) echo "[setup] ERROR: MPI=$MPI: must be openmpi or mpich" >&2; exit 2;;
esac
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
APT_PKGS=(g++ patch libgsl-dev libboost-dev libltdl-dev libjemalloc2)
case "$MPI" in
    openmpi) APT_PKGS+=(openmpi-bin libopenmpi-dev);;
    mpich) APT_PKGS+=(mpich libmpich-dev);;
esac

say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# The oldest NEST release hpc_brunel runs on (hpc_brunel/constants.py NEST_MIN_VERSION;
# the README's "NEST releases and MPI libraries" table). A NEST that Python already
# imports (a cluster module) is used when it is at least this and has MPI.
NEST_MIN=$(sed -n 's/^NEST_MIN_VERSION = (\([0-9]*\), *\([0-9]*\)).*/\1.\2/p' "$here/hpc_brunel/constants.py")
[ -n "$NEST_MIN" ] || die "NEST_MIN_VERSION not found in hpc_brunel/constants.py"

# The MPI family's compiler wrappers and launcher. Debian installs both families side by
# side (mpicc.openmpi / mpicc.mpich, with `mpicc` an alternative that may point to either):
# take the family's own names where they exist, else what PATH has (a cluster module).
# They are linked into $VENV/bin, so mpi4py, NEST, `hpc_brunel launch` and the tests all
# use this family's MPI whatever `mpirun` on PATH is.
resolve_mpi() {
    local sfx=$MPI
    MPICC=$(command -v "mpicc.$sfx" || command -v mpicc || true)
    MPICXX=$(command -v "mpicxx.$sfx" || command -v "mpic++.$sfx" || command -v mpicxx || command -v mpic++ || command -v mpiCC || true)
    MPIEXEC=$(command -v "mpiexec.$sfx" || command -v mpiexec || command -v "mpirun.$sfx" || command -v mpirun || true)
    MPI_ID=""
    if [ -n "$MPIEXEC" ]; then
        # Open MPI: "mpiexec (OpenRTE) 4.1.4"; Hydra: "Version: 4.0.2"; Intel MPI: "Intel(R) MPI Library ..."
        MPI_ID="$("$MPIEXEC" --version 2>&1 | grep -m1 -E 'Open MPI|OpenRTE|PRRTE|Version:|Intel|MVAPICH' | xargs || true)"
    fi
}
# The MPI library of a launcher: openmpi, mpich or unknown.
launcher_family() {  # $1 = launcher
    local v; v=$("$1" --version 2>&1 || true)
    case "$v" in *"Open MPI"*|*OpenRTE*|*PRRTE*) echo openmpi;; *HYDRA*|*Hydra*|*Intel*|*MVAPICH*) echo mpich;; *) echo unknown;; esac
}

# A NEST this venv can already use (a cluster module, or our own build): at least
# NEST_MIN, built with MPI, and mpi4py and NEST on one MPI library.
nest_ok() {  # $1 = python
    [ "$(nest_problem "$1")" = ok ]
}
# "ok", or why nest_ok fails, in one line (for the error message).
nest_problem() {  # $1 = python
    PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "$1" - "$NEST_MIN" 2>&1 <<'PY' | tail -n1
import os, sys
os.environ.setdefault("PYNEST_QUIET", "1")
try:
    import mpi4py
    mpi4py.rc.initialize = False
    from mpi4py import MPI
    import nest
except Exception as e:
    sys.exit(f"{type(e).__name__}: {e}")
from hpc_brunel.simulation.kernel import nest_have_mpi
from hpc_brunel.simulation.parallel import mixed_mpi_libraries
want = tuple(int(x) for x in sys.argv[1].split(".")[:2])
have = tuple(int(x) for x in nest.__version__.split(".")[:2])
if have < want:
    sys.exit(f"NEST {nest.__version__} is older than {sys.argv[1]}, the oldest release hpc_brunel supports")
if not nest_have_mpi(nest):
    sys.exit(f"NEST {nest.__version__} ({os.path.dirname(nest.__file__)}) was built without MPI")
mixed = mixed_mpi_libraries()
if mixed:
    sys.exit(mixed)
print("ok")
PY
}
ready_line() {  # $1 = python: "NEST x.y (path), MPI library ..., launcher ..."
    PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" PYNEST_QUIET=1 "$1" - <<'PY' 2>/dev/null | tail -n1
import os
import mpi4py
mpi4py.rc.initialize = False
from mpi4py import MPI
import nest
print(f"NEST {nest.__version__} ({os.path.dirname(nest.__file__)}); MPI library: "
      f"{MPI.Get_library_version().replace(chr(0), '').strip().splitlines()[0]}")
PY
}
link_mpi_into_venv() {
    # Wrappers, not symlinks: Hydra looks for its hydra_pmi_proxy beside argv[0], Open MPI's
    # compiler wrappers read the data file of the name they are called by.
    mkdir -p "$VENV/bin"
    local name target
    for name in mpicc mpicxx mpiexec mpirun; do
        case $name in mpicc) target=$MPICC;; mpicxx) target=$MPICXX;; *) target=$MPIEXEC;; esac
        rm -f "$VENV/bin/$name"
        printf '#!/bin/sh\n# MPI=%s, linked by tools/setup-env.sh: this environment'"'"'s MPI\nexec %s "$@"\n' \
            "$MPI" "$target" > "$VENV/bin/$name"
        chmod +x "$VENV/bin/$name"
    done
}
mpi4py_ok() {  # $1 = python: mpi4py imports and its MPI library is of the family $MPI
    "$1" - "$MPI" <<'PY' >/dev/null 2>&1
import sys
import mpi4py
mpi4py.rc.initialize = False
from mpi4py import MPI
v = MPI.Get_library_version()
fam = "openmpi" if "Open MPI" in v else "mpich"
sys.exit(0 if fam == sys.argv[1] else 1)
PY
}
install_mpi4py() {  # $1 = python: mpi4py built against this family's mpicc (wheel cached per MPI)
    mpi4py_ok "$1" && return 0
    local ver dir whl tmp
    ver=$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    # -O1 -g0: mpi4py's generated C module only wraps MPI calls; this halves its build
    # (measured: 145 s instead of ~300 s with Python's default -O3 -g on 2 cores)
    local cflags="-O1 -g0"
    dir="$CACHE/wheels/mpi4py-$MPI-$(printf '%s' "$MPI_ID $(readlink -f "$MPICC") py=$ver $(uname -m) cflags=$cflags" | sha256sum | cut -c1-12)"
    whl=$(ls "$dir"/mpi4py-*.whl 2>/dev/null | head -n1 || true)
    if [ -z "$whl" ]; then
        say "building mpi4py against $MPICC (a few minutes; cached in $dir)"
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpi4py-build.XXXXXX")
        MPICC="$MPICC" CFLAGS="${CFLAGS:+$CFLAGS }$cflags" "$1" -m pip wheel -q --no-deps --no-cache-dir \
            --no-binary mpi4py -w "$tmp" mpi4py
        mkdir -p "$dir"
        mv "$tmp"/mpi4py-*.whl "$dir/"  # the wheel appears only once complete
        rm -rf "$tmp"
        whl=$(ls "$dir"/mpi4py-*.whl | head -n1)
    else
        say "using cached mpi4py wheel $whl"
    fi
    "$1" -m pip install -q --no-deps --force-reinstall "$whl"
    mpi4py_ok "$1" || die "mpi4py in $VENV does not use an MPI of the family MPI=$MPI ($MPICC); load that MPI's module or set MPI="
}

resolve_mpi
key_of() {
    key_src="nest=$NEST_VERSION models=$NEST_MODELS opt=$NEST_OPTIMIZE timers=$NEST_DETAILED_TIMERS extra=$NEST_CMAKE_EXTRA patches=${patch_ids:-none} py=$($PYTHON -c 'import sys;print(sys.version.split()[0])') arch=$(uname -m) mpi=$MPI:$MPI_ID"
    case "$NEST_OPTIMIZE" in *native*) key_src="$key_src cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs)";; esac
    key=$(printf '%s' "$key_src" | sha256sum | cut -c1-16)  # the NEST build (wheel cache)
    # the whole environment: the NEST build and the Python dependencies
    env_key=$(printf '%s deps=%s' "$key_src" "${PY_DEPS[*]}" | sha256sum | cut -c1-16)
}
key_of

# --- 0. fast path: everything done before with the same options -------------
stamp="$VENV/.hpc_brunel-setup"
deps_ok() {  # $1 = python: every Python dependency imports
    "$1" -c "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]" $PY_IMPORTS >/dev/null 2>&1
}
if [ -n "$MPIEXEC" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$env_key" ] && nest_ok "$VENV/bin/python" && deps_ok "$VENV/bin/python"; then
    # our own build only (a module's venv has none: provenance then says it is not ours)
    [ -f "$VENV/nest-build-options.txt" ] && echo "$key_src" > "$VENV/nest-build-options.txt"
    link_mpi_into_venv
    say "environment up to date ($VENV, MPI=$MPI, key $env_key)"
    exit 0
fi

# --- 1. a NEST that is already there (module on a cluster) ------------------
# "Already there": `$PYTHON -c 'import nest'` works (PYTHONPATH from the module or
# nest_vars.sh). Its MPI is the one the module put on PATH; mpi4py is built against it.
if PYNEST_QUIET=1 "$PYTHON" -c 'import nest' >/dev/null 2>&1; then
    nest_where=$(PYNEST_QUIET=1 "$PYTHON" -c 'import nest, os; print(nest.__version__, os.path.dirname(nest.__file__))' 2>/dev/null | tail -n1)
    [ -n "$MPIEXEC" ] || die "NEST $nest_where imports but no MPI launcher (mpiexec/mpirun) is on PATH: load the MPI module NEST was built with"
    say "using the NEST that '$PYTHON' already imports: $nest_where; building no NEST"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
    link_mpi_into_venv
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${PY_DEPS[@]}"
    install_mpi4py "$VENV/bin/python"
    "$VENV/bin/python" -m pip install -q --no-deps -e "$here"
    nest_ok "$VENV/bin/python" || die "$(nest_problem "$VENV/bin/python")"
    rm -f "$VENV/nest-build-options.txt"  # not our build: provenance says "built elsewhere"
    echo "$env_key" > "$stamp"
    say "ready: $VENV: $(ready_line "$VENV/bin/python")"
    exit 0
fi

# --- 2. system prerequisites: a C++ compiler, MPI, GSL (Boost, ltdl, jemalloc optional) ----
# What is needed is found by command, not by package: on a cluster they come from modules.
missing_cmds=()
case "$MPI" in openmpi) mpi_pkgs="openmpi-bin libopenmpi-dev";; mpich) mpi_pkgs="mpich libmpich-dev";; esac
command -v g++ >/dev/null || command -v c++ >/dev/null || missing_cmds+=("a C++ compiler (g++; Debian: g++)")
[ -n "$MPICC" ] && [ -n "$MPICXX" ] && [ -n "$MPIEXEC" ] || missing_cmds+=("MPI=$MPI (mpicc, mpicxx, mpiexec; Debian: $mpi_pkgs)")
command -v gsl-config >/dev/null || missing_cmds+=("GSL (gsl-config; Debian: libgsl-dev)")
[ -z "$NEST_PATCHES" ] || command -v patch >/dev/null || missing_cmds+=("patch (Debian: patch)")
if [ -n "$MPIEXEC" ] && [ "$(launcher_family "$MPIEXEC")" != "$MPI" ]; then
    missing_cmds+=("MPI=$MPI ($MPIEXEC is $(launcher_family "$MPIEXEC"); Debian: $mpi_pkgs)")
fi
apt_missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${APT_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$p")
    done
fi
if [ "$(id -u)" = 0 ] && [ ${#apt_missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
    resolve_mpi
    key_of
elif [ ${#missing_cmds[@]} -gt 0 ]; then
    how="Load modules that provide them (an MPI of the $MPI family, GSL, a compiler), or an MPI-enabled NEST >= $NEST_MIN with its Python"
    [ ${#apt_missing[@]} -gt 0 ] && how="$how; or ask an administrator for: sudo apt-get install ${apt_missing[*]}"
    die "missing: $(IFS='|'; echo "${missing_cmds[*]}" | sed 's/|/, /g'). $how"
fi
[ -n "$MPIEXEC" ] || die "no MPI launcher found for MPI=$MPI after installing it"
say "MPI=$MPI: $MPICC, $MPIEXEC ($MPI_ID)"

# --- 3. virtual environment and Python dependencies --------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
"$py" -m pip install -q --upgrade pip
# NEST's own runtime deps are numpy, matplotlib and cython; the build needs the rest.
"$py" -m pip install -q "${PY_DEPS[@]}" "cython>=3" scikit-build-core setuptools wheel
# mpi4py must talk to the same MPI library as NEST: both are built with this family's wrappers.
link_mpi_into_venv
install_mpi4py "$py"

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
    say "  MPI: $MPI_ID ($MPICXX)"
    # shellcheck disable=SC2086
    PATH="$VENV/bin:$PATH" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$py" -m pip wheel --no-cache-dir --no-deps --no-build-isolation --no-binary nest-simulator \
        -w "$tmp" "$nest_src" \
        -C cmake.define.with-mpi=ON \
        -C "cmake.define.MPI_C_COMPILER=$MPICC" -C "cmake.define.MPI_CXX_COMPILER=$MPICXX" \
        -C "cmake.define.MPIEXEC_EXECUTABLE=$MPIEXEC" \
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
nest_ok "$py" || die "$(nest_problem "$py")"
echo "$key_src" > "$VENV/nest-build-options.txt"  # read by hpc_brunel.simulation.provenance
echo "$env_key" > "$stamp"
say "ready: $VENV: $(ready_line "$py")"
