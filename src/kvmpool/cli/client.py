"""The ``kvmpool`` command's entry point: hand the command line to a running ``kvmpool
daemon`` when there is one, else run it in this process.

virsh is a small C client of a daemon that is already running; a Python command pays for
its interpreter and its imports on every call (~0.08 s here). ``kvmpool daemon`` keeps one
process with everything imported; for each command it forks a child that runs the command
exactly as this process would (same argv, environment, working directory, umask, and this
process's stdin, stdout and stderr, passed over the socket), and this process only waits
for its exit status. This module therefore imports nothing of kvmpool's but its name.

The daemon is only used when its socket answers, belongs to the same user (the socket's
directory is private and the daemon checks the peer's uid) and runs this same kvmpool
(same package directory, files unchanged since it started). In every other case, or with
``KVMPOOL_NO_DAEMON=1``, the command runs here as before. Ctrl-C (and SIGTERM, SIGHUP)
reach the child that runs the command.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import struct
import sys

import kvmpool

# Replies: a kind byte and a 32-bit integer.
PID, EXIT, REFUSED = b"P", b"X", b"R"
REPLY = struct.Struct("=ci")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def socket_path() -> str:
    """Where this user's daemon listens (``KVMPOOL_DAEMON_SOCKET`` overrides)."""
    given = os.environ.get("KVMPOOL_DAEMON_SOCKET")
    if given:
        return given
    if os.geteuid() == 0:
        return "/run/kvmpool/cli.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), f"kvmpool-{os.getuid()}")
    return os.path.join(runtime, "kvmpool", "cli.sock")


def package_dir() -> str:
    return os.path.dirname(os.path.abspath(kvmpool.__file__))


def main() -> int:
    if os.environ.get("KVMPOOL_NO_DAEMON") != "1":
        code = through_daemon(sys.argv[1:])
        if code is not None:
            return code
    from kvmpool.cli.main import main as run_here

    return run_here()


def through_daemon(argv: list[str]) -> int | None:
    """The command's exit status from the daemon, or None: run it here instead."""
    path = socket_path()
    if not os.path.exists(path):
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            conn.connect(path)
            request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                                  "umask": _umask(), "package": package_dir()}).encode()
            conn.sendmsg([struct.pack("=I", len(request)), request],
                         [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
            kind, value = _reply(conn)
        except OSError:
            return None  # no daemon, or a descriptor we cannot pass: run here
        if kind != PID:
            return None  # refused (another kvmpool, or changed since it started)
        return _wait(conn, value)
    finally:
        conn.close()


def _wait(conn: socket.socket, child: int) -> int:
    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    try:
        kind, value = _reply(conn)
    except OSError:
        kind, value = b"", 0
    if kind != EXIT:
        print("error: the kvmpool daemon's worker ended without a status "
              "(hint: see the daemon's output; KVMPOOL_NO_DAEMON=1 runs commands here)",
              file=sys.stderr)
        return 1
    return value


def _reply(conn: socket.socket) -> tuple[bytes, int]:
    data = b""
    while len(data) < REPLY.size:
        chunk = conn.recv(REPLY.size - len(data))
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        data += chunk
    kind, value = REPLY.unpack(data)
    return kind, value


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
