"""List the public functions, classes and methods of hpc_brunel without a docstring.

A name is public when neither it nor its class starts with "_" (dunder methods
are not counted). Exit status 1 when any is missing; tests/test_docstrings.py
runs it."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def missing(package: Path = ROOT / "hpc_brunel") -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path

        def visit(node, prefix=""):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = child.name
                    if name.startswith("_"):
                        continue
                    if ast.get_docstring(child) is None:
                        out.append(f"{rel}:{child.lineno}: {prefix}{name}")
                    if isinstance(child, ast.ClassDef):
                        visit(child, prefix=f"{name}.")

        visit(tree)
    return out


if __name__ == "__main__":
    rows = missing()
    print("\n".join(rows))
    print(f"{len(rows)} public functions/classes without a docstring", file=sys.stderr)
    sys.exit(1 if rows else 0)
