"""Python side of the fused FEFM kernel (`fefm_interaction.cc`): its ops and their gradient.

`scores_op()` is the forward op `FefmScores` (r[b, p] = v[b, i_p]^T W_p v[b, j_p]) with its
gradient `FefmScoresGrad` registered, or None when the kernel is off or not built
(`fefm_lab.kernels.status` says why). The op has CPU kernels only, and no XLA version:
`fefm_lab.layers.FEFMInteraction` uses it on the CPU outside XLA-compiled graphs only.
"""

from __future__ import annotations

import functools
from typing import Any

from fefm_lab import kernels

NAME = "fefm_interaction"
DTYPES = ("float32", "float64")


@functools.cache
def _register_gradient(module: Any) -> None:
    """Registers FefmScores' gradient once per process (TensorFlow's registry is global)."""
    import tensorflow as tf

    @tf.RegisterGradient("FefmScores")
    def _scores_gradient(op: Any, upstream: Any) -> tuple[Any, Any]:
        v, w = op.inputs
        return tuple(
            module.fefm_scores_grad(
                upstream,
                v,
                w,
                left=op.get_attr("left"),
                right=op.get_attr("right"),
                isa=op.get_attr("isa"),
            )
        )


def ops_module() -> Any | None:
    """The kernel's op module with the gradient registered, or None (off, missing, stale)."""
    module = kernels.load(NAME)
    if module is not None:
        _register_gradient(module)
    return module


def scores_op() -> Any | None:
    """`fefm_scores(v, w, left=[...], right=[...], isa="auto")`, or None: see `ops_module`."""
    module = ops_module()
    return None if module is None else module.fefm_scores


def instruction_set() -> str | None:
    """The instruction set the kernel picked on this CPU (avx512f, avx2, baseline), or None."""
    module = ops_module()
    return None if module is None else module.fefm_instruction_set().numpy().decode()


def kernel_instruction_set(jit_compile: bool, on_gpu: bool = False) -> str | None:
    """The instruction set the fused kernel runs in a model trained with `jit_compile` (on a GPU
    or not), or None where TensorFlow ops compute the interactions (see `describe_path`)."""
    if jit_compile or on_gpu:
        return None
    return instruction_set()


def describe_path(jit_compile: bool, on_gpu: bool = False) -> str:
    """One line for the run log: which FEFM path a model trained with `jit_compile` (on a GPU
    or not) uses."""
    status = kernels.status(NAME)
    if ops_module() is None:
        return f"FEFM interactions: TensorFlow ops ({status})"
    if on_gpu:
        return (
            f"FEFM interactions: TensorFlow ops (on a GPU: the fused kernel is CPU-only; {status})"
        )
    if jit_compile:
        return (
            "FEFM interactions: TensorFlow ops (trainer.jit_compile=true: the fused kernel "
            f"has no XLA version; {status})"
        )
    return f"FEFM interactions: fused C++ kernel, {instruction_set()} ({status})"
