"""Fixtures for the cluster tests: loopback-only network namespace, PostgreSQL, `fefm-lab
server` on it, a two-node Ray cluster. Each is ended by its finalizer, whatever the test did."""

from __future__ import annotations

from pathlib import Path

import cluster_services as services
import pytest


@pytest.fixture(scope="module")
def loopback_namespace():
    problem = services.namespace_problem()
    if problem:
        pytest.skip(f"cluster tests: {problem}")
    namespace = services.LoopbackNamespace()
    namespace.enter()
    # The test cluster lives in this private namespace: no token needed, and none shared with
    # other Ray users of the machine (~/.ray/auth_token may be theirs).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")
        try:
            yield namespace
        finally:
            namespace.leave()


@pytest.fixture(scope="module")
def postgres(loopback_namespace):
    problem = services.postgres_problem()
    if problem:
        pytest.skip(f"cluster tests: {problem}")
    server = services.start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cluster")


@pytest.fixture(scope="module")
def tracking_server(postgres, cluster_root):
    """`fefm-lab server` over HTTP on a fresh PostgreSQL database."""
    server = services.start_tracking_server(postgres.create_database("mlflow"), cluster_root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ray_cluster(loopback_namespace, cluster_root):
    """A Ray head on 127.0.0.1 and a second node joining it by address (one CPU each)."""
    cluster = services.start_ray_cluster(2, cluster_root)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def slurm(loopback_namespace):
    """A one-node Slurm (munged, slurmctld, slurmd) on 127.0.0.1; SLURM_CONF set for the test's
    client commands and the `fefm-lab run` processes it starts."""
    problem = services.slurm_problem()
    if problem:
        pytest.skip(f"Slurm tests: {problem}")
    cluster = services.start_slurm()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLURM_CONF", str(cluster.conf))
            yield cluster
    finally:
        cluster.stop()
