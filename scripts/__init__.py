"""Developer tools of the repository (benchmarks, README embedding); not in the fefm-lab wheel."""
