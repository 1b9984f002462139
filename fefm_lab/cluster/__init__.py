"""Sweeps on a cluster: which launcher runs the jobs where, checks before launching, and the
dataset prepared once on shared storage. The Ray launcher itself lives in
`hydra_plugins.fefm_lab_launchers` (Hydra loads launchers only from that namespace)."""
