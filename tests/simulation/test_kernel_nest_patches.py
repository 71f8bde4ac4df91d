"""The patches tools/setup-env.sh applies to NEST (tools/nest-patches): the C++ check of
the patched BlockVector can fail, the NEST in this venv was built with the repository's
patches, and the patch does what it is for (a neuron -> spike_recorder connection no
longer costs a 1,024-connection block)."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT

PATCH_DIR = ROOT / "tools" / "nest-patches"
PATCHES = sorted(PATCH_DIR.glob("*.patch"))
OPTIONS = Path(sys.prefix) / "nest-build-options.txt"  # written by tools/setup-env.sh
CACHE = Path(os.environ.get("HPC_BRUNEL_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                            / "hpc_brunel"))


def patch_ids() -> str:
    return " ".join(f"{p.stem}:{hashlib.sha256(p.read_bytes()).hexdigest()[:12]}" for p in PATCHES)


def build_patches() -> str | None:
    """The patches= field of this venv's NEST build key, or None (not built by our set-up)."""
    if not OPTIONS.exists():
        return None
    m = re.search(r"patches=(.*?) py=", OPTIONS.read_text())
    return m.group(1) if m else "none"  # a key from before patches existed


def test_this_venvs_nest_was_built_with_the_repositorys_patches():
    got = build_patches()
    if got is None:
        pytest.skip(f"{OPTIONS} missing: NEST not built by tools/setup-env.sh (a cluster module?)")
    if got == "none" and os.environ.get("NEST_PATCHES") == "none":
        pytest.skip("NEST_PATCHES=none: an unpatched build was asked for")
    assert got == patch_ids(), f"NEST built with patches {got!r}, the repository has {patch_ids()!r}: make setup"


@pytest.fixture(scope="module")
def block_vector_sources(tmp_path_factory):
    """libnestutil/block_vector.h from the NEST sdist the set-up downloaded, unpatched."""
    sdists = sorted((CACHE / "sdist").glob("nest_simulator-*.tar.gz"))
    if not sdists or shutil.which("g++") is None:
        pytest.skip(f"no NEST sdist in {CACHE / 'sdist'} (NEST not built by tools/setup-env.sh) or no g++")
    base = tmp_path_factory.mktemp("bv")
    with tarfile.open(sdists[-1]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("libnestutil/block_vector.h"))
        member.name = "libnestutil/block_vector.h"
        tar.extract(member, base)
    return base


def sanitizer_flags(tmp_path: Path) -> list[str]:
    """AddressSanitizer + UBSan where the compiler has them (as tools/setup-env.sh does)."""
    flags = ["-fsanitize=address,undefined"]
    probe = subprocess.run(["g++", "-x", "c++", *flags, "-o", str(tmp_path / "san-probe"), "-"],
                           input="int main(){}", text=True, capture_output=True, timeout=120)
    return flags if probe.returncode == 0 else []


def compile_and_check(src_root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Without a sanitizer the check still fails on a broken BlockVector (its own
    comparisons against std::vector)."""
    exe = tmp_path / "check"
    subprocess.run(["g++", "-std=c++17", "-O1", "-g", *sanitizer_flags(tmp_path), f"-I{PATCH_DIR}",
                    f"-I{src_root / 'libnestutil'}", str(PATCH_DIR / "test_block_vector.cpp"), "-o", str(exe)],
                   check=True, capture_output=True, timeout=300)
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})


def apply(src_root: Path, patch: Path) -> None:
    subprocess.run(["patch", "-s", "-p1", "-d", str(src_root)], input=patch.read_bytes(), check=True, timeout=60)


@pytest.mark.slow
def test_the_block_vector_check_passes_patched_and_fails_on_a_broken_patch(block_vector_sources, tmp_path):
    orig = block_vector_sources / "libnestutil" / "block_vector.h"
    patched = tmp_path / "patched"
    (patched / "libnestutil").mkdir(parents=True)
    shutil.copy(orig, patched / "libnestutil")
    for p in PATCHES:
        apply(patched, p)
    ok = compile_and_check(patched, tmp_path)
    assert ok.returncode == 0 and "ok" in ok.stdout, ok.stderr[-2000:]
    # the same patch without rebuilding finish_ after the first block grows: caught
    broken = tmp_path / "broken"
    (broken / "libnestutil").mkdir(parents=True)
    text = (patched / "libnestutil" / "block_vector.h").read_text()
    assert "    finish_ += element_index;\n" in text
    (broken / "libnestutil" / "block_vector.h").write_text(text.replace("    finish_ += element_index;\n", ""))
    bad = compile_and_check(broken, tmp_path)
    assert bad.returncode != 0, "a broken BlockVector passed the check"


RECORDER_COST = r"""
import os, sys
os.environ["PYNEST_QUIET"] = "1"
import nest
nest.set_verbosity("M_ERROR")
def rss_kib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
n = int(sys.argv[1])
neurons = nest.Create("iaf_psc_delta", n)
rec = nest.Create("spike_recorder")
before = rss_kib()
nest.Connect(neurons, rec, syn_spec={"synapse_model": "static_synapse"})
print((rss_kib() - before) / 1024)
"""


@pytest.mark.slow
def test_recording_a_neuron_no_longer_costs_a_block_of_1024_connections():
    """10,000 neuron -> spike_recorder connections through static_synapse (32 B each):
    unpatched NEST 3.10 allocates a first block of 1,024 per neuron, ~312 MiB; patched ~1 %."""
    got = build_patches()
    if got is None:
        pytest.skip("NEST not built by tools/setup-env.sh: whether it is patched is unknown")
    out = subprocess.run([sys.executable, "-c", RECORDER_COST, "10000"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    mib = float(out.stdout.split()[-1])
    if "blockvector-first-block-grows" in got:
        assert mib < 30, f"{mib:.0f} MiB for 10,000 recorder connections with the patch"
    else:  # documents what an unpatched NEST costs (tools/nest-patches/README.md)
        assert mib > 200, f"{mib:.0f} MiB for 10,000 recorder connections without the patch"
