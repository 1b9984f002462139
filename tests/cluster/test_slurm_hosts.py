"""Which hosts a Slurm cluster spans (from its client commands' text), and what follows for a
sweep's tracking server: a one-node Slurm on this machine accepts one on 127.0.0.1."""

from __future__ import annotations

import pytest

from fefm_lab.cluster.checks import check_launch
from fefm_lab.cluster.launchers import LauncherPlacement
from fefm_lab.cluster.slurm import controller_hosts, node_addresses, parse_queue
from fefm_lab.config.compose import resolved_config
from fefm_lab.errors import ConfigError

# as Slurm 22.05's `scontrol show config` and `scontrol -o show nodes` print them
SHOW_CONFIG = """\
Configuration data as of 2026-12-07T04:10:00
AccountingStorageBackupHost = (null)
SlurmctldAddr           = (null)
SlurmctldDebug          = info
SlurmctldHost[0]        = localhost(127.0.0.1)
SlurmctldHost[1]        = backup
SlurmctldLogFile        = /tmp/slurmctld.log
"""
SHOW_NODES = (
    "NodeName=localhost Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUEfctv=2 CPUTot=2 "
    "NodeAddr=127.0.0.1 NodeHostName=localhost Version=22.05.8 OS=Linux\n"
    "NodeName=gpu01 Arch=x86_64 NodeAddr=10.1.0.21 NodeHostName=gpu01 Version=22.05.8\n"
)


def test_controllers_and_node_addresses_are_read_from_scontrol_text() -> None:
    assert controller_hosts(SHOW_CONFIG) == ["127.0.0.1", "backup"]
    assert node_addresses(SHOW_NODES) == ["127.0.0.1", "10.1.0.21"]
    assert controller_hosts("SlurmctldPort = 6817\n") == []


def test_squeue_lines_give_each_array_task_its_state() -> None:
    text = "41_0 RUNNING\n41_1 PENDING\n  42 CANCELLED\n\nbroken\n"
    assert parse_queue(text) == {"41_0": "RUNNING", "41_1": "PENDING", "42": "CANCELLED"}


ONE_NODE = LauncherPlacement("submitit_slurm", True, True, ("127.0.0.1", "localhost"))
TWO_HOSTS = LauncherPlacement("submitit_slurm", True, True, ("127.0.0.1", "10.1.0.21"))
UNKNOWN = LauncherPlacement("submitit_slurm", True, True)


def test_only_a_slurm_whose_every_host_is_loopback_is_a_loopback_cluster() -> None:
    assert ONE_NODE.loopback_cluster
    assert not TWO_HOSTS.loopback_cluster
    assert not UNKNOWN.loopback_cluster  # Slurm could not be asked: assume other machines


def test_a_one_node_slurm_accepts_a_server_on_loopback(tmp_path) -> None:
    uri = "http://127.0.0.1:5000"
    resolved = resolved_config([f"paths.root_dir={tmp_path}", f"mlflow.tracking_uri={uri}"])
    check_launch(resolved, ONE_NODE)
    for placement in (TWO_HOSTS, UNKNOWN):
        with pytest.raises(ConfigError, match=r"is on 127\.0\.0\.1, which on every other machine"):
            check_launch(resolved, placement)
    sqlite = resolved_config([f"paths.root_dir={tmp_path}"])  # one machine's file: still refused
    with pytest.raises(ConfigError, match="is an absolute SQLite file"):
        check_launch(sqlite, ONE_NODE)
