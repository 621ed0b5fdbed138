"""The rbd backend's pure parts: QEMU paths, keys, connection settings (no cluster)."""

import dataclasses
from pathlib import Path

import pytest

from kvmpool.backends.rbd import _scratch_dir, _where, image_path, mon_hosts, split_path
from kvmpool.host.rbd import ConnSpec, _translate, key_of
from kvmpool.model import (
    Auth,
    PoolDef,
    PoolSource,
    PoolTarget,
    PoolType,
    SecretRef,
    SourceHost,
)

POOL = PoolDef(type=PoolType.RBD, name="ceph", uuid="00000000-0000-0000-0000-000000000001",
               source=PoolSource(hosts=(SourceHost("mon1", 6789), SourceHost("::1", 3300),
                                        SourceHost("mon3")),
                                 name="rbd", auth=Auth("ceph", "libvirt", SecretRef(uuid="x"))))


def test_path_is_what_qemu_opens_without_the_key() -> None:
    assert mon_hosts(POOL) == ("mon1:6789", "[::1]:3300", "mon3")
    path = image_path(POOL, "vm1")
    assert path == "rbd:rbd/vm1:id=libvirt:mon_host=mon1\\:6789\\;[\\:\\:1]\\:3300\\;mon3"
    assert split_path(path) == ("rbd", "vm1", path[len("rbd:rbd/vm1"):])
    assert split_path("/var/lib/x.img") is None and split_path("rbd:noslash") is None


def test_connection_settings_keep_the_key_out_of_sight() -> None:
    spec = ConnSpec(mon_hosts=("h:1",), user="u", key=key_of(b"\x01\x02"),
                    options=(("rbd_default_features", "1"),))
    assert "AQI=" not in repr(spec) and "AQI=" not in str(spec.cache_key)
    conf = spec.conf()
    assert conf["key"] == "AQI=" and conf["mon_host"] == "h:1"
    assert conf["client_mount_timeout"] == "10" and conf["rbd_default_features"] == "1"
    assert ConnSpec(mon_hosts=(), user=None).conf()["auth_supported"] == "none"


def test_errors_by_errno() -> None:
    class Fake(Exception):
        def __init__(self, code: int) -> None:
            super().__init__(f"[errno {code}] boom")
            self.errno = code

    assert type(_translate(Fake(16), "x")).__name__ == "InUse"
    assert type(_translate(Fake(2), "x")).__name__ == "NotFound"
    assert "permission denied" in _translate(Fake(13), "x").message


class FakeRados:
    """Stands in for the rados module: each connect plays the next scripted outcome."""

    class Error(Exception):
        pass

    class TimedOut(Error):
        pass

    class InterruptedOrTimeoutError(Error):
        pass

    class PermissionDeniedError(Error):
        pass

    def __init__(self, outcomes: list[tuple[str, str]]) -> None:
        self.outcomes = outcomes  # (what connect does, what librados logs first)
        self.timeouts: list[str] = []
        self.conffiles: list[str] = []
        self.now = 0.0  # a clock: a timed-out connect took its whole timeout
        fake = self

        class Rados:
            def __init__(self, *, rados_id: str, conffile: str, conf: dict[str, str]) -> None:
                fake.timeouts.append(conf["client_mount_timeout"])
                fake.conffiles.append(conffile)
                self.conf = conf

            def connect(self) -> None:
                what, log = fake.outcomes.pop(0)
                if log:
                    with open(self.conf["log_file"], "w") as f:
                        f.write(log)
                if what == "timeout":
                    fake.now += float(self.conf["client_mount_timeout"])
                    raise FakeRados.TimedOut("[errno 110] RADOS timed out")
                if what == "denied":
                    raise FakeRados.PermissionDeniedError("[errno 13] RADOS permission denied")

            def conf_set(self, key: str, value: str) -> None:
                self.conf[key] = value

            def shutdown(self) -> None:
                pass

        self.Rados = Rados


def connect(outcomes: list[tuple[str, str]]) -> tuple[FakeRados, str]:
    import types

    from kvmpool.errors import KvmpoolError
    from kvmpool.host import rbd

    fake = FakeRados(outcomes)
    clock = types.SimpleNamespace(monotonic=lambda: fake.now)
    saved, rbd.time = rbd.time, clock  # type: ignore[assignment]
    spec = ConnSpec(mon_hosts=("127.0.0.1:1",), user="kvmpool", key="AQI=")
    try:
        rbd._connect(fake, spec)
    except KvmpoolError as err:
        return fake, err.message
    finally:
        rbd.time = saved
    return fake, "connected"


def test_a_refused_key_stops_after_the_first_short_attempt() -> None:
    line = "-1 monclient(hunting): handle_auth_bad_method server allowed_methods [] but i ...\n"
    fake, message = connect([("timeout", line)])
    assert "refused client.kvmpool: permission denied" in message
    assert fake.timeouts == ["2"] and fake.conffiles == ["/dev/null"]
    fake, message = connect([("denied", "")])  # msgr1 says so at once
    assert "permission denied" in message and fake.timeouts == ["2"]


def test_without_a_refusal_the_second_attempt_gets_the_rest_of_the_timeout() -> None:
    fake, message = connect([("timeout", "0 monclient(hunting): authenticate timed out\n"),
                             ("ok", "")])
    assert message == "connected" and fake.timeouts == ["2", "8"]
    fake, message = connect([("timeout", ""), ("timeout", "")])
    assert message == "cannot reach the Ceph monitors at 127.0.0.1:1 within 10 s"
    assert fake.timeouts == ["2", "8"]


def test_a_talkative_log_does_not_block_the_connect() -> None:
    # more than a pipe holds (64 KiB), as debug options in the pool's config would log
    noise = "20 monclient: a debug line of librados\n" * 6000
    fake, message = connect([("timeout", noise + "-1 monclient: handle_auth_bad_method\n")])
    assert "permission denied" in message and fake.timeouts == ["2"]


def test_where_a_pool_leads_and_where_scratch_copies_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the part of an image path that names the cluster and the user, as split_path gives it
    parts = split_path(image_path(POOL, "any", "other"))
    assert parts is not None and _where(POOL) == parts[2]
    other_user = dataclasses.replace(POOL, source=dataclasses.replace(
        POOL.source, auth=Auth("ceph", "admin", SecretRef(uuid="x"))))
    assert _where(other_user) != _where(POOL)
    monkeypatch.delenv("TMPDIR", raising=False)
    local = PoolDef(type=PoolType.DIR, name="d", uuid="u", target=PoolTarget(path=str(tmp_path)))
    assert _scratch_dir(local) == str(tmp_path)  # next to the copy: same file system
    lvm = PoolDef(type=PoolType.LOGICAL, name="v", uuid="u", target=PoolTarget(path="/dev/vg"))
    assert _scratch_dir(lvm) == "/var/tmp"  # never a device directory
    monkeypatch.setenv("TMPDIR", str(tmp_path / "t"))
    assert _scratch_dir(None) == str(tmp_path / "t")
