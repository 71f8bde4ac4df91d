"""Names and numbers that more than one layer uses, each defined once.

The run directory's file names, the two populations, the default analysis
transient of short runs and the theory's fast/slow frequency cut. Pure Python.
"""
from __future__ import annotations

#: The oldest NEST release hpc_brunel runs on (major, minor): the run refuses older ones
#: (hpc_brunel.simulation.kernel.check_nest) and tools/setup-env.sh reads it from here.
NEST_MIN_VERSION = (3, 8)

#: The network's two populations, in NEST's creation order (excitatory first).
POPULATIONS = ("excitatory", "inhibitory")

# --- the run directory (layout documented in hpc_brunel/simulation/rundir.py) ---
RUN_JSON = "run.json"  #: provenance + status
CONFIG_TOML = "config.toml"  #: the resolved configuration
LOCK_FILE = "run.lock"  #: held by rank 0 while the run is running
SPIKES_FILE = "spikes.h5"  #: the gathered SONATA spike file
ANALYSIS_JSON = "analysis.json"  #: statistics, regime label, mean field
REPORT_MD = "report.md"  #: the human-readable report
RASTER_PNG = "raster.png"
DISTRIBUTIONS_PNG = "distributions.png"
SPECTRUM_PNG = "spectrum.png"
FIGURES = (RASTER_PNG, DISTRIBUTIONS_PNG, SPECTRUM_PNG)
CHECKPOINT_JSON = "checkpoint.json"  #: points to the newest complete checkpoint
CHECKPOINTS_DIR = "checkpoints"  #: per-rank state files, one sub-directory per checkpoint
#: Default interval of a run's periodic checkpoints (model time): a hard kill loses at most this much.
DEFAULT_CHECKPOINT_EVERY_MS = 1000.0

#: Brunel's (2000) delay D, for which the frequency cuts below are given [ms].
REFERENCE_DELAY_MS = 1.5
#: At D = REFERENCE_DELAY_MS, oscillations at or above this frequency belong to the fast
#: branch (SI-fast), below it to the slow one (SI-slow): the theory's cut
#: (hpc_brunel.theory.stability) and the label rule's (hpc_brunel.analysis.regimes). The
#: fast branch's Hopf modes lie at ~1/(4D) (161-193 Hz for D = 1.5 ms), the slow branch's
#: at 7-32 Hz. For another D use `fast_slow_cut_hz`.
FAST_SLOW_CUT_HZ = 60.0


def fast_slow_cut_hz(delay_ms: float) -> float:
    """The fast/slow frequency cut for the delay D: FAST_SLOW_CUT_HZ x REFERENCE_DELAY_MS / D.

    The fast branch's frequency scales as ~1/(4D) (its Hopf modes: 253-275 Hz at D = 1 ms,
    161-193 Hz at 1.5 ms, 70-100 Hz at 3 ms), the slow branch's stays at ~1/tau_m
    (11-30 Hz at each of these D), so a cut that follows 1/D stays in the gap for
    D = 1-3 ms (90, 60 and 30 Hz); docs/regimes.md, "Other delays".

    Parameters
    ----------
    delay_ms : float
        The synaptic delay D [ms], > 0.

    Returns
    -------
    float
        The cut [Hz].
    """
    return FAST_SLOW_CUT_HZ * REFERENCE_DELAY_MS / delay_ms


#: A network firing below this mean rate is silent: the simulation's label "silent"
#: (hpc_brunel.analysis.regimes) and the theory's quiescent state "Q" (hpc_brunel.theory.stability).
SILENT_RATE_HZ = 0.1


def default_transient_ms(t_sim_ms: float) -> float:
    """The start-up transient that a study discards from a run of `t_sim_ms`:
    100 ms, or a third of a shorter run.

    Parameters
    ----------
    t_sim_ms : float
        Simulated model time of the run [ms].

    Returns
    -------
    float
        The transient [ms].
    """
    return min(100.0, t_sim_ms / 3)
