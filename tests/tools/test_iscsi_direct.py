"""iscsi-direct pools and iSCSI source discovery against a real tgtd on 127.0.0.1.

Two target daemons (two portals): one with a plain target, one with a CHAP target. Every
command's stdout and stderr, and the argv of every process kvmpool starts, are checked for
the CHAP password.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmpool.backends import iscsi_direct
from kvmpool.host import libiscsi, run
from tests.conftest import Kvmpool, Result
from tests.tools.iscsi_target import MiB, Tgtd

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(shutil.which("tgtd") is None or shutil.which("iscsi-ls") is None,
                       reason="needs tgt and libiscsi-bin"),
]

INITIATOR = "iqn.2026-11.org.kvmpool.test:initiator"
PLAIN = "iqn.2026-11.org.kvmpool.test:plain"
SECURE = "iqn.2026-11.org.kvmpool.test:secure"
OPEN = "iqn.2026-11.org.kvmpool.test:open"
USER = "kvmpool-chap"
PASSWORD = "Chap-Pa55word-xyzzy"  # tgtd wants 12 to 16 characters for CHAP secrets


@pytest.fixture(scope="module")
def portals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tgtd, Tgtd]]:
    work = tmp_path_factory.mktemp("tgt")
    plain, chap = Tgtd(work), Tgtd(work)
    try:
        plain.start()
        plain.add_target(PLAIN, [16 * MiB, 64 * MiB])
        chap.start()
        chap.add_target(OPEN, [16 * MiB])
        chap.add_target(SECURE, [32 * MiB], chap=(USER, PASSWORD))
        yield plain, chap
    finally:
        plain.stop()
        chap.stop()


class Recorder:
    """Every kvmpool output and every argv kvmpool ran, for the "never shown" checks."""

    def __init__(self, kvmpool: Kvmpool) -> None:
        self.kvmpool = kvmpool
        self.results: list[Result] = []
        self.argvs: list[list[str]] = []

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = self.kvmpool(*args, ok=ok)
        self.results.append(result)
        return result


@pytest.fixture
def k(kvmpool: Kvmpool, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder(kvmpool)
    argvs = recorder.argvs
    real = subprocess.run

    def spy(argv: list[str], *a: object, **kw: object) -> object:
        argvs.append(list(argv))
        return real(argv, *a, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(run.subprocess, "run", spy)
    monkeypatch.setattr(libiscsi, "TIMEOUT", 3.0)
    monkeypatch.setattr(iscsi_direct, "CHECK_TIMEOUT", 3.0)
    yield recorder
    shown = "".join(r.out + r.err for r in recorder.results)
    assert PASSWORD not in shown
    assert base64.b64encode(PASSWORD.encode()).decode() not in shown
    assert not [a for a in argvs if any(PASSWORD in x for x in a)]


def define(k: Recorder, name: str, port: int, iqn: str, *extra: str) -> None:
    k("pool-define-as", name, "iscsi-direct", "--source-host", "127.0.0.1",
      "--source-port", str(port), "--source-dev", iqn, "--source-initiator", INITIATOR, *extra)


def chap_secret(k: Recorder, tmp_path: Path, value: str) -> str:
    doc = tmp_path / "secret.xml"
    doc.write_text("<secret ephemeral='no' private='yes'>\n"
                   "  <description>CHAP of the secure target</description>\n"
                   f"  <usage type='iscsi'><target>{SECURE}</target></usage>\n"
                   "</secret>\n")
    out = k("secret-define", str(doc)).out
    uuid = out.split()[1]
    value_file = tmp_path / "value"
    value_file.write_text(base64.b64encode(value.encode()).decode() + "\n")
    k("secret-set-value", uuid, "--file", str(value_file))
    return uuid


def test_plain_target_pool(k: Recorder, portals: tuple[Tgtd, Tgtd]) -> None:
    plain, _ = portals
    base = f"iscsi://127.0.0.1:{plain.port}/{PLAIN}"
    define(k, "san", plain.port, PLAIN)
    assert k("pool-start", "san").out == "Pool san started\n\n"
    assert k("vol-list", "san").out.splitlines()[2:4] == [
        f" unit:0:0:1   {base}/1", f" unit:0:0:2   {base}/2"]
    details = k("vol-list", "san", "--details").out
    assert "network   16.00 MiB   16.00 MiB" in details
    assert "network   64.00 MiB   64.00 MiB" in details
    info = k("vol-info", "unit:0:0:2", "--pool", "san", "--bytes").out
    assert info == ("Name:           unit:0:0:2\nType:           network\n"
                    f"Capacity:       {64 * MiB} bytes\nAllocation:     {64 * MiB} bytes\n\n")
    assert k("vol-path", "unit:0:0:1", "--pool", "san").out == f"{base}/1\n\n"
    assert k("vol-key", "unit:0:0:1", "--pool", "san").out == f"{base}/1\n\n"
    assert k("vol-name", f"{base}/2").out == "unit:0:0:2\n\n"  # by key, no --pool
    info = k("pool-info", "san", "--bytes").out
    assert f"Capacity:       {80 * MiB}\n" in info
    assert f"Allocation:     {80 * MiB}\n" in info
    assert "Available:      0\n" in info
    xml = k("vol-dumpxml", "unit:0:0:1", "--pool", "san").out
    assert "<volume type='network'>" in xml and f"<path>{base}/1</path>" in xml
    # libvirt: iscsi-direct LUNs cannot be made or deleted; zero is the one wipe
    err = k("vol-wipe", "unit:0:0:1", "--pool", "san", "--algorithm", "dod", ok=False).err
    assert "pool 'san' (iscsi-direct) cannot wipe with 'dod'" in err
    err = k("vol-create-as", "san", "new", "1M", ok=False).err
    assert "cannot create volumes" in err
    assert "running" in k("pool-list", "--details").out
    k("pool-destroy", "san")
    k("pool-undefine", "san")


def test_chap_pool_and_the_password_never_shows(
        k: Recorder, portals: tuple[Tgtd, Tgtd], tmp_path: Path) -> None:
    _, chap = portals
    uuid = chap_secret(k, tmp_path, PASSWORD)
    define(k, "sec", chap.port, SECURE, "--auth-type", "chap", "--auth-username", USER,
           "--secret-usage", SECURE)
    k("--debug", "pool-start", "sec")
    assert f"iscsi://127.0.0.1:{chap.port}/{SECURE}/1" in k("vol-list", "sec").out
    assert f"Capacity:       {32 * MiB}\n" in k("pool-info", "sec", "--bytes").out
    k("--dry-run", "pool-refresh", "sec")
    assert "secret is private" in k("secret-get-value", uuid, ok=False).err
    k("pool-destroy", "sec")
    # the pool XML names the secret, never its value
    assert f"<secret usage='{SECURE}'/>" in k("pool-dumpxml", "sec").out


def test_wrong_chap_secret(k: Recorder, portals: tuple[Tgtd, Tgtd], tmp_path: Path) -> None:
    _, chap = portals
    chap_secret(k, tmp_path, PASSWORD[::-1])
    define(k, "bad", chap.port, SECURE, "--auth-type", "chap", "--auth-username", USER,
           "--secret-usage", SECURE)
    err = k("--debug", "pool-start", "bad", ok=False).err
    assert err.splitlines()[0] == (
        f"error: Failed to start pool bad: cannot list the LUNs of iSCSI target {SECURE} at "
        f"127.0.0.1:{chap.port}: CHAP authentication failed (hint: check the pool's <auth> "
        "username and the value of its secret (secret-set-value))")
    assert PASSWORD[::-1] not in err
    assert "inactive" in k("pool-info", "bad").out


def test_missing_secret(k: Recorder, portals: tuple[Tgtd, Tgtd]) -> None:
    _, chap = portals
    define(k, "nosecret", chap.port, SECURE, "--auth-type", "chap", "--auth-username", USER,
           "--secret-usage", "nothing-like-it")
    err = k("pool-start", "nosecret", ok=False).err
    assert "no secret with matching usage 'nothing-like-it'" in err


def test_wrong_iqn(k: Recorder, portals: tuple[Tgtd, Tgtd]) -> None:
    plain, _ = portals
    define(k, "typo", plain.port, PLAIN + "-typo")
    err = k("pool-start", "typo", ok=False).err
    assert err.startswith(f"error: Failed to start pool typo: cannot list the LUNs of iSCSI "
                          f"target {PLAIN}-typo at 127.0.0.1:{plain.port}: no such target")
    assert len(err.splitlines()) == 1


def test_closed_port(k: Recorder) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        define(k, "closed", port, PLAIN)
        err = k("pool-start", "closed", ok=False).err
    assert "connection refused" in err and len(err.splitlines()) == 1


def test_silent_portal_is_a_bounded_wait(k: Recorder) -> None:
    """A portal that accepts TCP and never answers: the tools would wait forever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        define(k, "silent", server.getsockname()[1], PLAIN)
        began = time.monotonic()
        err = k("pool-start", "silent", ok=False).err
        assert time.monotonic() - began < 15
        assert "no answer within 3 s" in err and len(err.splitlines()) == 1
        began = time.monotonic()
        err = k("find-storage-pool-sources-as", "iscsi", "127.0.0.1",
                str(server.getsockname()[1]), ok=False).err
        assert "no answer within 3 s" in err and time.monotonic() - began < 15
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_find_storage_pool_sources(k: Recorder, portals: tuple[Tgtd, Tgtd],
                                   tmp_path: Path) -> None:
    plain, chap = portals
    out = k("find-storage-pool-sources-as", "iscsi", "--host", "127.0.0.1",
            "--port", str(plain.port)).out
    assert out == ("<sources>\n  <source>\n"
                   f"    <host name='127.0.0.1' port='{plain.port}'/>\n"
                   f"    <device path='{PLAIN}'/>\n"
                   "  </source>\n</sources>\n\n")
    out = k("find-storage-pool-sources-as", "iscsi-direct", "127.0.0.1", str(chap.port),
            "--initiator", INITIATOR).out
    assert f"<device path='{SECURE}'/>" in out and f"<device path='{OPEN}'/>" in out
    assert f"<iqn name='{INITIATOR}'/>" in out
    spec = tmp_path / "spec.xml"
    spec.write_text(f"<source><host name='127.0.0.1' port='{plain.port}'/></source>")
    assert PLAIN in k("find-storage-pool-sources", "iscsi", "--srcSpec", str(spec)).out
    err = k("find-storage-pool-sources-as", "dir", ok=False).err
    assert "pool type 'dir' does not support source discovery" in err
    err = k("find-storage-pool-sources-as", "iscsi-direct", "--host", "127.0.0.1",
            ok=False).err
    assert "missing initiator IQN" in err


def test_open_target_beside_a_chap_target(k: Recorder, portals: tuple[Tgtd, Tgtd]) -> None:
    """iscsi-ls -s logs in to every target of a portal and stops at the first it cannot log
    in to (here the CHAP target, listed first by tgtd): kvmpool then asks its own target
    alone (kvmpool.host.reportluns, libiscsi through ctypes)."""
    _, chap = portals
    define(k, "open", chap.port, OPEN)
    k("pool-start", "open")
    out = k("vol-list", "open", "--details").out
    assert f"iscsi://127.0.0.1:{chap.port}/{OPEN}/1" in out and "16.00 MiB" in out
    assert SECURE not in out
    assert any("kvmpool.host.reportluns" in a for a in k.argvs)  # iscsi-ls was stopped
    assert f"Capacity:       {16 * MiB}\n" in k("pool-info", "open", "--bytes").out


def _lun_file(tgt: Tgtd, tid: int, lun: int) -> Path:
    return tgt.workdir / f"p{tgt.port}-t{tid}-lun{lun}.img"


def test_upload_download_wipe_through_qemu(
        k: Recorder, portals: tuple[Tgtd, Tgtd], tmp_path: Path) -> None:
    """Data moves through QEMU's initiator; the LUN's backing file on the target shows it."""
    plain, _ = portals
    backing = _lun_file(plain, 1, 1)  # unit:0:0:1, 16 MiB
    define(k, "data", plain.port, PLAIN)
    k("pool-start", "data")
    blob = tmp_path / "blob"
    payload = os.urandom(MiB) + bytes(MiB) + os.urandom(MiB // 2)
    blob.write_bytes(payload)
    k("vol-upload", "unit:0:0:1", str(blob), "--pool", "data", "--offset", str(2 * MiB))
    on_target = backing.read_bytes()
    assert on_target[2 * MiB:2 * MiB + len(payload)] == payload
    assert on_target[:2 * MiB] == bytes(2 * MiB)
    # a range back, and the whole LUN back (sparse)
    part = tmp_path / "part"
    k("vol-download", "unit:0:0:1", str(part), "--pool", "data", "--offset", str(2 * MiB),
      "--length", str(MiB))
    assert part.read_bytes() == payload[:MiB]
    whole = tmp_path / "whole"
    k("vol-download", "unit:0:0:1", str(whole), "--pool", "data", "--sparse")
    assert whole.read_bytes() == on_target
    assert whole.stat().st_blocks * 512 < 8 * MiB  # the zeros stayed holes
    # to stdout, in a process of its own
    env = dict(os.environ, KVMPOOL_ROOT=str(k.kvmpool.root))
    out = subprocess.run([sys.executable, "-m", "kvmpool", "vol-download", "unit:0:0:1", "-",
                          "--pool", "data", "--offset", str(2 * MiB), "--length", str(MiB)],
                         env=env, capture_output=True, check=True).stdout
    assert out == payload[:MiB]
    # from stdin
    subprocess.run([sys.executable, "-m", "kvmpool", "vol-upload", "unit:0:0:1", "-",
                    "--pool", "data"], env=env, input=b"\xff" * 4096, check=True)
    assert backing.read_bytes()[:4096] == b"\xff" * 4096
    # too much for the LUN: refused before anything is written
    big = tmp_path / "big"
    big.write_bytes(os.urandom(MiB))
    before = backing.read_bytes()
    err = k("vol-upload", "unit:0:0:1", str(big), "--pool", "data", "--offset",
            str(16 * MiB - 4096), ok=False).err
    assert "do not fit in a volume of 16777216 bytes" in err
    assert backing.read_bytes() == before
    # wipe: every byte zero
    k("vol-wipe", "unit:0:0:1", "--pool", "data")
    assert backing.read_bytes() == bytes(16 * MiB)
    k("pool-destroy", "data")
    k("pool-undefine", "data")


def test_chap_lun_data_and_the_password_never_shows(
        k: Recorder, portals: tuple[Tgtd, Tgtd], tmp_path: Path) -> None:
    _, chap = portals
    chap_secret(k, tmp_path, PASSWORD)
    define(k, "secdata", chap.port, SECURE, "--auth-type", "chap", "--auth-username", USER,
           "--secret-usage", SECURE)
    k("pool-start", "secdata")
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(MiB))
    k("--debug", "vol-upload", "unit:0:0:1", str(blob), "--pool", "secdata")
    back = tmp_path / "back"
    k("--debug", "vol-download", "unit:0:0:1", str(back), "--pool", "secdata", "--length",
      str(MiB))
    assert back.read_bytes() == blob.read_bytes()
    assert any("password-secret=chap0" in " ".join(a) for a in k.argvs)
    assert not list(Path(tempfile.gettempdir()).glob(".kvmpool-chap-*"))  # key file gone
    k("pool-destroy", "secdata")
    k("pool-undefine", "secdata")

