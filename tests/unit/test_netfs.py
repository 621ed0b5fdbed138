"""netfs: libvirt's mount argv (golden files), sources, showmount, probes, discovery, caps."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from kvmpool import caps, discovery, xml
from kvmpool.backends import backend_for, netfs
from kvmpool.backends.base import Context
from kvmpool.errors import (
    HostCommandFailed,
    InvalidArgument,
    InvalidState,
    NotFound,
    Unsupported,
)
from kvmpool.host import mount, net, nfs
from kvmpool.host.run import Completed, Runner
from kvmpool.model import PoolDef, PoolSource, PoolType, SourceHost
from kvmpool.xml import parse_pool

DATA = Path(__file__).resolve().parents[1] / "data" / "libvirt-xml"


def argv_file(name: str) -> list[str]:
    """libvirt's ``*.argv``: one word (or ``-o opts``) per line, joined by backslashes."""
    text = (DATA / "storagepoolxml2argvdata" / f"{name}-linux.argv").read_text()
    return text.replace("\\\n", " ").split()


def pool(name: str) -> PoolDef:
    return parse_pool((DATA / "storagepoolxml2xmlin" / f"{name}.xml").read_bytes())


@pytest.mark.parametrize("name", ["pool-netfs", "pool-netfs-auto", "pool-netfs-cifs",
                                  "pool-netfs-gluster", "pool-netfs-ns-mountopts",
                                  "pool-netfs-protocol-ver"])
def test_netfs_mount_argv_is_libvirts(name: str) -> None:
    assert netfs.mount_argv(pool(name)) == argv_file(name)


def test_fs_mount_argv_is_libvirts() -> None:
    p = pool("pool-fs")
    assert mount.mount_argv(p.source.devices[0].path, p.target.path or "", p.source.format,
                            p.fs_mount_opts) == argv_file("pool-fs")


def test_every_linux_argv_file_is_covered() -> None:
    names = {f.name.removesuffix("-linux.argv")
             for f in (DATA / "storagepoolxml2argvdata").glob("*-linux.argv")}
    assert names == {"pool-fs", "pool-netfs", "pool-netfs-auto", "pool-netfs-cifs",
                     "pool-netfs-gluster", "pool-netfs-ns-mountopts", "pool-netfs-protocol-ver"}


def test_source_strings() -> None:
    assert nfs.source_string("nas", "/export/vm", "nfs") == "nas:/export/vm"
    assert nfs.source_string("nas", "/export/vm", None) == "nas:/export/vm"
    assert nfs.source_string("nas", "vm", "cifs") == "//nas/vm"
    assert nfs.source_string("nas", "/vm", "cifs") == "//nas/vm"  # never //nas//vm
    assert nfs.source_string("fd00::1", "/vm", "nfs") == "[fd00::1]:/vm"
    assert nfs.mount_argv("//h/s", "/t", "cifs", None, ("username=u", "vers=3.0")) == [
        "mount", "-o", "nodev,nosuid,noexec,guest,username=u,vers=3.0", "-t", "cifs",
        "//h/s", "/t"]


def test_mount_entries_are_matched_by_host_and_path() -> None:
    split = netfs._split
    assert split("127.0.0.1:/srv/nfs/") == split("127.0.0.1:/srv/nfs") == ("127.0.0.1",
                                                                           "/srv/nfs")
    assert split("NAS:/") == ("nas", "/")
    assert split("[fd00::1]:/vm") == ("fd00::1", "/vm")
    assert split("//127.0.0.1/share") == ("127.0.0.1", "/share")
    assert split("h:/a") != split("h:/b")


def test_probe_port_follows_the_options() -> None:
    assert nfs.probe_port("nfs", ()) == 2049
    assert nfs.probe_port("auto", ("sync", "port=20490")) == 20490
    assert nfs.probe_port("cifs", ()) == 445
    assert nfs.probe_port("cifs", ("port=139",)) == 139
    assert nfs.probe_port("nfs", ("port=0",)) == 2049  # 0: ask rpcbind, as mount.nfs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_of_nothing_listening_is_quick_and_clear() -> None:
    began = time.monotonic()
    with pytest.raises(InvalidState, match=r"cannot reach NFS server '127.0.0.1': port \d+: "
                                           r"Connection refused"):
        net.reach("127.0.0.1", _free_port(), what="NFS", hint="h")
    assert time.monotonic() - began < 2
    with pytest.raises(NotFound, match="unknown host"):
        net.reach("no-such-host.invalid", 2049, what="NFS", hint="h")


def test_probe_of_a_listener_passes() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        net.reach("127.0.0.1", server.getsockname()[1], what="NFS", hint="h")


def _failed(stderr: str, rc: int | None = 32) -> HostCommandFailed:
    return HostCommandFailed("mount failed", argv=["mount"], returncode=rc, stderr=stderr)


def test_mount_errors_are_classified() -> None:
    c = nfs.classify
    err = c(_failed("mount.nfs: access denied by server while mounting h:/x"),
            source="h:/x", fmt="nfs")
    assert isinstance(err, InvalidArgument) and "refused access" in err.message
    err = c(_failed("mount.nfs: mounting h:/x failed, reason given by server: "
                    "No such file or directory"), source="h:/x", fmt="nfs")
    assert isinstance(err, NotFound) and "no such export" in err.message
    err = c(_failed("mount: /t: unknown filesystem type 'nfs'."), source="h:/x", fmt="nfs")
    assert isinstance(err, Unsupported)
    err = c(_failed("", rc=None), source="h:/x", fmt="nfs", timeout=7)
    assert isinstance(err, InvalidState)
    assert err.message == "cannot mount h:/x: the server did not answer within 7 s " \
                          "(mount was stopped)"
    err = c(_failed("mount.nfs: Connection timed out"), source="h:/x", fmt="nfs")
    assert isinstance(err, InvalidState) and "Connection timed out" in err.message
    other = _failed("mount error(22): Invalid argument")
    assert c(other, source="//h/s", fmt="cifs") is other


# showmount --no-headers --exports 127.0.0.1 (nfs-common 2.6.2), plus a path with a space
SHOWMOUNT = """/srv/nfs 127.0.0.1
/srv/with space *
/srv/nfs4 192.168.1.0/24,10.0.0.2
not an export line
"""


def test_showmount_parser_and_argv() -> None:
    assert nfs.showmount_argv("h") == ["showmount", "--no-headers", "--exports", "h"]
    assert nfs.parse_showmount(SHOWMOUNT) == ["/srv/nfs", "/srv/with space", "/srv/nfs4"]
    assert nfs.parse_showmount("") == []


class FakeRunner(Runner):
    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        super().__init__()
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def _execute(self, argv: tuple[str, ...], *, timeout: float, input: str | None) -> Completed:
        self.calls.append(argv)
        for key, (rc, out, err) in self.answers.items():
            if argv[0] == key:
                return Completed(argv, rc, out, err)
        raise AssertionError(f"unexpected command {argv}")


def test_netfs_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    probed: list[tuple[str, int]] = []
    monkeypatch.setattr(net, "reach", lambda host, port, **kw: probed.append((host, port)))
    runner = FakeRunner({"showmount": (0, SHOWMOUNT, "")})
    found = discovery.find_sources(PoolType.NETFS, PoolSource(hosts=(SourceHost("h", 9),)),
                                   runner)
    assert probed == [("h", 111)]
    assert runner.calls == [("showmount", "--no-headers", "--exports", "h")]
    assert xml.format_sources(found[:1], PoolType.NETFS) == (
        "<sources>\n  <source>\n    <host name='h'/>\n    <dir path='/srv/nfs'/>\n"
        "    <format type='nfs'/>\n  </source>\n</sources>\n")
    assert [s.dir for s in found] == ["/srv/nfs", "/srv/with space", "/srv/nfs4"]
    with pytest.raises(InvalidArgument, match="hostname must be specified for netfs"):
        discovery.find_sources(PoolType.NETFS, PoolSource(), runner)
    runner = FakeRunner({"showmount": (
        1, "", "clnt_create: RPC: Program not registered\n")})
    with pytest.raises(InvalidState, match="'h' runs no NFS server"):
        discovery.find_sources(PoolType.NETFS, PoolSource(hosts=(SourceHost("h"),)), runner)


# pvs --reportformat json --units b --nosuffix -o ... with two VGs and a lone PV
PVS = json.dumps({"report": [{"pv": [
    {"pv_name": "/dev/loop0", "vg_name": "testvg", "pv_uuid": "u0", "pv_size": "8388608",
     "pv_free": "4194304", "pv_fmt": "lvm2", "pv_attr": "a--"},
    {"pv_name": "/dev/loop1", "vg_name": "", "pv_uuid": "u1", "pv_size": "8388608",
     "pv_free": "8388608", "pv_fmt": "lvm2", "pv_attr": "---"},
    {"pv_name": "/dev/loop2", "vg_name": "two", "pv_uuid": "u2", "pv_size": "8388608",
     "pv_free": "4194304", "pv_fmt": "lvm2", "pv_attr": "a--"},
    {"pv_name": "/dev/loop3", "vg_name": "two", "pv_uuid": "u3", "pv_size": "8388608",
     "pv_free": "4194304", "pv_fmt": "lvm2", "pv_attr": "a--"}]}]})

# /work/shared/docs/virsh-output.md section 8, byte for byte (virsh's blank line is the CLI's)
VIRSH_LOGICAL = """<sources>
  <source>
    <device path='/dev/loop0'/>
    <name>testvg</name>
    <format type='lvm2'/>
  </source>
</sources>
"""


def test_logical_discovery_is_virshs() -> None:
    runner = FakeRunner({"pvs": (0, PVS, "")})
    found = discovery.find_sources(PoolType.LOGICAL, PoolSource(), runner)
    assert runner.calls[0][0] == "pvs"
    assert xml.format_sources(found[:1], PoolType.LOGICAL) == VIRSH_LOGICAL
    assert [(s.name, [d.path for d in s.devices]) for s in found] == [
        ("testvg", ["/dev/loop0"]), ("two", ["/dev/loop2", "/dev/loop3"])]


def test_glusterfs_is_refused_in_caps_with_one_clear_sentence() -> None:
    gluster = pool("pool-netfs-gluster")
    assert xml.format_pool(gluster).count("<format type='glusterfs'/>") == 1
    with pytest.raises(Unsupported) as info:
        backend_for(gluster, Context(Runner()))
    assert info.value.message == ("pool 'netfs-gluster' (netfs, format glusterfs): kvmpool "
                                  "does not mount GlusterFS (end-of-life upstream)")
    assert info.value.hint and "dir pool" in info.value.hint
    caps.require_backend(pool("pool-netfs"))  # nfs is fine
    caps.require_discovery(PoolType.NETFS)
    caps.require_discovery(PoolType.LOGICAL)
    with pytest.raises(Unsupported):
        caps.require_discovery(PoolType.DIR)


def test_netfs_needs_one_host_and_a_dir() -> None:
    p = pool("pool-netfs")
    with pytest.raises(InvalidArgument, match="exactly one source host"):
        netfs.netfs_source(PoolDef(type=PoolType.NETFS, name="n", uuid=p.uuid,
                                   source=PoolSource(dir="/x")))
    with pytest.raises(InvalidArgument, match="no source directory"):
        netfs.netfs_source(PoolDef(type=PoolType.NETFS, name="n", uuid=p.uuid,
                                   source=PoolSource(hosts=(SourceHost("h"),))))
