"""fefm-lab's Hydra launchers (Hydra finds launcher plugins only under `hydra_plugins`)."""
