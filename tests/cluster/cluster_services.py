"""Real services for the cluster tests: a network namespace with only loopback, PostgreSQL,
`fefm-lab server`, and a two-node Ray cluster. Every process they start is ended by `stop`.

Ray on Linux binds the machine's outward interface whatever `--node-ip-address` says (ray issue
26293), so the tests run their services and sweeps inside a network namespace of their own where
only loopback exists: there Ray, PostgreSQL and the MLflow server all use 127.0.0.1, and no port
can clash with anyone else's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.local_ui import free_port  # probes the caller's network namespace


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _postgres_bin()
CLONE_NEWNET = 0x40000000
VENV_BIN = Path(sys.executable).parent


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    """Poll `check()` until it returns a truthy value; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- network namespace


def namespace_problem() -> str | None:
    """Why this machine cannot give the tests a network namespace (None if it can)."""
    if os.geteuid() != 0:
        return "creating a network namespace needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


class LoopbackNamespace:
    """A network namespace with only `lo` up, entered by the calling thread (and so inherited by
    every process it starts) until `leave()`."""

    def __init__(self) -> None:
        self.name = f"fefm-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._home: int | None = None

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {self.name} failed")

    def enter(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(
            ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"], check=True
        )
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
        try:
            self._setns(target)
        finally:
            os.close(target)

    def leave(self) -> None:
        if self._home is not None:
            self._setns(self._home)
            os.close(self._home)
            self._home = None
        subprocess.run(["ip", "netns", "del", self.name], check=False)


# ---------------------------------------------------------------- processes


def _session_processes(session_id: int) -> list[int]:
    """Pids in the given session (processes started with start_new_session=True and their
    children, unless one made a session of its own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session_id:  # fields after the name: state ppid pgrp session ...
            pids.append(int(entry.name))
    return pids


def end_session(process: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM a process started with start_new_session=True and everything in its session,
    then SIGKILL whatever is left after `grace` seconds."""
    session = process.pid
    for pid in _session_processes(session):
        with _ignore_gone():
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    deadline = time.monotonic() + 5
    while _session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in _session_processes(session):
        with _ignore_gone():
            os.kill(pid, signal.SIGKILL)
    with _ignore_gone():
        process.wait(timeout=5)


class _ignore_gone:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, trace):
        return kind in (ProcessLookupError, ChildProcessError, subprocess.TimeoutExpired)


# ---------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust authentication, user postgres)."""

    directory: Path
    port: int

    def uri(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        _as_postgres([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), name])
        return self.uri(name)

    def stop(self) -> None:
        _as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "stop"],
            check=False,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def postgres_problem() -> str | None:
    if not (PG_BIN / "initdb").is_file():
        return "PostgreSQL is not installed (/usr/lib/postgresql/*/bin); .ci/run installs it"
    if os.geteuid() != 0:
        return "starting PostgreSQL as the postgres user needs root"
    return None


def _as_postgres(command: list[str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        check=check,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_postgres() -> Postgres:
    directory = Path(tempfile.mkdtemp(prefix="fefm-test-pg-"))
    shutil.chown(directory, "postgres", "postgres")
    port = free_port()
    data = directory / "data"
    _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"])
    _as_postgres(
        [
            str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(directory / "server.log"), "-w",
            "-o", f"-h 127.0.0.1 -p {port} -k {directory}", "start",
        ]
    )  # fmt: skip
    return Postgres(directory, port)


# ---------------------------------------------------------------- fefm-lab server


@dataclass
class TrackingServer:
    process: subprocess.Popen
    uri: str
    log: Path

    def stop(self) -> None:
        end_session(self.process)


def start_tracking_server(backend_uri: str, root: Path, port: int | None = None) -> TrackingServer:
    """`fefm-lab server` on `port` (a free one if None), healthy when this returns."""
    port = port or free_port()
    log = root / "server.log"
    with log.open("a") as output:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "fefm-lab"), "server", f"paths.root_dir={root}",
                f"server.backend_store_uri={backend_uri}", f"server.port={port}",
                f"server.artifacts_destination={root}/server-artifacts",
            ],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = TrackingServer(process, f"http://127.0.0.1:{port}", log)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"fefm-lab server exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    try:
        wait_until(healthy, 300, "the tracking server's /health")  # minutes on a loaded machine
    except BaseException:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------- Ray


@dataclass
class RayCluster:
    """`ray start --head` on 127.0.0.1 plus worker nodes joining it by address."""

    address: str
    temp_dir: Path
    nodes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            end_session(node)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def job_worker_pids(self) -> list[int]:
        """Pids of Ray workers running a fefm-lab job (process title ray::_run_in_worker)."""
        pids = []
        for node in self.nodes:
            for pid in _session_processes(node.pid):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if title.startswith(b"ray::_run_in_worker"):
                    pids.append(pid)
        return pids


def _ray_command(*arguments: str) -> list[str]:
    return [
        str(VENV_BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1",
        "--num-cpus=1", "--disable-usage-stats", *arguments,
    ]  # fmt: skip


def alive_ray_nodes(address: str) -> int:
    probe = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    lines = result.stdout.strip().splitlines()
    return int(lines[-1]) if result.returncode == 0 and lines else 0


def start_ray_cluster(nodes: int, root: Path) -> RayCluster:
    port = free_port()
    temp_dir = Path(tempfile.mkdtemp(prefix="fefm-test-ray-"))
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir)
    logs = root / "ray-logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        head = [
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
        ]
        for number in range(nodes):
            arguments = head if number == 0 else [f"--address={cluster.address}"]
            with (logs / f"node{number}.log").open("w") as output:
                cluster.nodes.append(
                    subprocess.Popen(
                        _ray_command(*arguments),
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        cwd=root,
                    )
                )
            if number == 0:
                wait_until(lambda: alive_ray_nodes(cluster.address) >= 1, 180, "the Ray head")
        wait_until(lambda: alive_ray_nodes(cluster.address) >= nodes, 180, f"{nodes} Ray nodes")
    except BaseException:
        cluster.stop()
        raise
    return cluster


# ---------------------------------------------------------------- Slurm

SLURM_DAEMONS = ("munged", "slurmctld", "slurmd")
# How long a requeued job stays held before the tests release it (see `release_requeued`).
REQUEUE_RELEASE_S = 2.0


def slurm_problem() -> str | None:
    """Why the tests cannot start a one-node Slurm here (None if they can)."""
    missing = [d for d in SLURM_DAEMONS if shutil.which(d, path="/usr/sbin:/usr/bin") is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing); .ci/run installs it"
    if shutil.which("sbatch") is None or not Path("/etc/munge/munge.key").is_file():
        return "Slurm's client commands or /etc/munge/munge.key are missing; .ci/run installs them"
    if os.geteuid() != 0:
        return "starting munged as the munge user and slurmd needs root"
    return None


SLURM_CONF = """\
ClusterName=fefmtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
CommunicationParameters=EnableIPv6
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait={kill_wait}
OverTimeLimit=0
JobRequeue=1
DefMemPerCPU=1024
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """munged (as munge), slurmctld and slurmd of a one-node cluster on 127.0.0.1, everything
    in a temp dir; `env` is what client commands and the launcher need (SLURM_CONF)."""

    root: Path
    conf: Path
    daemons: list[subprocess.Popen] = field(default_factory=list)
    held_since: dict[str, float] = field(default_factory=dict)  # requeued job -> first seen held

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def command(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm client command (scontrol, squeue, scancel, ...) against this cluster."""
        result = subprocess.run(
            list(arguments), env=self.env, capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(arguments)}: exit {result.returncode}: {result.stderr}"
            )
        return result

    def jobs(self) -> dict[str, str]:
        """Job id -> state, of every job the controller still knows."""
        out = self.command("squeue", "-h", "-r", "-o", "%i %T", check=False).stdout
        return dict(line.split(None, 1) for line in out.splitlines() if line.strip())

    def release_requeued(self) -> None:
        """Let requeued jobs start soon: Slurm holds a requeued job back for its credential's
        lifetime (BeginTime), which only makes the tests wait. Not at once: slurmd refuses a
        start whose credential is from the second its previous one was revoked in ("Killing
        non-startable batch job: Job credential revoked", the job then ends FAILED), so a job
        is released once it has been held for REQUEUE_RELEASE_S."""
        out = self.command("squeue", "-h", "-r", "-t", "PD", "-o", "%i %r", check=False).stdout
        now = time.monotonic()
        for line in out.splitlines():
            job_id, _, reason = line.partition(" ")
            if reason.strip() != "BeginTime":
                continue
            if now - self.held_since.setdefault(job_id, now) >= REQUEUE_RELEASE_S:
                del self.held_since[job_id]
                self.command("scontrol", "update", f"JobId={job_id}", "StartTime=now", check=False)

    def job_processes(self) -> list[int]:
        """Pids of the processes of this cluster's jobs (slurmstepd and what it runs): their
        environment names our SLURM_CONF (sbatch passes the submitter's on) and a job."""
        marker = f"SLURM_CONF={self.conf}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            in_job = any(v.startswith(b"SLURM_JOB_ID=") for v in environ)
            if marker in environ and (in_job or command.startswith(b"slurmstepd")):
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        """Cancel every job, stop the daemons, end anything a job left, remove the temp dir."""
        if self.daemons and self.daemons[-1].poll() is None:
            self.command("scancel", "--full", "--quiet", "--user=root", check=False)
            with contextlib.suppress(AssertionError):
                wait_until(lambda: not self.jobs(), 60, "Slurm's jobs to end")
        for daemon in reversed(self.daemons):
            end_session(daemon)
        for pid in self.job_processes():
            with _ignore_gone():
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def start_slurm(cpus: int = 2, memory_mb: int = 4096, kill_wait_s: int = 30) -> SlurmCluster:
    """A one-node Slurm on 127.0.0.1 (call inside the tests' loopback namespace)."""
    root = Path(tempfile.mkdtemp(prefix="fefm-test-slurm-"))
    root.chmod(0o755)  # munged (as munge) enters it to reach its own folder
    munge = root / "munge"
    munge.mkdir()
    munge.chmod(0o755)  # munged wants its socket folder searchable by all (clients)
    shutil.chown(munge, "munge", "munge")
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            root=root, munge_socket=munge / "munge.socket", ctld_port=free_port(),
            slurmd_port=free_port(), cpus=cpus, memory_mb=memory_mb, kill_wait=kill_wait_s,
        )
    )  # fmt: skip
    (root / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n")
    cluster = SlurmCluster(root, conf)
    env = cluster.env
    commands = [
        [
            "runuser", "-u", "munge", "--", "/usr/sbin/munged", "--foreground",
            f"--socket={munge}/munge.socket", f"--pid-file={munge}/munged.pid",
            f"--log-file={munge}/munged.log", f"--seed-file={munge}/munged.seed",
        ],
        ["/usr/sbin/slurmctld", "-D", "-i", "-f", str(conf)],
        ["/usr/sbin/slurmd", "-D", "-N", "localhost", "-f", str(conf)],
    ]  # fmt: skip
    try:
        for name, command in zip(SLURM_DAEMONS, commands, strict=True):
            with (root / f"{name}.out").open("w") as output:
                cluster.daemons.append(
                    subprocess.Popen(
                        command, env=env, stdout=output, stderr=subprocess.STDOUT,
                        start_new_session=True, cwd=root,
                    )
                )  # fmt: skip
            if name == "munged":
                wait_until((munge / "munge.socket").exists, 30, "munged's socket")

        def node_idle() -> bool:
            for daemon, name in zip(cluster.daemons, SLURM_DAEMONS, strict=True):
                if daemon.poll() is not None:
                    log = (
                        (root / f"{name}.log").read_text()
                        if (root / f"{name}.log").exists()
                        else ""
                    )
                    out = (root / f"{name}.out").read_text()
                    raise AssertionError(f"{name} exited:\n{out}\n{log[-3000:]}")
            state = cluster.command("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
            return state == "idle"

        wait_until(node_idle, 90, "the Slurm node to be idle")
    except BaseException:
        cluster.stop()
        raise
    return cluster
