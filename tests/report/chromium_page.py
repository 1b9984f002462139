"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`).

No browser-automation dependency: Chromium reads JSON messages ending in NUL from fd 3 and
writes its answers to fd 4. Used by the browser test to open a page in a window of a given size,
find elements by CSS selector (also inside frames) with their boxes in window coordinates, and
take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any


class ChromiumPage:
    """One headless Chromium with one page; use as a context manager (the process ends on exit)."""

    def __init__(self, chromium: str, profile: Path, width: int, height: int) -> None:
        self.width, self.height = width, height
        to_chrome_read, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_write = os.pipe()
        # copies above fd 4, so that placing them at 3 and 4 in the child overwrites neither
        child_in = fcntl.fcntl(to_chrome_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_chrome_write, fcntl.F_DUPFD_CLOEXEC, 10)

        def remap() -> None:  # in the child: the pipe ends at fd 3 (commands) and 4 (answers)
            os.dup2(child_in, 3)  # dup2's copies are inherited by exec; the originals are not
            os.dup2(child_out, 4)

        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
                f"--window-size={width},{height}",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            close_fds=False,  # Python's own fds are close-on-exec anyway; 3 and 4 must stay
            preexec_fn=remap,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (to_chrome_read, from_chrome_write, child_in, child_out):
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.session = ""
        self.events: list[dict] = []

    def __enter__(self) -> ChromiumPage:
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        self.call("Page.enable")
        self.call("DOM.enable")
        # frames of other sites (MLflow's sandboxed artifact frame) run in processes of their
        # own: attach to them as they appear
        self.call("Target.setAutoAttach", autoAttach=True, waitForDebuggerOnStart=False,
                  flatten=True)  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):  # already gone: only the process is left to end
            self.call("Browser.close", session=False, timeout=10)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)

    def call(
        self,
        method: str,
        session: bool | str = True,
        timeout: float = 60,
        **params: Any,
    ) -> dict:
        """Send one command (to the page's session, another session id, or the browser with
        session=False) and wait for its answer; events in between are kept in `events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        target = session if isinstance(session, str) else (self.session if session else "")
        if target:
            message["sessionId"] = target
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
                if not ready:
                    raise TimeoutError(f"{method}: no answer in {timeout} s")
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"{method}: Chromium closed the pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if "method" in answer:
                self.events.append(answer)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def _frame_sessions(self) -> list[str]:
        return [
            e["params"]["sessionId"]
            for e in self.events
            if e["method"] == "Target.attachedToTarget"
            and e["params"]["targetInfo"]["type"] == "iframe"
        ]

    def _boxes_in(self, session: str, selector: str) -> list[dict[str, Any]]:
        root = self.call("DOM.getDocument", session=session, depth=-1, pierce=True)["root"]
        ids = self.call(
            "DOM.querySelectorAll", session=session, nodeId=root["nodeId"], selector=selector
        )["nodeIds"]
        found = []
        for node_id in ids:
            try:
                quad = self.call("DOM.getBoxModel", session=session, nodeId=node_id)["model"]
            except RuntimeError:  # not rendered (display: none)
                continue
            html = self.call("DOM.getOuterHTML", session=session, nodeId=node_id)["outerHTML"]
            xs, ys = quad["border"][0::2], quad["border"][1::2]
            found.append(
                {"html": html, "left": min(xs), "top": min(ys), "right": max(xs),
                 "bottom": max(ys)}
            )  # fmt: skip
        return found

    def boxes(self, selector: str, frame_of: str | None = None) -> list[dict[str, Any]]:
        """Every element matching `selector`: its HTML and its border box (left, top, right,
        bottom in CSS pixels). In the page, or with `frame_of` (the selector of the page's
        frame element) in the frames of other processes, placed in window coordinates by that
        frame element's content box (a frame's boxes are relative to its own viewport)."""
        if frame_of is None:
            return self._boxes_in(self.session, selector)
        frames = self._boxes_in(self.session, frame_of)
        found = []
        for session in self._frame_sessions():
            with contextlib.suppress(RuntimeError):  # a frame that has gone since
                found += self._boxes_in(session, selector)
        if not frames:
            return []
        frame = frames[0]
        for box in found:
            box.update(
                left=box["left"] + frame["left"], right=box["right"] + frame["left"],
                top=box["top"] + frame["top"], bottom=box["bottom"] + frame["top"],
            )  # fmt: skip
        return found

    def wait_for(
        self, selector: str, count: int = 1, timeout: float = 90, frame_of: str | None = None
    ) -> list[dict]:
        """`boxes(selector, frame_of)` once at least `count` elements are there (polled)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.boxes(selector, frame_of)
            except RuntimeError:  # the app replaced the document between two calls: look again
                found = []
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(1)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path
