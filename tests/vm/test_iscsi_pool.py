"""iscsi pools through the kernel initiator: tgtd on 127.0.0.1, open-iscsi (iscsid, iscsi_tcp).

Runs in the VM only (tests/vm/run tests/vm/test_iscsi_pool.py). With ``-- -s`` it also
prints the real ``iscsiadm --mode session -P 3`` output, the sample the parser tests use.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmpool.host import iscsiadm
from tests.conftest import Kvmpool
from tests.tools.iscsi_target import MiB, Tgtd, free_port

INIT = "iqn.2026-11.org.kvmpool.test:vm-initiator"
PLAIN = "iqn.2026-11.org.kvmpool.test:vm-plain"
SECURE = "iqn.2026-11.org.kvmpool.test:vm-secure"
USER = "kvmpool-chap"
PASSWORD = "Chap-Pa55word-xyzzy"
RECORDED: list[str] = []  # iscsiadm --mode session -P 3, printed at the end (pytest -s)


def _sessions() -> str:
    return subprocess.run(["iscsiadm", "--mode", "session"], capture_output=True, text=True,
                          timeout=30).stdout


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    subprocess.run(["modprobe", "iscsi_tcp"], check=True, timeout=60)
    # its own session: iscsid signals its whole process group when it stops
    iscsid = subprocess.Popen(["iscsid", "-f"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    tgt = Tgtd(tmp_path_factory.mktemp("tgt"))
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["iscsiadm", "--mode", "session"], capture_output=True,
                             timeout=30).returncode not in (0, 21):
            assert time.monotonic() < deadline, "iscsid did not come up"
            time.sleep(0.2)
        tgt.start()
        tgt.add_target(PLAIN, [16 * MiB, 32 * MiB])
        tgt.add_target(SECURE, [16 * MiB], chap=(USER, PASSWORD))
        yield tgt
    finally:
        print("teardown: logout", flush=True)
        subprocess.run(["iscsiadm", "--mode", "node", "--logoutall=all"], capture_output=True,
                       timeout=60, check=False)
        print("teardown: tgt", flush=True)
        tgt.stop()
        print("teardown: iscsid", flush=True)
        iscsid.terminate()
        try:
            iscsid.wait(timeout=10)
        except subprocess.TimeoutExpired:
            iscsid.kill()
        print("teardown: done", flush=True)
        for detail in RECORDED:  # with pytest -s: the sample for tests/unit
            print("RECORD-BEGIN\n" + detail + "RECORD-END", flush=True)


def _define(kvmpool: Kvmpool, name: str, port: int, iqn: str, *extra: str) -> None:
    kvmpool("pool-define-as", name, "iscsi", "--source-host", "127.0.0.1", "--source-port",
            str(port), "--source-dev", iqn, "--source-initiator", INIT,
            "--target", "/dev/disk/by-path", *extra)


def test_plain_pool_lifecycle(kvmpool: Kvmpool, target: Tgtd, tmp_path: Path) -> None:
    _define(kvmpool, "san", target.port, PLAIN)
    kvmpool("pool-start", "san")
    assert PLAIN in _sessions()
    detail = subprocess.run(["iscsiadm", "--mode", "session", "-P", "3"],
                            capture_output=True, text=True, timeout=30).stdout
    RECORDED.append(detail)
    link = f"/dev/disk/by-path/ip-127.0.0.1:{target.port}-iscsi-{PLAIN}-lun-"
    out = kvmpool("vol-list", "san", "--details").out
    assert f"{link}1" in out and f"{link}2" in out, out
    assert "unit:0:0:1" in out and "16.00 MiB" in out and "32.00 MiB" in out
    assert f"Capacity:       {48 * MiB}" in kvmpool("pool-info", "san", "--bytes").out
    assert kvmpool("vol-name", f"{link}2").out == "unit:0:0:2\n\n"  # by path, no --pool
    data = tmp_path / "data"
    data.write_bytes(os.urandom(MiB))
    kvmpool("vol-upload", "unit:0:0:1", str(data), "--pool", "san")
    back = tmp_path / "back"
    kvmpool("vol-download", "unit:0:0:1", str(back), "--pool", "san", "--length", str(MiB))
    assert back.read_bytes() == data.read_bytes()
    kvmpool("vol-wipe", "unit:0:0:1", "--pool", "san")
    kvmpool("pool-destroy", "san")
    assert PLAIN not in _sessions()
    assert not list(Path("/etc/iscsi/nodes").glob(f"{PLAIN}*"))


def test_chap_pool_and_wrong_secret(kvmpool: Kvmpool, target: Tgtd, tmp_path: Path) -> None:
    doc = tmp_path / "secret.xml"
    doc.write_text(f"<secret ephemeral='no' private='yes'><usage type='iscsi'>"
                   f"<target>{SECURE}</target></usage></secret>")
    uuid = kvmpool("secret-define", str(doc)).out.split()[1]
    value = tmp_path / "value"
    value.write_text(base64.b64encode(b"wrong-password-1").decode())
    kvmpool("secret-set-value", uuid, "--file", str(value))
    _define(kvmpool, "sec", target.port, SECURE, "--auth-type", "chap", "--auth-username",
            USER, "--secret-usage", SECURE)
    err = kvmpool("pool-start", "sec", ok=False).err
    assert err.splitlines()[0].endswith(
        f"cannot log in to iSCSI target {SECURE} at 127.0.0.1:{target.port},1: CHAP "
        "authentication failed (hint: check the pool's <auth> username and the value of its "
        "secret (secret-set-value))"), err
    assert SECURE not in _sessions()  # no session leaked
    assert not list(Path("/etc/iscsi/nodes").glob(f"{SECURE}*"))  # no password left
    value.write_text(base64.b64encode(PASSWORD.encode()).decode())
    kvmpool("secret-set-value", uuid, "--file", str(value))
    result = kvmpool("--debug", "pool-start", "sec")
    assert PASSWORD not in result.out + result.err
    assert SECURE in _sessions()
    assert "unit:0:0:1" in kvmpool("vol-list", "sec").out
    kvmpool("pool-destroy", "sec")
    assert SECURE not in _sessions()


def test_discovery_argv_parses(target: Tgtd) -> None:
    argv = iscsiadm.discovery_argv(iscsiadm.portal("127.0.0.1", target.port))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    found = {iqn for _, iqn in iscsiadm.parse_discovery(out)}
    assert {PLAIN, SECURE} <= found


def _session_state(iqn: str) -> str | None:
    """The kernel's state of the session to ``iqn`` (LOGGED_IN, FAILED), None: no session."""
    for session in Path("/sys/class/iscsi_session").glob("session*"):
        if (session / "targetname").read_text().strip() == iqn:
            return (session / "state").read_text().strip()
    return None


def _wait_state(iqn: str, state: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while _session_state(iqn) != state:
        assert time.monotonic() < deadline, f"session to {iqn}: {_session_state(iqn)}"
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["killed", "deleted"])
def test_a_target_that_disappears(kvmpool: Kvmpool, target: Tgtd, tmp_path: Path,
                                  how: str, capfd: pytest.CaptureFixture[str]) -> None:
    """The target goes away under an active pool: its tgtd dies (the portal refuses
    connections) or the target is deleted from a running tgtd (logins are refused).
    Listing fails at once with one line and leaves the session alone (the kernel keeps
    retrying); pool-destroy logs out at once; nothing is left behind."""
    iqn = f"iqn.2026-11.org.kvmpool.test:vm-{how}"
    tgt = Tgtd(tmp_path)
    tgt.start()
    try:
        tgt.add_target(iqn, [16 * MiB])
        _define(kvmpool, "gone", tgt.port, iqn)
        kvmpool("pool-start", "gone")
        assert "unit:0:0:1" in kvmpool("vol-list", "gone").out
        if how == "killed":
            assert tgt.proc is not None
            tgt.proc.kill()
            tgt.proc.wait(timeout=10)
        else:
            tgt.adm("--mode", "target", "--op", "delete", "--force", "--tid", "1")
        _wait_state(iqn, "FAILED")
        where = f"iSCSI target {iqn} at 127.0.0.1:{tgt.port},1 does not answer (session "
        for argv in (("vol-list", "gone"), ("vol-info", "unit:0:0:1", "--pool", "gone"),
                     ("vol-download", "unit:0:0:1", str(tmp_path / "d"), "--pool", "gone")):
            started = time.monotonic()
            err = kvmpool(*argv, ok=False).err
            assert time.monotonic() - started < 20, argv
            assert len(err.strip().splitlines()) == 1 and where in err, (argv, err)
            assert "is FAILED) (hint: check the target and the network; the kernel keeps " \
                   "retrying; to give up and log out: kvmpool pool-destroy gone)" in err, err
        err = kvmpool("pool-info", "gone", ok=False).err  # sizes need a refresh
        assert len(err.strip().splitlines()) == 1 and where in err, err
        assert _session_state(iqn) == "FAILED"  # untouched: it may still come back
        rows = [ln.split() for ln in kvmpool("pool-list", "--all").out.splitlines()]
        assert ["gone", "active", "no"] in rows, rows  # still active
        started = time.monotonic()
        kvmpool("pool-destroy", "gone")
        with capfd.disabled():
            print(f"pool-destroy, target {how}: {time.monotonic() - started:.1f} s", flush=True)
        assert time.monotonic() - started < 30
        assert iqn not in _sessions()
        assert not list(Path("/etc/iscsi/nodes").glob(f"{iqn}*"))
        assert "inactive" in kvmpool("pool-info", "gone").out
    finally:
        subprocess.run(["iscsiadm", "--mode", "node", "--targetname", iqn, "--logout"],
                       capture_output=True, timeout=60, check=False)
        tgt.stop()


def test_refresh_of_a_pool_whose_target_is_gone(kvmpool: Kvmpool, target: Tgtd,
                                                tmp_path: Path,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    """pool-refresh fails with one line and, like any failed refresh, stops the pool:
    logged out, no session, no node record; pool-start logs in again once it is back."""
    iqn = "iqn.2026-11.org.kvmpool.test:vm-refresh"
    tgt = Tgtd(tmp_path)
    tgt.start()
    try:
        tgt.add_target(iqn, [16 * MiB])
        _define(kvmpool, "gone", tgt.port, iqn)
        kvmpool("pool-start", "gone")
        tgt.adm("--mode", "target", "--op", "delete", "--force", "--tid", "1")
        tgt.tids.clear()
        _wait_state(iqn, "FAILED")
        started = time.monotonic()
        err = kvmpool("pool-refresh", "gone", ok=False).err
        with capfd.disabled():
            print(f"pool-refresh, target deleted: {time.monotonic() - started:.1f} s", flush=True)
        assert time.monotonic() - started < 30
        assert len(err.strip().splitlines()) == 1, err
        assert f"iSCSI target {iqn} at 127.0.0.1:{tgt.port},1 does not answer" in err, err
        assert err.endswith("(hint: check the target and the network; a failed pool-refresh "
                            "logs out and stops the pool; kvmpool pool-start gone logs in "
                            "again)\n"), err
        assert iqn not in _sessions()
        assert not list(Path("/etc/iscsi/nodes").glob(f"{iqn}*"))
        assert "inactive" in kvmpool("pool-info", "gone").out
        tgt.add_target(iqn, [16 * MiB])  # back again
        kvmpool("pool-start", "gone")
        assert "unit:0:0:1" in kvmpool("vol-list", "gone").out
        kvmpool("pool-destroy", "gone")
        assert iqn not in _sessions()
    finally:
        subprocess.run(["iscsiadm", "--mode", "node", "--targetname", iqn, "--logout"],
                       capture_output=True, timeout=60, check=False)
        tgt.stop()


def test_start_against_a_closed_portal(kvmpool: Kvmpool, target: Tgtd,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    """Nothing listens on the portal: pool-start fails at once with one line (iscsid alone
    would retry for over a minute) and leaves neither a session nor a node record."""
    iqn = "iqn.2026-11.org.kvmpool.test:vm-nobody"
    port = free_port()
    _define(kvmpool, "closed", port, iqn)
    started = time.monotonic()
    err = kvmpool("pool-start", "closed", ok=False).err
    took = time.monotonic() - started
    with capfd.disabled():
        print(f"pool-start, closed portal: {took:.1f} s", flush=True)
    assert took < 10
    assert err == (f"error: Failed to start pool closed: cannot reach iSCSI server '127.0.0.1': "
                   f"port {port}: Connection refused (hint: check the host and port, and that "
                   "the target is running; nothing was changed)\n"), err
    assert iqn not in _sessions()
    assert not list(Path("/etc/iscsi/nodes").glob(f"{iqn}*"))
