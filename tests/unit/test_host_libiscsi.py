"""libiscsi's tools: argv, recorded outputs, errors, and how the CHAP password travels."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

from kvmpool.backends.base import Context
from kvmpool.backends.iscsi_direct import IscsiDirectBackend
from kvmpool.errors import HostCommandFailed, InvalidArgument, KvmpoolError, NotFound
from kvmpool.host import libiscsi
from kvmpool.host.libiscsi import Chap, Lun, Target
from kvmpool.host.run import Completed, Runner
from kvmpool.model import Auth, PoolDef, PoolSource, PoolType, SecretRef, SourceDevice, SourceHost

# recorded: libiscsi-bin 1.19.0 against tgt 1.0.85
LS = """Target:iqn.2026-11.test:chap Portal:127.0.0.1:13261,1
Target:iqn.2026-11.test:t1 Portal:127.0.0.1:13261,1
"""
LS_S = """Target:iqn.2026-11.test:chap Portal:127.0.0.1:13261,1
Lun:0    Type:STORAGE_ARRAY_CONTROLLER
Lun:1    Type:DIRECT_ACCESS (Size:15M)
Target:iqn.2026-11.test:t1 Portal:127.0.0.1:13261,1
Lun:0    Type:STORAGE_ARRAY_CONTROLLER
Lun:1    Type:DIRECT_ACCESS (Size:15M)
Lun:2    Type:DIRECT_ACCESS (Size:31M)
"""
LS_S_BLOCKED = "Target:iqn.2026-11.test:chap Portal:127.0.0.1:13261,1\n"
AUTH_FAILED = ("list_luns: iscsi_connect failed. Failed to log in to target. "
               "Status: Authentication failure(513)\n")
REFUSED = ("discoveryconnect_cb: connection failed : iscsi_service: socket error "
           "Connection refused(111).\n")
T1 = "iqn.2026-11.test:t1"
PASSWORD = "s3cret-Pa55word"


class FakeRunner(Runner):
    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        super().__init__()
        self.answers = answers
        self.calls: list[tuple[tuple[str, ...], dict[str, str]]] = []

    def _execute(self, argv: tuple[str, ...], *, timeout: float, input: str | None,
                 env: Mapping[str, str | None] | None = None) -> Completed:
        full = {k: v for k, v in os.environ.items() if k.startswith("LIBISCSI_")}
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        self.calls.append((argv, full))
        for key, (rc, out, err) in self.answers.items():
            if key in " ".join(argv):
                return Completed(argv, rc, out, err)
        raise AssertionError(f"unexpected command {argv}")


def test_urls_and_argv() -> None:
    assert libiscsi.portal_url("10.0.0.1", None) == "iscsi://10.0.0.1:3260"
    assert libiscsi.portal_url("fd00::1", 3261) == "iscsi://[fd00::1]:3261"
    assert libiscsi.lun_url("h", 3260, T1, 2) == f"iscsi://h:3260/{T1}/2"
    assert libiscsi.ls_argv("iqn.i:x", "iscsi://h:3260", luns=True) == [
        "iscsi-ls", "-s", "-i", "iqn.i:x", "iscsi://h:3260"]
    assert libiscsi.readcapacity_argv("iqn.i:x", "iscsi://h:3260/t/1") == [
        "iscsi-readcapacity16", "-s", "-i", "iqn.i:x", "iscsi://h:3260/t/1"]


def test_parse_ls() -> None:
    assert libiscsi.parse_ls(LS) == [Target("iqn.2026-11.test:chap", "127.0.0.1:13261,1"),
                                     Target(T1, "127.0.0.1:13261,1")]
    t1 = libiscsi.parse_ls(LS_S)[1]
    assert t1.luns == (Lun(0, "STORAGE_ARRAY_CONTROLLER"), Lun(1, "DIRECT_ACCESS"),
                       Lun(2, "DIRECT_ACCESS"))
    assert libiscsi.parse_size("16777216\n") == 16777216
    with pytest.raises(KvmpoolError):
        libiscsi.parse_size("failed to send readcapacity command")


def test_the_password_travels_in_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBISCSI_CHAP_PASSWORD", "from-the-caller")
    runner = FakeRunner({"iscsi-ls": (0, LS_S, ""), "readcapacity16": (0, "1024\n", "")})
    luns = libiscsi.target_luns(runner, "h", None, "iqn.i:x", T1, Chap("alice", PASSWORD))
    assert [lun.number for lun in luns] == [0, 1, 2]
    argv, env = runner.calls[0]
    assert PASSWORD not in " ".join(argv)
    assert env == {"LIBISCSI_CHAP_USERNAME": "alice", "LIBISCSI_CHAP_PASSWORD": PASSWORD}
    assert os.environ["LIBISCSI_CHAP_PASSWORD"] == "from-the-caller"  # never touched
    # without CHAP, the caller's LIBISCSI_CHAP_* do not leak into the pool's login
    libiscsi.lun_size(runner, "h", None, "iqn.i:x", T1, 1, None)
    assert runner.calls[-1][1] == {}
    assert PASSWORD not in repr(Chap("alice", PASSWORD))


def test_errors_are_classified() -> None:
    what = "cannot list"
    runner = FakeRunner({"iscsi-ls": (10, "Target:" + T1 + " Portal:h:3260,1\n", AUTH_FAILED)})
    with pytest.raises(InvalidArgument, match="CHAP authentication failed"):
        libiscsi.target_luns(runner, "h", None, "i", T1, None)
    runner = FakeRunner({"iscsi-ls": (10, "", REFUSED)})
    with pytest.raises(KvmpoolError, match="portal h:3260: connection refused"):
        libiscsi.discover(runner, "h", None)
    runner = FakeRunner({"iscsi-ls": (0, LS, "")})
    with pytest.raises(NotFound, match="no such target at this portal"):
        libiscsi.target_luns(runner, "h", None, "i", "iqn.nope:x", None)
    # iscsi-ls stopped at another target: kvmpool's own REPORT LUNS asks ours alone
    alone = f"Target:{T1} Portal:h:3260\nLun:0    Type:STORAGE_ARRAY_CONTROLLER\n" \
            "Lun:3    Type:DIRECT_ACCESS\n"
    runner = FakeRunner({"iscsi-ls": (10, LS_S_BLOCKED, AUTH_FAILED),
                         "kvmpool.host.reportluns": (0, alone, "")})
    luns = libiscsi.target_luns(runner, "h", None, "i", T1, Chap("alice", PASSWORD))
    assert luns == [Lun(0, "STORAGE_ARRAY_CONTROLLER"), Lun(3, "DIRECT_ACCESS")]
    argv, env = runner.calls[-1]
    assert argv[1:] == ("-m", "kvmpool.host.reportluns", "i", f"iscsi://h:3260/{T1}/0", "15")
    assert env["LIBISCSI_CHAP_PASSWORD"] == PASSWORD and PASSWORD not in " ".join(argv)
    runner = FakeRunner({"iscsi-ls": (10, LS_S_BLOCKED, AUTH_FAILED),
                         "kvmpool.host.reportluns": (10, "", "Login Failed. Failed to log in "
                                                     "to target. Status: Target not found(515)")})
    with pytest.raises(NotFound, match="no such target at this portal"):
        libiscsi.target_luns(runner, "h", None, "i", T1, None)
    # our target listed in full before another one failed: good enough
    runner = FakeRunner({"iscsi-ls": (10, LS_S.split("Target:iqn.2026-11.test:chap")[0]
                                      + LS_S.split("\n", 3)[3] + LS_S_BLOCKED, AUTH_FAILED)})
    assert len(libiscsi.target_luns(runner, "h", None, "i", T1, None)) == 3
    unknown = Completed(("iscsi-ls",), 10, "", "something odd\n")
    assert libiscsi.classify(unknown, what).message == "cannot list: something odd"


def test_a_timeout_is_one_sentence() -> None:
    class Slow(Runner):
        def _execute(self, argv: tuple[str, ...], *, timeout: float, input: str | None,
                     env: Mapping[str, str | None] | None = None) -> Completed:
            raise HostCommandFailed("x", argv=argv, returncode=None, stderr="")

    with pytest.raises(KvmpoolError, match="no answer within 15 s"):
        libiscsi.discover(Slow(), "h", 3260)


def _pool(auth: Auth | None) -> PoolDef:
    return PoolDef(type=PoolType.ISCSI_DIRECT, name="p",
                   uuid="00000000-0000-0000-0000-000000000000",
                   source=PoolSource(hosts=(SourceHost("h", 3261),),
                                     devices=(SourceDevice(T1),), initiator_iqn="iqn.i:x",
                                     auth=auth))


def test_backend_sums_disk_luns_and_redacts() -> None:
    runner = FakeRunner({"iscsi-ls": (0, LS_S, ""), f"{T1}/1": (0, "16777216\n", ""),
                         f"{T1}/2": (0, "33554432\n", "")})
    auth = Auth("chap", "alice", SecretRef(usage="u"))
    backend = IscsiDirectBackend(Context(runner, secret=lambda a: PASSWORD.encode()))
    pool = backend.refresh(_pool(auth))
    assert (pool.capacity, pool.allocation, pool.available) == (50331648, 50331648, 0)
    vols = backend.list_volumes(_pool(auth), details=False)
    assert [(v.name, v.key, v.target.path) for v in vols] == [
        ("unit:0:0:1", f"iscsi://h:3261/{T1}/1", f"iscsi://h:3261/{T1}/1"),
        ("unit:0:0:2", f"iscsi://h:3261/{T1}/2", f"iscsi://h:3261/{T1}/2")]
    vol = backend.volume(_pool(auth), f"iscsi://h:3261/{T1}/2")
    assert vol is not None and vol.capacity == 33554432
    assert all(PASSWORD not in " ".join(c.argv) for c in runner.history)


def test_backend_refuses_non_chap_auth() -> None:
    backend = IscsiDirectBackend(Context(FakeRunner({}), secret=lambda a: b"x"))
    with pytest.raises(InvalidArgument, match="supports only chap"):
        backend.refresh(_pool(Auth("ceph", "admin", SecretRef(usage="u"))))
