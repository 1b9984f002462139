"""Cluster benchmark: launcher + tracking overhead per job, and Ray sweep throughput by node count.

Runs, inside a loopback-only network namespace (Ray binds the machine's outward interface
otherwise), a throwaway PostgreSQL, `fefm-lab server` on it, and local Ray clusters, then:

1. the same tiny job sweep (4 jobs) with the basic launcher into SQLite, the basic launcher into
   the server, the Ray launcher (2 nodes of 1 CPU) into the server, and submitit_local into the
   server. Overhead per job = (sweep wall time - the jobs' own training time, as logged in each
   run's `train_seconds`) / jobs: process start, imports, data loading, launcher and tracking.
2. an 8-job sweep through Ray with 1 node and with 2 nodes (1 CPU each): jobs per hour.

Every figure comes from one run of this script, side by side, so ratios are comparable even on
a loaded machine (the load average is recorded). Needs root (network namespace) and PostgreSQL.

    .venv/bin/python scripts/bench_cluster.py [--out results/bench/cluster.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "cluster"))  # the same services the cluster tests use

import cluster_services as services  # noqa: E402

from fefm_lab.fileio import atomic_write_text  # noqa: E402
from fefm_lab.markdown import markdown_table  # noqa: E402
from fefm_lab.tracking.store import open_store  # noqa: E402

TINY = ["debug=tiny", "dataset.synthetic.rows=3000", "threads=1"]


def run_sweep(arguments: list[str], root: Path) -> float:
    """Wall seconds of one `fefm-lab run -m` (which must succeed)."""
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
        raise SystemExit(f"sweep failed ({' '.join(arguments)}):\n{result.stderr[-6000:]}")
    return seconds


def training_seconds(uri: str, experiment: str) -> tuple[int, float]:
    runs = open_store(uri, experiment).search("tags.role = 'job'")
    return len(runs), sum(r.data.metrics.get("train_seconds", 0.0) for r in runs)


def overhead_rows(server_uri: str, ray_address: str, work: Path, jobs: int) -> list[dict]:
    seeds = "seed=" + ",".join(str(s) for s in range(1, jobs + 1))
    server = [f"mlflow.tracking_uri={server_uri}"]
    ray = ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={ray_address}"]
    submitit = ["hydra/launcher=submitit_local"]
    cases = [
        ("basic", "SQLite file", []),
        ("basic", "fefm-lab server (PostgreSQL)", server),
        ("ray, 2 nodes x 1 CPU", "fefm-lab server (PostgreSQL)", [*ray, *server]),
        ("submitit_local", "fefm-lab server (PostgreSQL)", [*submitit, *server]),
    ]
    rows = []
    for number, (launcher, tracking, extra) in enumerate(cases):
        experiment = f"overhead_{number}"
        root = work / experiment
        wall = run_sweep([seeds, *TINY, f"mlflow.experiment={experiment}", *extra], root)
        uri = server_uri if extra and server[0] in extra else f"sqlite:///{root}/mlflow.db"
        count, trained = training_seconds(uri, experiment)
        assert count == jobs, f"{launcher}: {count} runs, expected {jobs}"
        rows.append(
            {
                "launcher": launcher,
                "tracking": tracking,
                "jobs": jobs,
                "sweep wall s": round(wall, 1),
                "training s (sum)": round(trained, 1),
                "overhead s / job": round((wall - trained) / jobs, 1),
            }
        )
        print(rows[-1], flush=True)
    basic = rows[0]["overhead s / job"]
    for row in rows:
        row["vs basic + SQLite"] = f"{row['overhead s / job'] / basic:.2f}x"
    return rows


def throughput_rows(server_uri: str, work: Path, jobs: int) -> list[dict]:
    seeds = "seed=" + ",".join(str(s) for s in range(1, jobs + 1))
    rows = []
    for nodes in (1, 2):
        cluster = services.start_ray_cluster(nodes, work / f"ray{nodes}")
        try:
            experiment = f"throughput_{nodes}"
            wall = run_sweep(
                [
                    seeds, *TINY, f"mlflow.experiment={experiment}", "hydra/launcher=ray",
                    f"hydra.launcher.ray.init.address={cluster.address}",
                    f"mlflow.tracking_uri={server_uri}",
                ],
                work / experiment,
            )  # fmt: skip
        finally:
            cluster.stop()
        rows.append(
            {
                "Ray nodes (1 CPU each)": nodes,
                "jobs": jobs,
                "sweep wall s": round(wall, 1),
                "jobs / hour": round(jobs / wall * 3600),
            }
        )
        print(rows[-1], flush=True)
    rows[1]["speed-up"] = f"{rows[0]['sweep wall s'] / rows[1]['sweep wall s']:.2f}x"
    rows[0]["speed-up"] = "1.00x"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "cluster.md")
    parser.add_argument("--jobs", type=int, default=4, help="jobs of the overhead sweeps")
    parser.add_argument("--throughput-jobs", type=int, default=8)
    args = parser.parse_args()
    for problem in (services.namespace_problem(), services.postgres_problem()):
        if problem:
            raise SystemExit(f"bench_cluster: {problem}")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a private cluster in a private namespace
    work = Path(tempfile.mkdtemp(prefix="fefm-bench-cluster-"))
    namespace = services.LoopbackNamespace()
    namespace.enter()
    postgres = server = cluster = None
    try:
        load_before = os.getloadavg()[0]
        postgres = services.start_postgres()
        server = services.start_tracking_server(postgres.create_database("mlflow"), work)
        cluster = services.start_ray_cluster(2, work / "ray-overhead")
        overhead = overhead_rows(server.uri, cluster.address, work, args.jobs)
        cluster.stop()
        cluster = None
        throughput = throughput_rows(server.uri, work, args.throughput_jobs)
        load_after = os.getloadavg()[0]
    finally:
        for service in (cluster, server, postgres):
            if service is not None:
                service.stop()
        namespace.leave()
    cores = os.cpu_count() or 1
    busy = "loaded" if max(load_before, load_after) > cores else "quiet"
    report = "\n".join(
        [
            "# Cluster benchmark (scripts/bench_cluster.py)",
            "",
            f"Machine: {cores} logical cores; load average (1 min) {load_before:.1f} before and "
            f"{load_after:.1f} after ({busy} machine: compare the rows of one table, not absolute "
            "seconds). Tiny job: synthetic "
            "data, 3000 rows, 2 epochs x 3 steps, DeepFEFM k=4, one TensorFlow thread.",
            "",
            "## Launcher + tracking overhead per job",
            "",
            "Overhead per job = (sweep wall time - sum of the runs' training seconds) / jobs.",
            "",
            markdown_table(pd.DataFrame(overhead), float_format=lambda v: f"{v:.1f}"),
            "",
            "## Ray sweep throughput, 1 vs 2 nodes on this machine",
            "",
            markdown_table(pd.DataFrame(throughput), float_format=lambda v: f"{v:.1f}"),
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, report)
    print(report)


if __name__ == "__main__":
    main()
