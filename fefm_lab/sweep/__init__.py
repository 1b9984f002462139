"""The life of a sweep (`fefm-lab run -m`), on Hydra's public extension points.

- `plan`: before Hydra starts, every job's config is expanded and validated (a mistake exits 2
  before any job runs) and the sweep is named.
- `callback.SweepLifecycle` (listed under `hydra.callbacks`): opens the sweep's parent run when
  the multirun starts and ends it (summary, status) when the multirun ends.
- `job.run_sweep_job`: the task Hydra runs per job, in whatever process or machine the launcher
  picks; it finds the parent run through the tracking store and returns the job's outcome.
- `finish.finish_sweep`: the one function that ends a sweep (summary table, ablation report,
  counts, status, the UI links that compare its runs).
- `lost_jobs.record_lost_job`: a job whose worker died (Ray) gets its RUNNING run closed KILLED.
- `launch.run_sweep`: the launching process's side: validation, then Hydra, then the exit code;
  every way out of the launcher (exception, Ctrl-C, SIGTERM) closes the parent run and the
  in-flight children with a status and a reason.

Nothing lives in module-level state: jobs may run in other processes (joblib, submitit) or on
other machines (Ray, Slurm); what they report travels through the tracking store.
"""
