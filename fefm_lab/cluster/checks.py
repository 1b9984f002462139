"""Checks before a sweep launches: what its jobs need to see is visible where they run.

Jobs that run on other machines (a Ray cluster joined by address, Slurm) need a tracking store
they can all write to (an MLflow tracking server, `fefm-lab server`) and paths on storage every
node sees. Local-only settings are refused here, before anything starts, with what to set
instead; a relative `paths.root_dir` is made absolute for launchers whose jobs run in another
working directory (Ray workers start in the Ray node's directory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from fefm_lab.cluster.launchers import LauncherPlacement
from fefm_lab.errors import ConfigError
from fefm_lab.tracking.server import is_loopback_host
from fefm_lab.uris import masked_uri

SERVER_HINT = (
    "start a tracking server every node can reach (`fefm-lab server "
    "server.backend_store_uri=postgresql://USER@DBHOST/DB server.host=0.0.0.0`) and set "
    "mlflow.tracking_uri=http://SERVER_HOST:PORT (README: Running on a cluster)"
)


def root_dir_override(root_dir: str, placement: LauncherPlacement) -> list[str]:
    """`paths.root_dir=<absolute>` when it is relative and jobs run in another directory."""
    if not placement.other_working_directory or os.path.isabs(os.path.expanduser(root_dir)):
        return []
    return [f"paths.root_dir={os.path.abspath(os.path.expanduser(root_dir))}"]


def _local_only_tracking(uri: str, placement: LauncherPlacement) -> str | None:
    """Why jobs on other machines cannot use this tracking URI, or None if they can."""
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme in ("", "file"):
        return "a local directory (a file store)"
    if scheme == "sqlite":
        path = uri[len("sqlite:///") :]
        kind = "an absolute" if path.startswith("/") else "a relative"
        return f"{kind} SQLite file (one machine's database: many machines cannot share it safely)"
    host = parts.hostname
    if host and is_loopback_host(host) and not placement.loopback_cluster:
        return f"on {host}, which on every other machine is that machine itself"
    return None


def check_tracking_for_launcher(tracking_uri: str, placement: LauncherPlacement) -> None:
    """Refuse a tracking store that jobs on other machines cannot write to."""
    if not placement.other_machines:
        return
    why = _local_only_tracking(tracking_uri, placement)
    if why is not None:
        raise ConfigError(
            f"mlflow.tracking_uri={masked_uri(tracking_uri)} is {why}, and hydra/launcher="
            f"{placement.name} runs jobs on other machines; {SERVER_HINT}"
        )


def check_paths_for_launcher(resolved: Mapping[str, Any], placement: LauncherPlacement) -> None:
    """Refuse relative paths (`paths.*`, `dataset.path`) for jobs that run in another working
    directory: each job would resolve them against its own."""
    if not placement.other_working_directory:
        return
    paths = {f"paths.{key}": value for key, value in (resolved.get("paths") or {}).items()}
    paths["dataset.path"] = (resolved.get("dataset") or {}).get("path")
    for key, value in paths.items():
        if isinstance(value, str) and not os.path.isabs(os.path.expanduser(value)):
            raise ConfigError(
                f"{key}={value} is relative, and hydra/launcher={placement.name} runs "
                "jobs in another working directory; give an absolute path"
                + (" on storage every node sees" if placement.other_machines else "")
            )


def check_launch(resolved: Mapping[str, Any], placement: LauncherPlacement) -> None:
    """All checks of a sweep's shared settings (tracking settings and paths are the same for
    every job of a sweep)."""
    check_tracking_for_launcher(resolved["mlflow"]["tracking_uri"], placement)
    check_paths_for_launcher(resolved, placement)
