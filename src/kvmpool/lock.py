"""Per-pool locks, so two kvmpool processes never work on one pool at the same time.

A lock is an ``flock`` on ``<run>/locks/<uuid>.lock``: released by the kernel when the
process dies, so a crash never leaves a pool locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kvmpool.errors import LockBusy

DEFAULT_WAIT = 60.0


@contextmanager
def locked(lock_dir: str, key: str, *, what: str, wait: float = DEFAULT_WAIT) -> Iterator[None]:
    """Hold an exclusive lock named ``key``; wait up to ``wait`` seconds, then LockBusy."""
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(lock_dir, key + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(
                        f"{what} is busy: another kvmpool process is working on it",
                        hint="wait for it to finish, then try again",
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
