"""Every public function, class and method of hpc_brunel has a docstring
(tools/check_docstrings.py lists those that have none)."""
import subprocess
import sys

from conftest import ROOT


def test_every_public_function_has_a_docstring():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "check_docstrings.py")], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, "public names without a docstring:\n" + proc.stdout


def test_the_checker_finds_a_missing_docstring(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import check_docstrings
    finally:
        sys.path.pop(0)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text('def documented():\n    """Yes."""\n\n\ndef bare():\n    pass\n\n\n'
                              'class C:\n    """C."""\n\n    def method(self):\n        pass\n\n'
                              '    def _private(self):\n        pass\n')
    rows = check_docstrings.missing(pkg)
    assert [r.split(": ")[-1] for r in rows] == ["bare", "C.method"]
