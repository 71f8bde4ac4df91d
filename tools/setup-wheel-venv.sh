#!/usr/bin/env bash
# A second virtual environment with the PyPI WHEEL of nest-simulator (no MPI), for
# the side-by-side benchmark (the seed notebook's way of running NEST) and for the
# test that a NEST without MPI is refused under mpirun. Kept outside the repo.
set -euo pipefail
CACHE=${HPC_BRUNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpc_brunel}
NEST_VERSION=${NEST_VERSION:-3.10.0}
WVENV=${WHEEL_VENV:-$CACHE/venv-wheel-nest-$NEST_VERSION}
if [ -f "$WVENV/.ready" ]; then echo "$WVENV"; exit 0; fi
rm -rf "$WVENV"
${PYTHON:-python3} -m venv "$WVENV"
"$WVENV/bin/python" -m pip install -q --upgrade pip >&2
"$WVENV/bin/python" -m pip install -q --only-binary nest-simulator "nest-simulator==$NEST_VERSION" numpy >&2
"$WVENV/bin/python" -m pip install -q --no-binary mpi4py mpi4py >&2
PYNEST_QUIET=1 "$WVENV/bin/python" -c 'import nest, sys; sys.exit(nest.build_info["have_mpi"])' \
    || { echo "the PyPI wheel unexpectedly has MPI" >&2; exit 1; }
touch "$WVENV/.ready"
echo "$WVENV"
