"""The registry of regime labels (hpc_brunel.labels) is the one list the label
rule, the theory, the sweep's table and the plots read: consistent with itself,
with the config presets and with what the rule and the theory can return."""
import numpy as np
import pytest

from hpc_brunel import labels
from hpc_brunel.analysis import regimes
from hpc_brunel.config import PRESETS, RunConfig, apply_regime
from hpc_brunel.theory import stability


def test_registry_is_consistent():
    names = [lab.name for lab in labels.LABELS]
    assert len(set(names)) == len(names) and labels.UNDETERMINED in names
    assert len({lab.color for lab in labels.LABELS}) == len(names)
    assert labels.REGIMES == tuple(n for n in names if n != labels.UNDETERMINED)
    assert set(labels.SIM_FOR_THEORY.values()) <= set(labels.REGIMES)
    assert labels.SIM_FOR_THEORY["Q"] == "silent"  # the simulation's "silent" is theory's quiescent state


def test_every_preset_has_its_label_and_the_other_way_round():
    presets = {lab.preset: lab.name for lab in labels.LABELS if lab.preset}
    assert set(presets) == set(PRESETS)
    assert {name.lower() for name in presets.values()} == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_theory_labels_are_in_the_registry(preset):
    label = stability.theory_label(stability.MeanFieldParams.from_config(apply_regime(RunConfig(), preset)))
    assert label in labels.THEORY_LABELS
    assert labels.SIM_FOR_THEORY[label] == next(lab.name for lab in labels.LABELS if lab.preset == preset)


def test_the_rule_returns_only_registered_labels():
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(50):
        net = {"n_neurons": int(rng.integers(1, 2000)), "rate_mean_hz": float(rng.choice([0.0, 0.05, 5.0, 300.0])),
               "n_spikes": int(rng.integers(0, 10**6)), "cv_isi_mean": float(rng.uniform(0, 1.5)),
               "cv_isi_n_neurons": int(rng.integers(0, 2000)), "synchrony_rho": float(rng.uniform(0, 1)),
               "synchrony_rho_se": float(rng.uniform(0, 0.1)), "synchrony_rho_10ms": float(rng.uniform(0, 1)),
               "synchrony_rho_10ms_se": float(rng.uniform(0, 0.1)), "psd_peak_hz": float(rng.uniform(0, 300))}
        lab = regimes.classify(net, float(rng.choice([100.0, 300.0, 1000.0])))
        assert lab.label in labels.BY_NAME and lab.best_guess in labels.BY_NAME
        seen.add(lab.label)
    assert len(seen) >= 3  # the inputs reach several branches of the rule
