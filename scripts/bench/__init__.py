"""fefm-lab's benchmarks: one entry point, `python -m scripts.bench` (see its __main__).

Not shipped in the wheel: the product never imports this package. Layout:
- `__main__`: the entry point and the one registry of parts (subcommands).
- one module per part: `prepare`, `layer`, `training` (parts `pipeline` and `vocab`),
  `step_profile`, `peer.compare`; each exposes a `report.Part`.
- shared helpers: `measure` (the one timing and memory helper), `machine` (what ran it, its
  matmul rate), `report` (targets, sections, Markdown/JSON writers).
- subprocess workers, started with `python -m` from the repository root: `prepare_probe`
  (one preparation, its own peak memory) and the two sides of the peer benchmark,
  `peer.fefm_side` and `peer.deepctr_side`, which share `peer.protocol` (numpy only: the
  reference side runs in its own venv without fefm-lab).

This file imports nothing: the reference side's venv imports it on its way to `peer.protocol`.
"""
