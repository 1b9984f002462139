"""Sweeps on a cluster: launcher + tracking overhead per job, and Ray throughput by node count.

Inside a loopback-only network namespace (Ray binds the machine's outward interface otherwise;
the same services as tests/cluster): a throwaway PostgreSQL, `fefm-lab server` on it, and local
Ray clusters (`ray start --head` plus nodes joining by address, 1 CPU each). Then

1. the same tiny sweep (`--cluster-jobs` jobs) with the basic launcher into SQLite, the basic
   launcher into the server, the Ray launcher (2 nodes) into the server, and submitit_local into
   the server. Overhead per job = (sweep wall time - the runs' own `train_seconds`) / jobs:
   process start, imports, data loading, launcher and tracking.
2. a `--cluster-throughput-jobs` sweep through Ray with 1 node and with 2 nodes: jobs per hour.

All figures come from one run, side by side, so their ratios compare even on a loaded machine.
Needs root (the network namespace) and PostgreSQL (Debian's `postgresql`; .ci/run installs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench.measure import ROOT
from scripts.bench.report import Part, PartResult, Section

# The services the cluster tests use (tests/cluster is not a package: put it on the path).
sys.path.insert(0, str(ROOT / "tests" / "cluster"))

TINY = ["debug=tiny", "dataset.synthetic.rows=3000", "trainer.steps_per_epoch=15", "threads=1"]
SERVER = "fefm-lab server (PostgreSQL)"
HEADERS = [
    "launcher",
    "tracking",
    "jobs",
    "sweep wall (s)",
    "training (s, sum)",
    "overhead per job (s)",
    "overhead vs basic + SQLite",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster-jobs", type=int, default=4, help="jobs per overhead sweep")
    parser.add_argument(
        "--cluster-throughput-jobs", type=int, default=8, help="jobs of the 1- vs 2-node sweeps"
    )


def _sweep(arguments: list[str], root: Path) -> float:
    """Wall seconds of one `fefm-lab run -m` in `root` (which must succeed)."""
    import cluster_services as services

    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = subprocess.run(
        [str(services.VENV_BIN / "fefm-lab"), "run", "-m", *arguments, f"paths.root_dir={root}"],
        capture_output=True,
        text=True,
        cwd=root,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"sweep {' '.join(arguments)} failed:\n{result.stderr[-6000:]}")
    return seconds


def _trained(uri: str, experiment: str, jobs: int) -> float:
    """Sum of the runs' own training seconds (the sweep's useful work)."""
    from fefm_lab.tracking.store import open_store

    runs = open_store(uri, experiment).search("tags.role = 'job'")
    if len(runs) != jobs:
        raise RuntimeError(f"{experiment}: {len(runs)} runs, expected {jobs}")
    return sum(run.data.metrics.get("train_seconds", 0.0) for run in runs)


def _overhead(server_uri: str, ray_address: str, work: Path, jobs: int) -> Section:
    seeds = "seed=" + ",".join(str(s) for s in range(1, jobs + 1))
    to_server = [f"mlflow.tracking_uri={server_uri}"]
    ray = ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={ray_address}"]
    cases = [
        ("basic", "SQLite file", []),
        ("basic", SERVER, to_server),
        ("ray, 2 nodes x 1 CPU", SERVER, [*ray, *to_server]),
        ("submitit_local", SERVER, ["hydra/launcher=submitit_local", *to_server]),
    ]
    rows, data = [], []
    for number, (launcher, tracking, extra) in enumerate(cases):
        experiment = f"overhead_{number}"
        root = work / experiment
        wall = _sweep([seeds, *TINY, f"mlflow.experiment={experiment}", *extra], root)
        uri = server_uri if tracking == SERVER else f"sqlite:///{root}/mlflow.db"
        trained = _trained(uri, experiment, jobs)
        per_job = (wall - trained) / jobs
        data.append({"launcher": launcher, "tracking": tracking, "wall": wall, "trained": trained})
        rows.append([launcher, tracking, jobs, f"{wall:.1f}", f"{trained:.1f}", f"{per_job:.1f}"])
        print(f"cluster overhead: {rows[-1]}", flush=True)
    base = (data[0]["wall"] - data[0]["trained"]) / jobs
    for row, measured in zip(rows, data, strict=True):
        row.append(f"{(measured['wall'] - measured['trained']) / jobs / base:.2f}x")
    return Section(
        "Launcher + tracking overhead per job",
        text=(
            f"The same {jobs}-job sweep of a tiny job (synthetic data, 3000 rows, 2 epochs x 15 "
            "steps, DeepFEFM k=4, one TensorFlow thread) under each launcher. Overhead per job = "
            "(sweep wall time - sum of the runs' training seconds) / jobs: process start, "
            "imports, data loading, the launcher and the tracking store. The basic launcher "
            "runs the jobs one after another; Ray (2 nodes x 1 CPU) two and submitit_local all "
            "of them at once, so their overheads overlap: this is the sweep's wall-clock "
            "overhead per job, not one process's."
        ),
        headers=HEADERS,
        rows=rows,
        data={"runs": data},
    )


def _throughput(server_uri: str, work: Path, jobs: int) -> Section:
    import cluster_services as services

    seeds = "seed=" + ",".join(str(s) for s in range(1, jobs + 1))
    walls = {}
    for nodes in (1, 2):
        cluster = services.start_ray_cluster(nodes, work / f"ray{nodes}")
        try:
            walls[nodes] = _sweep(
                [
                    seeds, *TINY, f"mlflow.experiment=throughput_{nodes}", "hydra/launcher=ray",
                    f"hydra.launcher.ray.init.address={cluster.address}",
                    f"mlflow.tracking_uri={server_uri}",
                ],
                work / f"throughput_{nodes}",
            )  # fmt: skip
        finally:
            cluster.stop()
        print(f"cluster throughput: {nodes} node(s): {walls[nodes]:.1f} s", flush=True)
    rows = [
        [nodes, jobs, f"{wall:.1f}", f"{jobs / wall * 3600:.0f}", f"{walls[1] / wall:.2f}x"]
        for nodes, wall in walls.items()
    ]
    return Section(
        f"Ray sweep throughput: {jobs} jobs, 1 vs 2 nodes on this machine",
        text=(
            "Each node is a `ray start` process with 1 CPU (`--num-cpus=1`); each job reserves 1 "
            "CPU, so one node runs the jobs one at a time and two nodes two at once, on the "
            "same cores."
        ),
        headers=["Ray nodes", "jobs", "sweep wall (s)", "jobs per hour", "speed-up vs 1 node"],
        rows=rows,
        data={"wall_seconds": walls},
    )


def run(args: argparse.Namespace) -> PartResult:
    import cluster_services as services

    for problem in (services.namespace_problem(), services.postgres_problem()):
        if problem:
            raise SystemExit(f"cluster benchmark: {problem}")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a private cluster in a private namespace
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="fefm-bench-cluster-"))
    namespace = services.LoopbackNamespace()
    namespace.enter()
    postgres = server = cluster = None
    try:
        postgres = services.start_postgres()
        server = services.start_tracking_server(postgres.create_database("mlflow"), work)
        cluster = services.start_ray_cluster(2, work / "ray-overhead")
        overhead = _overhead(server.uri, cluster.address, work, args.cluster_jobs)
        cluster.stop()
        cluster = None
        throughput = _throughput(server.uri, work, args.cluster_throughput_jobs)
    finally:
        for service in (cluster, server, postgres):
            if service is not None:
                service.stop()
        namespace.leave()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]
    return PartResult(
        [overhead, throughput],
        intro=(
            f"Load average (1 min) {load_before:.1f} before and {load_after:.1f} after, on "
            f"{os.cpu_count()} cores: compare rows measured side by side, not absolute seconds."
        ),
        settings={"cluster_load_before": load_before, "cluster_load_after": load_after},
    )


PART = Part(
    "cluster",
    "launcher + tracking overhead per job (basic, Ray, submitit_local; SQLite vs server) and "
    "Ray jobs/hour with 1 vs 2 nodes (needs root and PostgreSQL)",
    add_arguments,
    run,
    in_bench_report=False,
    title="Sweeps on a cluster: launcher overhead and Ray throughput",
)
