"""Loopback helpers for tests that start servers: a free port, and waiting for `fefm-lab ui`."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_ui(ui: subprocess.Popen, port: int, timeout: float = 180) -> None:
    """Return once the UI answers /health with 200; fail with its output if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        assert ui.poll() is None, ui.communicate()[0]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"fefm-lab ui did not answer within {timeout:.0f} s"
        time.sleep(0.5)
