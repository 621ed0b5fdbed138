"""The rbd backend's pure parts: QEMU paths, keys, connection settings (no cluster)."""

from kvmpool.backends.rbd import image_path, mon_hosts, split_path
from kvmpool.host.rbd import ConnSpec, _translate, key_of
from kvmpool.model import Auth, PoolDef, PoolSource, PoolType, SecretRef, SourceHost

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
