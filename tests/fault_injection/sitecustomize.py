"""Test-only fault injection for real multi-rank runs (never imported by the package).

The tests put this directory first on PYTHONPATH, so every rank imports it at
start-up. HPC_BRUNEL_TEST_FAULT=TARGET:RANK[:CALL][,TARGET:RANK[:CALL]...] makes
the given rank raise in the given place, the CALL-th time it gets there (default:
the first):

  open_rank_file  OSError from RankSpikeWriter.__init__  (cannot create the rank file)
  append_chunk    OSError from RankSpikeWriter.append_chunk (a chunk write fails mid-run)
  provenance      RuntimeError from provenance.versions (rank 0, preparing the run directory)
  analyze         RuntimeError from analyze.compute_streaming (the analysis after a complete run)
  check_nest      NestSetupError from kernel.check_nest (this rank's NEST disagrees)
  hook_interrupt  KeyboardInterrupt from rundir.record_failure (a 2nd Ctrl-C while the
                  failure is being recorded)
  write_checkpoint  OSError from checkpoint.write_rank_file after half of the file is
                  written (the job dies while a checkpoint is being written)

The rank is read from the launcher's variables, as hpc_brunel itself does.
"""
import os

_spec = os.environ.get("HPC_BRUNEL_TEST_FAULT", "")


def _install(spec: str) -> None:
    target, rank, *call = spec.split(":")
    nth = int(call[0]) if call else 1
    from hpc_brunel.simulation.parallel import launcher_rank

    if launcher_rank() != int(rank):
        return
    calls = {"n": 0}

    def due() -> bool:
        calls["n"] += 1
        return calls["n"] == nth

    if target in ("open_rank_file", "append_chunk"):
        import errno

        from hpc_brunel.simulation import recording

        cls = recording.RankSpikeWriter
        name = "__init__" if target == "open_rank_file" else "append_chunk"
        original = getattr(cls, name)

        def faulty(self, *a, **kw):
            if due():
                raise OSError(errno.EDQUOT, f"Disk quota exceeded (injected fault: {spec})")
            return original(self, *a, **kw)

        setattr(cls, name, faulty)
    elif target == "write_checkpoint":
        import errno

        from hpc_brunel.simulation import checkpoint

        original = checkpoint.write_rank_file

        def faulty(path, *a, **kw):
            if due():
                with open(path, "wb") as f:  # a half-written file, as a killed writer leaves it
                    f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
                raise OSError(errno.EDQUOT, f"Disk quota exceeded (injected fault: {spec})")
            return original(path, *a, **kw)

        checkpoint.write_rank_file = faulty
    elif target in ("provenance", "analyze", "check_nest", "hook_interrupt"):
        import importlib

        module, func, error = {
            "provenance": ("hpc_brunel.simulation.provenance", "versions", RuntimeError),
            "analyze": ("hpc_brunel.analysis.analyze", "compute_streaming", RuntimeError),
            "check_nest": ("hpc_brunel.simulation.kernel", "check_nest", None),
            "hook_interrupt": ("hpc_brunel.simulation.rundir", "record_failure", KeyboardInterrupt),
        }[target]
        mod = importlib.import_module(module)
        error = error or mod.NestSetupError
        original = getattr(mod, func)

        def faulty(*a, **kw):
            if due():
                raise error(f"injected fault: {spec}")
            return original(*a, **kw)

        setattr(mod, func, faulty)
    else:
        raise ValueError(f"HPC_BRUNEL_TEST_FAULT={spec}: unknown target {target!r}")


for _one in filter(None, _spec.split(",")):
    _install(_one)
