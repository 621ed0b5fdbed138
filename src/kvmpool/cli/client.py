"""The ``kvmpool`` command's entry point: hand the command line to a running ``kvmpool
daemon`` when there is one, else run it in this process.

virsh is a small C client of a daemon that is already running; a Python command pays for
its interpreter and its imports on every call (~0.08 s here). ``kvmpool daemon`` keeps one
process with everything imported; for each command it forks a child that runs the command
exactly as this process would (same argv, environment, working directory, umask, and this
process's stdin, stdout and stderr, passed over the socket), and this process only waits
for its exit status. So this module imports only built-in C modules (``_socket``,
``_signal``, ``struct``: no ``socket``, ``signal`` or ``json``, which pull in
``enum`` and ``re``), and the ``kvmpool`` launcher (bin/kvmpool) imports only this.

The daemon is only used when its socket answers, belongs to the same user (the socket's
directory is private and the daemon checks the peer's uid) and runs this same kvmpool
(same package directory, files unchanged since it started). In every other case, or with
``KVMPOOL_NO_DAEMON=1``, the command runs here as before. Ctrl-C (and SIGTERM, SIGHUP,
SIGQUIT) reach the child that runs the command.

The request: ``MAGIC``, then NUL-separated fields (none can hold a NUL): the package
directory, the working directory, the umask, the number of arguments, the arguments, and
the environment as ``NAME=value``; a 4-byte length in front. The replies: a kind byte and a
32-bit integer (the worker's pid, then its exit status; or a refusal).
"""

import _signal  # type: ignore[import-not-found]  # C module, no stub: signal.py pulls in enum
import _socket
import os
import struct
import sys

import kvmpool

MAGIC = b"kvmpool-1"
PID, EXIT, REFUSED = b"P", b"X", b"R"
REPLY = struct.Struct("=ci")
FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)


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


def encode_request(argv: list[str], cwd: str, umask: int, env: dict[str, str],
                   package: str) -> bytes:
    fields = [MAGIC, os.fsencode(package), os.fsencode(cwd), b"%d" % umask,
              b"%d" % len(argv), *map(os.fsencode, argv),
              *(os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items())]
    body = b"\0".join(fields)
    return struct.pack("=I", len(body)) + body


def main() -> int:
    """The command's exit status. A command the daemon ran ends this process here, with
    ``os._exit``: it made nothing that needs Python's finalization (~1.5 ms saved)."""
    # not when systemd starts the daemon itself on a first connection (socket activation)
    if os.environ.get("KVMPOOL_NO_DAEMON") != "1" and "LISTEN_PID" not in os.environ:
        code = through_daemon(sys.argv[1:])
        if code is not None:
            for stream in (sys.stdout, sys.stderr):
                try:  # noqa: SIM105 - contextlib is one more import for every command
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code & 0xFF)  # as sys.exit(code) would end
    from kvmpool.cli.main import main as run_here

    return run_here()


def through_daemon(argv: list[str]) -> int | None:
    """The command's exit status from the daemon, or None: run it here instead."""
    path = socket_path()
    if not os.path.exists(path):
        return None
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            conn.connect(path)
            request = encode_request(argv, os.getcwd(), _umask(), dict(os.environ),
                                     package_dir())
            conn.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                      struct.pack("3i", 0, 1, 2))])
            kind, value = _reply(conn)
        except OSError:
            return None  # no daemon, or a descriptor we cannot pass: run here
        except KeyboardInterrupt:  # a daemon that never answers: the command never started
            sys.stderr.write(f"error: interrupted: the kvmpool daemon on {path} did not "
                             "answer (hint: KVMPOOL_NO_DAEMON=1 runs commands here)\n")
            return 130
        if kind != PID:
            return None  # refused (another kvmpool, or changed since it started)
        return _wait(conn, value)
    finally:
        conn.close()


def _wait(conn: _socket.socket, child: int) -> int:
    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - contextlib is one more import for every command
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED:
        if _signal.getsignal(signum) != _signal.SIG_IGN:  # ignored here: ignored, as alone
            _signal.signal(signum, forward)
    try:
        kind, value = _reply(conn)
    except OSError:
        kind, value = b"", 0
    if kind != EXIT:
        sys.stderr.write("error: the kvmpool daemon's worker ended without a status "
                         "(hint: see the daemon's output; KVMPOOL_NO_DAEMON=1 runs commands "
                         "here)\n")
        return 1
    return value


def _reply(conn: _socket.socket) -> tuple[bytes, int]:
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
