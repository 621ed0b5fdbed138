"""Waiting for device nodes after a partition table changed.

``udevadm settle`` when udev is there; then, in any case, a bounded poll for the node
(the kernel's devtmpfs makes partition nodes even without udev).

Host commands it may run: udevadm (Debian package udev).
"""

from __future__ import annotations

import os
import shutil
import time

from kvmpool.errors import KvmpoolError
from kvmpool.host.run import Runner

SETTLE_SECONDS = 10
NODE_WAIT_SECONDS = 10.0


def settle_argv(seconds: int = SETTLE_SECONDS) -> list[str]:
    """>>> settle_argv()
    ['udevadm', 'settle', '--timeout=10']
    """
    return ["udevadm", "settle", f"--timeout={seconds}"]


def settle(runner: Runner) -> None:
    """Let udev finish its queue; never fails (a stuck udev is not kvmpool's error)."""
    if shutil.which("udevadm") is None:
        return
    runner.run(settle_argv(), changes=False, check=False, timeout=SETTLE_SECONDS + 5)


def wait_for(runner: Runner, path: str, *, present: bool = True,
             seconds: float = NODE_WAIT_SECONDS) -> None:
    """Wait until ``path`` exists (or, with ``present=False``, is gone), at most ``seconds``."""
    settle(runner)
    deadline = time.monotonic() + seconds
    while os.path.exists(path) != present:
        if time.monotonic() > deadline:
            state = "appear" if present else "go away"
            raise KvmpoolError(f"device node {path} did not {state} within {seconds:g} s",
                               hint="check udev (udevadm settle) and the kernel log")
        time.sleep(0.05)
