"""Every command shown in the documentation runs as written.

The documentation files (README.md, ARCHITECTURE.md, BENCHMARKS.md, scaling/README.md,
jobscripts/README.md and docs/*.md) are read; every command line in their fenced code blocks
marked bash, sh, shell or console is extracted (backslash continuations joined, comments and
`# ->` output lines dropped, split on `&&`, `||`, `;` and `|`) and checked as the user would type
it from the repository root:

- ``make TARGET [VAR=...]``: ``make -n TARGET VAR=...`` exits 0, and every ``python -m hpc_brunel``
  line that make would run is accepted by the argument parser;
- ``python -m hpc_brunel ...`` (any interpreter, ``hpc-brunel``, or wrapped in mpirun/mpiexec/srun
  or in ``launch ... --``): ``hpc_brunel.cli.build_parser().parse_args(argv)`` accepts it; the
  cheap ones (``config``, ``plan``, ``jobscript run|analyze|examples``, ``scale plot``,
  ``--help``, ``--version``) are also run with this Python and must exit 0 (output directories are
  redirected under tmp_path, so the repository is never written); anything that would simulate
  (``run``, ``sweep``, ``scale strong|weak``, ``analyze``, ``launch``) is only parsed;
- ``python path/script.py ...`` / ``bash path/script.sh``: the file exists and compiles (``bash -n``
  for shell scripts); a Python script's ``--help`` exits 0 unless it imports NEST or mpi4py at
  module level (those are compiled only);
- anything else must be on ALLOWED_PROGRAMS below, with the reason; an unknown program fails, so a
  new command in the docs cannot go stale unnoticed.

Python code blocks are not executed. The relative links and images of the same files must point
at files (and headings) that exist. Nothing here skips, and nothing needs NEST or MPI.
"""
from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DOC_FILES = sorted(
    {ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "BENCHMARKS.md", ROOT / "scaling" / "README.md",
     ROOT / "jobscripts" / "README.md", *(ROOT / "docs").glob("*.md")}
)
SHELL_LANGS = {"bash", "sh", "shell", "console"}
README_MAX_LINES = 280  # issue 22: a user's guide, the detail lives in docs/; issue 19 adds three result tables

# Programs the test cannot run or check here, each with the reason it is shown in the docs.
ALLOWED_PROGRAMS = {
    "module": "environment modules on a cluster (module load NEST/3.10)",
    "sbatch": "SLURM submission; every *.sbatch file named must exist in the repository",
    "scancel": "SLURM: stop a job",
    "squeue": "SLURM: list jobs",
    "sacct": "SLURM: accounting of finished jobs",
    "export": "sets an environment variable for the commands after it",
    "cd": "changes directory (the docs assume the repository root)",
    "source": "activates a virtual environment",
    "git": "git clone / git log: needs the network or history",
    "lint-imports": "import-linter's layers contract; run by the layers test (tests/test_layers.py)",
}

# Commands that are parsed but not run although their sub-command is cheap: their input is made
# on the user's machine by an earlier command of the same block. Substring -> reason.
PARSE_ONLY = {
    "--table my_cluster/network_size.csv": "the table bench_network_size.py writes on the user's cluster",
    "--table runs/scaling-weak-<date>": "the scaling series `scale weak --slurm` writes on the user's cluster",
}

# Sub-commands that are run (cheap, no NEST, no simulation); everything else is only parsed.
RUN_COMMANDS = {"config", "plan", "jobscript", "scale"}

INTERPRETER = re.compile(r"^python(\d+(\.\d+)?)?$")
LAUNCHERS = {"mpirun", "mpiexec", "srun"}
OPERATORS = {"&&", "||", ";", "|", "&"}
REDIRECTS = {">", ">>", "<", "&>", ">&"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# --------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class Command:
    file: Path
    line: int
    text: str  # the command as it appears in the docs (continuations joined)
    argv: tuple  # tokens, environment assignments included
    stdout_redirected: bool = False

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}: {self.text}"


def code_blocks(path: Path):
    """(language, [(line number, text)]) of each fenced code block; the fence's indentation
    (a block inside a list item) is removed from its lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        body = []
        i += 1
        while i < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[i]):
            body.append((i + 1, lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i].lstrip()))
            i += 1
        i += 1  # the closing fence
        yield lang, body


def strip_comment(text: str) -> str:
    """Drop a shell comment: a # that starts a word, outside quotes."""
    quote = None
    for k, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or text[k - 1].isspace()):
            return text[:k].rstrip()
    return text.rstrip()


def logical_lines(lang: str, body):
    """(line number, text) of each command line of a shell block."""
    pending, start = "", None
    for lineno, raw in body:
        line = raw.rstrip()
        if lang == "console":
            if pending:
                line = line.lstrip("> ")
            elif line.startswith("$ "):
                line = line[2:]
            else:
                continue  # output
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue  # blank, comment, or `# ->` output
        if start is None:
            start = lineno
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, (pending + line).strip()
        pending, start = "", None
    if pending:
        yield start, pending.strip()


def split_commands(path: Path, lineno: int, text: str):
    text = strip_comment(text)
    if not text:
        return
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = ""
    try:
        tokens = list(lex)
    except ValueError as e:  # unbalanced quotes
        raise AssertionError(f"{path.relative_to(ROOT)}:{lineno}: cannot split {text!r}: {e}") from None
    current, redirected, skip_next = [], False, False
    for tok in tokens + [";"]:
        if skip_next:
            skip_next = False
            continue
        if tok in OPERATORS:
            if current:
                yield Command(path, lineno, text, tuple(current), redirected)
            current, redirected = [], False
        elif tok in REDIRECTS:
            if current and current[-1].isdigit():  # 2> file
                current.pop()
            redirected, skip_next = redirected or tok.startswith(">"), True
        else:
            current.append(tok)


def doc_commands():
    out = []
    for path in DOC_FILES:
        for lang, body in code_blocks(path):
            if lang not in SHELL_LANGS:
                continue
            for lineno, text in logical_lines(lang, body):
                out.extend(split_commands(path, lineno, text))
    return out


COMMANDS = doc_commands()


# --------------------------------------------------------------------------- checks


def fail(cmd: Command, why: str):
    pytest.fail(f"{cmd.where}\n  -> {why}", pytrace=False)


def subprocess_env() -> dict:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}


def run(argv, cmd: Command, timeout: float = 60, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(argv, check=False, cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(cmd, f"{' '.join(map(str, argv))} did not finish within {timeout} s")
    except FileNotFoundError as e:
        fail(cmd, f"cannot run {argv[0]}: {e}")
    if proc.returncode != 0:
        fail(cmd, f"{' '.join(map(str, argv))} exited {proc.returncode}\n"
                  f"stdout: {proc.stdout[-1500:]}\nstderr: {proc.stderr[-1500:]}")
    return proc


def parse_hpc_brunel(argv: list, cmd: Command):
    """The namespace build_parser() gives argv; fails with argparse's message if it refuses."""
    from hpc_brunel.cli import build_parser

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            ns = build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code in (0, None):  # --help, --version
            return None
        lines = err.getvalue().strip().splitlines() or [""]
        fail(cmd, f"python -m hpc_brunel {' '.join(argv)}: the parser refuses it (exit {e.code}): "
                  f"{lines[-1]}\n{chr(10).join(lines[:-1])}")
    if getattr(ns, "command", None) == "launch":  # the command after `--` is an hpc_brunel command too
        rest = [a for a in ns.rest if a != "--"] or ["run"]
        parse_hpc_brunel(rest, cmd)
    return ns


def relocate(value: str, tmp_path: Path, cmd: Command, must_exist: bool) -> str:
    """A copy under tmp_path of the repository path `value` (or a fresh folder there), so that
    running the command never writes into the repository."""
    src = ROOT / value
    if must_exist and not src.exists():
        fail(cmd, f"{value} does not exist in the repository")
    dst = tmp_path / "out" / Path(value).name
    if must_exist and src.is_dir():
        shutil.copytree(src, dst)
    elif must_exist:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return str(dst)


def check_hpc_brunel(argv: list, cmd: Command, tmp_path: Path):
    ns = parse_hpc_brunel(argv, cmd)
    help_or_version = any(a in ("-h", "--help", "--version") for a in argv)
    if not help_or_version:
        if ns is None or ns.command not in RUN_COMMANDS or any(k in cmd.text for k in PARSE_ONLY):
            return  # parsed only: it would simulate, or needs input made elsewhere
        if ns.command == "scale" and ns.kind != "plot":
            return
        if ns.command == "jobscript" and ns.what == "chain":
            return  # submits to SLURM
    argv = list(argv)
    if not help_or_version and ns.command in ("scale", "jobscript") and "--out" in argv:
        k = argv.index("--out") + 1
        argv[k] = relocate(argv[k], tmp_path, cmd, must_exist=ns.command == "scale")
    elif not help_or_version and ns.command == "jobscript" and ns.what == "examples":
        argv += ["--out", str(tmp_path / "jobscripts")]  # never rewrite the committed copies
    if not help_or_version and ns.command == "jobscript" and ns.what in ("run", "analyze") and ns.run_dir is None:
        argv += ["--run-dir", str(tmp_path / "run")]
    run([sys.executable, "-m", "hpc_brunel", *argv], cmd)


def check_make(argv: list, cmd: Command, tmp_path: Path):
    if shutil.which("make") is None:
        fail(cmd, "make is not installed here")
    proc = run(["make", "-n", *argv[1:]], cmd)
    for line in proc.stdout.splitlines():  # what make would run: its hpc_brunel commands must parse
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        for k in range(len(tokens) - 2):
            if INTERPRETER.match(Path(tokens[k]).name) and tokens[k + 1:k + 3] == ["-m", "hpc_brunel"]:
                parse_hpc_brunel(tokens[k + 3:], cmd)
                break


def imports_nest_at_module_level(source: str) -> bool:
    heavy = {"nest", "mpi4py"}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in heavy for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in heavy:
            return True
    return False


def check_script(path_arg: str, cmd: Command, shell: bool):
    script = ROOT / path_arg
    if not script.is_file():
        fail(cmd, f"{path_arg} does not exist in the repository")
    if shell or script.suffix == ".sh":
        run(["bash", "-n", str(script)], cmd)
        return
    source = script.read_text(encoding="utf-8")
    try:
        compile(source, str(script), "exec")
    except SyntaxError as e:
        fail(cmd, f"{path_arg} does not compile: {e}")
    if not imports_nest_at_module_level(source):  # else compiled only: --help would need NEST
        run([sys.executable, str(script), "--help"], cmd)


def check_python(argv: list, cmd: Command, tmp_path: Path):
    args = argv[1:]
    if args[:2] == ["-m", "hpc_brunel"]:
        return check_hpc_brunel(args[2:], cmd, tmp_path)
    if args and args[0].endswith(".py"):
        return check_script(args[0], cmd, shell=False)
    fail(cmd, "a python command the docs test does not know (only -m hpc_brunel and scripts are checked)")


def check(cmd: Command, tmp_path: Path):
    argv = list(cmd.argv)
    while argv and ENV_ASSIGNMENT.match(argv[0]):  # VAR=value command ...
        argv.pop(0)
    if not argv:
        return  # only assignments
    prog = Path(argv[0]).name
    if prog == "make":
        return check_make(argv, cmd, tmp_path)
    if INTERPRETER.match(prog):
        return check_python(argv, cmd, tmp_path)
    if prog == "hpc-brunel":  # the console script of pyproject.toml
        return check_hpc_brunel(argv[1:], cmd, tmp_path)
    if prog in LAUNCHERS:  # mpirun [options] python -m hpc_brunel ... / python script.py
        for k, tok in enumerate(argv[1:], start=1):
            if INTERPRETER.match(Path(tok).name) or Path(tok).name == "hpc-brunel":
                if argv[k + 1:k + 3] != ["-m", "hpc_brunel"] and Path(tok).name != "hpc-brunel":
                    return check_python(argv[k:], cmd, tmp_path)
                inner = argv[k + 3:] if Path(tok).name != "hpc-brunel" else argv[k + 1:]
                parse_hpc_brunel(inner, cmd)  # under a launcher: parsed only, never run
                return
        fail(cmd, f"{prog} launches something the docs test does not know")
    if prog in ("bash", "sh"):
        if len(argv) < 2:
            fail(cmd, "an interactive shell")
        return check_script(argv[1], cmd, shell=True)
    if "/" in argv[0] and (ROOT / argv[0]).is_file():  # scaling/strong.sh
        if not os.access(ROOT / argv[0], os.X_OK):
            fail(cmd, f"{argv[0]} is not executable")
        return check_script(argv[0], cmd, shell=argv[0].endswith(".sh"))
    if prog in ALLOWED_PROGRAMS:
        if prog == "sbatch":
            for a in argv[1:]:
                if a.endswith(".sbatch") and not (ROOT / a).is_file():
                    fail(cmd, f"{a} does not exist in the repository")
        return
    fail(cmd, f"unknown program {argv[0]!r}: show it in a form this test checks, or add it to "
              "ALLOWED_PROGRAMS in tests/docs/test_docs_commands.py with the reason")


# --------------------------------------------------------------------------- tests


def test_docs_have_commands():
    """The extraction found the documentation and its commands (an empty list would check nothing)."""
    missing = [p for p in (ROOT / "README.md", ROOT / "ARCHITECTURE.md") if not p.is_file()]
    assert not missing, f"missing documentation: {missing}"
    assert list((ROOT / "docs").glob("*.md")), "docs/ has no pages"
    files = {c.file for c in COMMANDS}
    assert ROOT / "README.md" in files, "no command found in README.md"
    assert len(COMMANDS) >= 20, f"only {len(COMMANDS)} commands found in {len(files)} files"


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"{c.file.relative_to(ROOT)}:{c.line}:{c.argv[0]}" for c in COMMANDS])
def test_documented_command(cmd: Command, tmp_path: Path):
    check(cmd, tmp_path)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set:
    seen, out, in_code = {}, set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\s*(`{3,}|~{3,})", line):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            out.add(s if n == 0 else f"{s}-{n}")
            seen[s] = n + 1
    return out


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


@pytest.mark.parametrize("path", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_links_resolve(path: Path):
    """Relative links and images point at files, and anchors at headings, that exist."""
    text, bad = path.read_text(encoding="utf-8"), []
    text = re.sub(r"^\s*(`{3,}|~{3,}).*?^\s*\1\s*$", "", text, flags=re.DOTALL | re.MULTILINE)  # not inside code blocks
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{target}: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not bad, f"{path.relative_to(ROOT)}: broken links:\n  " + "\n  ".join(bad)


def test_readme_is_a_short_guide():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, (f"README.md has {n} lines (at most {README_MAX_LINES}): move detail into a "
                                   "docs/ page and link it")
