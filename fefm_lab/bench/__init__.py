"""Benchmark helpers: machine description, timers, peak memory, result writers.

Kept free of TensorFlow imports so that subprocess probes (preparation memory) stay lean;
`fefm_lab.bench.matmul` holds the TensorFlow-based measurement.
"""
