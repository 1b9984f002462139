"""Build every kernel in fefm_lab/kernels: `python -m fefm_lab.kernels.build [--force]`.

Compiles `<name>.cc` against the installed TensorFlow's headers (tf.sysconfig) into
`_<name>.so`, writes `_<name>.build.json` (source digest, TensorFlow version) beside it, and loads
it once. Up-to-date libraries are kept (and loaded once too). `make setup` runs this, so:
- a kernel that fails to build or to load with a compiler at hand (a library stale for the
  installed TensorFlow that does not rebuild, say) stops `make setup`: exit 1, one line naming
  the kernel and the TensorFlow version, then the compiler's errors;
- a machine without any C++ compiler keeps the TensorFlow-ops path (same maths, slower): the
  build says so in one line per kernel and exits 0 (1 with --strict).
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


def _built_for(name: str) -> str | None:
    """The TensorFlow version kernel `name`'s present library was built for, if any."""
    try:
        return json.loads(stamp_path(name).read_text()).get("tensorflow")
    except (OSError, ValueError):
        return None


def _tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__


def _failure(name: str, previous: str | None) -> str:
    """The one line that names the kernel and the TensorFlow it failed against."""
    version = _tensorflow_version()
    stale = (
        f" (its library was built for TensorFlow {previous})"
        if previous not in (None, version)
        else ""
    )
    return f"error: kernel {name} does not build against TensorFlow {version}{stale}"


def main(argv: list[str] | None = None) -> int:
    from fefm_lab import kernels

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild up-to-date kernels too")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 also when there is no C++ compiler"
    )
    args = parser.parse_args(argv)
    cxx = compiler()
    no_compiler = False
    for name in kernel_names():
        if not args.force and stale_reason(name) is None and kernels._load(name)[0] is not None:
            print(f"kernel {name}: up to date ({library_path(name).name})")
            continue
        if cxx is None:
            print(
                f"kernel {name}: no C++ compiler (g++, or set CXX) to build it against "
                f"TensorFlow {_tensorflow_version()}: the TensorFlow-ops path runs instead "
                "(same maths, slower)"
            )
            no_compiler = True
            continue
        previous = _built_for(name)
        try:
            build(name, cxx)
        except RuntimeError as error:
            print(f"{_failure(name, previous)}; the compiler's errors:", file=sys.stderr)
            for line in error.args[0]:
                print(f"  {line}", file=sys.stderr)
            return 1
        kernels._load.cache_clear()
        module, loaded = kernels._load(name)
        if module is None:
            print(f"{_failure(name, previous)}: {loaded}", file=sys.stderr)
            return 1
        print(f"kernel {name}: built {library_path(name).name}")
    return 1 if no_compiler and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
