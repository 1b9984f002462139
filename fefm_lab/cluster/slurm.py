"""Which hosts a Slurm cluster spans, as its own client commands report them.

A workstation or laptop Slurm (controller and every node on this machine) is a valid place for a
sweep with a tracking server on 127.0.0.1: every job runs here. `scontrol` (it reads the
configuration named by SLURM_CONF, else /etc/slurm/slurm.conf) gives the controllers' addresses
(`SlurmctldHost[i] = NAME(ADDR)`) and the nodes' (`NodeAddr=`). No answer (no Slurm here, no
controller reachable) gives no hosts: the caller then assumes other machines.
"""

from __future__ import annotations

import re
import shutil
import subprocess

_CONTROLLER = re.compile(r"^SlurmctldHost\[\d+\]\s*=\s*([^\s(]+)(?:\(([^)]+)\))?", re.MULTILINE)
_NODE_ADDRESS = re.compile(r"\bNodeAddr=(\S+)")


def _scontrol(*arguments: str) -> str | None:
    if shutil.which("scontrol") is None:
        return None
    try:
        result = subprocess.run(
            ["scontrol", *arguments], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def controller_hosts(show_config: str) -> list[str]:
    """Each controller's address (its name where no address is given) in `scontrol show
    config`'s text."""
    return [address or name for name, address in _CONTROLLER.findall(show_config)]


def node_addresses(show_nodes: str) -> list[str]:
    """Every node's NodeAddr in `scontrol -o show nodes`'s text."""
    return _NODE_ADDRESS.findall(show_nodes)


def slurm_hosts() -> tuple[str, ...]:
    """The addresses of the Slurm controllers and nodes this machine's client commands talk to;
    empty when Slurm cannot be asked (or lists no node: its nodes are unknown)."""
    config = _scontrol("show", "config")
    nodes = _scontrol("-o", "show", "nodes")
    if not config or not nodes:
        return ()
    controllers, addresses = controller_hosts(config), node_addresses(nodes)
    if not controllers or not addresses:
        return ()
    return tuple(dict.fromkeys([*controllers, *addresses]))


# Job states after which a job runs no more (squeue's long names). A requeued job passes through
# REQUEUED / PENDING and runs again: not final.
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
        "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT",
    }
)  # fmt: skip


def parse_queue(text: str) -> dict[str, str]:
    """`squeue -h -r -o '%i %T'` lines -> {job id: state} (array tasks as ID_INDEX)."""
    states = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


def queue_states(job_ids: list[str]) -> dict[str, str] | None:
    """The controller's state of each listed job it still knows (jobs it forgot after
    MinJobAge are absent); None when squeue cannot answer."""
    if not job_ids:
        return {}
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    try:
        result = subprocess.run(
            ["squeue", "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(arrays)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        # a job list the controller no longer knows at all is an answer too: every job is gone
        return {} if "Invalid job id" in result.stderr else None
    known = parse_queue(result.stdout)
    return {job_id: known[job_id] for job_id in job_ids if job_id in known}


def cancel_jobs(job_ids: list[str]) -> str:
    """`scancel` the jobs; scancel's complaint, if any ("" when it accepted them)."""
    if not job_ids:
        return ""
    try:
        result = subprocess.run(["scancel", *job_ids], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return result.stderr.strip() if result.returncode != 0 else ""
