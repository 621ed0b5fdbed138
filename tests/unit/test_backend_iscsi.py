"""The kernel-initiator iscsi backend's command sequence, with a fake iscsiadm.

The real thing needs iscsi_tcp (the VM tier). Here: the order of iscsiadm calls, CHAP going
into the node record file (0600) and never into argv, the record removed again when the
login fails and at stop, and volumes read from ``-P 3`` output, by-path links and sysfs.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
from pathlib import Path

import pytest

from kvmpool.backends.base import Context
from kvmpool.backends.iscsi import IscsiBackend
from kvmpool.errors import HostCommandFailed, InvalidArgument, InvalidState, KvmpoolError
from kvmpool.host.run import Completed, Runner
from kvmpool.model import (
    Auth,
    PoolDef,
    PoolSource,
    PoolTarget,
    PoolType,
    SecretRef,
    SourceDevice,
    SourceHost,
)
from tests.unit.test_host_iscsiadm import RECORD, RECORDED, VT

T = "iqn.2026-11.org.kvmpool.test:plain"
INIT = "iqn.2026-11.org.kvmpool.test:init"
PASSWORD = "Chap-Pa55word-xyzzy"


class FakeIscsiadm(Runner):
    def __init__(self, nodes: Path, login_rc: int = 0) -> None:
        super().__init__()
        self.nodes = nodes
        self.login_rc = login_rc
        self.logged_in = False
        self.argvs: list[tuple[str, ...]] = []

    def _execute(self, argv: tuple[str, ...], *, timeout: float, input: str | None) -> Completed:
        self.argvs.append(argv)
        a = " ".join(argv)
        if "--op new" in a and "--mode node" in a:
            iface = argv[argv.index("--interface") + 1] if "--interface" in argv else "default"
            record = self.nodes / T / "127.0.0.1,3260,1" / iface
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(RECORD)
            record.chmod(0o600)
        elif "--op delete" in a and "--mode node" in a:
            for f in sorted(self.nodes.rglob("*"), reverse=True):
                f.rmdir() if f.is_dir() else f.unlink()
        elif a.endswith("--login") or "--login --interface" in a:
            self.logged_in = self.login_rc == 0
            return Completed(argv, self.login_rc, "", "iscsiadm: Login failed\n")
        elif a.endswith("--logout"):
            self.logged_in = False
        elif argv[1:] == ("--mode", "session"):
            if not self.logged_in:
                return Completed(argv, 21, "", "iscsiadm: No active sessions.\n")
            return Completed(argv, 0, f"tcp: [1] 127.0.0.1:3260,1 {T} (non-flash)\n", "")
        elif "-P" in argv:
            return Completed(argv, 0, RECORDED.replace(VT, T), "")
        return Completed(argv, 0, "", "")


def _pool(tmp_path: Path, auth: bool = True) -> PoolDef:
    return PoolDef(
        type=PoolType.ISCSI, name="san", uuid="00000000-0000-0000-0000-000000000000",
        source=PoolSource(hosts=(SourceHost("127.0.0.1"),), devices=(SourceDevice(T),),
                          initiator_iqn=INIT,
                          auth=Auth("chap", "alice", SecretRef(usage=T)) if auth else None),
        target=PoolTarget(path=str(tmp_path / "by-path")))


def _backend(tmp_path: Path, runner: FakeIscsiadm) -> IscsiBackend:
    backend = IscsiBackend(Context(runner, secret=lambda auth: PASSWORD.encode()))
    backend.nodes_dirs = (str(runner.nodes),)
    backend.sys_block = str(tmp_path / "sys")
    backend.sys_session = str(tmp_path / "iscsi_session")
    backend._probe = lambda w: None  # type: ignore[method-assign]  # no portal listens here
    return backend


def test_start_writes_chap_into_the_record_never_into_argv(tmp_path: Path) -> None:
    runner = FakeIscsiadm(tmp_path / "nodes")
    backend = _backend(tmp_path, runner)
    backend.start(_pool(tmp_path))
    iface = backend_iface(runner)
    node = ("--mode", "node", "--portal", "127.0.0.1:3260,1", "--targetname", T)
    assert [a[1:] for a in runner.argvs] == [
        ("--mode", "session"),
        ("--mode", "iface", "--interface", iface, "--op", "new"),
        ("--mode", "iface", "--interface", iface, "--op", "update",
         "--name", "iface.initiatorname", "--value", INIT),
        (*node, "--op", "new", "--interface", iface),
        (*node, "--op", "update", "--name", "node.session.initial_login_retry_max",
         "--value", "3"),
        (*node, "--login", "--interface", iface)]
    assert not [a for a in runner.argvs if any(PASSWORD in x for x in a)]
    record = next((tmp_path / "nodes").rglob(backend_iface(runner)))
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    text = record.read_text()
    assert f"node.session.auth.password = {PASSWORD}" in text
    assert "node.session.auth.authmethod = CHAP" in text
    assert backend.check(_pool(tmp_path))
    backend.stop(_pool(tmp_path))
    assert not record.exists()  # no password left on disk after stop
    assert not backend.check(_pool(tmp_path))


def backend_iface(runner: FakeIscsiadm) -> str:
    return next(a[a.index("--interface") + 1] for a in runner.argvs if "--interface" in a)


def test_a_failed_login_removes_the_record(tmp_path: Path) -> None:
    runner = FakeIscsiadm(tmp_path / "nodes", login_rc=24)
    backend = _backend(tmp_path, runner)
    with pytest.raises(InvalidArgument, match="CHAP authentication failed"):
        backend.start(_pool(tmp_path))
    assert not [p for p in (tmp_path / "nodes").rglob("*") if p.is_file()]


def test_refresh_reads_luns_links_and_sizes(tmp_path: Path) -> None:
    runner = FakeIscsiadm(tmp_path / "nodes")
    backend = _backend(tmp_path, runner)
    pool = _pool(tmp_path, auth=False)
    backend.start(pool)
    by_path, dev = tmp_path / "by-path", tmp_path / "dev"
    by_path.mkdir()
    dev.mkdir()
    for disk, lun, sectors in (("sda", 1, 32768), ("sdb", 2, 131072)):
        (dev / disk).touch()
        os.symlink(dev / disk, by_path / f"ip-127.0.0.1:3260-iscsi-{T}-lun-{lun}")
        (tmp_path / "sys" / disk).mkdir(parents=True)
        (tmp_path / "sys" / disk / "size").write_text(f"{sectors}\n")
    os.symlink(dev / "sda", by_path / f"ip-127.0.0.1:3260-iscsi-{T}-lun-1-part1")
    live = backend.refresh(pool)
    assert (live.capacity, live.allocation, live.available) == (83886080, 83886080, 0)
    vols = backend.list_volumes(pool, details=True)
    assert [(v.name, v.capacity, v.target.path) for v in vols] == [
        ("unit:0:0:1", 16 * 1024 * 1024, str(by_path / f"ip-127.0.0.1:3260-iscsi-{T}-lun-1")),
        ("unit:0:0:2", 64 * 1024 * 1024, str(by_path / f"ip-127.0.0.1:3260-iscsi-{T}-lun-2"))]
    assert backend.volume(pool, "unit:0:0:2") == vols[1]
    assert backend.volume(pool, f"ip-127.0.0.1:3260-iscsi-{T}-lun-2") == vols[1]
    assert ("iscsiadm", "--mode", "session", "-r", "1", "-R") in runner.argvs


def test_a_target_that_stopped_answering_is_one_line_and_no_rescan(tmp_path: Path) -> None:
    """The kernel marks the session FAILED: listing says so at once, without the rescan
    (which would wait for the target up to replacement_timeout), and changes nothing."""
    runner = FakeIscsiadm(tmp_path / "nodes")
    backend = _backend(tmp_path, runner)
    pool = _pool(tmp_path, auth=False)
    backend.start(pool)
    state = tmp_path / "iscsi_session" / "session1" / "state"
    state.parent.mkdir(parents=True)
    state.write_text("FAILED\n")
    runner.argvs.clear()
    with pytest.raises(KvmpoolError) as listing:
        backend.list_volumes(pool, details=False)
    assert str(listing.value) == f"iSCSI target {T} at 127.0.0.1:3260,1 does not answer " \
                                 "(session 1 is FAILED)"
    assert listing.value.hint == ("check the target and the network; the kernel keeps "
                                  "retrying; to give up and log out: kvmpool pool-destroy san")
    with pytest.raises(KvmpoolError, match="does not answer") as refresh:
        backend.refresh(pool)
    assert refresh.value.hint == ("check the target and the network; a failed pool-refresh "
                                  "logs out and stops the pool; kvmpool pool-start san logs "
                                  "in again")
    assert not [a for a in runner.argvs if "-R" in a or "-P" in a]
    assert all(a[1:] == ("--mode", "session") for a in runner.argvs)
    state.write_text("LOGGED_IN\n")
    backend.refresh(pool)  # back: rescanned and listed again
    assert ("iscsiadm", "--mode", "session", "-r", "1", "-R") in runner.argvs


def test_the_session_state_from_iscsiadm_when_sysfs_has_none(tmp_path: Path) -> None:
    runner = FakeIscsiadm(tmp_path / "nodes")
    backend = _backend(tmp_path, runner)
    pool = _pool(tmp_path, auth=False)
    backend.start(pool)
    backend.sys_session = str(tmp_path / "absent")
    failed = RECORDED.replace(VT, T).replace("Session State: LOGGED_IN", "Session State: FAILED")
    real = runner._execute

    def execute(argv: tuple[str, ...], *, timeout: float, input: str | None) -> Completed:
        if "-P" in argv:
            return Completed(argv, 0, failed, "")
        return real(argv, timeout=timeout, input=input)

    runner._execute = execute  # type: ignore[method-assign]
    with pytest.raises(KvmpoolError, match=r"does not answer \(session 1 is FAILED\)"):
        backend.list_volumes(pool, details=False)


def test_a_closed_portal_is_refused_before_any_iscsiadm_call(tmp_path: Path) -> None:
    runner = FakeIscsiadm(tmp_path / "nodes")
    backend = IscsiBackend(Context(runner))
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = _pool(tmp_path, auth=False).source
    pool = dataclasses.replace(_pool(tmp_path, auth=False), source=dataclasses.replace(
        src, hosts=(SourceHost("127.0.0.1", port),)))
    with pytest.raises(InvalidState) as err:
        backend.start(pool)
    assert str(err.value) == f"cannot reach iSCSI server '127.0.0.1': port {port}: " \
                             "Connection refused"
    assert err.value.hint == ("check the host and port, and that the target is running; "
                              "nothing was changed")
    assert runner.argvs == [("iscsiadm", "--mode", "session")]  # nothing was changed


def test_an_iscsiadm_that_never_answers_is_one_line(tmp_path: Path) -> None:
    class Stuck(FakeIscsiadm):
        def _execute(self, argv: tuple[str, ...], *, timeout: float,
                     input: str | None) -> Completed:
            if "--login" in argv:
                raise HostCommandFailed("iscsiadm did not finish within 60 s", argv=argv,
                                        returncode=None, stderr="")
            return super()._execute(argv, timeout=timeout, input=input)

    runner = Stuck(tmp_path / "nodes")
    backend = _backend(tmp_path, runner)
    with pytest.raises(KvmpoolError) as err:
        backend.start(_pool(tmp_path, auth=False))
    assert str(err.value) == f"cannot log in to iSCSI target {T} at 127.0.0.1:3260,1: " \
                             "no answer within 60 s"
    assert runner.argvs[-1][-2:] == ("--op", "delete")  # the record is removed again
