"""clone, create-from, upload, download, wipe, resize and qcow2 snapshots on a dir pool."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvmpool.backends import fileops
from kvmpool.host.run import Runner
from kvmpool.model import VolTarget, VolumeDef
from kvmpool.names import TEMP_PREFIX
from tests.conftest import Kvmpool, tree

pytestmark = pytest.mark.tools
MiB = 1 << 20


@pytest.fixture
def pool(kvmpool: Kvmpool, tmp_path: Path) -> Path:
    target = tmp_path / "images"
    kvmpool("pool-define-as", "guest", "dir", "--target", str(target))
    kvmpool("pool-start", "guest", "--build")
    return target


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def qemu_info(path: Path) -> dict[str, object]:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def qemu_io(path: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, str(path)],
                          capture_output=True, text=True, check=False)


def write_pattern(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_clone_of_a_sparse_raw_volume_keeps_data_and_holes(kvmpool: Kvmpool, pool: Path) -> None:
    kvmpool("vol-create-as", "guest", "base.img", "64M", "--allocation", "0")
    write_pattern(pool / "base.img", 8 * MiB, os.urandom(2 * MiB))
    write_pattern(pool / "base.img", 40 * MiB, os.urandom(MiB))
    out = kvmpool("vol-clone", "base.img", "copy.img", "--pool", "guest").out
    assert out == "Vol copy.img cloned from base.img\n\n"
    assert digest(pool / "copy.img") == digest(pool / "base.img")
    src, dst = (pool / "base.img").stat(), (pool / "copy.img").stat()
    assert dst.st_size == src.st_size == 64 * MiB
    assert dst.st_blocks <= src.st_blocks  # the holes stayed holes
    assert not [p for p in os.listdir(pool) if p.startswith(".kvmpool")]


def test_clone_flattens_a_backing_chain(kvmpool: Kvmpool, pool: Path) -> None:
    kvmpool("vol-create-as", "guest", "base.qcow2", "16M", "--format", "qcow2")
    assert qemu_io(pool / "base.qcow2", "write -P 0x5a 0 1M").returncode == 0
    kvmpool("vol-create-as", "guest", "top.qcow2", "16M", "--format", "qcow2",
            "--backing-vol", "base.qcow2")
    kvmpool("vol-clone", "top.qcow2", "flat.qcow2", "guest")
    info = qemu_info(pool / "flat.qcow2")
    assert info["format"] == "qcow2" and "backing-filename" not in info
    assert qemu_io(pool / "flat.qcow2", "read -P 0x5a 0 1M").returncode == 0
    assert "<backingStore>" not in kvmpool("vol-dumpxml", "flat.qcow2", "guest").out
    # The base is still in use by top.qcow2, not by the clone.
    err = kvmpool("vol-delete", "base.qcow2", "guest", ok=False).err
    assert "guest/top.qcow2" in err and "flat" not in err


def test_reflink_only_fails_cleanly_where_extents_cannot_be_shared(
    kvmpool: Kvmpool, pool: Path, tmp_path: Path
) -> None:
    kvmpool("vol-create-as", "guest", "a.img", "4M")
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    can = subprocess.run(["cp", "--reflink=always", str(probe), str(tmp_path / "probe2")],
                         capture_output=True, check=False).returncode == 0
    before = sorted(os.listdir(pool))
    result = kvmpool("vol-clone", "a.img", "b.img", "guest", "--reflink-only", ok=can)
    if not can:
        assert "cannot share extents" in result.err
        assert sorted(os.listdir(pool)) == before
    kvmpool("vol-clone", "a.img", "c.img", "guest", "--reflink")
    assert digest(pool / "c.img") == digest(pool / "a.img")


def test_create_from_changes_format_and_grows(kvmpool: Kvmpool, pool: Path,
                                              tmp_path: Path) -> None:
    kvmpool("vol-create-as", "guest", "src.img", "8M", "--allocation", "0")
    write_pattern(pool / "src.img", 0, b"\xab" * MiB)
    other = tmp_path / "other"
    kvmpool("pool-define-as", "other", "dir", "--target", str(other))
    kvmpool("pool-start", "other", "--build")
    spec = tmp_path / "new.xml"
    spec.write_text("<volume><name>new.qcow2</name><capacity unit='M'>16</capacity>"
                    "<target><format type='qcow2'/></target></volume>")
    out = kvmpool("vol-create-from", "other", str(spec), "src.img", "--inputpool", "guest").out
    assert out == "Vol new.qcow2 created from input vol src.img\n\n"
    info = qemu_info(other / "new.qcow2")
    assert info["format"] == "qcow2" and info["virtual-size"] == 16 * MiB
    assert qemu_io(other / "new.qcow2", "read -P 0xab 0 1M").returncode == 0


def test_upload_and_download_round_trip(kvmpool: Kvmpool, pool: Path, tmp_path: Path) -> None:
    kvmpool("vol-create-as", "guest", "disk.img", "16M", "--allocation", "0")
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3 * MiB))
    assert kvmpool("vol-upload", "disk.img", str(data), "--pool", "guest",
                   "--offset", "1M").out == "\n"
    out = tmp_path / "out.bin"
    kvmpool("vol-download", "disk.img", str(out), "--pool", "guest", "--offset", "1M",
            "--length", "3M")
    assert out.read_bytes() == data.read_bytes()
    full = tmp_path / "full.bin"
    kvmpool("vol-download", "disk.img", str(full), "--pool", "guest")
    assert full.stat().st_blocks * 512 >= 16 * MiB  # without --sparse: fully allocated
    sparse = tmp_path / "sparse.bin"
    kvmpool("vol-download", "disk.img", str(sparse), "--pool", "guest", "--sparse")
    assert sparse.read_bytes() == full.read_bytes()
    assert sparse.stat().st_blocks * 512 < 5 * MiB


def test_upload_from_stdin_and_download_to_stdout(pool: Path, tmp_path: Path) -> None:
    env = dict(os.environ, KVMPOOL_ROOT=str(tmp_path / "root"))
    cmd = [sys.executable, "-m", "kvmpool"]
    subprocess.run([*cmd, "vol-create-as", "guest", "d.img", "2M"], env=env, check=True,
                   capture_output=True)
    payload = os.urandom(MiB)
    subprocess.run([*cmd, "vol-upload", "d.img", "-", "guest"], input=payload, env=env,
                   check=True, capture_output=True)
    got = subprocess.run([*cmd, "vol-download", "d.img", "-", "guest", "--length", "1M"],
                         env=env, check=True, capture_output=True).stdout
    assert got == payload


def test_upload_that_does_not_fit_changes_nothing(kvmpool: Kvmpool, pool: Path,
                                                  tmp_path: Path) -> None:
    kvmpool("vol-create-as", "guest", "small.img", "1M")
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x01" * (2 * MiB))
    before = tree(pool)
    err = kvmpool("vol-upload", "small.img", str(big), "guest", ok=False).err
    assert "do not fit" in err
    err = kvmpool("vol-upload", "small.img", str(big), "guest", "--length", "512", ok=False).err
    assert "more than --length" in err
    assert tree(pool) == before


def test_wipe(kvmpool: Kvmpool, pool: Path) -> None:
    kvmpool("vol-create-as", "guest", "full.img", "4M")
    write_pattern(pool / "full.img", 0, b"\xff" * (4 * MiB))
    assert kvmpool("vol-wipe", "full.img", "guest").out == "Vol full.img wiped\n\n"
    assert (pool / "full.img").read_bytes() == bytes(4 * MiB)
    kvmpool("vol-create-as", "guest", "sparse.img", "4M", "--allocation", "0")
    write_pattern(pool / "sparse.img", MiB, b"\xff" * 4096)
    kvmpool("vol-wipe", "sparse.img", "guest")
    assert (pool / "sparse.img").stat().st_blocks == 0
    assert (pool / "sparse.img").stat().st_size == 4 * MiB
    kvmpool("vol-wipe", "full.img", "guest", "--algorithm", "trim")
    assert (pool / "full.img").stat().st_blocks == 0
    # An image stays a valid, empty image of the same size (and keeps its backing file).
    kvmpool("vol-create-as", "guest", "b.qcow2", "8M", "--format", "qcow2")
    kvmpool("vol-create-as", "guest", "q.qcow2", "8M", "--format", "qcow2",
            "--backing-vol", "b.qcow2")
    qemu_io(pool / "q.qcow2", "write -P 0x77 0 1M")
    kvmpool("vol-wipe", "q.qcow2", "guest")
    info = qemu_info(pool / "q.qcow2")
    assert info["virtual-size"] == 8 * MiB and info["backing-filename"] == str(pool / "b.qcow2")
    assert qemu_io(pool / "q.qcow2", "read -P 0 0 1M").returncode == 0
    err = kvmpool("vol-wipe", "full.img", "guest", "--algorithm", "nosuch", ok=False).err
    assert "Unsupported algorithm 'nosuch'" in err


@pytest.mark.skipif(shutil.which("scrub") is None, reason="scrub is installed by scripts/setup")
def test_wipe_with_scrub_patterns(kvmpool: Kvmpool, pool: Path) -> None:
    kvmpool("vol-create-as", "guest", "s.img", "1M")
    write_pattern(pool / "s.img", 0, b"secret" * 1000)
    kvmpool("vol-wipe", "s.img", "guest", "--algorithm", "dod")
    assert b"secret" not in (pool / "s.img").read_bytes()


def test_resize_rules(kvmpool: Kvmpool, pool: Path) -> None:
    kvmpool("vol-create-as", "guest", "r.img", "8M", "--allocation", "0")
    out = kvmpool("vol-resize", "r.img", "16M", "--pool", "guest").out
    assert out == "Size of volume 'r.img' successfully changed to 16M\n\n"
    assert (pool / "r.img").stat().st_size == 16 * MiB
    kvmpool("vol-resize", "r.img", "4M", "--pool", "guest", "--delta")
    assert (pool / "r.img").stat().st_size == 20 * MiB
    err = kvmpool("vol-resize", "r.img", "-4M", "--pool", "guest", ok=False).err
    assert "negative size requires --shrink" in err
    err = kvmpool("vol-resize", "r.img", "10M", "--pool", "guest", ok=False).err
    assert "unless shrink flag" in err
    out = kvmpool("vol-resize", "r.img", "-4M", "--pool", "guest", "--shrink").out
    assert "changed by 4M" in out and (pool / "r.img").stat().st_size == 16 * MiB
    kvmpool("vol-resize", "r.img", "24M", "--pool", "guest", "--allocate")
    assert (pool / "r.img").stat().st_blocks * 512 >= 8 * MiB
    kvmpool("vol-create-as", "guest", "full.img", "4M")
    err = kvmpool("vol-resize", "full.img", "2M", "--pool", "guest", "--shrink", ok=False).err
    assert "below existing allocation" in err
    kvmpool("vol-create-as", "guest", "q.qcow2", "8M", "--format", "qcow2")
    kvmpool("vol-resize", "q.qcow2", "32M", "guest")
    assert qemu_info(pool / "q.qcow2")["virtual-size"] == 32 * MiB
    err = kvmpool("vol-resize", "q.qcow2", "64M", "guest", "--allocate", ok=False).err
    assert "only supported for raw" in err


def test_qcow2_snapshots_revert_data(kvmpool: Kvmpool, pool: Path) -> None:
    kvmpool("vol-create-as", "guest", "s.qcow2", "8M", "--format", "qcow2")
    assert qemu_io(pool / "s.qcow2", "write -P 0x11 0 1M").returncode == 0
    kvmpool("vol-snapshot-create", "s.qcow2", "before", "--pool", "guest")
    assert qemu_io(pool / "s.qcow2", "write -P 0x22 0 1M").returncode == 0
    snaps = json.loads(kvmpool("vol-snapshot-list", "s.qcow2", "guest", "--json").out)
    assert [s["name"] for s in snaps] == ["before"] and snaps[0]["origin"] == "s.qcow2"
    kvmpool("vol-snapshot-revert", "s.qcow2", "before", "guest")
    assert qemu_io(pool / "s.qcow2", "read -P 0x11 0 1M").returncode == 0
    err = kvmpool("vol-snapshot-create", "s.qcow2", "before", "guest", ok=False).err
    assert "already has a snapshot" in err
    kvmpool("vol-snapshot-delete", "s.qcow2", "before", "guest")
    assert json.loads(kvmpool("vol-snapshot-list", "s.qcow2", "guest", "--json").out) == []
    kvmpool("vol-create-as", "guest", "r.img", "1M")
    err = kvmpool("vol-snapshot-create", "r.img", "x", "guest", ok=False).err
    assert "cannot snapshot raw volumes" in err


def test_a_killed_clone_never_leaves_a_volume_that_looks_whole(pool: Path,
                                                               tmp_path: Path) -> None:
    env = dict(os.environ, KVMPOOL_ROOT=str(tmp_path / "root"))
    cmd = [sys.executable, "-m", "kvmpool"]
    subprocess.run([*cmd, "vol-create-as", "guest", "big.img", "256M"], env=env, check=True,
                   capture_output=True)
    for sig in (signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen([*cmd, "vol-clone", "big.img", "copy.img", "guest",
                                 "--no-reflink"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        time.sleep(0.6)
        proc.send_signal(sig)
        proc.communicate()
        if (pool / "copy.img").exists():  # it finished before the signal
            assert (pool / "copy.img").stat().st_size == 256 * MiB
            (pool / "copy.img").unlink()
        if sig == signal.SIGINT:
            assert not [p for p in os.listdir(pool) if p.startswith(".kvmpool")]
    listing = subprocess.run([*cmd, "vol-list", "guest"], env=env, check=True,
                             capture_output=True, text=True).stdout
    assert "copy.img" not in listing and ".kvmpool" not in listing


def test_luks_volumes_take_their_passphrase_from_a_secret(
    kvmpool: Kvmpool, pool: Path, tmp_path: Path
) -> None:
    uuid = "f52a81b2-424e-490c-823d-6bd4235bc572"
    (tmp_path / "secret.xml").write_text(
        f"<secret ephemeral='no' private='yes'><uuid>{uuid}</uuid>"
        f"<usage type='volume'><volume>{pool}/enc.qcow2</volume></usage></secret>")
    kvmpool("secret-define", str(tmp_path / "secret.xml"))
    passphrase = "Pa55-phrase-never-shown"
    (tmp_path / "pass.txt").write_text(passphrase)
    kvmpool("secret-set-value", uuid, "--file", str(tmp_path / "pass.txt"), "--plain")
    outputs = []
    for name, fmt in (("enc.qcow2", "qcow2"), ("enc.img", "raw")):
        spec = tmp_path / f"{name}.xml"
        spec.write_text(
            f"<volume><name>{name}</name><capacity unit='M'>16</capacity><target>"
            f"<format type='{fmt}'/><encryption format='luks'><secret type='passphrase' "
            f"uuid='{uuid}'/></encryption></target></volume>")
        outputs.append(kvmpool("--debug", "vol-create", "guest", str(spec)))
        xml_out = kvmpool("vol-dumpxml", name, "guest").out
        assert "<encryption format='luks'>" in xml_out and "<format type='luks'/>" not in xml_out
        outputs.append(kvmpool("vol-info", name, "guest", "--bytes"))
        assert "Capacity:       16777216 bytes" in outputs[-1].out
    assert qemu_info(pool / "enc.qcow2")["encrypted"] is True
    # The right passphrase opens it; nothing kvmpool printed or left holds the passphrase.
    opened = subprocess.run(
        ["qemu-img", "info", "--object", f"secret,id=s,file={tmp_path / 'pass.txt'}",
         "--image-opts", f"driver=luks,key-secret=s,file.filename={pool / 'enc.img'}"],
        capture_output=True, text=True, check=False)
    assert opened.returncode == 0, opened.stderr
    for result in outputs:
        assert passphrase not in result.out + result.err
    assert not [p for p in os.listdir(pool) if p.startswith(".kvmpool")]


def test_a_scratch_file_in_the_pool_is_taken_not_copied(pool: Path, tmp_path: Path) -> None:
    """An rbd image staged into a dir pool (a hidden kvmpool scratch file in the pool's own
    directory) becomes the new raw volume by a rename: its data is written once."""
    data = os.urandom(MiB)
    scratch = pool / (TEMP_PREFIX + "staged")
    elsewhere = tmp_path / (TEMP_PREFIX + "staged")  # same name, not in the pool
    for path in (scratch, elsewhere):
        path.write_bytes(data)
        os.chmod(path, 0o600)
    inode = scratch.stat().st_ino

    def source(path: Path) -> VolumeDef:
        return VolumeDef(name="img", capacity=MiB, target=VolTarget(path=str(path), format="raw"))

    def new(name: str, capacity: int = MiB) -> VolumeDef:
        return VolumeDef(name=name, capacity=capacity, target=VolTarget(format="raw"))

    made = Path(fileops.clone(Runner(), str(pool), source(scratch), new("taken", 4 * MiB)))
    assert made.stat().st_ino == inode and not scratch.exists()
    assert made.stat().st_size == 4 * MiB and made.read_bytes()[:MiB] == data
    assert made.stat().st_mode & 0o777 == 0o600  # the pool's default mode, as a copy gets
    copied = Path(fileops.clone(Runner(), str(pool), source(elsewhere), new("copied")))
    assert elsewhere.exists() and copied.stat().st_ino != elsewhere.stat().st_ino
    assert copied.read_bytes() == data
    # a qcow2 destination converts (qemu-img) and leaves the scratch to its stager
    scratch.write_bytes(data)
    fileops.clone(Runner(), str(pool), source(scratch),
                  VolumeDef(name="conv", capacity=MiB, target=VolTarget(format="qcow2")))
    assert scratch.exists()
