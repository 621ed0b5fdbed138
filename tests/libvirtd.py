"""A real, throwaway libvirtd for comparing kvmpool with virsh (tests and bench).

What works on Debian 12 (libvirt 9.0.0) without systemd, found by trying:

* Debian 12 ships only the monolithic ``/usr/sbin/libvirtd`` (no ``virtstoraged``), so
  that is what runs, in the foreground as our child (``Popen``, no ``--daemon``), so we
  own its pid and can stop it with SIGTERM and ``wait()``.
* ``LIBVIRT_DRIVER_DIR`` points at a private directory holding a single symlink to
  ``libvirt_driver_storage.so``: the daemon loads the storage driver only. No qemu driver
  (no capability probing, start-up takes ~0.1 s), and above all no network driver, which
  would autostart libvirt's ``default`` network and add a bridge and firewall rules to
  this host. The storage driver is libvirt's own code, exactly as a full libvirtd runs it.
* ``-f CONF`` is a private config: sockets in a private ``unix_sock_dir`` (so a
  system libvirtd, if any, is never talked to), no auth, TCP/TLS off, log to a file.
* The URI is ``storage:///system?socket=DIR/libvirt-sock``: the storage driver registers
  the ``storage`` scheme (what the modular daemons use internally), and ``socket=``
  makes the client use our socket.
* Run as root the storage driver is privileged: its state is fixed at
  ``/etc/libvirt/storage`` (configs) and ``/run/libvirt/storage`` (``driver.pid`` lock,
  ``autostarted`` marker, live state). Only one such daemon can run at a time, so
  :class:`Libvirtd` takes a host-wide lock, refuses to start if another storage driver
  holds ``driver.pid``, defines only pools named with its unique :attr:`prefix`, and on
  stop destroys and undefines them, then removes every file and directory under
  ``/etc/libvirt/storage`` and ``/run/libvirt`` that was not there before it started.

Debian packages needed (see :data:`PACKAGES`): ``libvirt-daemon`` (libvirtd and its
driver modules) and ``libvirt-clients`` (virsh), with ``--no-install-recommends``.
:func:`ensure_installed` installs whatever is missing, only when called.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

PACKAGES = ("libvirt-daemon", "libvirt-clients")
LIBVIRTD = "/usr/sbin/libvirtd"
DRIVER_DIRS = (
    "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver",
    "/usr/lib/aarch64-linux-gnu/libvirt/connection-driver",
    "/usr/lib64/libvirt/connection-driver",
    "/usr/lib/libvirt/connection-driver",
)
STORAGE_DRIVER = "libvirt_driver_storage.so"
CONFIG_DIR = Path("/etc/libvirt/storage")
RUN_DIR = Path("/run/libvirt")
STATE_DIR = RUN_DIR / "storage"
HOST_LOCK = Path("/run/lock/kvmpool-test-libvirtd.lock")


class LibvirtdError(RuntimeError):
    """libvirtd could not be installed, started or stopped; the message says why."""


def missing_packages() -> list[str]:
    missing = []
    for pkg in PACKAGES:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                             capture_output=True, text=True, check=False)
        if "install ok installed" not in res.stdout:
            missing.append(pkg)
    return missing


def ensure_installed() -> None:
    """apt-get install whatever of :data:`PACKAGES` is missing (needs root)."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise LibvirtdError(f"missing Debian packages {' '.join(missing)}; as root run: "
                            f"apt-get install --no-install-recommends {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise LibvirtdError(f"apt-get install {' '.join(missing)} failed:\n{res.stderr}")


def _storage_driver() -> str:
    for d in DRIVER_DIRS:
        path = os.path.join(d, STORAGE_DRIVER)
        if os.path.exists(path):
            return path
    raise LibvirtdError(f"{STORAGE_DRIVER} not found in {', '.join(DRIVER_DIRS)}; "
                        f"install: apt-get install --no-install-recommends {' '.join(PACKAGES)}")


def _snapshot(*roots: Path) -> set[Path]:
    """Every path under ``roots`` (the roots included), to remove only what appears later."""
    seen: set[Path] = set()
    for root in roots:
        if not root.exists():
            continue
        seen.add(root)
        for dirpath, dirnames, filenames in os.walk(root):
            seen.update(Path(dirpath, n) for n in dirnames + filenames)
    return seen


def _pid_holding(path: Path) -> int | None:
    """The pid in a libvirt pidfile if a live process still holds its lock, else None."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class Libvirtd:
    """A private libvirtd with only the storage driver; use as a context manager.

    >>> with Libvirtd() as lv:                      # doctest: +SKIP
    ...     lv.virsh("pool-define-as", lv.pool_name("p"), "dir", "--target", "/tmp/x")
    """

    def __init__(self, *, start_timeout: float = 30.0, lock_timeout: float = 300.0) -> None:
        self.start_timeout = start_timeout
        self.lock_timeout = lock_timeout
        #: every pool this instance defines starts with this (and only those are removed)
        self.prefix = f"kvmpooltest-{os.getpid()}-{secrets.token_hex(3)}-"
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._before: set[Path] = set()

    # ------------------------------------------------------------ paths

    def _dir(self) -> Path:
        if self.workdir is None:
            raise LibvirtdError("libvirtd is not started")
        return self.workdir

    @property
    def socket(self) -> str:
        return str(self._dir() / "sock" / "libvirt-sock")

    @property
    def uri(self) -> str:
        return f"storage:///system?socket={self.socket}"

    @property
    def log_file(self) -> Path:
        return self._dir() / "libvirtd.log"

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for f in (self._dir() / "stderr.log", self.log_file):
            with contextlib.suppress(OSError):
                text += f.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def pool_name(self, suffix: str) -> str:
        return self.prefix + suffix

    # ------------------------------------------------------------ virsh

    def virsh_argv(self, *args: str) -> list[str]:
        return ["virsh", "-c", self.uri, *args]

    def virsh(self, *args: str, check: bool = True,
              timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LIBVIRT_", "VIRSH_"))}
        env["LC_ALL"] = "C"
        res = subprocess.run(self.virsh_argv(*args), capture_output=True, text=True,
                             timeout=timeout, env=env, check=False)
        if check and res.returncode != 0:
            raise LibvirtdError(f"virsh {' '.join(args)} failed ({res.returncode}):\n"
                                f"{res.stderr}{res.stdout}")
        return res

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Libvirtd:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _take_host_lock(self) -> None:
        HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise LibvirtdError(f"another test libvirtd holds {HOST_LOCK} for more "
                                        f"than {self.lock_timeout:.0f} s") from None
                time.sleep(0.2)
        self._lock_fd = fd

    def start(self) -> None:
        if self.proc is not None:
            return
        if os.geteuid() != 0:
            raise LibvirtdError("the comparison with libvirt needs root (privileged libvirtd)")
        if not os.access(LIBVIRTD, os.X_OK) or shutil.which("virsh") is None:
            raise LibvirtdError(f"libvirtd or virsh missing; install: apt-get install "
                                f"--no-install-recommends {' '.join(PACKAGES)}")
        driver = _storage_driver()
        self._take_host_lock()
        try:
            holder = _pid_holding(STATE_DIR / "driver.pid")
            if holder is not None:
                raise LibvirtdError(f"a libvirt storage driver is already running (pid "
                                    f"{holder}, {STATE_DIR}/driver.pid); stop it first")
            self._before = _snapshot(CONFIG_DIR, RUN_DIR)
            # short path: the socket path must fit in sun_path (108 bytes)
            self.workdir = Path(tempfile.mkdtemp(prefix="kvmpool-lv-", dir="/tmp"))
            self._launch(driver)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _launch(self, driver: str) -> None:
        w = self._dir()
        (w / "drivers").mkdir()
        (w / "sock").mkdir()
        os.symlink(driver, w / "drivers" / STORAGE_DRIVER)
        (w / "libvirtd.conf").write_text(
            f'unix_sock_dir = "{w / "sock"}"\n'
            'unix_sock_group = "root"\n'
            'unix_sock_rw_perms = "0700"\n'
            'auth_unix_rw = "none"\n'
            'auth_unix_ro = "none"\n'
            "listen_tls = 0\n"
            "listen_tcp = 0\n"
            f'log_outputs = "3:file:{self.log_file}"\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LIBVIRT_", "VIRSH_"))}
        env["LIBVIRT_DRIVER_DIR"] = str(w / "drivers")
        env["LC_ALL"] = "C"
        with open(w / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen(
                [LIBVIRTD, "-f", str(w / "libvirtd.conf"), "--pid-file", str(w / "libvirtd.pid")],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env, cwd=w,
                start_new_session=True)

    def _wait_ready(self) -> None:
        """Bounded: until ``virsh pool-list`` answers, the daemon dies, or the timeout."""
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise LibvirtdError(f"libvirtd exited with {code} while starting:\n"
                                    f"{self.log_tail()}")
            if os.path.exists(self.socket):
                try:
                    res = self.virsh("pool-list", "--all", check=False, timeout=10)
                except subprocess.TimeoutExpired:
                    res = None
                if res is not None and res.returncode == 0:
                    return
                last = res.stderr if res is not None else "virsh timed out"
            time.sleep(0.1)
        raise LibvirtdError(f"libvirtd did not answer within {self.start_timeout:.0f} s: "
                            f"{last}\n{self.log_tail()}")

    def our_pools(self) -> list[str]:
        res = self.virsh("pool-list", "--all", "--name", check=False, timeout=30)
        names = [n.strip() for n in res.stdout.splitlines()]
        return [n for n in names if n.startswith(self.prefix)]

    def stop(self) -> None:
        """Destroy and undefine our pools, stop the daemon, remove what libvirt left."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                for name in self.our_pools():
                    self.virsh("pool-destroy", name, check=False, timeout=60)
                    self.virsh("pool-undefine", name, check=False, timeout=60)
            except (subprocess.TimeoutExpired, LibvirtdError) as err:
                problems.append(f"undefining pools: {err}")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                problems.append("libvirtd ignored SIGTERM for 20 s; killed")
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self._lock_fd is not None:
            self._cleanup_host_files()
            os.close(self._lock_fd)  # releases the host lock
            self._lock_fd = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if problems:
            raise LibvirtdError("; ".join(problems))

    def _cleanup_host_files(self) -> None:
        # our pools' configs, autostart links and state files, even if virsh failed
        for d in (CONFIG_DIR, CONFIG_DIR / "autostart", STATE_DIR):
            for f in d.glob(self.prefix + "*") if d.is_dir() else ():
                with contextlib.suppress(OSError):
                    f.unlink()
        # then whatever else libvirtd created (driver.pid, autostarted, common/system.token,
        # the directories themselves), deepest first; what was there before is kept
        for path in sorted(_snapshot(CONFIG_DIR, RUN_DIR) - self._before,
                           key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()


@contextlib.contextmanager
def running(**kwargs: float) -> Iterator[Libvirtd]:
    with Libvirtd(**kwargs) as lv:
        yield lv
