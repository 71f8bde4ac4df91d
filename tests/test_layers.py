"""The layers contract (pyproject.toml [tool.importlinter], ARCHITECTURE.md): no
module imports one of a layer above its own, and the analysis and the theory
import neither NEST nor mpi4py; checked by import-linter, which catches a
deliberate upward import (naming it) and a deliberate MPI import; and every
module of the package belongs to a layer."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pythonpath)})


def test_the_package_keeps_its_contracts():
    proc = lint_imports(ROOT, ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


@pytest.mark.parametrize("module, added, expected", [
    # the simulation layer importing the analysis layer inside a function (as run orchestration once did)
    ("simulation/kernel.py", "from hpc_brunel.analysis import stats", "hpc_brunel.simulation.kernel -> "
                                                                       "hpc_brunel.analysis.stats"),
    # the analysis reaching MPI
    ("analysis/gather.py", "import mpi4py", "hpc_brunel.analysis.gather -> mpi4py"),
])
def test_a_forbidden_import_breaks_a_contract_and_is_named(tmp_path, module, added, expected):
    shutil.copytree(ROOT / "hpc_brunel", tmp_path / "hpc_brunel", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "hpc_brunel" / module
    path.write_text(path.read_text() + f"\n\ndef _forbidden():\n    {added}  # noqa\n")
    proc = lint_imports(tmp_path, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BROKEN" in proc.stdout
    assert expected in proc.stdout, proc.stdout


def test_every_module_belongs_to_a_layer():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    modules = ["hpc_brunel." + ".".join(p.relative_to(ROOT / "hpc_brunel").with_suffix("").parts)
               for p in (ROOT / "hpc_brunel").rglob("*.py") if p.name != "__init__.py"]
    outside = [m for m in modules if not any(m == n or m.startswith(n + ".") for n in named)]
    assert not outside, f"modules in no layer of pyproject.toml: {outside}"
