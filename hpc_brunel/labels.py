"""The registry of regime labels: name, colour, plot order and the name linear
stability gives the same state. The label rule (hpc_brunel.analysis.regimes),
the theory (hpc_brunel.theory.stability), the sweep's table and the plots all
read this one list; a new label is added here."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    """One regime label.

    name: as the analysis writes it (analysis.json "regime"); theory_name: the
    label `stability.theory_label` gives the same state (None: theory has none);
    color: in the phase diagram; description: one line for tables and legends;
    preset: the name of Brunel's Fig. 8 example in `config.PRESETS`, if any.
    """

    name: str
    theory_name: str | None
    color: str
    description: str
    preset: str | None = None  # the config preset (--regime NAME) of Brunel's Fig. 8 example of this state


UNDETERMINED = "undetermined"

#: In plot and table order.
LABELS = (
    Label("SR", "SR", "#d62728", "synchronous regular", preset="sr"),
    Label("SI-fast", "SI-fast", "#ff7f0e", "synchronous irregular, fast oscillation", preset="si-fast"),
    Label("AI", "AI", "#2ca02c", "asynchronous irregular", preset="ai"),
    Label("SI-slow", "SI-slow", "#1f77b4", "synchronous irregular, slow oscillation", preset="si-slow"),
    Label("silent", "Q", "#bbbbbb", "silent (theory: the quiescent state Q)"),
    Label(UNDETERMINED, None, "#ffffff", "the data cannot support a label"),
)
BY_NAME = {lab.name: lab for lab in LABELS}

#: The labels the analysis can decide (all but "undetermined"), in order.
REGIMES = tuple(lab.name for lab in LABELS if lab.name != UNDETERMINED)
#: The labels linear stability gives, in order.
THEORY_LABELS = tuple(lab.theory_name for lab in LABELS if lab.theory_name)
#: theory label -> the simulated label that agrees with it.
SIM_FOR_THEORY = {lab.theory_name: lab.name for lab in LABELS if lab.theory_name}
#: label -> colour.
COLORS = {lab.name: lab.color for lab in LABELS}
