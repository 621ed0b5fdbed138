"""A real iSCSI target for tests: tgtd (Debian ``tgt``) on 127.0.0.1, never left running.

Each ``Tgtd`` is one daemon on its own portal port and its own control port (``-C N``), so
tests never touch a tgtd the host runs. tgtd ignores SIGTERM: it is stopped through tgtadm
(state offline, targets deleted with --force, system deleted) and SIGKILLed if it lingers.
LUNs are sparse files. The CHAP password of the test target passes through tgtadm's argv:
that is test-side only (kvmpool itself never puts a secret in argv).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tgtd:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.control = self._free_control_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.tids: list[int] = []
        self.log = workdir / f"tgtd-{self.port}.log"

    @staticmethod
    def _free_control_port() -> int:
        for _ in range(100):
            n = random.randint(2000, 30000)  # tgtd takes -C up to 32767
            if not os.path.exists(f"/var/run/tgtd/socket.{n}"):
                return n
        raise RuntimeError("no free tgtd control port")

    def adm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tgtadm", "-C", str(self.control), "--lld", "iscsi", *args],
                              capture_output=True, text=True, timeout=20, check=check)

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["tgtd", "-f", "-C", str(self.control), "--iscsi",
                 f"portal=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tgtd exited: {self.log.read_text()[-500:]}")
            if self.adm("--mode", "target", "--op", "show", check=False).returncode == 0:
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", self.port), timeout=1):
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("tgtd did not come up")

    def add_target(self, iqn: str, lun_sizes: list[int],
                   chap: tuple[str, str] | None = None) -> None:
        tid = len(self.tids) + 1
        self.adm("--mode", "target", "--op", "new", "--tid", str(tid), "--targetname", iqn)
        self.tids.append(tid)
        for lun, size in enumerate(lun_sizes, start=1):
            backing = self.workdir / f"p{self.port}-t{tid}-lun{lun}.img"
            with open(backing, "wb") as f:
                f.truncate(size)
            self.adm("--mode", "logicalunit", "--op", "new", "--tid", str(tid),
                     "--lun", str(lun), "--backing-store", str(backing))
        self.adm("--mode", "target", "--op", "bind", "--tid", str(tid),
                 "--initiator-address", "ALL")
        if chap is not None:
            user, password = chap
            self.adm("--mode", "account", "--op", "new", "--user", user, "--password", password)
            self.adm("--mode", "account", "--op", "bind", "--tid", str(tid), "--user", user)

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self.adm("--mode", "sys", "--op", "update", "--name", "State", "-v", "offline",
                         check=False)
                for tid in self.tids:
                    self.adm("--mode", "target", "--op", "delete", "--force", "--tid",
                             str(tid), check=False)
                self.adm("--mode", "sys", "--op", "delete", check=False)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            self.proc = None
            for suffix in ("", ".lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"/var/run/tgtd/socket.{self.control}{suffix}")
