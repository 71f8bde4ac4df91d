"""The command line: help on every option, one meaning per option name, no
abbreviations, --regime precedence (pure Python, subprocesses without NEST)."""
import argparse
import subprocess
import sys

import pytest
from conftest import ROOT

from hpc_brunel.cli import build_parser


def cli(*args):
    return subprocess.run([sys.executable, "-m", "hpc_brunel", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)


def all_actions(parser, path=()):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from all_actions(sp, (*path, name))
        elif not isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            yield path, a


def test_every_option_has_help_text():
    missing = [f"{' '.join(path)} {a.option_strings or a.dest}" for path, a in all_actions(build_parser())
               if not (a.help and a.help.strip())]
    assert not missing, f"options without help: {missing}"


def test_one_meaning_per_option_name():
    """An option name that is shown in --help means the same kind of value everywhere."""
    seen = {}
    for path, a in all_actions(build_parser()):
        if a.help == argparse.SUPPRESS:
            continue
        for opt in a.option_strings:
            kind = (a.type.__name__ if callable(a.type) else str(a.type), a.metavar, a.nargs, type(a).__name__)
            seen.setdefault(opt, {})[path] = kind
    for opt in ("--g", "--eta"):
        kinds = set(seen[opt].values())
        assert len(kinds) == 1 and "float" in next(iter(kinds))[0], (opt, seen[opt])
    assert set(seen["--g-range"]) == {("sweep",)} and set(seen["--eta-range"]) == {("sweep",)}


def test_sweep_g_is_not_a_range_and_abbreviations_are_refused():
    proc = cli("sweep", "--g", "3:6:3", "--out", "/nonexistent/x")
    assert proc.returncode == 2
    assert "--g is one value" in proc.stderr and "--g-range MIN:MAX:STEP" in proc.stderr
    proc = cli("config", "--t-sim", "500")  # would have meant --t-sim-ms
    assert proc.returncode == 2 and "unrecognized arguments: --t-sim" in proc.stderr
    proc = cli("sweep", "--g-r", "1:2:1", "--collect-only", "--out", "/nonexistent/x")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_explicit_regime_wins_over_the_toml_and_conflicts_are_errors(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[network]\nrelative_inhibition = 6.0\neta = 4.0\n")
    out = cli("config", "--config", toml, "--regime", "ai")
    assert out.returncode == 0, out.stderr
    assert "relative_inhibition = 5.0" in out.stdout and "eta = 2.0" in out.stdout
    out = cli("config", "--config", toml)
    assert "relative_inhibition = 6.0" in out.stdout
    for extra, name in ((["--g", "4.5"], "--g"), (["--set", "network.eta=1.0"], "--set network.eta")):
        bad = cli("config", "--regime", "ai", *extra)
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines()[-1] == (
            f"hpc_brunel: error: --regime ai sets g and eta; {name} conflicts with it: give --regime or the "
            "values, not both")
    ok = cli("config", "--regime", "ai", "--set", "network.delay_ms=2.0")  # other keys are fine
    assert ok.returncode == 0 and "delay_ms = 2.0" in ok.stdout


@pytest.mark.parametrize("command", ["run", "config"])
def test_help_explains_the_precedence(command):
    out = cli(command, "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "configuration, later wins" in text and "--regime NAME: sets g and eta, over the values from --config" \
        in text
