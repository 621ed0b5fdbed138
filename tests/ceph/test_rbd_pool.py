"""rbd pools on a real Ceph cluster (tests/ceph/cluster.py): the lifecycle through the CLI,
data through QEMU's own rbd driver, and the faults a user meets. No command may ever print
the cephx key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ceph.cluster import Cluster
from tests.conftest import Kvmpool, Result

pytestmark = pytest.mark.ceph
MiB = 1 << 20


class Recorder:
    """Runs kvmpool and keeps every output, to prove no secret ever shows."""

    def __init__(self, kvmpool: Kvmpool) -> None:
        self.kvmpool = kvmpool
        self.outputs: list[str] = []

    def __call__(self, *args: str, ok: bool = True) -> Result:
        try:
            result = self.kvmpool(*args, ok=ok)
        except AssertionError as err:
            self.outputs.append(str(err))
            raise
        self.outputs += [result.out, result.err]
        return result

    def assert_no_secret(self, key: str) -> None:
        for text in self.outputs:
            assert key not in text
            assert key.rstrip("=") not in text


@pytest.fixture
def kp(kvmpool: Kvmpool, ceph: Cluster) -> Iterator[Recorder]:
    rec = Recorder(kvmpool)
    yield rec
    rec.assert_no_secret(ceph.user_key)


def define_secret(kp: Recorder, tmp: Path, key: str) -> str:
    sid = str(uuid.uuid4())
    doc = tmp / f"secret-{sid}.xml"
    doc.write_text(f"<secret ephemeral='no' private='yes'><uuid>{sid}</uuid>"
                   f"<usage type='ceph'><name>client.kvmpool {sid}</name></usage></secret>")
    kp("secret-define", "--file", str(doc))
    value = tmp / f"key-{sid}"
    value.write_text(key)
    kp("secret-set-value", "--secret", sid, "--file", str(value))
    value.unlink()
    return sid


def pool_xml(name: str, rpool: str, port: int, secret: str | None, user: str = "kvmpool",
             extra: str = "") -> str:
    auth = (f"<auth type='ceph' username='{user}'><secret uuid='{secret}'/></auth>"
            if secret else "")
    return (f"<pool type='rbd'><name>{name}</name><source><name>{rpool}</name>"
            f"<host name='127.0.0.1' port='{port}'/>{auth}</source>{extra}</pool>")


def define_pool(kp: Recorder, tmp: Path, ceph: Cluster, name: str = "ceph",
                rpool: str = "rbd", key: str | None = None, port: int | None = None,
                extra: str = "", start: bool = True) -> str:
    sid = define_secret(kp, tmp, key or ceph.user_key)
    doc = tmp / f"pool-{name}.xml"
    doc.write_text(pool_xml(name, rpool, port or ceph.v2, sid, extra=extra))
    kp("pool-define", "--file", str(doc))
    if start:
        kp("pool-start", name)
    return sid


def qemu_io(path: str, cmd: str) -> str:
    proc = subprocess.run(["qemu-io", "-f", "raw", "-c", cmd, path], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "failed" not in proc.stdout.lower() + proc.stderr.lower(), \
        proc.stdout + proc.stderr
    return proc.stdout


def vol_path(kp: Recorder, vol: str, pool: str = "ceph") -> str:
    return kp("vol-path", vol, "--pool", pool).out.strip()


def vol_json(kp: Recorder, vol: str, pool: str = "ceph") -> dict[str, object]:
    return json.loads(kp("vol-info", vol, "--pool", pool, "--json").out)  # type: ignore[no-any-return]


def images(ceph: Cluster, rpool: str = "rbd") -> list[str]:
    import rbd

    with ceph.admin().open_ioctx(rpool) as ioctx:
        return sorted(rbd.RBD().list(ioctx))


def cleanup(ceph: Cluster, rpool: str = "rbd") -> None:
    """Remove every image (children first) so each test starts from an empty pool."""
    import rbd

    with ceph.admin().open_ioctx(rpool) as ioctx:
        for _ in range(5):
            names = rbd.RBD().list(ioctx)
            if not names:
                return
            for name in names:
                try:
                    with rbd.Image(ioctx, name) as img:
                        for s in list(img.list_snaps()):
                            if img.is_protected_snap(s["name"]):
                                img.set_snap(s["name"])
                                if list(img.list_children2()):
                                    img.set_snap(None)
                                    continue
                                img.set_snap(None)
                                img.unprotect_snap(s["name"])
                            img.remove_snap(s["name"])
                    rbd.RBD().remove(ioctx, name)
                except rbd.Error:
                    continue


@pytest.fixture(autouse=True)
def _empty_pool(ceph: Cluster) -> Iterator[None]:
    yield
    cleanup(ceph)


# ---------------------------------------------------------------- the lifecycle


def test_pool_and_volume_lifecycle(kp: Recorder, ceph: Cluster, tmp_path: Path) -> None:
    define_pool(kp, tmp_path, ceph)
    info = kp("pool-info", "ceph").out
    assert "State:          running" in info
    kp("vol-create-as", "ceph", "disk1", "64M")
    assert images(ceph) == ["disk1"]
    listing = kp("vol-list", "ceph", "--details").out
    assert "disk1" in listing and "64.00 MiB" in listing and "network" in listing
    v = vol_json(kp, "disk1")
    assert v["capacity"] == 64 * MiB and v["allocation"] == 0 and v["format"] == "raw"
    assert v["key"] == "rbd/disk1"
    path = vol_path(kp, "disk1")
    assert path == f"rbd:rbd/disk1:id=kvmpool:mon_host=127.0.0.1\\:{ceph.v2}"
    # What vol-path prints is what QEMU opens (the key comes from ceph.conf's keyring).
    qemu_io(path, "write -P 0xab 0 4M")
    assert 4 * MiB <= int(vol_json(kp, "disk1")["allocation"]) <= 8 * MiB  # type: ignore[call-overload]
    # by key, without --pool
    assert kp("vol-name", "rbd/disk1").out.strip() == "disk1"
    assert kp("vol-pool", "rbd/disk1").out.strip() == "ceph"
    dump = kp("vol-dumpxml", "disk1", "--pool", "ceph").out
    assert "<volume type='network'>" in dump and "<format type='raw'/>" in dump
    assert kp("pool-dumpxml", "ceph").out.count("<secret uuid=") == 1

    kp("vol-resize", "disk1", "128M", "--pool", "ceph")
    assert vol_json(kp, "disk1")["capacity"] == 128 * MiB
    err = kp("vol-resize", "disk1", "32M", "--pool", "ceph", ok=False).err
    assert "--shrink" in err
    kp("vol-resize", "disk1", "96M", "--pool", "ceph", "--shrink")
    assert vol_json(kp, "disk1")["capacity"] == 96 * MiB

    kp("vol-create-as", "ceph", "disk2", "1G")
    assert "already" in kp("vol-create-as", "ceph", "disk2", "1G", ok=False).err
    assert "cannot create qcow2" in kp("vol-create-as", "ceph", "q", "1G", "--format", "qcow2",
                                       ok=False).err
    kp("vol-delete", "disk2", "--pool", "ceph")
    kp("vol-delete", "rbd/disk1")  # by key
    assert images(ceph) == []
    kp("pool-refresh", "ceph")
    kp("pool-destroy", "ceph")
    kp("pool-undefine", "ceph")


def test_pool_info_matches_ceph_df(kp: Recorder, ceph: Cluster, tmp_path: Path) -> None:
    define_pool(kp, tmp_path, ceph)
    kp("vol-create-as", "ceph", "full", "16M")
    qemu_io(vol_path(kp, "full"), "write -P 0x11 0 16M")
    # Pool usage reaches the monitors with the OSDs' periodic reports (a few seconds).
    deadline = time.monotonic() + 30
    while True:
        info = json.loads(kp("pool-info", "ceph", "--json").out)
        df = ceph.df()
        if info["allocation"] >= 16 * MiB or time.monotonic() > deadline:
            break
        time.sleep(1)
    pool = next(p for p in df["pools"] if p["name"] == "rbd")["stats"]
    assert abs(info["capacity"] - df["stats"]["total_bytes"]) <= 0.01 * df["stats"]["total_bytes"]
    assert abs(info["available"] - df["stats"]["total_avail_bytes"]) <= 64 * MiB
    assert 16 * MiB <= info["allocation"] <= 20 * MiB
    assert abs(info["allocation"] - pool["stored"]) <= 4 * MiB


def test_clone_snapshots_and_delete_rules(kp: Recorder, ceph: Cluster, tmp_path: Path) -> None:
    define_pool(kp, tmp_path, ceph)
    kp("vol-create-as", "ceph", "base", "64M")
    base = vol_path(kp, "base")
    qemu_io(base, "write -P 0xab 0 2M")
    kp("vol-clone", "base", "child", "--pool", "ceph")
    child = vol_path(kp, "child")
    qemu_io(child, "read -P 0xab 0 2M")  # the parent's data, through the clone
    qemu_io(child, "write -P 0xcd 0 1M")
    qemu_io(base, "read -P 0xab 0 2M")  # the parent is untouched
    assert vol_json(kp, "child")["backing"] == base
    assert int(vol_json(kp, "child")["allocation"]) == 4 * MiB  # one object copied up  # type: ignore[call-overload]
    # clone v1 (a fresh cluster): the parent snapshot was protected
    import rbd

    with ceph.admin().open_ioctx("rbd") as ioctx, rbd.Image(ioctx, "base") as img:
        snaps = [s["name"] for s in img.list_snaps()]
        assert len(snaps) == 1 and snaps[0].startswith("kvmpool-clone-")
        assert img.is_protected_snap(snaps[0])
    # a second clone of an unchanged parent reuses that snapshot
    kp("vol-clone", "base", "child2", "--pool", "ceph")
    with ceph.admin().open_ioctx("rbd") as ioctx, rbd.Image(ioctx, "base") as img:
        assert len(list(img.list_snaps())) == 1
    # internal snapshots are not the user's
    assert "kvmpool-clone" not in kp("vol-snapshot-list", "base", "--pool", "ceph").out

    err = kp("vol-delete", "base", "--pool", "ceph", ok=False).err
    assert "backing file of: ceph/child, ceph/child2" in err
    assert err.count("\n") == 1 and err.startswith("error:")
    err = kp("vol-delete", "base", "--pool", "ceph", "--delete-snapshots", ok=False).err
    assert "child" in err
    assert "base" in images(ceph)

    # snapshots through the common verbs
    kp("vol-snapshot-create", "child", "s1", "--pool", "ceph")
    qemu_io(child, "write -P 0xef 0 1M")
    snaps = kp("vol-snapshot-list", "child", "--pool", "ceph", "--json").out
    assert [s["name"] for s in json.loads(snaps)] == ["s1"]
    kp("vol-snapshot-revert", "child", "s1", "--pool", "ceph")
    qemu_io(child, "read -P 0xcd 0 1M")
    assert "already has" in kp("vol-snapshot-create", "child", "s1", "--pool", "ceph",
                               ok=False).err
    err = kp("vol-delete", "child", "--pool", "ceph", ok=False).err
    assert "snapshots" in err and "--delete-snapshots" in err
    kp("vol-delete", "child", "--pool", "ceph", "--delete-snapshots")
    kp("vol-snapshot-create", "child2", "s2", "--pool", "ceph")
    kp("vol-snapshot-delete", "child2", "s2", "--pool", "ceph")
    kp("vol-delete", "child2", "--pool", "ceph")
    # the last clone gone, kvmpool's clone snapshot went with it: the parent deletes plainly
    kp("vol-delete", "base", "--pool", "ceph")
    assert images(ceph) == []


def test_upload_download_wipe(kp: Recorder, ceph: Cluster, tmp_path: Path) -> None:
    define_pool(kp, tmp_path, ceph)
    kp("vol-create-as", "ceph", "data", "8M")
    src = tmp_path / "src.bin"
    payload = os.urandom(1 * MiB) + bytes(2 * MiB) + os.urandom(MiB // 2)
    src.write_bytes(payload)
    kp("vol-upload", "data", str(src), "--pool", "ceph")
    out = tmp_path / "out.bin"
    kp("vol-download", "data", str(out), "--pool", "ceph")
    got = out.read_bytes()
    assert len(got) == 8 * MiB and got[:len(payload)] == payload
    assert got[len(payload):] == bytes(8 * MiB - len(payload))
    sparse = tmp_path / "sparse.bin"
    kp("vol-download", "data", str(sparse), "--pool", "ceph", "--sparse")
    assert sparse.read_bytes() == got
    assert os.stat(sparse).st_blocks * 512 < 4 * MiB
    kp("vol-upload", "data", str(src), "--pool", "ceph", "--offset", "1M", "--length", "4M")
    part = tmp_path / "part.bin"
    kp("vol-download", "data", str(part), "--pool", "ceph", "--offset", "1M",
       "--length", str(len(payload)))
    assert part.read_bytes() == payload
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(9 * MiB))
    assert "do not fit" in kp("vol-upload", "data", str(big), "--pool", "ceph", ok=False).err

    kp("vol-wipe", "data", "--pool", "ceph")
    qemu_io(vol_path(kp, "data"), "read -P 0 0 8M")
    kp("vol-upload", "data", str(src), "--pool", "ceph")
    kp("vol-wipe", "data", "--pool", "ceph", "--algorithm", "trim")
    qemu_io(vol_path(kp, "data"), "read -P 0 0 8M")
    assert vol_json(kp, "data")["allocation"] == 0
    err = kp("vol-wipe", "data", "--pool", "ceph", "--algorithm", "dod", ok=False).err
    assert "cannot wipe with 'dod'" in err


def test_copy_from_a_dir_pool(kp: Recorder, ceph: Cluster, tmp_path: Path) -> None:
    define_pool(kp, tmp_path, ceph)
    kp("pool-define-as", "local", "dir", "--target", str(tmp_path / "local"))
    kp("pool-build", "local")
    kp("pool-start", "local")
    kp("vol-create-as", "local", "img.raw", "4M")
    raw = tmp_path / "local" / "img.raw"
    with open(raw, "r+b") as f:
        f.seek(MiB)
        f.write(b"\x5a" * MiB)
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw),
                    str(tmp_path / "local" / "img.qcow2")], check=True)
    kp("pool-refresh", "local")
    doc = tmp_path / "new.xml"
    for name, src in (("fromraw", "img.raw"), ("fromqcow", "img.qcow2")):
        doc.write_text(f"<volume><name>{name}</name><capacity>8388608</capacity>"
                       "<target><format type='raw'/></target></volume>")
        kp("vol-create-from", "ceph", str(doc), src, "--inputpool", "local")
        path = vol_path(kp, name)
        qemu_io(path, f"read -P 0x5a {MiB} {MiB}")
        qemu_io(path, f"read -P 0 0 {MiB}")
        assert vol_json(kp, name)["capacity"] == 8 * MiB
    # a full copy in the cluster
    kp("vol-clone", "fromraw", "copied", "--pool", "ceph", "--no-reflink")
    qemu_io(vol_path(kp, "copied"), f"read -P 0x5a {MiB} {MiB}")
    assert vol_json(kp, "copied")["backing"] is None


def same_data(image: str, local: Path, fmt: str) -> None:
    """The image (read by QEMU's own rbd driver) and the local file hold the same bytes."""
    proc = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", fmt, image, str(local)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_copy_to_a_dir_pool_and_back(kp: Recorder, ceph: Cluster, tmp_path: Path) -> None:
    define_pool(kp, tmp_path, ceph)
    local = tmp_path / "local"
    kp("pool-define-as", "local", "dir", "--target", str(local))
    kp("pool-build", "local")
    kp("pool-start", "local")
    kp("vol-create-as", "ceph", "disk", "64M")
    qemu_io(vol_path(kp, "disk"), f"write -P 0x5a {MiB} {MiB}")
    qemu_io(vol_path(kp, "disk"), f"write -P 0x11 {40 * MiB} {MiB // 2}")
    kp("vol-clone", "disk", "child", "--pool", "ceph")  # its parent's data must come along
    child = vol_path(kp, "child")
    qemu_io(child, f"write -P 0x33 {8 * MiB} {MiB}")
    doc = tmp_path / "v.xml"
    doc.write_text("<volume><name>dry</name><capacity>0</capacity></volume>")
    out = kp("--dry-run", "vol-create-from", "local", str(doc), "child", "--inputpool",
             "ceph").out
    assert "scratch file" in out and os.listdir(local) == []
    for name, fmt in (("child.raw", "raw"), ("child.qcow2", "qcow2")):
        doc.write_text(f"<volume><name>{name}</name><capacity>0</capacity>"
                       f"<target><format type='{fmt}'/></target></volume>")
        kp("vol-create-from", "local", str(doc), "child", "--inputpool", "ceph")
        same_data(child, local / name, fmt)
        assert vol_json(kp, name, "local")["capacity"] == 64 * MiB
    assert sorted(os.listdir(local)) == ["child.qcow2", "child.raw"]  # no scratch file left
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json",
                                      str(local / "child.qcow2")], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["format"] == "qcow2"
    # sparse: 2.5 MiB of data in 64 MiB, unallocated extents never read nor written
    assert (local / "child.raw").stat().st_blocks * 512 <= 8 * MiB

    # back into the cluster, from a file with 4 MiB of written zeros: not written either
    with open(local / "child.raw", "r+b") as f:
        f.seek(20 * MiB)
        f.write(bytes(4 * MiB))
        os.fsync(f.fileno())
    assert (local / "child.raw").stat().st_blocks * 512 >= 6 * MiB
    kp("pool-refresh", "local")
    for name, src in (("back-raw", "child.raw"), ("back-qcow2", "child.qcow2")):
        doc.write_text(f"<volume><name>{name}</name><capacity>0</capacity></volume>")
        kp("vol-create-from", "ceph", str(doc), src, "--inputpool", "local")
        same_data(vol_path(kp, name), local / "child.raw", "raw")
        got = vol_json(kp, name)
        assert got["backing"] is None
        # fast-diff's exact use: the objects at 1, 8 and 40 MiB (4 MiB each), no others
        assert got["allocation"] == 12 * MiB, got


def test_copy_between_two_clusters(kp: Recorder, ceph: Cluster, tmp_path: Path) -> None:
    """A second, separate cluster: the data is streamed from one connection to the other
    (there is no copy-on-write across clusters)."""
    import rbd

    define_pool(kp, tmp_path, ceph)
    kp("vol-create-as", "ceph", "gold", "32M")
    qemu_io(vol_path(kp, "gold"), f"write -P 0x77 {MiB} {MiB}")
    kp("vol-clone", "gold", "vm", "--pool", "ceph")  # a clone: its parent's data comes along
    qemu_io(vol_path(kp, "vm"), f"write -P 0x78 {20 * MiB} {MiB}")
    with Cluster() as far:
        sid = define_secret(kp, tmp_path, far.user_key)
        doc = tmp_path / "pool-far.xml"
        doc.write_text(pool_xml("far", "rbd", far.v2, sid))
        kp("pool-define", "--file", str(doc))
        kp("pool-start", "far")
        doc = tmp_path / "vm.xml"
        doc.write_text("<volume><name>vm-copy</name><capacity>0</capacity></volume>")
        err = kp("vol-create-from", "far", str(doc), "vm", "--inputpool", "ceph",
                 "--reflink-only", ok=False).err
        assert "cannot be shared copy-on-write" in err
        kp("vol-create-from", "far", str(doc), "vm", "--inputpool", "ceph")
        with far.admin().open_ioctx("rbd") as ioctx, \
                rbd.Image(ioctx, "vm-copy", read_only=True) as img:
            assert img.size() == 32 * MiB
            assert img.read(MiB, MiB) == b"\x77" * MiB
            assert img.read(20 * MiB, MiB) == b"\x78" * MiB
            assert img.read(0, MiB) == bytes(MiB)
            with pytest.raises(rbd.ImageNotFound):
                img.get_parent_image_spec()  # a full copy, not a clone
        got = vol_json(kp, "vm-copy", "far")
        assert got["allocation"] == 8 * MiB, got  # the two objects with data, no others
        assert "vm-copy" not in images(ceph)
        kp.assert_no_secret(far.user_key)


def test_image_features_from_the_pool_options(kp: Recorder, ceph: Cluster,
                                              tmp_path: Path) -> None:
    import rbd

    ns = "xmlns:rbd='http://libvirt.org/schemas/storagepool/rbd/1.0'"
    extra = ("<rbd:config_opts><rbd:option name='rbd_default_features' value='1'/>"
             "</rbd:config_opts>")
    sid = define_secret(kp, tmp_path, ceph.user_key)
    doc = tmp_path / "pool.xml"
    doc.write_text(pool_xml("ceph", "rbd", ceph.v2, sid, extra="").replace(
        "<pool type='rbd'>", f"<pool type='rbd' {ns}>").replace("</pool>", extra + "</pool>"))
    kp("pool-define", "--file", str(doc))
    assert "rbd_default_features" in kp("pool-dumpxml", "ceph").out
    kp("pool-start", "ceph")
    kp("vol-create-as", "ceph", "plain", "16M")
    with ceph.admin().open_ioctx("rbd") as ioctx, rbd.Image(ioctx, "plain") as img:
        assert img.features() == rbd.RBD_FEATURE_LAYERING
    # no fast-diff: allocation is objects x object size, as libvirt reports it
    assert vol_json(kp, "plain")["allocation"] == 16 * MiB
    kp("vol-create-as", "ceph", "plain2", "8M")
    kp("vol-clone", "plain2", "plain3", "--pool", "ceph")
    kp("vol-delete", "plain3", "--pool", "ceph")


# ---------------------------------------------------------------- faults


def cli(kp: Recorder, *args: str) -> tuple[int, str, float]:
    """kvmpool as its own process (nothing of librados' can hide in pytest's capture):
    exit code, the whole stderr, seconds taken."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kvmpool", "--root", str(kp.kvmpool.root),
                           *args], capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)
    took = time.monotonic() - t0
    kp.outputs += [proc.stdout, proc.stderr]
    return proc.returncode, proc.stderr, took


def test_wrong_key_is_one_clear_line_at_once(kp: Recorder, ceph: Cluster,
                                             tmp_path: Path) -> None:
    wrong = "AQBQmlhlAAAAABAA4k3ZrG2zWL7b1J5Ip0Nk1w=="
    define_pool(kp, tmp_path, ceph, key=wrong, start=False)
    code, err, took = cli(kp, "pool-start", "ceph")
    assert code != 0
    # msgr2 makes librados retry a refused key until its mount timeout (10 s): kvmpool
    # sees the refusal in librados' log and stops at once, with nothing of librados' own
    assert err == ("error: Failed to start pool ceph: the Ceph monitors at "
                   f"127.0.0.1:{ceph.v2} refused client.kvmpool: permission denied (wrong key "
                   "or unknown user?) (hint: check the key in the pool's secret and that the "
                   "user exists (ceph auth get client.kvmpool))\n"), err
    assert took < 6, took
    assert "inactive" in kp("pool-list", "--all").out
    code, err, _ = cli(kp, "--debug", "pool-start", "ceph")  # --debug: never the key
    assert code != 0 and "permission denied" in err
    kp("pool-dumpxml", "ceph")
    kp.assert_no_secret(wrong)
    # a user the cluster does not know: refused the same way
    sid = define_secret(kp, tmp_path, ceph.user_key)
    doc = tmp_path / "pool-nobody.xml"
    doc.write_text(pool_xml("nobody", "rbd", ceph.v2, sid, user="nobody"))
    kp("pool-define", "--file", str(doc))
    code, err, took = cli(kp, "pool-start", "nobody")
    assert code != 0 and took < 6, took
    assert "refused client.nobody: permission denied" in err and err.count("\n") == 1, err


def test_unreachable_monitor_fails_in_bounded_time(kp: Recorder, ceph: Cluster,
                                                   tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens there once closed
    define_pool(kp, tmp_path, ceph, port=dead, start=False)
    code, err, took = cli(kp, "pool-start", "ceph")
    assert code != 0
    assert 8 < took < 15, took  # the connect timeout (10 s) and a process start
    assert re.fullmatch(
        f"error: Failed to start pool ceph: cannot reach the Ceph monitors at 127.0.0.1:{dead}"
        r" within 1[01] s \(hint: check <source><host> and that the cluster is up\)\n",
        err), err


def test_monitor_name_that_does_not_resolve(kp: Recorder, ceph: Cluster,
                                            tmp_path: Path) -> None:
    sid = define_secret(kp, tmp_path, ceph.user_key)
    doc = tmp_path / "pool.xml"
    # librados refuses the whole list for one bad name, and prints its own lines about it
    doc.write_text(pool_xml("ceph", "rbd", ceph.v2, sid).replace(
        "</source>", "<host name='nosuchhost.invalid' port='3300'/></source>"))
    kp("pool-define", "--file", str(doc))
    code, err, _ = cli(kp, "pool-start", "ceph")
    assert code != 0
    assert err.startswith("error: Failed to start pool ceph: cannot resolve the Ceph monitor "
                          "host 'nosuchhost.invalid': "), err
    assert err.endswith("(hint: check <source><host name=...> of the pool)\n"), err
    assert err.count("\n") == 1, err


def test_missing_ceph_pool(kp: Recorder, ceph: Cluster, tmp_path: Path) -> None:
    # virsh's way: pool-define-as, the secret found by its usage
    sid = define_secret(kp, tmp_path, ceph.user_key)
    for name, rpool in (("gone", "nosuchpool"), ("there", "rbd")):
        kp("pool-define-as", name, "rbd", "--source-host", "127.0.0.1", "--source-port",
           str(ceph.v2), "--source-name", rpool, "--auth-type", "ceph", "--auth-username",
           "kvmpool", "--secret-usage", f"client.kvmpool {sid}")
    err = kp("pool-start", "gone", ok=False).err
    assert "Ceph pool 'nosuchpool' does not exist" in err
    assert err.count("\n") == 1 and err.startswith("error:")
    kp("pool-start", "there")
    assert "gone" not in kp("pool-list").out


def test_image_in_use_and_clone_across_pools(kp: Recorder, ceph: Cluster,
                                            tmp_path: Path) -> None:
    import rbd

    define_pool(kp, tmp_path, ceph)
    kp("vol-create-as", "ceph", "busy", "16M")
    kp("vol-snapshot-create", "busy", "s", "--pool", "ceph")
    with ceph.admin().open_ioctx("rbd") as ioctx, rbd.Image(ioctx, "busy"):
        # a client (a guest) has the image open
        err = kp("vol-delete", "busy", "--pool", "ceph", "--delete-snapshots", ok=False).err
        assert "in use" in err
        err = kp("vol-snapshot-revert", "busy", "s", "--pool", "ceph", ok=False).err
        assert "in use" in err
    assert "busy" in images(ceph)
    kp("vol-delete", "busy", "--pool", "ceph", "--delete-snapshots")

    # a clone into another RADOS pool of the same cluster (the user may use both)
    ceph.create_pool("other")
    ceph.set_user_caps(["rbd", "other"])
    try:
        doc = tmp_path / "pool-other.xml"
        sid = define_secret(kp, tmp_path, ceph.user_key)
        doc.write_text(pool_xml("other", "other", ceph.v2, sid))
        kp("pool-define", "--file", str(doc))
        kp("pool-start", "other")
        kp("vol-create-as", "ceph", "gold", "16M")
        qemu_io(vol_path(kp, "gold"), "write -P 0x77 0 1M")
        doc = tmp_path / "vm.xml"
        doc.write_text("<volume><name>vm</name><capacity>33554432</capacity></volume>")
        kp("vol-create-from", "other", str(doc), "gold", "--inputpool", "ceph")
        qemu_io(vol_path(kp, "vm", "other"), "read -P 0x77 0 1M")
        assert vol_json(kp, "vm", "other")["capacity"] == 32 * MiB
        assert vol_json(kp, "vm", "other")["backing"] == vol_path(kp, "gold")
        assert "other/vm" in kp("vol-delete", "gold", "--pool", "ceph", ok=False).err
        kp("vol-delete", "vm", "--pool", "other")
        kp("vol-delete", "gold", "--pool", "ceph")
    finally:
        cleanup(ceph, "other")
        ceph.set_user_caps(["rbd"])


def test_clone_v2_cluster(kp: Recorder, ceph: Cluster, tmp_path: Path) -> None:
    """Last: switches the session's cluster to clone v2 (no protection needed)."""
    import rbd

    ceph.mon("osd set-require-min-compat-client", version="mimic")
    define_pool(kp, tmp_path, ceph)
    kp("vol-create-as", "ceph", "p2", "16M")
    qemu_io(vol_path(kp, "p2"), "write -P 0x42 0 1M")
    kp("vol-clone", "p2", "c2", "--pool", "ceph")
    qemu_io(vol_path(kp, "c2"), "read -P 0x42 0 1M")
    with ceph.admin().open_ioctx("rbd") as ioctx, rbd.Image(ioctx, "p2") as img:
        snap = next(iter(img.list_snaps()))["name"]
        assert not img.is_protected_snap(snap)
    assert "c2" in kp("vol-delete", "p2", "--pool", "ceph", ok=False).err
    kp("vol-delete", "c2", "--pool", "ceph")
    kp("vol-delete", "p2", "--pool", "ceph")
    assert images(ceph) == []
