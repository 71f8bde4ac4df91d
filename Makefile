# hpc_brunel: the two commands that do everything on a fresh machine are
#   make run    - set up (once) and run the default full-size job on 4 ranks
#   make test   - set up (once) and pass the tests
SHELL := /bin/bash
# MPI family of the environment: openmpi (.venv) or mpich (.venv-mpich: MPICH and its
# derivatives); each has its own mpi4py and NEST build, e.g. `make setup MPI=mpich`.
MPI ?= openmpi
ifeq ($(MPI),mpich)
VENV ?= .venv-mpich
else
VENV ?= .venv
endif
PY := $(VENV)/bin/python
NP ?= 4
THREADS ?= 1
RUN_ARGS ?=
PYTEST_ARGS ?=
BENCH_ANALYZE_ARGS ?=
BENCH_GATHER_ARGS ?=

.PHONY: setup run test test-fast test-compat scale-strong scale-weak sweep validate-regimes theory-table finite-size validate-delays bench bench-synapse bench-analyze bench-gather bench-size bench-memory bench-checkpoint bench-seams clean

setup:
	@MPI=$(MPI) VENV=$(VENV) bash tools/setup-env.sh

run: setup
	$(PY) -m hpc_brunel launch -n $(NP) --threads $(THREADS) -- run $(RUN_ARGS)

test: setup
	$(PY) -m pytest -ra $(PYTEST_ARGS)

# the quick subset: everything but the full-size network runs (and the 64-process test)
test-fast: setup
	$(PY) -m pytest -ra -m "not slow" $(PYTEST_ARGS)

# NEST releases installed as cluster admins do (CMake + make install, NEST's defaults: no patch of
# ours, no detailed timers, the full model set) and used as modules: each is built once (cached,
# ~35 min on 2 cores), then the MPI test subset and a full-size 1 s run against our 3.10; the table
# goes to scaling/results/compat/compat.md. NEST_COMPAT_RELEASES="3.9 3.8" (default), MPI=...
test-compat:
	MPI=$(MPI) bash tools/test-compat.sh

# benchmarks: scripts that print numbers and write tables/plots (never part of the tests)
scale-strong: setup
	$(PY) -m hpc_brunel scale strong --out scaling/results/strong

scale-weak: setup
	$(PY) -m hpc_brunel scale weak --out scaling/results/weak

sweep: setup
	$(PY) -m hpc_brunel sweep --out runs/sweep-full

# the regime labels: simulate the calibration set and the three held-out sets (full size, about
# 1 h 45 min on 2 cores; runs that exist are kept), then measure, calibrate and write the tables
validate-regimes: setup
	$(PY) analysis/regime_validation.py run calibration
	$(PY) analysis/regime_validation.py run validation
	$(PY) analysis/regime_validation.py run test
	$(PY) analysis/regime_validation.py run holdout
	$(PY) analysis/regime_validation.py measure
	$(PY) analysis/regime_validation.py calibrate
	$(PY) analysis/regime_validation.py validate validation
	$(PY) analysis/regime_validation.py validate test
	$(PY) analysis/regime_validation.py validate holdout

# vs the hand-written script: on the PyPI wheel (script and hpc_brunel alike) and on our build (~6 min)
bench: setup
	$(PY) scaling/bench_vs_script.py --reps 5

# the network's synapse model: 4 NEST static synapses x 1x2/2x1 x 12,500/50,000 neurons, and the
# hand-written script on the same build, alternating (~35 min on 2 cores; BENCHMARKS.md)
bench-synapse: setup
	$(PY) scaling/bench_synapse_models.py $(BENCH_SYNAPSE_ARGS)

# analyze on full-size runs of 1 s, 20 s and 100 s (made once under runs/bench-analyze, then reused):
# spikes/s of gather + statistics and peak RSS; BENCH_ANALYZE_ARGS e.g. "--old-tree /tmp/old --durations-s 1,20"
bench-analyze: setup
	$(PY) scaling/bench_analyze.py $(BENCH_ANALYZE_ARGS)

# bigger networks at fixed in-degrees (12,500 .. 125,000 neurons), default and lean synapse model
# (~12 GB of memory, ~25 min on 2 cores); its table calibrates and validates `hpc_brunel plan`
bench-size: setup
	$(PY) scaling/bench_network_size.py $(BENCH_SIZE_ARGS)

# checkpoints and continuing: cost at 12,500 and 125,000 neurons, and the seam against an uninterrupted run (~10 min)
bench-checkpoint: setup
	$(PY) scaling/bench_checkpoint.py --out scaling/results/checkpoint $(BENCH_CHECKPOINT_ARGS)

# the population rate around 24 seams of a continued full-size run vs control times, and fake seams on an
# uninterrupted run (~3 min on 2 cores); BENCH_SEAMS_ARGS e.g. "--old-tree /tmp/before" to compare another checkout
bench-seams: setup
	$(PY) scaling/bench_seams.py --out scaling/results/seams $(BENCH_SEAMS_ARGS)

# memory per phase: hand-written script vs hpc_brunel run on the same NEST build, 1x2 and 2x1
bench-memory: setup
	$(PY) scaling/bench_memory_phases.py $(BENCH_MEMORY_ARGS)

# gather time for 256 / 1,024 / 2,048 synthetic rank files (no NEST)
bench-gather: setup
	$(PY) scaling/bench_gather.py $(BENCH_GATHER_ARGS)

# the phase diagram's boundaries from the eigenvalues -> analysis/theory/ (the README's table; ~10 min, one core)
theory-table: setup
	$(PY) analysis/theory_boundaries.py

# the finite-size study: 17 points x N = 12,500 / 50,000 / 125,000 (resumable) -> analysis/finite_size/.
# Expected time on 2 cores: ~16 min for N = 12,500 (measured), ~2 h for 50,000, ~7 h for 125,000 (the planner,
# `analysis/finite_size.py plan`, corrected by the runs measured: BENCHMARKS.md; FS_THREADS=16 on a 16-core
# node: ~7 min, ~15 min, ~35 min)
FS_THREADS ?= 2
finite-size: setup
	$(PY) analysis/finite_size.py run --scale 1 --threads $(FS_THREADS)
	$(PY) analysis/finite_size.py run --scale 4 --threads $(FS_THREADS)
	$(PY) analysis/finite_size.py run --scale 10 --threads $(FS_THREADS)
	$(PY) analysis/finite_size.py collect

# the label rule at D = 1.0 and 3.0 ms on held-out points (~15 min on 2 cores) -> analysis/delay_validation/
validate-delays: setup
	$(PY) analysis/delay_validation.py run
	$(PY) analysis/delay_validation.py table

clean:
	rm -rf runs .pytest_cache
