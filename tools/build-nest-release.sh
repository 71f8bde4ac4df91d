#!/usr/bin/env bash
# Build a NEST release the way cluster admins install a NEST module: CMake + `make install`
# into a prefix, NEST's own default options (no patch of ours, detailed timers OFF, the full
# model set unless NEST_MODELS names a list), MPI of the family MPI. The sources come from
# ../shared/nest-src/nest-simulator-<release>.tar.gz (checked against SHA256SUMS there) or
# NEST_SRC_TARBALL. Cached: a second call with the same release, MPI and options prints the
# prefix at once.
#
#   tools/build-nest-release.sh 3.9        # prints the install prefix on its last line
#   source <prefix>/bin/nest_vars.sh       # what `module load NEST` does: PATH, PYTHONPATH, ...
#   PATH=<prefix>/python/bin:$PATH         # the module's Python (numpy; what the site provides)
#
# Variables: MPI (openmpi|mpich) [openmpi], NEST_MODELS (';'-list or "full") [full],
# NEST_OPTIMIZE (CMake with-optimize) [ON: NEST's -O2], PYTHON [python3], HPC_BRUNEL_CACHE.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
release=${1:?usage: tools/build-nest-release.sh <release, e.g. 3.9>}
MPI=${MPI:-openmpi}
NEST_MODELS=${NEST_MODELS:-full}
NEST_OPTIMIZE=${NEST_OPTIMIZE:-ON}
PYTHON=${PYTHON:-python3}
CACHE=${HPC_BRUNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpc_brunel}
say() { echo "[nest-release] $*" >&2; }
die() { echo "[nest-release] ERROR: $*" >&2; exit 1; }

tarball=${NEST_SRC_TARBALL:-$here/../shared/nest-src/nest-simulator-$release.tar.gz}
[ -f "$tarball" ] || die "no sources for NEST $release: $tarball (set NEST_SRC_TARBALL)"
sums="$(dirname "$tarball")/SHA256SUMS"
if [ -f "$sums" ]; then
    want=$(grep " $(basename "$tarball")\$" "$sums" | cut -d' ' -f1 || true)
    have=$(sha256sum "$tarball" | cut -d' ' -f1)
    [ -z "$want" ] || [ "$want" = "$have" ] || die "$tarball: sha256 $have, SHA256SUMS says $want"
fi
case "$MPI" in openmpi|mpich) ;; *) die "MPI=$MPI: must be openmpi or mpich";; esac
mpicc=$(command -v "mpicc.$MPI" || command -v mpicc || true)
mpicxx=$(command -v "mpicxx.$MPI" || command -v mpicxx || true)
mpiexec=$(command -v "mpiexec.$MPI" || command -v mpiexec || true)
[ -n "$mpicc" ] && [ -n "$mpicxx" ] && [ -n "$mpiexec" ] || die "MPI=$MPI: mpicc/mpicxx/mpiexec not found (make setup MPI=$MPI installs them as root)"
command -v cmake >/dev/null || die "cmake not found (Debian: cmake; or pip install cmake)"
# The module's Python: numpy (PyNEST needs it at run time) and Cython (to build PyNEST): NEST <= 3.8's
# pynestkernel.pyx needs Cython < 3 ("undeclared name not builtin: long" with Cython 3).
cython="cython>=3"
case "$release" in 3.[0-8]|3.[0-8].*) cython="cython<3";; esac
mpi_id=$("$mpiexec" --version 2>&1 | grep -m1 -E 'Open MPI|OpenRTE|Version:|Intel' | xargs || true)
key_src="release=$release$([ "$cython" = "cython<3" ] && echo ' cython<3') sha=$(sha256sum "$tarball" | cut -c1-16) mpi=$MPI:$mpi_id models=$NEST_MODELS opt=$NEST_OPTIMIZE py=$($PYTHON -c 'import sys;print(sys.version.split()[0])') cxx=$(g++ -dumpfullversion 2>/dev/null)"
key=$(printf '%s' "$key_src" | sha256sum | cut -c1-12)
prefix="$CACHE/nest-releases/nest-$release-$MPI-$key"
if [ -f "$prefix/.complete" ]; then
    say "NEST $release ($MPI) already installed in $prefix"
    echo "$prefix"; exit 0
fi
rm -rf "$prefix"
mkdir -p "$prefix"
# The module's Python: numpy (PyNEST needs it at run time) and Cython (to build PyNEST).
"$PYTHON" -m venv "$prefix/python"
"$prefix/python/bin/python" -m pip install -q --upgrade pip >&2
"$prefix/python/bin/python" -m pip install -q numpy scipy "$cython" >&2
src=$(mktemp -d "${TMPDIR:-/tmp}/nest-$release-src.XXXXXX")
tar -xzf "$tarball" -C "$src"
srcdir=$(ls -d "$src"/nest-simulator-*)
models=(-Dwith-modelset=full)
[ "$NEST_MODELS" = full ] || models=(-Dwith-models="$NEST_MODELS")
say "building NEST $release with $MPI ($mpi_id), models: $NEST_MODELS, into $prefix"
t0=$(date +%s)
mkdir -p "$src/build"
(cd "$src/build" && PATH="$prefix/python/bin:$PATH" cmake "$srcdir" \
    -DCMAKE_INSTALL_PREFIX="$prefix" -Dwith-mpi=ON -DMPI_C_COMPILER="$mpicc" -DMPI_CXX_COMPILER="$mpicxx" \
    -DMPIEXEC_EXECUTABLE="$mpiexec" -Dwith-optimize="$NEST_OPTIMIZE" "${models[@]}" \
    -DPython_EXECUTABLE="$prefix/python/bin/python" >"$prefix/cmake.log" 2>&1) \
    || { tail -30 "$prefix/cmake.log" >&2; die "cmake failed (log: $prefix/cmake.log)"; }
(cd "$src/build" && make -j"$(nproc)" >"$prefix/make.log" 2>&1 && make install >>"$prefix/make.log" 2>&1) \
    || { tail -30 "$prefix/make.log" >&2; die "make failed (log: $prefix/make.log)"; }
rm -rf "$src"
echo "$key_src build_s=$(( $(date +%s) - t0 ))" > "$prefix/build-options.txt"
touch "$prefix/.complete"
say "NEST $release installed in $prefix ($(( $(date +%s) - t0 )) s)"
echo "$prefix"
