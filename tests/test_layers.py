"""The layers contract (pyproject.toml [tool.importlinter], ARCHITECTURE.md): no
module imports one of a layer above its own, checked by import-linter; and the
check catches a deliberate upward import, naming it."""
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pythonpath)})


def test_the_package_keeps_its_layers():
    proc = lint_imports(ROOT, ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 1 kept, 0 broken." in proc.stdout


def test_an_upward_import_breaks_the_contract_and_is_named(tmp_path):
    """A copy of the package in which the simulation layer imports the analysis
    layer inside a function (the way run orchestration once did) fails the check."""
    shutil.copytree(ROOT / "hpc_brunel", tmp_path / "hpc_brunel", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    kernel = tmp_path / "hpc_brunel" / "simulation" / "kernel.py"
    kernel.write_text(kernel.read_text() + "\n\ndef _upward():\n    from hpc_brunel.analysis import stats  # noqa\n")
    proc = lint_imports(tmp_path, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BROKEN" in proc.stdout
    assert "hpc_brunel.simulation.kernel -> hpc_brunel.analysis.stats" in proc.stdout, proc.stdout
