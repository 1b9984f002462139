"""Build every kernel in fefm_lab/kernels: `python -m fefm_lab.kernels.build [--force]`.

Compiles `<name>.cc` against the installed TensorFlow's headers (tf.sysconfig) into
`_<name>.so` and writes `_<name>.build.json` (source digest, TensorFlow version) beside it.
Up-to-date libraries are kept. A machine without a C++ compiler, or a kernel that fails to
compile, keeps the TensorFlow-ops path: the build says so and exits 0, unless --strict.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from fefm_lab.kernels import (
    kernel_names,
    library_path,
    source_digest,
    source_path,
    stale_reason,
    stamp_path,
)

# -O3: no -ffast-math (it would reorder the maths) and no -march=native (a checkout shared by
# cluster nodes must load on each node's CPU); kernels pick wider instructions at run time.
# -fno-math-errno: sqrt is one instruction instead of one plus a branch to set errno for negative
# arguments, which also kept loops with a sqrt from vectorising (same results: nothing reads errno).
OPTIMISATION_FLAGS = ["-O3", "-fno-math-errno", "-fPIC", "-shared"]


def compiler() -> str | None:
    """The C++ compiler: $CXX, else g++ or c++ on PATH."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++"]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def system_headers(flags: list[str]) -> list[str]:
    """TensorFlow's include flags as -isystem: its headers' hundreds of deprecation warnings
    would bury a kernel's own warnings and errors."""
    return ["-isystem" + flag[2:] if flag.startswith("-I") else flag for flag in flags]


def compiler_errors(stderr: str, limit: int = 20) -> list[str]:
    """The compiler's error lines (else its last lines), at most `limit`."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if "error" in line]
    return (errors or lines)[:limit] if errors else lines[-limit:]


def compile_command(name: str, cxx: str, output: str, defines: Sequence[str] = ()) -> list[str]:
    """The compiler command that builds kernel `name` into `output` (`defines`: extra -D flags)."""
    import tensorflow as tf

    return [
        cxx,
        *OPTIMISATION_FLAGS,
        *defines,
        str(source_path(name)),
        "-o",
        output,
        *system_headers(tf.sysconfig.get_compile_flags()),
        *tf.sysconfig.get_link_flags(),
    ]


def build(name: str, cxx: str) -> None:
    """Compile one kernel; the library and its stamp appear only when the compile succeeded."""
    import tensorflow as tf

    target = library_path(name)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so.tmp", delete=False) as tmp:
        partial = tmp.name
    command = compile_command(name, cxx, partial)
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                compiler_errors(result.stderr) or [f"{cxx} exited {result.returncode}"]
            )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    stamp = {"source_sha256": source_digest(name), "tensorflow": tf.__version__, "command": command}
    stamp_path(name).write_text(json.dumps(stamp, indent=2) + "\n")


def ensure_built(name: str):
    """Kernel `name`'s op module, compiled first when its library is missing or stale.

    For callers that must use the kernel rather than fall back (the tests: CI must test the
    kernel, not skip it): no compiler, a failed build or a library that will not load raise.
    """
    from fefm_lab import kernels

    if stale_reason(name) is not None:
        cxx = compiler()
        if cxx is None:
            raise RuntimeError(f"no C++ compiler (g++, or set CXX) to build kernel {name}")
        build(name, cxx)
        kernels._load.cache_clear()
    module, reason = kernels._load(name)
    if module is None:
        raise RuntimeError(f"kernel {name}: {reason}")
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild up-to-date kernels too")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a kernel fails to build")
    args = parser.parse_args(argv)
    cxx = compiler()
    failed = []
    for name in kernel_names():
        if not args.force and stale_reason(name) is None:
            print(f"kernel {name}: up to date ({library_path(name).name})")
            continue
        if cxx is None:
            print(f"kernel {name}: no C++ compiler (g++; or set CXX): TensorFlow-ops path used")
            failed.append(name)
            continue
        try:
            build(name, cxx)
        except RuntimeError as error:
            print(f"kernel {name}: build failed, TensorFlow-ops path used:", file=sys.stderr)
            for line in error.args[0]:
                print(f"  {line}", file=sys.stderr)
            failed.append(name)
            continue
        print(f"kernel {name}: built {library_path(name).name}")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
