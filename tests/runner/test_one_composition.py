"""A job is composed once, validated once and gets its trainer settings built once (issue 21).

Counted through a real `fefm-lab run` in-process: every Hydra composition (the compose API's,
`@hydra.main`'s and a launcher's all go through Hydra's config loader), every `validate_config`
(it checks the top-level keys against `FefmLabConfig` once per call), and every `TrainerConfig`
built. Hydra's loader is reached through its internal module: the one place all compositions
meet. Before (fdd4ddb..91bf473), a single run was composed 4 times (the output-directory check,
the CLI's check, and `@hydra.main` twice: once for its mode, once for the run), validated twice
and built its `TrainerConfig` twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl

from fefm_lab import cli
from fefm_lab.config import validation
from fefm_lab.config.schema import FefmLabConfig
from fefm_lab.config.trainer import TrainerConfig
from fefm_lab.sweep import launch

TINY = ["debug=tiny", "dataset.synthetic.rows=3000"]


@pytest.fixture
def events(monkeypatch) -> list[str]:
    """The order of compositions, validations, trainer builds and sweep jobs' starts and ends."""
    seen: list[str] = []
    load = ConfigLoaderImpl.load_configuration

    def composing(self, *args, **kwargs):
        seen.append("compose")
        return load(self, *args, **kwargs)

    check_section = validation.check_section

    def checking(values, schema, prefix):
        if schema is FefmLabConfig:
            seen.append("validate")
        return check_section(values, schema, prefix)

    post_init = TrainerConfig.__post_init__

    def building(self):
        seen.append("trainer")
        post_init(self)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", composing)
    monkeypatch.setattr(validation, "check_section", checking)
    monkeypatch.setattr(TrainerConfig, "__post_init__", building)
    return seen


def test_a_single_run_is_composed_validated_and_typed_once(tmp_path: Path, events) -> None:
    arguments = [*TINY, f"paths.root_dir={tmp_path}", "mlflow.experiment=counts"]
    assert cli.main(["run", *arguments]) == 0
    assert events == ["compose", "validate", "trainer"]


@pytest.mark.slow  # two tiny training jobs through Hydra's basic launcher
def test_each_sweep_job_is_composed_validated_and_typed_once(
    tmp_path: Path, events, monkeypatch
) -> None:
    job = launch.run_sweep_job

    def counted_job(cfg):
        events.append("job start")
        try:
            return job(cfg)
        finally:
            events.append("job end")

    monkeypatch.setattr(launch, "run_sweep_job", counted_job)
    arguments = [*TINY, f"paths.root_dir={tmp_path}", "mlflow.experiment=counts", "seed=1,2"]
    assert cli.main(["run", "-m", *arguments]) == 0
    starts = [i for i, event in enumerate(events) if event == "job start"]
    ends = [i for i, event in enumerate(events) if event == "job end"]
    assert len(starts) == len(ends) == 2
    # before the jobs, the launching process checked both (composed and validated each)
    assert events[: starts[0]].count("validate") == 2
    for start, end in zip(starts, ends, strict=True):
        assert events[start - 1] == "compose"  # the job's composition, by Hydra's launcher
        assert events[start + 1 : end] == ["validate", "trainer"]  # in the job: once each
