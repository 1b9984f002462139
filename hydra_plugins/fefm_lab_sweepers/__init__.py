"""fefm-lab's Hydra sweepers (Hydra finds sweeper plugins only under `hydra_plugins`)."""
