#!/usr/bin/env bash
# Weak scaling (neurons grow with the VPs, in-degrees fixed); extra options go to `hpc_brunel scale`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m hpc_brunel scale weak "$@"
