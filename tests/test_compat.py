"""The flat layout's import paths (hpc_brunel.stats, hpc_brunel.meanfield, ...) keep
working for one release, with a DeprecationWarning naming the new place; the
documented API (hpc_brunel.load_run, Run, Spikes) is unchanged."""
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize("old, new", [("hpc_brunel.stats", "hpc_brunel.analysis.stats"),
                                      ("hpc_brunel.meanfield", "hpc_brunel.theory.meanfield"),
                                      ("hpc_brunel.gather", "hpc_brunel.analysis.gather"),
                                      ("hpc_brunel.jobscript", "hpc_brunel.cluster.jobscript")])
def test_old_module_path_is_the_new_module_with_a_warning(old, new):
    code = (f"import warnings, importlib\n"
            f"with warnings.catch_warnings(record=True) as w:\n"
            f"    warnings.simplefilter('always')\n"
            f"    old = importlib.import_module({old!r})\n"
            f"print(old is importlib.import_module({new!r}))\n"
            f"print([str(x.message) for x in w if issubclass(x.category, DeprecationWarning)])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    same, warned = out.splitlines()
    assert same == "True"
    assert f"{old} moved to {new}" in warned


def test_from_import_of_a_moved_name_and_the_public_api():
    code = ("import warnings; warnings.simplefilter('ignore')\n"
            "from hpc_brunel.meanfield import MeanFieldParams\n"
            "from hpc_brunel.theory.meanfield import MeanFieldParams as M\n"
            "import hpc_brunel\n"
            "from hpc_brunel.analysis.results import load_run, Run, Spikes\n"
            "print(MeanFieldParams is M, hpc_brunel.load_run is load_run, hpc_brunel.Run is Run, "
            "hpc_brunel.Spikes is Spikes)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True"] * 4


def test_importing_the_package_warns_about_nothing_and_loads_no_layer():
    code = ("import sys, warnings; warnings.simplefilter('error')\n"
            "import hpc_brunel\n"
            "print(sorted(m for m in sys.modules if m.startswith('hpc_brunel.')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['hpc_brunel._compat', 'hpc_brunel._version']"
