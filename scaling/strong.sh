#!/usr/bin/env bash
# Strong scaling of the full 12,500-neuron network; extra options go to `hpc_brunel scale`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m hpc_brunel scale strong "$@"
