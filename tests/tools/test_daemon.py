"""``kvmpool daemon``: commands run in a fork of a warm process, exactly as they run alone.

Every command is run twice, through the daemon and with ``KVMPOOL_NO_DAEMON=1``, and the
two results (exit status, stdout, stderr) must be equal; the daemon's log shows which
commands it served.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kvmpool.cli import client, daemon

pytestmark = pytest.mark.tools


class Daemon:
    def __init__(self, tmp: Path) -> None:
        self.sock = tmp / "sock" / "cli.sock"
        self.log = tmp / "daemon.log"
        self.root = tmp / "root"
        # the daemon's own KVMPOOL_ROOT is elsewhere: commands must use the client's
        env = dict(os.environ, KVMPOOL_DAEMON_SOCKET=str(self.sock),
                   KVMPOOL_ROOT=str(tmp / "not-this-root"))
        self.proc = subprocess.Popen([sys.executable, "-m", "kvmpool", "daemon"], env=env,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.sock.exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.05)

    def run(self, *args: str, local: bool = False, cwd: Path | None = None,
            data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        env = dict(os.environ, KVMPOOL_DAEMON_SOCKET=str(self.sock), KVMPOOL_ROOT=str(self.root))
        if local:
            env["KVMPOOL_NO_DAEMON"] = "1"
        return subprocess.run([sys.executable, "-m", "kvmpool", *args], env=env, cwd=cwd,
                              input=data, capture_output=True, check=False)

    def both(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run through the daemon, then here: same status and output (or the check fails)."""
        served = self.served()
        warm = self.run(*args, cwd=cwd)
        assert self.served() == served + 1, self.log.read_text()
        cold = self.run(*args, local=True, cwd=cwd)
        assert (warm.returncode, warm.stdout, warm.stderr) == (
            cold.returncode, cold.stdout, cold.stderr)
        return warm

    def served(self) -> int:
        return sum(1 for line in self.log.read_text().splitlines() if "] kvmpool " in line)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_commands_run_as_they_run_alone(d: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "pool"
    target.mkdir()
    assert d.run("pool-define-as", "p", "dir", "--target", str(target)).returncode == 0
    d.run("pool-start", "p")
    assert d.run("vol-create-as", "p", "a", "10M").stdout == b"Vol a created\n\n"
    assert (target / "a").stat().st_size == 10 << 20  # the client's KVMPOOL_ROOT was used
    d.both("vol-create-as", "p", "b", "1G", "--format", "qcow2", "--print-xml")
    d.both("vol-list", "p", "--details")
    d.both("pool-list", "--all")
    d.both("vol-dumpxml", "a", "--pool", "p", "--json")
    bad = d.both("vol-info", "nosuch", "--pool", "p")
    assert bad.returncode == 1 and bad.stderr.count(b"\n") == 1
    assert d.both("vol-create-as", "p", "x", "-5").returncode != 0
    # the working directory, stdin and stdout are the client's
    (tmp_path / "data").write_bytes(os.urandom(65536))
    d.both("vol-upload", "a", "data", "--pool", "p", cwd=tmp_path)
    assert (target / "a").read_bytes()[:65536] == (tmp_path / "data").read_bytes()
    blob = os.urandom(4096)
    assert d.run("vol-upload", "a", "-", "--pool", "p", data=blob).returncode == 0
    out = d.run("vol-download", "a", "-", "--pool", "p", "--length", "4096").stdout
    assert out == blob
    assert d.served() >= 10


def _interruptible() -> None:
    """For a child that must take Ctrl-C: a test run in the background (a shell's ``&``)
    starts with SIGINT ignored, and a command keeps what it was given."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_reaches_the_command(d: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "pool"
    target.mkdir()
    d.run("pool-create-as", "p", "dir", "--target", str(target))
    d.run("vol-create-as", "p", "v", "64M")
    env = dict(os.environ, KVMPOOL_DAEMON_SOCKET=str(d.sock), KVMPOOL_ROOT=str(d.root))
    served = d.served()
    # an upload from a pipe that never ends: it runs until interrupted
    proc = subprocess.Popen([sys.executable, "-m", "kvmpool", "vol-upload", "v", "-",
                             "--pool", "p"], env=env, stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_interruptible)
    assert proc.stdin is not None
    proc.stdin.write(b"x" * 65536)
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    while d.served() == served:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker = int(d.log.read_text().splitlines()[-1].split("[")[1].split("]")[0])
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and err == b"error: interrupted\n"
    for _ in range(100):  # the worker is gone too
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the daemon's worker outlived the interrupted command")


def _raw_request(sock: Path, package: str) -> bytes:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(sock))
    request = client.encode_request(["--version"], "/", 0o022, {}, package)
    with open(os.devnull, "rb") as null:
        conn.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                  struct.pack("3i", null.fileno(), null.fileno(),
                                              null.fileno()))])
        reply = conn.recv(client.REPLY.size)
    conn.close()
    return reply


def test_requests_round_trip_and_garbage_is_refused() -> None:
    argv = ["vol-upload", "v", "-", "--pool", "p", "-5M", "caf\u00e9", "with space", ""]
    env = {"KVMPOOL_ROOT": "/r", "EMPTY": "", "EQ": "a=b", "BYTES": os.fsdecode(b"\xff")}
    body = client.encode_request(argv, "/some where", 0o027, env, "/pkg")[4:]
    assert daemon.decode_request(body) == {"package": "/pkg", "cwd": "/some where",
                                           "umask": 0o027, "argv": argv, "env": env}
    for bad in (b"", b"junk", b"\x00".join([client.MAGIC, b"/p", b"/c", b"18", b"9", b"a"]),
                b"\x00".join([client.MAGIC, b"/p", b"/c", b"18", b"1", b"a", b"NOEQUALS"])):
        with pytest.raises(ValueError):
            daemon.decode_request(bad)


def test_another_kvmpool_is_refused_and_runs_itself(d: Daemon) -> None:
    kind, _ = client.REPLY.unpack(_raw_request(d.sock, "/elsewhere/kvmpool"))
    assert kind == client.REFUSED
    kind, pid = client.REPLY.unpack(_raw_request(d.sock, client.package_dir()))
    assert kind == client.PID and pid > 0
    # a client whose daemon refuses (or is absent) runs the command itself
    gone = d.run("--version", local=False)
    assert gone.returncode == 0 and gone.stdout.startswith(b"kvmpool")


def test_socket_is_private_and_changed_files_are_noticed(d: Daemon, tmp_path: Path) -> None:
    assert (d.sock.parent.stat().st_mode & 0o777) == 0o700
    assert (d.sock.stat().st_mode & 0o077) == 0
    probe = tmp_path / "module.py"
    probe.write_text("")
    loaded = {str(probe): probe.stat().st_mtime_ns}
    assert daemon._unchanged(loaded)
    os.utime(probe, ns=(0, probe.stat().st_mtime_ns + 1))
    assert not daemon._unchanged(loaded)


def test_without_a_daemon_the_client_runs_the_command(tmp_path: Path) -> None:
    env = dict(os.environ, KVMPOOL_DAEMON_SOCKET=str(tmp_path / "none" / "cli.sock"),
               KVMPOOL_ROOT=str(tmp_path / "root"))
    done = subprocess.run([sys.executable, "-m", "kvmpool", "pool-list", "--all"], env=env,
                          capture_output=True, check=True)
    assert done.stdout.startswith(b" Name")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    """The process has ended (exited, or a zombie not yet reaped)."""
    return not Path(f"/proc/{pid}").exists() \
        or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]


def test_a_spare_worker_waits_and_is_replaced_when_killed(d: Daemon) -> None:
    _wait_for(lambda: len(_children(d.proc.pid)) == 1, "no spare worker")
    (spare,) = _children(d.proc.pid)
    os.kill(spare, signal.SIGKILL)  # dies without a connection: the daemon forks another
    _wait_for(lambda: _children(d.proc.pid) - {spare} != set(), "the spare was not replaced")
    served = d.served()
    assert d.run("--version").returncode == 0
    assert d.served() == served + 1
    _wait_for(lambda: len(_children(d.proc.pid)) == 1, "no spare after a command")
    spare = next(iter(_children(d.proc.pid)))
    d.stop()  # and the daemon takes its spare with it
    _wait_for(lambda: _gone(spare), "the spare outlived the daemon")
    assert not d.sock.exists()


def test_a_spare_ends_with_its_daemon_even_a_killed_one(d: Daemon) -> None:
    _wait_for(lambda: len(_children(d.proc.pid)) == 1, "no spare worker")
    (spare,) = _children(d.proc.pid)
    d.proc.kill()  # SIGKILL: the daemon cannot take its spare with it
    d.proc.wait(timeout=10)
    _wait_for(lambda: _gone(spare), "the spare outlived its killed daemon")


def _forks(sock: Path) -> set[int]:
    """The daemon listening on ``sock`` and every fork of it still alive (they share its
    environment, which names the socket)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"daemon" in (entry / "cmdline").read_bytes() \
                    and f"KVMPOOL_DAEMON_SOCKET={sock}".encode() in \
                    (entry / "environ").read_bytes().split(b"\0") and not _gone(int(entry.name)):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def test_a_daemon_stopped_right_after_commands_leaves_no_fork(tmp_path: Path) -> None:
    """Stopped as it forks the next spare (just after serving a command), a daemon once
    missed the new spare, which then waited for ever on the deleted socket."""
    for i in range(6):
        (tmp_path / str(i)).mkdir()
        running = Daemon(tmp_path / str(i))
        for _ in range(3):
            assert running.run("--version").returncode == 0
        running.stop()
        _wait_for(lambda sock=running.sock: not _forks(sock), "a fork outlived its daemon")


def _faults_writing(block: bytearray) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_prefault_copies_shared_pages_ahead_and_yields_to_a_command(tmp_path: Path) -> None:
    pages = 2048
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "l.sock"))
    listener.listen(1)
    results = []
    for connect_first in (False, True):
        block = bytearray(b"\x07" * (pages * 4096))  # written here: shared with the fork below
        if connect_first:
            waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            waiting.connect(str(tmp_path / "l.sock"))
        news, pipe = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(news)
            daemon._prefault(listener)
            os.write(pipe, b"%d" % _faults_writing(block))
            os._exit(0)
        os.close(pipe)
        results.append(int(os.read(news, 32)))
        os.close(news)
        os.waitpid(pid, 0)
        if connect_first:
            waiting.close()
            listener.accept()[0].close()
    prefaulted, interrupted = results
    assert prefaulted < pages // 10, results  # copied ahead: writing faults (almost) never
    assert interrupted > pages // 2, results  # a waiting connection stops it at once


def test_socket_activation_takes_systemds_socket_and_leaves_it(tmp_path: Path) -> None:
    """As with contrib/systemd's .socket unit, through systemd's own test tool: the socket
    exists first, the first command starts the daemon with it as fd 3 (LISTEN_PID,
    LISTEN_FDS), and the socket is left in place when the daemon stops."""
    sock = tmp_path / "cli.sock"
    log = tmp_path / "daemon.log"
    env = dict(os.environ, KVMPOOL_ROOT=str(tmp_path / "not-this-root"))
    env.pop("KVMPOOL_DAEMON_SOCKET", None)  # the daemon must not need it
    activator = subprocess.Popen(
        ["systemd-socket-activate", "-l", str(sock), sys.executable, "-m", "kvmpool",
         "daemon"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        _wait_for(sock.exists, "systemd-socket-activate did not listen")
        assert "listening on" not in log.read_text()  # no daemon yet
        client_env = dict(os.environ, KVMPOOL_DAEMON_SOCKET=str(sock),
                          KVMPOOL_ROOT=str(tmp_path / "root"))
        for _ in range(2):  # the first starts the daemon, the second finds it running
            done = subprocess.run([sys.executable, "-m", "kvmpool", "pool-list", "--all"],
                                  env=client_env, capture_output=True, check=True)
            assert done.stdout.startswith(b" Name")
        text = log.read_text()
        assert f"listening on {sock}" in text
        assert text.count("] kvmpool pool-list --all") == 2  # served, not run alone
    finally:
        activator.send_signal(signal.SIGTERM)  # the daemon itself, after the exec
        activator.wait(timeout=10)
    assert sock.exists()  # systemd's socket, not the daemon's to remove


def test_ctrl_c_while_a_daemon_never_answers(tmp_path: Path) -> None:
    sock = tmp_path / "cli.sock"
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # listens, never accepts
    mute.bind(str(sock))
    mute.listen(8)
    env = dict(os.environ, KVMPOOL_DAEMON_SOCKET=str(sock), KVMPOOL_ROOT=str(tmp_path))
    out, err = tmp_path / "out", tmp_path / "err"
    # files, not pipes: the descriptors sent stay open in the socket's queue (no EOF)
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "kvmpool", "pool-list"], env=env,
                                stdout=stdout, stderr=stderr, preexec_fn=_interruptible)
    time.sleep(1.0)
    assert proc.poll() is None  # waiting for the daemon, as virsh waits for libvirtd
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    mute.close()
    assert out.read_bytes() == b""
    said = err.read_bytes()
    assert said.count(b"\n") == 1 and b"did not answer" in said
