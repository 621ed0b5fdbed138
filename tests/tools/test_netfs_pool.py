"""netfs pools on this machine (no NFS or CIFS in its kernel): definitions, dead servers,
GlusterFS refused. Mounting for real is in tests/vm/test_netfs_pool.py."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.conftest import Kvmpool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _define(kvmpool: Kvmpool, tmp_path: Path, name: str, fmt: str, directory: str,
            options: list[str]) -> Path:
    target = tmp_path / name
    opts = "".join(f"<fs:option name='{o}'/>" for o in options)
    doc = tmp_path / f"{name}.xml"
    doc.write_text(
        f"<pool type='netfs' xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'>"
        f"<name>{name}</name><source><host name='127.0.0.1'/><dir path='{directory}'/>"
        f"<format type='{fmt}'/></source><target><path>{target}</path></target>"
        f"<fs:mount_opts>{opts}</fs:mount_opts></pool>")
    kvmpool("pool-define", str(doc))
    return target


def test_dead_server_is_a_quick_clear_error(kvmpool: Kvmpool, tmp_path: Path) -> None:
    port = _free_port()
    target = _define(kvmpool, tmp_path, "nfs", "nfs", "/srv/nfs", [f"port={port}", "sync"])
    assert kvmpool("pool-build", "nfs").out == "Pool nfs built\n\n"
    assert target.is_dir()
    began = time.monotonic()
    err = kvmpool("pool-start", "nfs", ok=False).err
    assert time.monotonic() - began < 3
    assert err == (f"error: Failed to start pool nfs: cannot reach NFS server '127.0.0.1': "
                   f"port {port}: Connection refused (hint: check that the server is up; nothing "
                   "was mounted)\n")
    assert " nfs    inactive" in kvmpool("pool-list", "--all").out
    # the options stay the user's, in libvirt's XML
    dumped = kvmpool("pool-dumpxml", "nfs").out
    assert f"<fs:option name='port={port}'/>" in dumped and "soft" not in dumped
    _define(kvmpool, tmp_path, "smb", "cifs", "share", [f"port={port}"])
    kvmpool("pool-build", "smb")
    err = kvmpool("pool-start", "smb", ok=False).err
    assert "cannot reach CIFS server '127.0.0.1'" in err and err.count("\n") == 1
    # same host and directory: libvirt's source conflict
    doc = tmp_path / "again.xml"
    doc.write_text((tmp_path / "nfs.xml").read_text().replace("<name>nfs<", "<name>again<"))
    err = kvmpool("pool-define", str(doc), ok=False).err
    assert "Storage source conflict with pool: 'nfs'" in err


def test_glusterfs_parses_and_is_refused_plainly(kvmpool: Kvmpool, tmp_path: Path) -> None:
    _define(kvmpool, tmp_path, "g", "glusterfs", "/volume", [])
    assert "<format type='glusterfs'/>" in kvmpool("pool-dumpxml", "g").out
    err = kvmpool("pool-start", "g", ok=False).err
    assert err == ("error: Failed to start pool g: pool 'g' (netfs, format glusterfs): "
                   "kvmpool does not mount GlusterFS (end-of-life upstream) (hint: mount the "
                   "volume yourself and define a dir pool on the mount point)\n")
    assert kvmpool("pool-undefine", "g").out == "Pool g has been undefined\n\n"


def test_netfs_discovery_of_a_dead_host(kvmpool: Kvmpool) -> None:
    err = kvmpool("find-storage-pool-sources-as", "netfs", ok=False).err
    assert "hostname must be specified for netfs sources" in err
    if _listening(111):
        return  # this host runs rpcbind: the dead-host case cannot be made here
    began = time.monotonic()
    err = kvmpool("find-storage-pool-sources-as", "netfs", "127.0.0.1", ok=False).err
    assert time.monotonic() - began < 3
    assert err == ("error: Failed to find any netfs pool sources: cannot reach NFS server "
                   "'127.0.0.1': port 111: Connection refused (hint: is the server up and "
                   "running rpcbind?)\n")
