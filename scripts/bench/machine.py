"""What the benchmarks ran on: CPU, cores, memory, software versions, float32 matmul rate."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from scripts.bench.measure import best_seconds


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    """The SIMD extensions that bound a float32 matmul rate (AVX2, AVX-512, FMA)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni")
            return [flag for flag in wanted if flag in flags]
    return []


def _memory_total_bytes() -> int | None:
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict[str, object]:
    """A JSON-ready description of this machine and the package versions that matter."""
    memory = _memory_total_bytes()
    return {
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        # other work on a shared machine slows every figure: say how busy it was
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "packages": {
            name: _version(name)
            for name in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "pandas", "pyarrow")
            if _version(name)
        },
    }


def machine_markdown(machine: dict[str, object]) -> str:
    """The machine description as a short Markdown bullet list."""
    packages = machine.get("packages") or {}
    package_text = ", ".join(f"{name} {version}" for name, version in packages.items())
    flags = ", ".join(machine.get("cpu_flags") or []) or "none detected"
    return "\n".join(
        [
            f"- CPU: {machine['cpu_model']} ({machine['usable_cpus']} usable of "
            f"{machine['logical_cpus']} logical cores; SIMD: {flags})",
            f"- Memory: {machine['memory_gib']} GiB; OS: {machine['os']}",
            f"- Python {machine['python']}; {package_text}",
            _load_line(machine.get("load_average_1m"), int(machine["usable_cpus"])),
        ]
    )


def _load_line(load: float | None, cores: int) -> str:
    """How busy the machine was: a load above the core count means other work slowed the run."""
    if load is None:
        return "- Load average (1 min) when the report was written: not available"
    verdict = (
        "above the core count: other work shared the machine and slowed the figures"
        if load > cores
        else "at or below the core count"
    )
    prefix = "- Load average (1 min) when the report was written"
    return f"{prefix}: {load} on {cores} cores ({verdict})"


def matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    """Best sustained float32 rate of TensorFlow's `size x size` matmul, in FLOP/s (2 n^3 / time).

    The ceiling the FEFM layer and the training step are compared with: the best of `repeats`
    timed products after one warm-up, not a typical figure.
    """
    import tensorflow as tf

    a = tf.random.stateless_normal((size, size), seed=(1, 2), dtype=tf.float32)
    b = tf.random.stateless_normal((size, size), seed=(3, 4), dtype=tf.float32)
    seconds = best_seconds(lambda: tf.linalg.matmul(a, b).numpy(), repeats=repeats, warmup=1)
    return 2.0 * size**3 / seconds
