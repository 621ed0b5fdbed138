"""``kvmpool daemon``: a warm kvmpool process that command lines hand their work to.

The protocol (see :mod:`kvmpool.cli.client`): the client sends a length-prefixed request
(argv, cwd, environment, umask, its package directory; NUL-separated fields) with its
stdin, stdout and stderr as SCM_RIGHTS descriptors. The daemon checks the peer's uid
(SO_PEERCRED) and that the client runs this same kvmpool, unchanged since the daemon
started (else it refuses and the client runs the command itself; a changed kvmpool also
stops the daemon), then forks.
The child takes the client's descriptors, directory, environment and umask, reports its
pid (the client forwards Ctrl-C to it), runs the command as ``kvmpool.cli.main.main`` and
reports its exit status. The daemon itself stays single-threaded, so forking is safe.

The fork is made before the request comes: one spare worker always waits in ``accept`` on
the daemon's socket. When it takes a connection it tells the daemon (a byte on a pipe), and
the daemon forks the next spare while the command runs. So a command waits for no fork
(~1.3 ms of this 25 MB process here), only for its own work.

A fork shares the daemon's memory copy-on-write: every page a command writes to (and
Python writes reference counts into every object it uses) is copied at its first write, one
page fault each, ~0.7k faults for a pool-list (~3 ms here, far more under emulation). The
spare therefore copies its writable memory ahead, while it waits (``_prefault``: Linux's
MADV_POPULATE_WRITE, in 1 MiB steps that stop as soon as a command comes). pool-list in a
fork went from 5.4 ms to 2.5 ms.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import gc
import importlib
import io
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import NoReturn

import click

from kvmpool.cli import client
from kvmpool.cli.main import COMMANDS, Session, cli, pass_session
from kvmpool.copy import libc

MAX_REQUEST = 4 << 20


@cli.command("daemon")
@click.option("--socket", "path", metavar="PATH",
              help="Listen here (default: /run/kvmpool/cli.sock as root, else in the "
                   "user's runtime directory; also KVMPOOL_DAEMON_SOCKET).")
@pass_session
def daemon_command(session: Session, path: str | None) -> None:
    """Keep kvmpool loaded: later commands of this user run in a fork of it (no start-up)."""
    serve(path or client.socket_path(), quiet=session.quiet)


def serve(path: str, *, quiet: bool = False) -> None:
    for module in sorted(set(COMMANDS.values())):  # everything a command may need
        importlib.import_module(f"kvmpool.cli.{module}")
    importlib.import_module("kvmpool.manager")
    importlib.import_module("kvmpool.backends.dir")
    loaded = _kvmpool_files()
    listener = _inherited()
    owned = listener is None  # else systemd's: it stays when the daemon stops
    if listener is None:
        listener = _listen(path)
    else:
        path = listener.getsockname()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    signal.signal(signal.SIGTERM, _stop)
    with contextlib.suppress(OSError):
        libc()  # loaded once here: a worker calls prctl and madvise without loading it again
    gc.freeze()  # a worker's collections then leave the loaded objects (and their pages) alone
    if not quiet:
        print(f"kvmpool daemon: listening on {path}", flush=True)
    spare = 0
    daemon = os.getpid()
    try:
        while True:
            news, pipe = os.pipe()
            # SIGTERM waits while the spare is forked and noted: it would otherwise stop
            # the daemon before the spare is known to its cleanup (the spare then lingered),
            # or reach the new worker before it set its own handlers.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            spare = os.fork()
            if spare == 0:  # the worker: never returns
                os.close(news)
                _worker(listener, loaded, pipe, daemon, quiet=quiet)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            os.close(pipe)
            try:
                said = os.read(news, 1)
            finally:
                os.close(news)
            spare = 0  # it took a connection (or died): it is no longer the spare
            if said == b"S":
                return
            if said == b"":
                time.sleep(0.1)  # it died without a connection: no busy loop of forks
    except KeyboardInterrupt:
        return
    finally:
        if spare:
            with contextlib.suppress(OSError):
                os.kill(spare, signal.SIGTERM)
        listener.close()
        if owned:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _inherited() -> socket.socket | None:
    """The listening socket systemd passed (socket activation), or None."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = os.environ.get("LISTEN_FDS")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # not for the commands and their children
    if count != "1":
        raise click.ClickException(f"kvmpool daemon takes one socket from systemd, not "
                                   f"{count} (hint: one ListenStream= in the .socket unit)")
    listener = socket.socket(fileno=3)
    os.set_inheritable(3, False)
    if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_STREAM:
        raise click.ClickException("the socket from systemd is not a unix stream socket "
                                   "(hint: ListenStream=/run/kvmpool/cli.sock)")
    return listener


def _worker(listener: socket.socket, loaded: dict[str, int], pipe: int, daemon: int, *,
            quiet: bool) -> NoReturn:
    """Take one connection, tell the daemon (a byte on ``pipe``: T taken, S stop), serve it
    and exit. While it waits, the spare ends with its daemon, however that ends (even
    SIGKILL); a command it serves runs to its end."""
    said = b"T"
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _parent_death_signal(signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        if os.getppid() != daemon:
            os._exit(0)  # the daemon ended before the signal was set up
        _prefault(listener)
        conn, _ = listener.accept()
        _parent_death_signal(0)
        listener.close()
        verdict, request, fds = _check(conn, loaded, quiet=quiet)
        if verdict == "stop":
            said = b"S"
        elif verdict == "serve":
            os.write(pipe, said)
            os.close(pipe)
            pipe = -1
            if not quiet:
                words = request["argv"]
                shown = " ".join(map(str, words)) if isinstance(words, list) else ""
                print(f"kvmpool daemon: [{os.getpid()}] kvmpool {shown}", flush=True)
            _child(conn, request, fds)
    except BaseException:  # noqa: S110 - a worker only ever tells and exits
        pass
    if pipe >= 0:
        with contextlib.suppress(OSError):
            os.write(pipe, said)
    os._exit(0)


PR_SET_PDEATHSIG = 1


def _parent_death_signal(signum: int) -> None:
    """The signal this process gets when its parent ends (0: none)."""
    with contextlib.suppress(OSError, AttributeError):
        libc().prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)


MADV_POPULATE_WRITE = 23  # Linux 5.14 and later
PREFAULT_STEP = 1 << 20


def _prefault(listener: socket.socket) -> None:
    """Copy this fork's writable memory now, so that the command it will run does not
    fault on its first write to each page; stop when a connection waits, or when the kernel
    cannot (older than 5.14)."""
    try:
        madvise = libc().madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as maps:
            lines = maps.read().splitlines()
    except (OSError, AttributeError):
        return
    waiting = select.poll()
    waiting.register(listener, select.POLLIN)
    for line in lines:
        fields = line.split()
        if fields[1] != "rw-p" or fields[-1] in ("[stack]", "[vvar]", "[vsyscall]"):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        for step in range(start, end, PREFAULT_STEP):
            if waiting.poll(0):
                return  # a command came: serve it now
            if madvise(step, min(PREFAULT_STEP, end - step), MADV_POPULATE_WRITE) != 0:
                break  # not for this mapping (or not on this kernel)


def _stop(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # leave the accept loop; the socket is removed on the way out


def _listen(path: str) -> socket.socket:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket nobody listens on any more
    else:
        probe.close()
        raise click.ClickException(f"a kvmpool daemon already listens on {path}")
    finally:
        probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    return listener


def _kvmpool_files() -> dict[str, int]:
    """mtime of every kvmpool module loaded: a changed file means the daemon is stale."""
    found = {}
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        source = getattr(module, "__file__", None)
        if (name == "kvmpool" or name.startswith("kvmpool.")) and source:
            with contextlib.suppress(OSError):
                found[source] = os.stat(source).st_mtime_ns
    return found


def _unchanged(loaded: dict[str, int]) -> bool:
    try:
        return all(os.stat(f).st_mtime_ns == t for f, t in loaded.items())
    except OSError:
        return False


def _check(conn: socket.socket, loaded: dict[str, int], *, quiet: bool,
           ) -> tuple[str, dict[str, object], list[int]]:
    """("serve", the request, its descriptors); or "refuse" (the client then runs the
    command itself); or "stop" when kvmpool changed since the daemon started."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
        return "refuse", {}, []
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError, KeyError, TypeError):
        return "refuse", {}, []
    if request.get("package") == client.package_dir() and len(fds) == 3:
        if _unchanged(loaded):
            return "serve", request, fds
        conn.sendall(client.REPLY.pack(client.REFUSED, 0))
        if not quiet:
            print("kvmpool daemon: kvmpool changed since it started; stopping", flush=True)
        return "stop", {}, []
    conn.sendall(client.REPLY.pack(client.REFUSED, 0))
    return "refuse", {}, []


def _receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    fds = array.array("i")
    msg, ancdata, _flags, _addr = conn.recvmsg(4, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if len(msg) != 4:
        raise ValueError("short request")
    (size,) = struct.unpack("=I", msg)
    if size > MAX_REQUEST:
        raise ValueError("request too large")
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("short request")
        body += chunk
    return decode_request(body), list(fds)


def decode_request(body: bytes) -> dict[str, object]:
    """The fields of ``client.encode_request`` (ValueError if it is not one)."""
    fields = body.split(b"\0")
    if len(fields) < 5 or fields[0] != client.MAGIC:
        raise ValueError("not a kvmpool request")
    count = int(fields[4])
    if count < 0 or len(fields) < 5 + count:
        raise ValueError("bad argument count")
    argv = [os.fsdecode(a) for a in fields[5:5 + count]]
    env = {}
    for item in fields[5 + count:]:
        name, sep, value = item.partition(b"=")
        if not sep:
            raise ValueError("bad environment entry")
        env[os.fsdecode(name)] = os.fsdecode(value)
    return {"package": os.fsdecode(fields[1]), "cwd": os.fsdecode(fields[2]),
            "umask": int(fields[3]), "argv": argv, "env": env}


def _child(conn: socket.socket, request: dict[str, object], fds: list[int]) -> NoReturn:
    code = 1
    try:
        os.setsid()  # not in the daemon's terminal session: signals come from the client
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # subprocess must wait for its children
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        umask, env, argv = request["umask"], request["env"], request["argv"]
        assert isinstance(umask, int) and isinstance(env, dict) and isinstance(argv, list)
        os.umask(umask)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env.items()})
        os.chdir(str(request["cwd"]))
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
        sys.stdout = _writer(1)
        sys.stderr = _writer(2)
        sys.argv = ["kvmpool", *map(str, argv)]
        conn.sendall(client.REPLY.pack(client.PID, os.getpid()))
        from kvmpool.cli.main import main

        code = main(sys.argv[1:])
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # the child must always report its status and exit
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.sendall(client.REPLY.pack(client.EXIT, code))
        os._exit(code)


def _writer(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    tty = raw.isatty()
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8",
                            errors="backslashreplace", line_buffering=tty,
                            write_through=tty)
