"""fefm-lab's Hydra configs (installed as `fefm_lab.conf`): one folder per config group, each YAML
stating only where it differs from its schema in `fefm_lab.config.schema`."""
