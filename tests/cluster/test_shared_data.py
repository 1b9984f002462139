"""A sweep's datasets: prepared once by the launching process, only reused (and checked) by jobs."""

from __future__ import annotations

import shutil

import pytest

from fefm_lab import cli
from fefm_lab.cluster.shared_data import prepare_sweep_datasets
from fefm_lab.config.job_config import job_config
from fefm_lab.data.shared import dataset_for_job, preparation_key
from fefm_lab.errors import DataError

TINY = ["debug=tiny", "dataset.synthetic.rows=3000"]


def _config(root, *overrides: str) -> dict:
    return cli.resolved_config([*TINY, f"paths.root_dir={root}", *overrides])


def _for_job(resolved: dict):
    """The dataset a job of this resolved config gets."""
    job = job_config(resolved)
    return dataset_for_job(
        job.dataset, seed=job.seed, data_root=job.paths.data_root, sweep=job.sweep, progress=False
    )


def test_each_distinct_dataset_is_prepared_once(tmp_path) -> None:
    jobs = [
        _config(tmp_path, f"ablation={ablation}", f"seed={seed}")
        for ablation in ("none", "no_linear")
        for seed in (1, 2)
    ]
    swept = prepare_sweep_datasets(jobs, progress=False)
    prepared = swept.prepared
    # the split follows the seed: two datasets for four jobs, none for the ablation
    assert len(prepared) == 2
    assert sorted(p.manifest["settings"]["split_seed"] for p in prepared) == [1, 2]
    assert len(list((tmp_path / "data" / "prepared").glob("synthetic-*"))) == 2
    first, second = (p.manifest["fingerprint"] for p in prepared)
    assert swept.overrides() == [
        f"sweep.data_fingerprints=['{first}','{second}']",
        "sweep.unprepared=[]",
    ]

    # a job handed these fingerprints reuses its dataset
    job = _config(tmp_path, "seed=2", f"sweep.data_fingerprints=['{first}','{second}']")
    assert _for_job(job).directory == prepared[1].directory


def test_a_job_that_does_not_see_the_prepared_data_fails_clearly(tmp_path) -> None:
    driver_root, worker_root = tmp_path / "driver", tmp_path / "worker"
    (prepared,) = prepare_sweep_datasets([_config(driver_root)], progress=False).prepared
    expected = f"sweep.data_fingerprints=['{prepared.manifest['fingerprint']}']"
    with pytest.raises(DataError) as error:
        _for_job(_config(worker_root, expected))
    text = str(error.value)
    assert text.startswith(f"paths.data_root={worker_root}/data: this job (on host ")
    assert "does not see the dataset the sweep's launching process prepared" in text
    assert text.endswith(
        "paths.data_root must be a directory every node sees, at the same path (a shared "
        "filesystem)"
    )
    assert not (worker_root / "data").exists()  # nothing generated or prepared by the job


def test_a_job_that_sees_other_data_fails_on_the_fingerprint(tmp_path) -> None:
    (prepared,) = prepare_sweep_datasets([_config(tmp_path)], progress=False).prepared
    with pytest.raises(DataError) as error:
        _for_job(_config(tmp_path, "sweep.data_fingerprints=['0123456789abcdef']"))
    assert str(error.value) == (
        f"{prepared.directory}: prepared dataset fingerprint {prepared.manifest['fingerprint']} "
        f"on host {_host()} is not one the sweep's launching process prepared "
        f"(0123456789abcdef): paths.data_root={tmp_path}/data holds other data on this node"
    )


def test_the_raw_file_is_not_needed_by_a_job(tmp_path) -> None:
    (prepared,) = prepare_sweep_datasets([_config(tmp_path)], progress=False).prepared
    shutil.rmtree(tmp_path / "data" / "synthetic")  # raw file only on the launching machine
    expected = f"sweep.data_fingerprints=['{prepared.manifest['fingerprint']}']"
    assert _for_job(_config(tmp_path, expected)).directory == prepared.directory
    assert not (tmp_path / "data" / "synthetic").exists()


def test_bad_data_fails_its_own_jobs_not_the_sweep(tmp_path, capsys) -> None:
    good = "\t".join(["1", *["3"] * 13, *["0a1b2c3d"] * 26])
    raw = tmp_path / "bad.txt"
    raw.write_text("\n".join([good] * 3 + [good.rsplit("\t", 1)[0]]) + "\n")  # line 4: 39
    criteo = ["debug=tiny", f"paths.root_dir={tmp_path}", "dataset=criteo", f"dataset.path={raw}"]
    bad = cli.resolved_config(criteo)
    fine = _config(tmp_path, "seed=5")
    swept = prepare_sweep_datasets([bad, fine], progress=False)
    assert len(swept.prepared) == 1 and swept.failed == [_key(bad)]
    assert f"{raw}, line 4: expected 40 columns, found 39" in capsys.readouterr().err
    fingerprints, unprepared = swept.overrides()
    job = cli.resolved_config([*criteo, fingerprints, unprepared])
    with pytest.raises(DataError, match=f"{raw}, line 4: expected 40 columns, found 39"):
        _for_job(job)  # the job reads the file itself and fails in its own run


def _key(resolved: dict) -> str:
    job = job_config(resolved)
    return preparation_key(job.dataset, job.seed, job.paths.data_root)


def _host() -> str:
    import socket

    return socket.gethostname()
