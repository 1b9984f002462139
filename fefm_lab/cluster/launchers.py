"""Where a Hydra launcher runs the jobs: in this process, in other local processes, or on
other machines. What a sweep may use (tracking store, paths) depends on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fefm_lab.cluster.slurm import slurm_hosts
from fefm_lab.tracking.server import is_loopback_host

# Ray addresses that mean "start or find a cluster on this machine", not a remote head.
_LOCAL_RAY_ADDRESSES = (None, "", "local")


@dataclass(frozen=True)
class LauncherPlacement:
    """name: the launcher (basic, joblib, ray, submitit_local, submitit_slurm, or its class).
    other_working_directory: jobs run in processes that may not share our working directory
    (relative paths would point elsewhere).
    other_machines: jobs may run on another machine (a Ray cluster joined by address, Slurm).
    cluster_hosts: the hosts the cluster spans, where known: the Ray head's when joining by
    address, Slurm's controllers and nodes (empty otherwise)."""

    name: str
    other_working_directory: bool
    other_machines: bool
    cluster_hosts: tuple[str, ...] = ()

    @property
    def loopback_cluster(self) -> bool:
        """Every known host of the cluster is a loopback address: every node is this machine
        (a Ray head on 127.0.0.1, a workstation's one-node Slurm)."""
        return bool(self.cluster_hosts) and all(map(is_loopback_host, self.cluster_hosts))


def _ray_host(address: Any) -> str | None:
    if address in _LOCAL_RAY_ADDRESSES or address == "auto":
        return None
    text = str(address).removeprefix("ray://")
    host, _, _port = text.rpartition(":")
    return (host or text).strip("[]")


def launcher_placement(launcher: Mapping[str, Any]) -> LauncherPlacement:
    """Read the composed `hydra.launcher` node."""
    target = str(launcher.get("_target_", ""))
    cls = target.rsplit(".", 1)[-1]
    if "hydra_ray_launcher" in target or "fefm_lab_launchers.ray" in target:
        address = (launcher.get("ray") or {}).get("init", {}).get("address")
        # "auto" joins the cluster this machine's `ray start` belongs to: it may span machines.
        remote = address not in _LOCAL_RAY_ADDRESSES
        host = _ray_host(address)
        return LauncherPlacement("ray", True, remote, (host,) if host else ())
    if "hydra_submitit_launcher" in target or "fefm_lab_launchers.slurm" in target:
        if cls == "LocalLauncher":
            return LauncherPlacement("submitit_local", True, False)
        return LauncherPlacement("submitit_slurm", True, True, slurm_hosts())
    if "joblib" in target:
        return LauncherPlacement("joblib", False, False)  # forked workers keep our directory
    if cls == "BasicLauncher":
        return LauncherPlacement("basic", False, False)
    # An unknown launcher plugin: assume the worst (other machines), so nothing local is trusted.
    return LauncherPlacement(cls or "unknown", True, True)
