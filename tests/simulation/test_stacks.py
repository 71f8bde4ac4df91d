"""The pieces that let hpc_brunel run on stacks we did not build (issue 21), without NEST
or MPI: which MPI libraries a process has loaded, NEST's build options and verbosity on
releases without `nest.build_info` / `nest.VerbosityLevel`, and the one-line notes for a
NEST without our patch or without detailed timers."""
import types

from hpc_brunel.simulation import kernel, provenance
from hpc_brunel.simulation.parallel import library_family, loaded_mpi_libraries, mixed_mpi_libraries

MAPS = """\
7f00-7f01 r--p 00000000 fd:01 1 /usr/lib/x86_64-linux-gnu/{a}
7f01-7f02 r-xp 00001000 fd:01 1 /usr/lib/x86_64-linux-gnu/{a}
7f02-7f03 r--p 00000000 fd:01 2 /usr/lib/x86_64-linux-gnu/{b}
7f03-7f04 rw-p 00000000 00:00 0
7f04-7f05 r--p 00000000 fd:01 3 /usr/lib/x86_64-linux-gnu/libhdf5_serial.so.103.3.0
7ffd-7ffe rw-p 00000000 00:00 0                          [stack]
"""


def maps(tmp_path, a, b):
    p = tmp_path / "maps"
    p.write_text(MAPS.format(a=a, b=b))
    return str(p)


def test_one_mpi_with_its_cxx_bindings_is_not_mixed(tmp_path):
    m = maps(tmp_path, "libmpi.so.40.30.4", "libmpi_cxx.so.40.30.1")
    assert loaded_mpi_libraries(m) == ["/usr/lib/x86_64-linux-gnu/libmpi.so.40.30.4"]
    assert mixed_mpi_libraries(m) is None


def test_open_mpi_and_mpich_in_one_process_is_one_line(tmp_path):
    m = maps(tmp_path, "libmpi.so.40.30.4", "libmpich.so.12.2.0")
    line = mixed_mpi_libraries(m)
    assert line and "\n" not in line
    assert "libmpi.so.40.30.4" in line and "libmpich.so.12.2.0" in line and "make setup MPI=mpich" in line


def test_intel_and_cray_library_names_count_as_mpi(tmp_path):
    assert len(loaded_mpi_libraries(maps(tmp_path, "libmpi.so.12", "libmpi_cray.so.12"))) == 2
    assert loaded_mpi_libraries(maps(tmp_path, "libmpifort.so.12", "libmpi_usempif08.so.40")) == []


def test_library_family():
    assert library_family("Open MPI v4.1.4, package: Debian OpenMPI") == "openmpi"
    assert library_family("MPICH Version:      4.0.2") == "mpich"
    assert library_family("Intel(R) MPI Library 2021.10 for Linux* OS") == "mpich"
    assert library_family(None) is None


def fake_nest_39(statusdict):
    """A NEST <= 3.9 as far as these helpers see it: SLI's statusdict, set_verbosity."""
    calls = []

    def sli_func(cmd):
        key = cmd.split("/")[1].split()[0]
        if key not in statusdict:
            raise KeyError(key)
        return statusdict[key]

    return types.SimpleNamespace(
        __version__="3.9.0", ll_api=types.SimpleNamespace(sli_func=sli_func),
        set_verbosity=lambda level: calls.append(level), get_verbosity=lambda: 20, calls=calls)


def test_build_info_of_a_release_without_it_comes_from_the_statusdict():
    nest = fake_nest_39({"have_mpi": True, "threading": "openmp", "version": "3.9.0"})
    info = kernel.nest_build_info(nest)
    assert info == {"have_mpi": True, "threading": "openmp", "version": "3.9.0"}
    assert kernel.nest_have_mpi(nest) is True
    assert kernel.nest_have_mpi(fake_nest_39({"have_mpi": False})) is False


def test_verbosity_on_both_apis():
    old = fake_nest_39({})
    kernel.set_verbosity(old, "WARNING")
    kernel.set_verbosity(old, kernel.get_verbosity(old))
    assert old.calls == ["M_WARNING", 20]

    levels = types.SimpleNamespace(INFO=10, WARNING=30, ERROR=40)  # NEST 3.10: an IntEnum
    new = types.SimpleNamespace(VerbosityLevel=levels, verbosity=10, build_info={"have_mpi": True})
    was = kernel.get_verbosity(new)
    kernel.set_verbosity(new, "ERROR")
    assert new.verbosity == 40
    kernel.set_verbosity(new, was)
    assert new.verbosity == 10


TIMERS_DETAILED = {"time_simulate": 1.0, "time_update": 0.5, "time_deliver_spike_data": 0.3}
TIMERS_PLAIN = {"time_simulate": 1.0, "time_construction_connect": 2.0}


def test_our_build_has_no_limitations():
    v = {"nest_build_options": "nest=3.10.0 patches=0001-blockvector-first-block-grows:f3146ba0187f timers=ON"}
    assert provenance.nest_limitations(v, TIMERS_DETAILED, "static_synapse") == []


def test_a_module_nest_says_what_it_lacks_in_one_line_each():
    lines = provenance.nest_limitations({}, TIMERS_PLAIN, "static_synapse")
    assert len(lines) == 2 and all("\n" not in ln for ln in lines)
    assert lines[0].startswith("NEST not patched") and "~32 KiB more per recorded neuron" in lines[0]
    assert lines[1].startswith("NEST built without detailed timers") and "empty" in lines[1]
    unpatched = provenance.nest_limitations({"nest_build_options": "nest=3.10.0 patches=none"}, TIMERS_DETAILED,
                                            "static_synapse_hom_w_hpc")
    assert unpatched == [unpatched[0]] and "NEST_PATCHES=none" in unpatched[0] and "~8 KiB" in unpatched[0]
