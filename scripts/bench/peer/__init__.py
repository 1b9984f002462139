"""The side-by-side benchmark against DeepCTR 0.9.4: `compare` drives, two sides train.

`protocol` (numpy only) is the whole training protocol both sides follow; `fefm_side` and
`deepctr_side` only adapt a model to it. This file imports nothing: the reference side runs in
its own venv (`.bench-peer-venv`) without fefm-lab.
"""
