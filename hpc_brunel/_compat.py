"""Deprecated import paths of the flat layout (hpc_brunel 0.1 before the layers):
`import hpc_brunel.stats` still works for one release, with a DeprecationWarning,
and gives the module at its new place (`hpc_brunel.analysis.stats`)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module name -> new module name
MOVED = {
    **{f"hpc_brunel.{m}": f"hpc_brunel.simulation.{m}"
       for m in ("parallel", "kernel", "network", "recording", "rundir", "provenance", "run", "synthetic")},
    **{f"hpc_brunel.{m}": f"hpc_brunel.analysis.{m}"
       for m in ("gather", "stats", "stream_stats", "regimes", "analyze", "results", "plots")},
    **{f"hpc_brunel.{m}": f"hpc_brunel.theory.{m}" for m in ("meanfield", "stability")},
    **{f"hpc_brunel.{m}": f"hpc_brunel.studies.{m}" for m in ("scaling", "scaling_plots", "plan", "sweep")},
    "hpc_brunel.jobscript": "hpc_brunel.cluster.jobscript",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.new}; the old name goes away in the next release",
                      DeprecationWarning, stacklevel=3)
        return importlib.import_module(self.new)

    def exec_module(self, module):
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new)) if new else None


def install_aliases() -> None:
    """Make the old flat module names importable (idempotent)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
