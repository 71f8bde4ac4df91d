"""The run directory: resolved config, provenance record with status, a lock, and
the per-rank spike files. Only rank 0 calls the functions that write here
(except the rank files); the CLI broadcasts their outcome.

  <run>/config.toml     resolved configuration, enough to rerun exactly
  <run>/run.json        provenance + status (running -> complete | failed | terminated)
  <run>/run.lock        held (fcntl lock) by rank 0 while the run is running
  <run>/rank_NNNNN.h5   per-rank spikes and metadata (see recording.py)
  <run>/spikes.h5, analysis.json, report.md, *.png   written by `analyze`
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import shutil
import socket
from pathlib import Path

from .config import ConfigError

RUN_LAYOUT_VERSION = 1
RUN_JSON = "run.json"
CONFIG_TOML = "config.toml"
LOCK = "run.lock"
# Files this package writes into a run directory; --overwrite removes these only.
OWN_FILES = (RUN_JSON, CONFIG_TOML, "spikes.h5", "analysis.json", "report.md", "raster.png",
             "distributions.png", "spectrum.png")


class RunDirError(ConfigError):
    """The run directory cannot be used as asked (exit status 2)."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def default_run_dir(base: str | Path = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"brunel-{stamp}"
    k = 1
    while path.exists():
        k += 1
        path = Path(base) / f"brunel-{stamp}-{k}"
    return path


def read_run_json(run_dir: Path) -> dict:
    with open(Path(run_dir) / RUN_JSON) as f:
        return json.load(f)


def write_run_json(run_dir: Path, record: dict) -> None:
    """Atomic replace: a reader never sees a half-written record."""
    path = Path(run_dir) / RUN_JSON
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2, sort_keys=False, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def update_run_json(run_dir: Path, **changes) -> dict:
    record = read_run_json(run_dir)
    record.update(changes)
    write_run_json(run_dir, record)
    return record


class RunLock:
    """An fcntl lock on <run>/run.lock, held by rank 0 for the whole run. The
    kernel drops it when the holder dies, so a crashed run leaves no stale lock;
    the file keeps who held it, for the error message."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EACCES, errno.EAGAIN):
                holder = self.path.read_text().strip() or "unknown process"
                raise RunDirError(
                    f"run directory {self.path.parent} is in use by another run ({holder}); "
                    "wait for it to finish or choose another --run-dir"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"host={socket.gethostname()} pid={os.getpid()} since={now_iso()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            try:
                self.path.unlink()
            except OSError:
                pass

    @staticmethod
    def is_held(run_dir: Path) -> bool:
        path = Path(run_dir) / LOCK
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False


def prepare(run_dir: Path, *, overwrite: bool, needed_bytes: int = 0) -> RunLock:
    """Check that `run_dir` may be written, lock it, and clear our own files
    from an earlier run if --overwrite allows. Raises RunDirError, having
    created or removed nothing, when it may not."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--run-dir {run_dir}: exists and is not a directory")
    existing = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if existing:
        if RUN_JSON not in existing:
            raise RunDirError(
                f"--run-dir {run_dir}: directory is not empty and is not an hpc_brunel run; "
                "refusing to write into it (choose a new or empty directory)"
            )
        try:
            old = read_run_json(run_dir)
        except (OSError, json.JSONDecodeError) as e:
            raise RunDirError(f"--run-dir {run_dir}: unreadable {RUN_JSON} ({e}); refusing to touch it") from None
        if old.get("layout_version") != RUN_LAYOUT_VERSION:
            raise RunDirError(
                f"--run-dir {run_dir}: run directory of layout_version {old.get('layout_version')!r}, "
                f"this hpc_brunel writes layout_version {RUN_LAYOUT_VERSION}; choose another --run-dir"
            )
        if RunLock.is_held(run_dir):
            RunLock(run_dir).acquire()  # raises with the holder's description
        if not overwrite:
            status = old.get("status", "unknown")
            what = ("an interrupted run (status 'running' but no process holds its lock: it was killed; "
                    "'analyze --partial' reads what it flushed)" if status == "running" else f"a {status} run")
            raise RunDirError(f"--run-dir {run_dir}: holds {what}; pass --overwrite to replace it, "
                              "or choose another --run-dir")
    existing_ancestor = run_dir
    while not existing_ancestor.exists() and existing_ancestor != existing_ancestor.parent:
        existing_ancestor = existing_ancestor.parent
    if existing_ancestor.is_dir():
        check_free_space(existing_ancestor, needed_bytes, run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"--run-dir {run_dir}: not writable ({e.strerror})") from None
    lock = RunLock(run_dir)
    lock.acquire()
    if existing:
        for p in run_dir.iterdir():
            if p.name in OWN_FILES or (p.name.startswith("rank_") and p.suffix == ".h5"):
                p.unlink()
    return lock


def check_free_space(where: Path, needed_bytes: int, run_dir: Path) -> None:
    free = shutil.disk_usage(where).free
    if free < needed_bytes:
        raise RunDirError(
            f"--run-dir {run_dir}: only {free / 1e6:.1f} MB free, this run needs about "
            f"{needed_bytes / 1e6:.1f} MB for its spike files"
        )
