"""The run directory: resolved config, provenance record with status, a lock, and
the per-rank spike files. Only rank 0 calls the functions that write here
(except the rank files); the CLI broadcasts their outcome.

  <run>/config.toml     resolved configuration, enough to rerun exactly
  <run>/run.json        provenance + status (running -> complete | failed | terminated)
  <run>/run.lock        held (fcntl lock) by rank 0 while the run is running
  <run>/rank_NNNNN.h5   per-rank spikes and metadata (see recording.py)
  <run>/checkpoint.json, checkpoints/   the newest complete checkpoint (see checkpoint.py):
                        what `run --continue` starts from
  <run>/failure_rank_NNNNN.json   written by a rank that hit an unexpected error
                        (phase, exception, traceback, model time reached), just
                        before it aborted the job; that rank also marks run.json
                        'failed' (the one write to run.json not made by rank 0)
  <run>/spikes.h5, analysis.json, report.md, *.png   written by `analyze`
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import time
import traceback
from pathlib import Path

from hpc_brunel.constants import (
    ANALYSIS_JSON,
    CHECKPOINT_JSON,
    CHECKPOINTS_DIR,
    CONFIG_TOML,
    FIGURES,
    LOCK_FILE,
    REPORT_MD,
    RUN_JSON,
    SPIKES_FILE,
)
from hpc_brunel.errors import RunDirError

RUN_LAYOUT_VERSION = 1
# Files this package writes into a run directory; --overwrite removes these only.
OWN_FILES = (RUN_JSON, CHECKPOINT_JSON, CONFIG_TOML, SPIKES_FILE, ANALYSIS_JSON, REPORT_MD, *FIGURES)


def now_iso() -> str:
    """The current local time in ISO 8601 with its UTC offset, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def default_run_dir(base: str | Path = "runs") -> Path:
    """A new run directory path under `base`: brunel-YYYYmmdd-HHMMSS, with -2, -3, ... if it exists."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"brunel-{stamp}"
    k = 1
    while path.exists():
        k += 1
        path = Path(base) / f"brunel-{stamp}-{k}"
    return path


def read_run_json(run_dir: Path) -> dict:
    """The run record (run.json) of a run directory; FileNotFoundError without one."""
    with open(Path(run_dir) / RUN_JSON) as f:
        return json.load(f)


def write_json_atomic(path: Path, record: dict) -> None:
    """Atomic replace: a reader never sees a half-written record (the temporary
    name is per process: two ranks may write at once)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2, sort_keys=False, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_run_json(run_dir: Path, record: dict) -> None:
    """Write the run record to run.json atomically (see `write_json_atomic`)."""
    write_json_atomic(Path(run_dir) / RUN_JSON, record)


def update_run_json(run_dir: Path, **changes) -> dict:
    """Set some fields of run.json (read, update, atomic write); returns the new record."""
    record = read_run_json(run_dir)
    record.update(changes)
    write_run_json(run_dir, record)
    return record


# lockf() errors that mean "this file system has no POSIX locks" (NFS without
# lockd, Lustre mounted without flock/localflock, some FUSE file systems).
NO_LOCKS_ERRNOS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}

log = logging.getLogger("hpc_brunel")


def _holder(path: Path) -> tuple[str, int | None, str]:
    """(host, pid, text) of the process named in a lock file."""
    try:
        text = path.read_text().strip()
    except OSError:
        return "", None, ""
    fields = dict(kv.split("=", 1) for kv in text.split() if "=" in kv)
    try:
        pid = int(fields.get("pid", ""))
    except ValueError:
        pid = None
    return fields.get("host", ""), pid, text


def _holder_alive(path: Path) -> bool | None:
    """Without file locks: is the process named in the lock file alive? None: it
    runs on another host, so this host cannot tell."""
    host, pid, _ = _holder(path)
    if pid is None:
        return False
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An fcntl lock on <run>/run.lock, held by rank 0 for the whole run. The
    kernel drops it when the holder dies, so a crashed run leaves no stale lock;
    the file keeps who held it, for the error message.

    On a file system without POSIX locks (lockf fails with ENOLCK/ENOSYS/
    EOPNOTSUPP) the run neither crashes nor waits: it says so once, writes its
    host and pid into run.lock and treats a lock file whose process is alive on
    this host (or runs on another host, which cannot be checked) as held.
    `mode` says which of the two was used; it goes into run.json."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self.mode = "fcntl"

    def _in_use(self, holder: str, why: str = "") -> RunDirError:
        return RunDirError(
            f"run directory {self.path.parent} is in use by another run ({holder or 'unknown process'}){why}; "
            "wait for it to finish or choose another --run-dir"
        )

    def acquire(self) -> None:
        """Take the lock, or raise RunDirError (one line) when another run holds it or
        run.lock cannot be opened; without POSIX locks, fall back to host and pid."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise RunDirError(f"--run-dir {self.path.parent}: cannot open {self.path.name} for writing "
                                  f"({e.strerror}); is it another user's run or a read-only file system?") from None
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EACCES, errno.EAGAIN):
                    raise self._in_use(_holder(self.path)[2]) from None
                if e.errno in NO_LOCKS_ERRNOS:
                    self._acquire_without_locks(e)
                    return
                raise
            # The previous holder unlinks run.lock before it lets go of it: if the
            # name now points elsewhere (or nowhere), we locked a file that is gone.
            try:
                st, here = os.fstat(fd), os.stat(self.path)
                same = (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._write_holder(fd)
        self._fd = fd

    def _write_holder(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.write(fd, f"host={socket.gethostname()} pid={os.getpid()} since={now_iso()}\n".encode())
        os.fsync(fd)

    def _acquire_without_locks(self, err: OSError) -> None:
        alive = _holder_alive(self.path)
        if alive or alive is None:
            host, _, text = _holder(self.path)
            why = (" (file locks are unavailable here, so its pid was checked: it is alive)" if alive else
                   f" (file locks are unavailable here and it ran on host {host}, which this host cannot check; "
                   f"if no run is using the directory, delete {self.path})")
            raise self._in_use(text, why)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._write_holder(fd)
        self._fd = fd
        name = errno.errorcode.get(err.errno, str(err.errno))
        self.mode = (f"none ({name}: {err.strerror}): file locks are unavailable on this file system; "
                     "run.lock holds the host and pid, which are checked instead")
        log.warning("run directory %s: file locks are unavailable (%s); a second run into it is detected by "
                    "the host and pid in %s instead", self.path.parent, name, self.path.name)

    def release(self) -> None:
        """Remove run.lock and drop the lock (nothing if not held)."""
        if self._fd is not None:
            # Unlink while still holding the lock, then close: nobody can take
            # the lock on the old file in between and think they hold the run.
            try:
                self.path.unlink()
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def is_held(run_dir: Path) -> bool | None:
        """Whether a live process holds the run's lock. None: cannot tell (no file
        locks here, and the holder ran on another host)."""
        path = Path(run_dir) / LOCK_FILE
        if not path.exists():
            return False
        try:  # read-only and a shared lock: works on another user's run and on a read-only mount
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError:
            return None
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in NO_LOCKS_ERRNOS:
                return _holder_alive(path)
            return True if e.errno in (errno.EACCES, errno.EAGAIN) else None
        finally:
            os.close(fd)
        return False


# --- failure records ---------------------------------------------------------------
FAILURE_PREFIX = "failure_rank_"


def failure_file_name(rank: int) -> str:
    """The file name of a rank's failure record, e.g. failure_rank_00003.json."""
    return f"{FAILURE_PREFIX}{rank:05d}.json"


def record_failure(run_dir: Path, *, rank: int, num_ranks: int, phase: str, exc: BaseException,
                   t_model_reached_ms: float | None) -> dict:
    """Called on the failing rank just before it aborts the job: write its
    failure record, then mark run.json 'failed' (an error in the analysis that
    follows a complete run is recorded as 'analysis_failure' instead)."""
    run_dir = Path(run_dir)
    failure = {
        "rank": rank,
        "num_ranks": num_ranks,
        "phase": phase,
        "exception": type(exc).__name__,
        "message": str(exc),
        "t_model_reached_ms": t_model_reached_ms,
        "host": socket.gethostname(),
        "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),  # SLURM's name for the node
        "pid": os.getpid(),
        "time": now_iso(),
        "unix_time": time.time(),
        "traceback": "".join(traceback.format_exception(exc))[-20000:],
    }
    write_json_atomic(run_dir / failure_file_name(rank), failure)
    summary = {k: v for k, v in failure.items() if k != "traceback"}
    record = read_run_json(run_dir)
    if phase == "analyze" and record.get("status") == "complete":
        record["analysis_failure"] = summary
    else:
        record.update(status="failed", ended=now_iso(), failure=summary)
    write_run_json(run_dir, record)
    return failure


def read_failures(run_dir: Path) -> list[dict]:
    """The failure records of a run (one per rank that failed), by rank."""
    out = []
    for p in sorted(Path(run_dir).glob(f"{FAILURE_PREFIX}*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(out, key=lambda f: f.get("rank", 0))


def describe_failure(f: dict) -> str:
    """One line: which rank, which phase, what, how far."""
    t = f.get("t_model_reached_ms")
    at = f" at model time {t:.1f} ms" if isinstance(t, (int, float)) else ""
    return (f"rank {f.get('rank')} failed in phase '{f.get('phase')}'{at} on {f.get('node') or f.get('host', '?')}: "
            f"{f.get('exception')}: {f.get('message')}")


def prepare(run_dir: Path, *, overwrite: bool, needed_bytes=0) -> RunLock:
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
        if RunLock.is_held(run_dir) is not False:
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
        shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
        for p in run_dir.iterdir():
            if (p.name in OWN_FILES or (p.name.startswith("rank_") and p.suffix == ".h5")
                    or (p.name.startswith(FAILURE_PREFIX) and p.suffix == ".json")):
                p.unlink()
    return lock


def check_free_space(where: Path, needed_bytes, run_dir: Path) -> None:
    """Refuse when the file system has less free space than the run needs.
    `needed_bytes` is a number, or a callable that gets the free bytes and
    returns the need (so that a costly estimate is made only when space is short)."""
    free = shutil.disk_usage(where).free
    needed = needed_bytes(free) if callable(needed_bytes) else needed_bytes
    if free < needed:
        raise RunDirError(
            f"--run-dir {run_dir}: only {free / 1e6:.1f} MB free, this run needs about "
            f"{needed / 1e6:.1f} MB for its spike files"
        )
