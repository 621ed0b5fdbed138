"""netfs pools on real NFS (v3, v4) and CIFS servers on 127.0.0.1, inside the test VM.

The servers run only here: nfs-kernel-server (kernel nfsd, rpcbind, rpc.mountd, rpc.statd)
and Samba's smbd with a minimal configuration under /tmp, each started by a fixture and
stopped after. The host only has their packages installed (scripts/vm-deps).

    tests/vm/run tests/vm/test_netfs_pool.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmpool.host.mount import read_mountinfo
from tests.conftest import Kvmpool

pytestmark = pytest.mark.vm

MiB = 1 << 20
EXPORT = Path("/srv/nfs")  # a tmpfs of its own, exported with fsid=0 (also the v4 root)
SHARE = Path("/srv/smb")
FS_NS = "http://libvirt.org/schemas/storagepool/fs/1.0"


def sh(*argv: str, check: bool = True, timeout: float = 60) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {res.returncode}: {res.stderr}")
    return res.stdout


def mount_of(target: Path) -> tuple[str, str, str] | None:
    """(source, fstype, super options) of the mount on ``target``, or None."""
    for entry in reversed(read_mountinfo()):
        if entry.mount_point == str(target):
            return entry.source, entry.fstype, entry.super_options
    return None


def wait_port(port: int, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, f"{what} did not listen on port {port}"
        time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def nfsd(threads: int) -> None:
    # Grace and lease at the minimum (10 s): a fresh v4 server refuses new opens in grace.
    sh("rpc.nfsd", "-G", "10", "-L", "10", str(threads), timeout=120)


@pytest.fixture(scope="module")
def nfs_server() -> Iterator[Path]:
    """nfsd on 127.0.0.1 exporting EXPORT (v3 as /srv/nfs, v4 as /), rw, root not squashed."""
    EXPORT.mkdir(parents=True, exist_ok=True)
    # /srv itself is an overlay over 9p, which nfsd cannot export; tmpfs it can (with fsid)
    sh("mount", "-t", "tmpfs", "-o", "size=256m", "kvmpool-nfs", str(EXPORT))
    sh("modprobe", "-a", "nfsd", "nfs", "nfsv3", "nfsv4")
    if not os.path.ismount("/proc/fs/nfsd"):
        sh("mount", "-t", "nfsd", "nfsd", "/proc/fs/nfsd")
    for d in ("/run/rpcbind", "/var/lib/nfs/sm", "/var/lib/nfs/v4recovery"):
        os.makedirs(d, exist_ok=True)
    Path("/etc/exports").write_text(
        f"{EXPORT} 127.0.0.1(rw,sync,no_subtree_check,no_root_squash,insecure,fsid=0)\n")
    procs = [subprocess.Popen(["rpcbind", "-f", "-w"], start_new_session=True)]
    try:
        wait_port(111, "rpcbind")
        sh("exportfs", "-ra")
        procs.append(subprocess.Popen(["rpc.mountd", "-F"], start_new_session=True))
        procs.append(subprocess.Popen(["rpc.statd", "-F", "--no-notify"],
                                      start_new_session=True))
        nfsd(4)
        wait_port(2049, "nfsd")
        yield EXPORT
    finally:
        for entry in reversed(read_mountinfo()):
            if entry.fstype.startswith("nfs") and entry.fstype != "nfsd":
                sh("umount", "-f", "-l", entry.mount_point, check=False)
        sh("rpc.nfsd", "0", check=False)
        sh("exportfs", "-ua", check=False)
        for proc in reversed(procs):
            stop(proc)
        sh("umount", str(EXPORT), check=False)


@pytest.fixture(scope="module")
def smb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """smbd on 127.0.0.1:445 with one guest-writable share 'vms' on SHARE."""
    base = tmp_path_factory.mktemp("smb")
    SHARE.mkdir(parents=True, exist_ok=True)
    dirs = {d: base / d for d in ("private", "lock", "state", "cache", "pid", "log")}
    for d in dirs.values():
        d.mkdir()
    conf = base / "smb.conf"
    conf.write_text(f"""[global]
    server role = standalone server
    workgroup = KVMPOOL
    interfaces = lo
    bind interfaces only = yes
    smb ports = 445
    disable netbios = yes
    map to guest = Bad User
    guest account = root
    load printers = no
    printcap name = /dev/null
    disable spoolss = yes
    private dir = {dirs['private']}
    lock directory = {dirs['lock']}
    state directory = {dirs['state']}
    cache directory = {dirs['cache']}
    pid directory = {dirs['pid']}
    log file = {dirs['log']}/log.%m
    ncalrpc dir = {dirs['state']}/ncalrpc
[vms]
    path = {SHARE}
    read only = no
    guest ok = yes
    guest only = yes
    force user = root
""")
    sh("modprobe", "cifs")
    # smbd signals its whole process group when it stops: never pytest's (that killed a test
    # run once). It gets a session of its own here, so it must not try to make one itself.
    proc = subprocess.Popen(["smbd", "--foreground", "--no-process-group", "-s", str(conf)],
                            start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            wait_port(445, "smbd", timeout=90)
        except AssertionError:
            for log in dirs["log"].iterdir():
                print(log, log.read_text(errors="replace")[-3000:])
            raise
        yield SHARE
    finally:
        for entry in reversed(read_mountinfo()):
            if entry.fstype in ("cifs", "smb3"):
                sh("umount", "-f", "-l", entry.mount_point, check=False)
        stop(proc)


def pool_xml(path: Path, name: str, fmt: str, directory: str, target: Path, *,
             ver: str | None = None, options: tuple[str, ...] = ()) -> Path:
    proto = f"<protocol ver='{ver}'/>" if ver else ""
    opts = "".join(f"<fs:option name='{o}'/>" for o in options)
    ns = f"<fs:mount_opts>{opts}</fs:mount_opts>" if options else ""
    path.write_text(
        f"<pool type='netfs' xmlns:fs='{FS_NS}'><name>{name}</name><source>"
        f"<host name='127.0.0.1'/><dir path='{directory}'/><format type='{fmt}'/>{proto}"
        f"</source><target><path>{target}</path></target>{ns}</pool>")
    return path


def data(size: int, seed: int) -> bytes:
    import random
    return random.Random(seed).randbytes(size)


def roundtrip(kvmpool: Kvmpool, pool: str, vol: str, payload: bytes, tmp: Path) -> None:
    """Upload ``payload`` into ``vol`` and download it back, byte for byte."""
    src, back = tmp / f"{pool}-{vol}.in", tmp / f"{pool}-{vol}.out"
    src.write_bytes(payload)
    kvmpool("vol-upload", vol, str(src), "--pool", pool)
    kvmpool("vol-download", vol, str(back), "--pool", pool)
    assert back.read_bytes()[:len(payload)] == payload


def test_find_storage_pool_sources_netfs(kvmpool: Kvmpool, nfs_server: Path,
                                         tmp_path: Path) -> None:
    want = ("<sources>\n  <source>\n    <host name='127.0.0.1'/>\n"
            f"    <dir path='{nfs_server}'/>\n    <format type='nfs'/>\n"
            "  </source>\n</sources>\n\n")
    assert kvmpool("find-storage-pool-sources-as", "netfs", "127.0.0.1").out == want
    assert kvmpool("find-storage-pool-sources-as", "--type", "netfs", "--host",
                   "127.0.0.1").out == want
    spec = tmp_path / "spec.xml"
    spec.write_text("<source><host name='127.0.0.1'/></source>")
    assert kvmpool("find-storage-pool-sources", "netfs", "--srcSpec", str(spec)).out == want
    assert json.loads(kvmpool("find-storage-pool-sources-as", "netfs", "127.0.0.1",
                              "--json").out) == [
        {"hosts": [{"name": "127.0.0.1"}], "dir": str(nfs_server), "format": "nfs"}]


def test_nfs_v3_and_v4_lifecycle(kvmpool: Kvmpool, nfs_server: Path, tmp_path: Path) -> None:
    # v3: the export's path, format nfs, libvirt's options plus the user's own
    t3 = tmp_path / "p3"
    doc = pool_xml(tmp_path / "p3.xml", "nfs3", "nfs", str(nfs_server), t3, ver="3",
                   options=("sync",))
    assert kvmpool("pool-define", str(doc)).out == f"Pool nfs3 defined from {doc}\n\n"
    assert kvmpool("pool-build", "nfs3").out == "Pool nfs3 built\n\n"
    assert kvmpool("pool-start", "nfs3").out == "Pool nfs3 started\n\n"
    mounted = mount_of(t3)
    assert mounted is not None
    source, fstype, opts = mounted
    assert (source, fstype) == (f"127.0.0.1:{nfs_server}", "nfs")
    assert "vers=3" in opts, opts
    assert " nfs3   active" in kvmpool("pool-list", "--all").out
    info = json.loads(kvmpool("pool-info", "nfs3", "--json").out)
    assert info["capacity"] > 0
    kvmpool("vol-create-as", "nfs3", "disk.raw", "4M")
    kvmpool("vol-create-as", "nfs3", "disk.qcow2", "64M", "--format", "qcow2")
    payload = data(3 * MiB, 3)
    roundtrip(kvmpool, "nfs3", "disk.raw", payload, tmp_path)
    # the server's directory has the very bytes
    assert (nfs_server / "disk.raw").read_bytes()[:len(payload)] == payload
    listing = kvmpool("vol-list", "nfs3", "--details").out
    assert "disk.raw" in listing and "disk.qcow2" in listing
    assert "qcow2" in kvmpool("vol-dumpxml", "disk.qcow2", "--pool", "nfs3").out
    kvmpool("vol-clone", "disk.raw", "copy.raw", "--pool", "nfs3")
    assert (nfs_server / "copy.raw").read_bytes()[:len(payload)] == payload
    kvmpool("pool-refresh", "nfs3")
    # stop and start again: unmounted, then the same data
    assert kvmpool("pool-destroy", "nfs3").out == "Pool nfs3 destroyed\n\n"
    assert mount_of(t3) is None
    kvmpool("pool-start", "nfs3")
    roundtrip(kvmpool, "nfs3", "copy.raw", payload, tmp_path)
    # mounted by hand with the same source: pool-start accepts it, as libvirt does
    kvmpool("pool-destroy", "nfs3")
    sh("mount", "-t", "nfs", "-o", "nfsvers=3", f"127.0.0.1:{nfs_server}/", str(t3))
    assert kvmpool("pool-start", "nfs3").out == "Pool nfs3 started\n\n"
    kvmpool("pool-destroy", "nfs3")
    assert mount_of(t3) is None
    # something else on the target: refused, nothing mounted over it
    sh("mount", "-t", "tmpfs", "tmpfs", str(t3))
    err = kvmpool("pool-start", "nfs3", ok=False).err
    assert "already has tmpfs (tmpfs) mounted on it" in err and err.count("\n") == 1
    sh("umount", str(t3))

    # v4: the pseudo-root "/", format auto (no -t), protocol 4
    t4 = tmp_path / "p4"
    doc = pool_xml(tmp_path / "p4.xml", "nfs4", "auto", "/", t4, ver="4")
    kvmpool("pool-define", str(doc))
    kvmpool("pool-start", "nfs4", "--build")
    mounted = mount_of(t4)
    assert mounted is not None and mounted[:2] == ("127.0.0.1:/", "nfs4"), mounted
    # the volumes v3 wrote are there; write through v4, read back through v3
    assert "disk.raw" in kvmpool("vol-list", "nfs4").out
    assert (t4 / "disk.raw").read_bytes()[:len(payload)] == payload
    kvmpool("vol-create-as", "nfs4", "v4.raw", "2M")
    payload4 = data(2 * MiB, 4)
    roundtrip(kvmpool, "nfs4", "v4.raw", payload4, tmp_path)
    kvmpool("vol-download", "v4.raw", str(tmp_path / "via3"), "--pool", "nfs3",
            ok=False)  # nfs3 is inactive
    kvmpool("pool-start", "nfs3")
    kvmpool("vol-download", "v4.raw", str(tmp_path / "via3"), "--pool", "nfs3")
    assert (tmp_path / "via3").read_bytes() == payload4
    # pool-delete removes the (empty) target directory only
    for name, target in (("nfs3", t3), ("nfs4", t4)):
        kvmpool("pool-destroy", name)
        assert mount_of(target) is None
        assert kvmpool("pool-delete", name).out == f"Pool {name} deleted\n\n"
        assert not target.exists()
        kvmpool("pool-undefine", name)
    assert (nfs_server / "v4.raw").read_bytes() == payload4  # the server keeps the data


def test_refusals_and_a_silent_server(kvmpool: Kvmpool, nfs_server: Path,
                                      tmp_path: Path) -> None:
    target = tmp_path / "x"
    # an export that does not exist: the server's word, one line
    kvmpool("pool-define", str(pool_xml(tmp_path / "a.xml", "noexp", "nfs", "/no/such",
                                        target, ver="3")))
    kvmpool("pool-build", "noexp")
    err = kvmpool("pool-start", "noexp", ok=False).err
    assert err.startswith("error: Failed to start pool noexp: ") and err.count("\n") == 1
    assert mount_of(target) is None
    kvmpool("pool-undefine", "noexp")
    # nothing listening: a clear error in well under a second of work
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    kvmpool("pool-define", str(pool_xml(tmp_path / "b.xml", "dead", "nfs", "/", target,
                                        ver="4", options=(f"port={free}",))))
    began = time.monotonic()
    err = kvmpool("pool-start", "dead", ok=False).err
    assert time.monotonic() - began < 10
    assert f"cannot reach NFS server '127.0.0.1': port {free}: Connection refused" in err
    kvmpool("pool-undefine", "dead")
    # a server that accepts connections and never answers: mount is stopped at the timeout,
    # and the CLI returns (run as a child process, so a hang fails this test, not the run)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.5)
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = server.getsockname()[1]
        kvmpool("pool-define", str(pool_xml(tmp_path / "c.xml", "silent", "nfs", "/", target,
                                            ver="4", options=(f"port={port}",))))
        code = ("import sys; from kvmpool.host import nfs; nfs.MOUNT_TIMEOUT = 15; "
                "from kvmpool.cli.main import main; "
                f"sys.exit(main(['--root', {str(kvmpool.root)!r}, 'pool-start', 'silent']))")
        began = time.monotonic()
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, check=False)
        took = time.monotonic() - began
        print(f"silent server: exit {res.returncode} after {took:.1f} s: {res.stderr}")
        assert res.returncode != 0 and took < 90
        assert res.stderr == ("error: Failed to start pool silent: cannot mount "
                              "127.0.0.1:/: the server did not answer within 15 s (mount was "
                              "stopped) (hint: check the server; nothing was mounted)\n")
        assert mount_of(target) is None
        assert " silent   inactive" in kvmpool("pool-list", "--all").out
    finally:
        done.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_cifs_lifecycle(kvmpool: Kvmpool, smb_server: Path, tmp_path: Path) -> None:
    target = tmp_path / "smb"
    kvmpool("pool-define-as", "smb", "netfs", "--source-host", "127.0.0.1", "--source-path",
            "vms", "--source-format", "cifs", "--target", str(target))
    kvmpool("pool-build", "smb")
    kvmpool("pool-start", "smb")
    mounted = mount_of(target)
    assert mounted is not None and mounted[0] == "//127.0.0.1/vms", mounted
    assert mounted[1] in ("cifs", "smb3")
    kvmpool("vol-create-as", "smb", "disk.raw", "4M")
    payload = data(2 * MiB, 5)
    roundtrip(kvmpool, "smb", "disk.raw", payload, tmp_path)
    assert (smb_server / "disk.raw").read_bytes()[:len(payload)] == payload
    kvmpool("vol-delete", "disk.raw", "--pool", "smb")
    assert not (smb_server / "disk.raw").exists()
    kvmpool("pool-destroy", "smb")
    assert mount_of(target) is None
    kvmpool("pool-delete", "smb")
    kvmpool("pool-undefine", "smb")


def test_server_gone_under_an_active_pool(kvmpool: Kvmpool, nfs_server: Path,
                                          tmp_path: Path) -> None:
    """Last: it stops nfsd. Commands on the pool fail within seconds instead of hanging."""
    target = tmp_path / "gone"
    kvmpool("pool-define", str(pool_xml(tmp_path / "g.xml", "gone", "nfs", str(nfs_server),
                                        target, ver="3")))
    kvmpool("pool-start", "gone", "--build")
    local = tmp_path / "local"
    local.mkdir()
    kvmpool("pool-create-as", "local", "dir", "--target", str(local))
    kvmpool("vol-create-as", "local", "v", "1M")
    sh("rpc.nfsd", "0", timeout=120)
    try:
        for argv in (("pool-info", "gone"), ("vol-list", "gone"), ("pool-destroy", "gone")):
            began = time.monotonic()
            err = kvmpool(*argv, ok=False).err
            assert time.monotonic() - began < 15, argv
            assert "cannot reach NFS server '127.0.0.1'" in err and err.count("\n") == 1, err
        assert "umount -f -l" in err  # pool-destroy's hint
        # a local volume's delete cannot check the NFS pool's volumes for it: refused, saying why
        err = kvmpool("vol-delete", "v", "local", ok=False).err
        assert "cannot check whether volumes of pool 'gone' are backed by 'v'" in err, err
        assert "cannot reach NFS server" in err and err.count("\n") == 1, err
        assert (local / "v").exists()
    finally:
        nfsd(4)
    wait_port(2049, "nfsd")
    kvmpool("vol-delete", "v", "local")  # checked again once the server is back
    assert not (local / "v").exists()
    kvmpool("pool-destroy", "local")
    kvmpool("pool-destroy", "gone")
    assert mount_of(target) is None
