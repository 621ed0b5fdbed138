"""Where kvmpool keeps its own files.

As root: definitions in /etc/kvmpool, runtime state in /run/kvmpool, data in /var/lib/kvmpool.
As a user: the XDG config, runtime and data directories. ``--root DIR`` (or ``KVMPOOL_ROOT``)
puts everything under DIR/config, DIR/run and DIR/data instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Paths:
    config: str  # pool definitions (<name>.xml) and autostart/ marks
    run: str  # state of active pools, locks
    data: str  # default pool directories

    @property
    def pools(self) -> str:
        return os.path.join(self.config, "storage")

    @property
    def autostart(self) -> str:
        return os.path.join(self.pools, "autostart")

    @property
    def state(self) -> str:
        return os.path.join(self.run, "storage")

    @property
    def locks(self) -> str:
        return os.path.join(self.run, "locks")

    @property
    def secrets(self) -> str:
        return os.path.join(self.config, "secrets")


def default_paths(root: str | None = None) -> Paths:
    root = root or os.environ.get("KVMPOOL_ROOT") or None
    if root:
        root = os.path.abspath(root)
        return Paths(
            os.path.join(root, "config"), os.path.join(root, "run"), os.path.join(root, "data")
        )
    if os.geteuid() == 0:
        return Paths("/etc/kvmpool", "/run/kvmpool", "/var/lib/kvmpool")
    home = os.path.expanduser("~")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), f"kvmpool-{os.getuid()}"
    )
    return Paths(
        os.path.join(config, "kvmpool"),
        os.path.join(runtime, "kvmpool"),
        os.path.join(data, "kvmpool"),
    )
