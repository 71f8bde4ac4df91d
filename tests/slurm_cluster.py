"""A real SLURM on this machine for the jobscript tests: one node, or several.

munged, slurmctld and slurmd on localhost with a generated slurm.conf passed
through SLURM_CONF; no systemd, no cgroups. Installs Debian's slurm-wlm and munge
when root and they are missing. Daemons are torn down by PID.

With nodes=N > 1, N slurmd daemons (`slurmd -N n1`, `-N n2`, ...) run on
localhost, each on its own Port with one CPU, so that a job spans "nodes" the
way a cluster job does (srun -N 2 puts MPI rank 0 on n1 and rank 1 on n2). Each
slurmd reads its own slurm.conf, differing only in TmpFS (PMIx's per-step
directory would otherwise collide), with DebugFlags=NO_CONF_HASH so that the
daemons accept the difference. Both fake nodes share the real cores and
task/affinity pins their tasks to the same one: take no timings there.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")


class SlurmUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_packages() -> None:
    if shutil.which("slurmctld") and shutil.which("munged"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable("slurm-wlm/munge not installed and cannot install them (not root or no apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    proc = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SlurmUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: {proc.stderr[-500:]}")


class SlurmCluster:
    def __init__(self, workdir: Path, nodes: int = 1):
        self.dir = Path(workdir)
        self.conf = self.dir / "slurm.conf"
        self.nodes = nodes
        self.node_names = ["localhost"] if nodes == 1 else [f"n{i + 1}" for i in range(nodes)]
        self.pids: dict[str, int] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- bring-up -------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> "SlurmCluster":
        ensure_packages()
        if os.geteuid() != 0:
            raise SlurmUnavailable("starting slurmd needs root")
        for sub in ("state", "spool", "munge"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._start_munge()
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        fields = dict(kv.split("=", 1) for kv in node.split() if "=" in kv)
        cpus, mem = fields.get("CPUs", "1"), fields.get("RealMemory", "1000")
        d = self.dir
        common = f"""\
ClusterName=hpcbrunel
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.socket
StateSaveLocation={d}/state
SlurmctldPidFile={d}/slurmctld.pid
SlurmctldLogFile={d}/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=pmix
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
"""
        if self.nodes == 1:
            self.conf.write_text(common + f"""\
SlurmdPort={_free_port()}
SlurmdSpoolDir={d}/spool
SlurmdPidFile={d}/slurmd.pid
SlurmdLogFile={d}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")
            slurmd_confs = {"localhost": self.conf}
        else:
            mem_per_node = max(100, int(mem) // self.nodes)
            nodes = "".join(f"NodeName={n} NodeAddr=127.0.0.1 Port={_free_port()} CPUs=1 RealMemory={mem_per_node} "
                            "State=UNKNOWN\n" for n in self.node_names)
            multi = common + f"""\
DebugFlags=NO_CONF_HASH
SlurmdSpoolDir={d}/spool/%n
SlurmdPidFile={d}/slurmd-%n.pid
SlurmdLogFile={d}/slurmd-%n.log
{nodes}PartitionName=debug Nodes={",".join(self.node_names)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""
            self.conf.write_text(multi + f"TmpFS={d}/tmp/ctld\n")
            slurmd_confs = {}
            for n in self.node_names:
                (d / "tmp" / n).mkdir(parents=True, exist_ok=True)
                (d / "spool" / n).mkdir(parents=True, exist_ok=True)
                slurmd_confs[n] = d / f"slurm-{n}.conf"
                slurmd_confs[n].write_text(multi + f"TmpFS={d}/tmp/{n}\n")
            (d / "tmp" / "ctld").mkdir(parents=True, exist_ok=True)
        subprocess.run(["slurmctld", "-c", "-i"], env=self.env, check=True, capture_output=True)
        self.pids["slurmctld"] = self._read_pid(d / "slurmctld.pid")
        for n, conf in slurmd_confs.items():
            argv = ["slurmd", "-c"] + ([] if self.nodes == 1 else ["-N", n])
            subprocess.run(argv, env={**self.env, "SLURM_CONF": str(conf)}, check=True, capture_output=True)
            pidfile = d / "slurmd.pid" if self.nodes == 1 else d / f"slurmd-{n}.pid"
            self.pids[f"slurmd-{n}"] = self._read_pid(pidfile)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True,
                                 text=True).stdout.split()
            if len(out) == self.nodes and all(st in ("idle", "mixed", "allocated") for st in out):
                return self
            time.sleep(0.3)
        self.stop()
        raise SlurmUnavailable(f"nodes did not come up in {timeout_s} s; see {d}/slurmctld.log and slurmd*.log")

    def _start_munge(self) -> None:
        key = self.dir / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o400)
        sock = self.dir / "munge" / "munge.socket"
        pidfile = self.dir / "munge" / "munged.pid"
        subprocess.run(["munged", "--force", f"--key-file={key}", f"--socket={sock}", f"--pid-file={pidfile}",
                        f"--log-file={self.dir / 'munge' / 'munged.log'}", f"--seed-file={self.dir / 'munge' / 'seed'}"],
                       check=True, capture_output=True)
        self.pids["munged"] = self._read_pid(pidfile)

    @staticmethod
    def _read_pid(path: Path, timeout_s: float = 10.0) -> int:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            try:
                return int(path.read_text().strip())
            except (OSError, ValueError):
                time.sleep(0.1)
        raise SlurmUnavailable(f"no pid file {path}")

    # -- use --------------------------------------------------------------------
    def run(self, *cmd, timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env={**self.env, **kw.pop("env", {})}, capture_output=True, text=True,
                              timeout=timeout, check=check, **kw)

    def wait_for_jobs(self, job_ids: list[str], timeout_s: float = 600.0) -> dict[str, str]:
        """Poll until none of the jobs is pending or running; returns {id: final state}.
        A job that pends forever (e.g. more CPUs than the node has) hits the timeout."""
        t0 = time.monotonic()
        active_states = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}
        while True:
            states = {}
            for j in job_ids:  # completed jobs stay visible for MinJobAge seconds
                out = self.run("scontrol", "show", "job", j, check=False).stdout
                states[j] = next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "UNKNOWN")
                if "Reason=DependencyNeverSatisfied" in out:  # would pend forever
                    self.run("scancel", j, check=False)
                    states[j] = "DEPENDENCY_NEVER_SATISFIED"
            if not any(st in active_states for st in states.values()):
                return states
            if time.monotonic() - t0 > timeout_s:
                self.run("scancel", *job_ids, check=False)
                raise TimeoutError(f"jobs still active after {timeout_s} s: {states}")
            time.sleep(0.5)

    def job_field(self, job: str, key: str) -> str:
        """A field of `scontrol show job` (e.g. EndTime)."""
        out = self.run("scontrol", "show", "job", job).stdout
        return next(w.split("=", 1)[1] for w in out.split() if w.startswith(f"{key}="))

    def chain_on_all_nodes(self, monkeypatch, venv: str, workdir: str, run_dir: Path, run_args: list[str], **kw):
        """Submit the run -> analyze chain (hpc_brunel's submit_chain) with one rank on each
        node, jobs activating `venv`; returns (run job, analyze job)."""
        from hpc_brunel.cluster.jobscript import Cluster, submit_chain

        monkeypatch.setenv("SLURM_CONF", self.env["SLURM_CONF"])
        c = Cluster(venv=venv, workdir=workdir, nodes=self.nodes, ntasks_per_node=1, cpus_per_task=1,
                    **{"time_limit": "00:10:00", **kw})
        return submit_chain(c, run_dir, run_args)

    # -- tear-down --------------------------------------------------------------
    def kill_wait_s(self) -> float:
        out = self.run("scontrol", "show", "config").stdout
        return float(next(ln.split("=")[1].split()[0] for ln in out.splitlines() if ln.startswith("KillWait")))

    def stop(self) -> None:
        for name in [k for k in self.pids if k.startswith("slurmd")] + ["slurmctld", "munged"]:
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def chain_logs(run_dir: Path) -> str:
    """The job logs of a chain that submit_chain wrote (<run dir>.jobs/*.out), in order."""
    return "\n".join(p.read_text() for p in sorted((run_dir.parent / f"{run_dir.name}.jobs").glob("*.out")))


def running_cluster(workdir: Path, nodes: int = 1):
    """Generator for a module-scoped pytest fixture: a started cluster, stopped
    afterwards. Where SLURM cannot start: a skip, or a failure when
    HPC_BRUNEL_REQUIRE_SLURM=1 (CI)."""
    import pytest

    cluster = SlurmCluster(workdir, nodes=nodes)
    try:
        cluster.start()
    except (SlurmUnavailable, OSError) as e:
        if os.environ.get("HPC_BRUNEL_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM is required here but could not be started: {e}")
        pytest.skip(f"no SLURM: {e}")
    print(f"\n[slurm] {nodes}-node SLURM up: {' '.join(cluster.run('sinfo', '-h', '-N').stdout.split())}")
    try:
        yield cluster
    finally:
        cluster.stop()
